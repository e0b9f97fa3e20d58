"""Where a demo model's misses come from: object choice or outline, by target size and category.

    python scripts/demo_data/diagnose.py rrsis_geo/weights/btdnet-lite-demo.safetensors [--split test]
    python scripts/demo_data/diagnose.py NEW.safetensors --against OLD.safetensors [--split test]

Scores the model at the chips' own resolution, at the checkpoint's threshold, on the expressions
that need the language, beside two no-language rules (``baseline.py``): the cleaned NDWI/NDVI class
mask and the labelled category mask. "Ranks first" is the share of the expressions whose chip holds
two or more labelled objects of the target's category where the target has the highest mean
foreground probability of them: the model chose the right object, whatever its outline. The rows
"only one of its kind" and "one of several" split the expressions by that count: where the target is
the chip's only object of its category the label mask is the answer itself, and only "one of several"
needs the words to tell the target from its like, so the intervals are given for both. The chips' masks
come from rebuilding the dataset (``build.py``) into a temporary folder, which must reproduce the
bundled ``data/demo`` (checked row by row).

Each expression set has several wordings of few targets (three wordings each, and a target is named
by size, position and relations alike), so the last lines give the model's lead over each rule in
mIoU, oIoU and Pr@0.5, each with a 95 % interval from a bootstrap over *targets*: all expressions of
a target are resampled together (for oIoU, a ratio of pixel sums, their intersections and unions). Resampling expressions instead would pretend the wordings of one pond were independent
evidence and give a far narrower interval. ``--against OTHER`` scores a second checkpoint (at its
own stored threshold) on the same expressions and adds the paired interval of the first model's lead
over it: the way to tell whether a new training recipe beats the shipped one or only drew other targets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.demo_data import baseline, build  # noqa: E402

BINS = ((0, 200), (200, 500), (500, 1500), (1500, 5000), (5000, None))


def expression_masks() -> list[dict]:
    """Per row of demo.gpkg: target mask, the category's labelled objects, the cleaned class mask."""
    with tempfile.TemporaryDirectory() as tmp:
        res = build.build(Path(tmp), None, log=lambda *a: None)
    rows = []
    for rec in res["records"]:
        for e in rec["exprs"]:
            t = rec["targets"][e.target]
            rule = {r: baseline.predict(r, t.category, rec["masks"], rec["targets"]) for r in ("class_clean", "category_union")}
            rows.append(dict(split=rec["chip"].split, category=t.category, needs_language=e.needs_language, target=t.mask,
                             target_id=f"{rec['chip'].name}/{e.target}",
                             objects=[o.mask for o in rec["targets"] if o.category == t.category],
                             clean=rule["class_clean"], union=rule["category_union"]))
    return rows


def _per_target_bootstrap(columns, targets, statistic, n_resamples: int, seed: int) -> tuple[float, float, float]:
    """``statistic`` of the per-expression ``columns`` and its 95 % BCa interval, resampling whole
    targets: each column is summed per target (``targets``: one id per expression) and ``statistic``
    maps the resampled per-target sums (``axis``-wise) to the figure."""
    from scipy.stats import DegenerateDataWarning, bootstrap

    keys, inverse = np.unique(np.asarray(targets), return_inverse=True)
    sums = [np.bincount(inverse, weights=np.asarray(c, float), minlength=len(keys)) for c in columns]
    point = float(statistic(*sums, axis=-1))
    if len(keys) < 2:
        return point, point, point
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # handled below
        res = bootstrap(sums, statistic, paired=True, vectorized=True, n_resamples=n_resamples, random_state=seed)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return point, point, point  # every resample gives the same figure: nothing varies between targets
    return point, lo, hi


