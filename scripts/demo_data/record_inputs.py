"""Record in a demo model's file how its training pixels were made, leaving its tensors as they are.

    python scripts/demo_data/record_inputs.py rrsis_geo/weights/btdnet-lite-demo.safetensors

Writes, in place: ``radiometry`` for uint8 scenes (the chips' values as stored: NAIP DN) and for
uint16 Sentinel-2 L1C scenes (reflectance x 10000, with the gains ``scenes.py`` made the chips
with), ``gsd_m_range`` (NAIP 5 m, Sentinel-2 10 m) and ``chip_px`` (the 256 px windows the model
was trained on, before its resize). ``rrsis segment`` then scales a uint16 scene as the chips were
made and tiles every scene so that a tile covers the ground of one training window. Prints the
number of tensors checked equal before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.demo_data.scenes import S2_FULL_SCALE  # noqa: E402

BANDS = ("red", "green", "blue", "nir")


def demo_inputs(n_bands: int) -> dict:
    """The metadata of a demo model reading the first ``n_bands`` of red, green, blue, NIR."""
    bands = BANDS[:n_bands]
    names = ", ".join(b if b != "nir" else "NIR" for b in bands)
    return {
        "radiometry": {
            "uint8": {"lo": [0.0] * n_bands, "hi": [255.0] * n_bands,
                      "note": f"8-bit {names} as the demo chips store them (NAIP DN as is)"},
            "uint16": {"lo": [0.0] * n_bands, "hi": [float(S2_FULL_SCALE[b]) for b in bands],
                       "note": "Sentinel-2 L1C reflectance x 10000, as the demo chips were made"},
        },
        "gsd_m_range": [5.0, 10.0],
        "chip_px": 256,
    }


def record_inputs(path: Path) -> int:
    """Write :func:`demo_inputs` for the model's band count into checkpoint ``path`` in place;
    return the number of tensors, each checked equal (``torch.equal``) to what the file held before."""
    import torch
    from safetensors.torch import load_file

    from rrsis_geo.models.checkpoint import read_metadata, update_metadata

    before = load_file(str(path))
    update_metadata(path, path, **demo_inputs(read_metadata(path)["bands"]))
    after = load_file(str(path))
    same = before.keys() == after.keys() and all(
        before[k].dtype == after[k].dtype and torch.equal(before[k], after[k]) for k in before)
    if not same:
        raise SystemExit(f"{path}: the tensors changed while writing the metadata")
    return len(after)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    n = record_inputs(p.parse_args(argv).model)
    print(f"recorded radiometry, gsd_m_range and chip_px; {n} tensors unchanged")


if __name__ == "__main__":
    main()
