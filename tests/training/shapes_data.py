"""Write a RefSegRS-layout dataset of coloured squares: each image has a red and a blue square
and the expression names one; the mask is that square. Learnable by a tiny model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.data.refsegrs.data import write_tif  # the same un-georeferenced uint8 tif writer


def write(root, n_train: int = 8, n_val: int = 4, size: int = 24, seed: int = 0) -> Path:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = {"train": [], "val": [], "test": []}
    k = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_val)):
        for _ in range(n):
            img = (rng.random((3, size, size)) * 40).astype(np.uint8)
            side = size // 3
            pos = []
            while len(pos) < 2:
                y, x = rng.integers(0, size - side, 2)
                if all(abs(y - py) >= side or abs(x - px) >= side for py, px in pos):
                    pos.append((y, x))
            (ry, rx), (by, bx) = pos
            img[0, ry : ry + side, rx : rx + side] = 230
            img[2, by : by + side, bx : bx + side] = 230
            stem = f"{k:04d}"
            write_tif(root / "images" / f"{stem}.tif", img)
            target = "red" if rng.random() < 0.5 else "blue"
            y, x = (ry, rx) if target == "red" else (by, bx)
            mask = np.zeros((size, size), np.uint8)
            mask[y : y + side, x : x + side] = 255
            write_tif(root / "masks" / f"{stem}.tif", mask)
            lines[split].append(f"{stem} the {target} square")
            k += 1
    for split, ls in lines.items():
        (root / f"output_phrase_{split}.txt").write_text("\n".join(ls) + "\n")
    return root


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "shapes")
