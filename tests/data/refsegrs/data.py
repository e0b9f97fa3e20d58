"""Write a tiny RefSegRS in the official layout (tif images and masks, phrase files).

Masks are uint8 with foreground 255 and some noise at 40 (below the > 50 threshold) and 60
(above it); one phrase names an id with no image, one an id with no mask; ids are reused by
several phrases, as in the real files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import warnings

import numpy as np
import rasterio

S = 16


def write_tif(path: Path, arr: np.ndarray) -> None:
    """A uint8 GeoTIFF without georeferencing (the real RefSegRS files have none)."""
    arr = arr if arr.ndim == 3 else arr[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype="uint8") as dst:
            dst.write(arr)


def write(root) -> dict:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    truth = {}
    lines = {"train": [], "val": [], "test": []}
    for k, (split, exprs) in enumerate([
        ("train", ["the road in the middle", "a white car"]),
        ("train", ["low vegetation next to the buildings"]),
        ("val", ["trees along the sidewalk"]),
        ("test", ["the bus"]),
    ]):
        stem = str(1000 + k)
        write_tif(root / "images" / f"{stem}.tif", rng.integers(0, 255, (3, S, S), dtype=np.uint8))
        mask = np.zeros((S, S), np.uint8)
        mask[2 + k : 9 + k, 3:12] = 255
        mask[0, 0] = 40  # noise below the threshold
        mask[15, 15] = 60  # above the threshold: counts
        write_tif(root / "masks" / f"{stem}.tif", mask)
        for n, e in enumerate(exprs):
            lines[split].append(f"{stem} {e}")
            truth[f"{split}/{stem}/{n}"] = (e, mask > 50)
    lines["train"].append("2000 an image that is missing")
    write_tif(root / "images" / "2001.tif", np.zeros((3, S, S), np.uint8))
    lines["val"].append("2001 a mask that is missing")
    for split, ls in lines.items():
        (root / f"output_phrase_{split}.txt").write_text("\n".join(ls) + "\n")
    return truth


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "refsegrs_fixture")
