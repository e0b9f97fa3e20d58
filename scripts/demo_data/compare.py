"""Score a model's `rrsis eval` output on the demo dataset against the no-language baseline.

    rrsis eval --model rrsis_geo/weights/btdnet-lite-demo.safetensors --format custom data/demo --split test \
        --split-column split --raster-column chip --category-column category --native --out runs/demo_eval
    python scripts/demo_data/compare.py runs/demo_eval [--split test]

Groups the per-sample results (``per_sample.csv``) exactly as ``baseline.py`` groups the rule
baseline (expressions that need the language, category-only ones, and each kind) and prints
both side by side from ``data/demo/meta/baseline.json``: issue 6's bar is the model beating the
baseline on the expressions that need the language.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.demo_data.baseline import metrics  # noqa: E402

GROUPS = ("needs_language", "category_only", "kind=size", "kind=position", "kind=relation", "all")


def grouped(per_sample: list[dict], rows) -> dict:
    """Model metrics per baseline group; ``rows`` is the demo GPKG (sample ids are ``row<i>``)."""
    parts: dict[str, list] = {g: [] for g in GROUPS}
    for s in per_sample:
        row = rows.iloc[int(s["sample_id"].removeprefix("row"))]
        part = (int(float(s["intersection"])), int(float(s["union"])))
        parts["all"].append(part)
        parts["needs_language" if row["needs_language"] else "category_only"].append(part)
        if row["kind"] != "category":
            parts[f"kind={row['kind']}"].append(part)
    return {g: metrics(p) for g, p in parts.items()}


def cells(m: dict, b: dict) -> str:
    """``model/rule`` for mIoU, oIoU and Pr@0.5."""
    return "".join(f" {m[k] or 0:6.3f}/{b[k] or 0:6.3f}" for k in ("mIoU", "oIoU", "Pr@0.5"))


def main() -> None:
    import geopandas as gpd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", type=Path, help="the --out folder of `rrsis eval`")
    ap.add_argument("--split", default="test")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    args = ap.parse_args()
    with open(args.eval_dir / "per_sample.csv", newline="") as f:
        per_sample = list(csv.DictReader(f))
    model = grouped(per_sample, gpd.read_file(args.data / "demo.gpkg"))
    base = json.load(open(args.data / "meta" / "baseline.json"))["splits"][args.split]
    print(f"{args.split}: model vs no-language baseline (best rule per category)")
    print(f"{'group':<15} {'n':>5} {'mIoU':>13} {'oIoU':>13} {'Pr@0.5':>13}")
    for g in GROUPS:
        m, b = model[g], base[g]["best"]
        print(f"{g:<15} {m['n']:>5}{cells(m, b)}")
    print(f"\nneeds_language against each rule (model / rule; {base['needs_language']['best']['n']} expressions)")
    print(f"{'rule':<15} {'mIoU':>13} {'oIoU':>13} {'Pr@0.5':>13}")
    m = model["needs_language"]
    for rule, b in base["needs_language"].items():
        if rule != "best":
            print(f"{rule:<15}{cells(m, b)}")


if __name__ == "__main__":
    main()
