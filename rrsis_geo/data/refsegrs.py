"""RefSegRS reader (Yuan et al., RRSIS, TGRS 2024), the official layout::

    ROOT/images/<id>.tif    RGB, 512x512, 0.13 m
    ROOT/masks/<id>.tif     foreground = value > 50
    ROOT/output_phrase_{train,val,test}.txt    lines "<id> <expression>"

The layout has no category field; for the per-category breakdown the category is the longest
RefSegRS class name found in the expression (``"unknown"`` if none), which is how the classes
were written into the phrases in the first place.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rrsis_geo.data.base import Problem, ReferringDataset, SampleRecord, read_gray
from rrsis_geo.errors import DatasetError

REFSEGRS_CATEGORIES = (
    "road", "vehicle", "car", "van", "building", "truck", "trailer", "bus", "road marking",
    "bikeway", "sidewalk", "tree", "low vegetation", "impervious surface",
)  # fmt: skip
MASK_THRESHOLD = 50
_EXTS = (".tif", ".tiff", ".png", ".jpg")


def category_from_expression(expression: str, categories=REFSEGRS_CATEGORIES) -> str:
    """The longest category name that appears as whole words (plural 's' allowed)."""
    text = expression.lower()
    for name in sorted(categories, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}(e?s)?\b", text):
            return name
    return "unknown"


def _find(folder: Path, stem: str) -> Path | None:
    for ext in _EXTS:
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return None


class RefSegRS(ReferringDataset):
    format_name = "refsegrs"
    gsd_m = 0.13

    def __init__(self, root, splits=("train",), transforms=None, on_error: str = "raise"):
        super().__init__(root, splits, transforms, on_error)
        if not self.root.is_dir():
            raise DatasetError(f"RefSegRS root {self.root} does not exist (pass the folder that holds images/, masks/ and output_phrase_*.txt)")
        self.image_dir, self.mask_dir = self.root / "images", self.root / "masks"
        for d in (self.image_dir, self.mask_dir):
            if not d.is_dir():
                raise DatasetError(f"RefSegRS root {self.root} is incomplete: {d} is missing")
        for split in self.splits:
            phrase_file = self.root / f"output_phrase_{split}.txt"
            if not phrase_file.exists():
                raise DatasetError(f"RefSegRS root {self.root} is incomplete: {phrase_file} is missing")
            counts: dict[str, int] = {}
            for lineno, line in enumerate(phrase_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                stem, _, expr = line.partition(" ")
                expr = expr.strip()
                n = counts[stem] = counts.get(stem, -1) + 1
                sid = f"{split}/{stem}/{n}"
                if not expr:
                    self.problems.append(Problem("empty_expression", f"{phrase_file.name} line {lineno}: no expression after id {stem}", sid))
                    continue
                image = _find(self.image_dir, stem)
                mask = _find(self.mask_dir, stem)
                if image is None:
                    self.problems.append(Problem("missing_image", f"{phrase_file.name} line {lineno}: no image {stem}.tif in {self.image_dir}", sid))
                    continue
                if mask is None:
                    self.problems.append(Problem("ref_without_mask", f"{phrase_file.name} line {lineno}: no mask {stem}.tif in {self.mask_dir}", sid))
                    continue
                self.records.append(SampleRecord(sid, stem, split, expr, category_from_expression(expr), image, {"mask_path": mask}))

    def load_mask(self, rec: SampleRecord) -> np.ndarray:
        return (read_gray(rec.extra["mask_path"]) > MASK_THRESHOLD).astype(np.uint8)