def target_bootstrap(diff, targets, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-expression ``diff`` and its 95 % BCa interval, resampling whole targets (``targets``:
    one id per expression; the expressions of a target are drawn together)."""
    diff = np.asarray(diff, float)
    return _per_target_bootstrap((diff, np.ones_like(diff)), targets, lambda s, c, axis=-1: s.sum(axis) / c.sum(axis),
                                 n_resamples, seed)


def target_bootstrap_oiou(parts_a, parts_b, targets, n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """oIoU of ``parts_a`` minus oIoU of ``parts_b`` (each a per-expression list of (intersection,
    union) pixel counts) and its 95 % BCa interval, resampling whole targets. oIoU is a ratio of sums,
    not a mean of per-expression figures, so the sums are what is resampled."""
    (ia, ua), (ib, ub) = np.asarray(parts_a, float).T, np.asarray(parts_b, float).T
    return _per_target_bootstrap((ia, ua, ib, ub), targets,
                                 lambda ia, ua, ib, ub, axis=-1: ia.sum(axis) / ua.sum(axis) - ib.sum(axis) / ub.sum(axis),
                                 n_resamples, seed)


def iou(parts: tuple[int, int]) -> float:
    i, u = parts
    return i / u if u else 0.0


def score_model(path: Path, split: str, rows: list[dict]) -> tuple[float, dict[int, dict]]:
    """The checkpoint's threshold and, per expression that needs the language (keyed by its row of
    ``rows``), its (intersection, union) and whether it ranks the target first among the category's
    objects."""
    import torch

    from rrsis_geo.training.evaluate import _scored, open_split

    model, _, ds, text, dev = open_split(path, "custom", ROOT / "data" / "demo", split, native=True, device="cpu",
                                         limit=0, on_error="raise",
                                         data_options=dict(split_column="split", raster_column="chip", category_column="category"))
    thr = float(model.cfg.threshold)
    out = {}
    with torch.no_grad():
        for _, _, scored in _scored(model, text, ds, device=dev, batch_size=8, native=True, amp="off"):
            for logits, gt, _, sid in scored:
                i = int(sid.removeprefix("row"))
                r = rows[i]
                gt = gt.numpy().astype(bool)
                if not np.array_equal(gt, r["target"]):
                    sys.exit(f"{sid}: the rebuilt dataset differs from data/demo (rebuild data/demo with build.py)")
                if not r["needs_language"]:
                    continue
                p = logits.softmax(1)[0, 1].numpy()
                first = int(np.argmax([p[o].mean() for o in r["objects"]]))
                chose = bool(np.array_equal(r["objects"][first], gt)) if len(r["objects"]) > 1 else None
                out[i] = dict(first=chose, model=baseline.iou_parts(p > thr, gt))
    return thr, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--against", type=Path, metavar="OTHER",
                    help="a second checkpoint: add its mIoU and the paired interval of MODEL's lead over it")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    rows = expression_masks()
    thr, scores = score_model(args.model, args.split, rows)
    out = []  # per expression: the model's scores beside its row's facts (score_model checked the masks agree)
    for i, scored in scores.items():
        r = rows[i]
        out.append(dict(area=int(r["target"].sum()), category=r["category"], target=r["target_id"], **scored,
                        clean=baseline.iou_parts(r["clean"], r["target"]), union=baseline.iou_parts(r["union"], r["target"])))
    cols = [("model", "model"), ("clean", "band rule"), ("union", "label mask")]
    if args.against:
        other_thr, other = score_model(args.against, args.split, rows)
        for i, o in zip(scores, out):
            o["other"] = other[i]["model"]
        cols.append(("other", "other"))
        print(f"other: {args.against}, threshold {other_thr:g}")
    print(f"{args.model} on {args.split}: {len(out)} expressions that need the language, threshold {thr:g}")
    print(f"{'group':<22}{'n':>5}{'ranks first':>15}" + "".join(f"{name:>12}" for _, name in cols) + "   (mIoU)")

    def line(name, sel):
        if sel:
            ranked = [o["first"] for o in sel if o["first"] is not None]
            first = f"{np.mean(ranked):.0%} of {len(ranked)}" if ranked else "-"
            print(f"{name:<22}{len(sel):>5}{first:>15}" + "".join(f"{np.mean([iou(o[k]) for o in sel]):>12.3f}" for k, _ in cols))

    for lo, hi in BINS:
        line(f"target {lo}-{hi or ''} px", [o for o in out if o["area"] >= lo and (hi is None or o["area"] < hi)])
    for cat in sorted({o["category"] for o in out}):
        line(cat, [o for o in out if o["category"] == cat])
    several = [o for o in out if o["first"] is not None]
    line("only one of its kind", [o for o in out if o["first"] is None])
    line("one of several", several)
    line("all", out)
    for sel, what in ((out, "expressions"), (several, "expressions whose chip holds other objects of the category")):
        n_targets = len({o["target"] for o in sel})
        print(f"\nmodel minus each column over the {len(sel)} {what} ({n_targets} targets), "
              f"95 % intervals resampling targets:")
        targets = [o["target"] for o in sel]
        for key, name in cols[1:]:
            leads = {"mIoU": target_bootstrap([iou(o["model"]) - iou(o[key]) for o in sel], targets),
                     "oIoU": target_bootstrap_oiou([o["model"] for o in sel], [o[key] for o in sel], targets),
                     "Pr@0.5": target_bootstrap([(iou(o["model"]) >= 0.5) - (iou(o[key]) >= 0.5) for o in sel], targets)}
            print(f"  vs {name:<11}" + "  ".join(f"{m} {v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, (v, lo, hi) in leads.items()))


if __name__ == "__main__":
    main()
