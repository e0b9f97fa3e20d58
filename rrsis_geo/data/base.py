"""What every referring-segmentation reader shares.

A reader indexes its dataset once (cheap: no pixels are decoded) into a list of
:class:`SampleRecord` values, and decodes pixels only in ``__getitem__``. Each sample is a dict
with fixed keys:

``image``       float32 tensor (3, H, W) in [0, 1], native resolution
``mask``        uint8 tensor (H, W), 1 = referred object, native resolution
``expression``  the referring expression (str)
``category``    the object's category name (str; ``"unknown"`` when the layout has none)
``sample_id``   unique id of the (image, expression) pair (str)
``image_id``    id of the image (str)
``split``       ``train`` / ``val`` / ``test`` (str)
``index``       position in the reader (int)

Readers never resize: that is the job of :mod:`rrsis_geo.data.transforms`.

Corrupt files: ``on_error="raise"`` (default) refuses with a one-line :class:`DatasetError`
naming the file; ``on_error="skip"`` logs, counts the file in ``skipped`` and returns the next
readable sample instead (deterministically), so a long run is not lost to one bad JPEG. Use
``rrsis data check`` to find them before a run, or :meth:`ReferringDataset.drop_unreadable`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rrsis_geo.errors import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class SampleRecord:
    """One (image, expression, target) triplet, as indexed; no pixels."""

    sample_id: str
    image_id: str
    split: str
    expression: str
    category: str
    image_path: Path
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Problem:
    """An integrity problem found while indexing or checking a dataset."""

    kind: str  # missing_image, unreadable_image, unreadable_mask, ref_without_mask, empty_mask, extra_file, ...
    detail: str
    sample_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "sample_id": self.sample_id}


def check_splits(splits, argument: str = "split") -> tuple[str, ...]:
    if isinstance(splits, str):
        splits = (splits,)
    splits = tuple(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise DatasetError(f"unknown {argument} {bad[0]!r}: use one of {', '.join(SPLITS)}")
    return splits


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise DatasetError(f"on_error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    return on_error


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3). JPEG/PNG through PIL, TIFF through rasterio.

    Single-band images are repeated to three bands; extra bands beyond three are dropped.
    Raises :class:`DatasetError` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            arr = _read_tif(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im.convert("RGB"))
    except DatasetError:
        raise
    except Exception as exc:  # PIL/rasterio raise many types for truncated files
        raise DatasetError(f"cannot read image {path}: {exc}") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    hi = float(np.nanmax(arr)) if arr.size else 0.0
    scale = 255.0 / hi if hi > 255 else 1.0
    return np.clip(arr * scale, 0, 255).astype(np.uint8)


def _read_tif(path: Path) -> np.ndarray:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            data = src.read()
    return np.moveaxis(data, 0, -1)


def read_gray(path: Path) -> np.ndarray:
    """Read a single-band mask image as (H, W) (first band)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            arr = _read_tif(path)[..., 0]
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im.convert("L"))
    except Exception as exc:
        raise DatasetError(f"cannot read mask {path}: {exc}") from None
    return arr


def to_sample(rec: SampleRecord, index: int, image: np.ndarray, mask: np.ndarray, **extra) -> dict:
    if image.shape[:2] != mask.shape:
        raise DatasetError(
            f"image {rec.image_path} is {image.shape[1]}x{image.shape[0]} but its mask is "
            f"{mask.shape[1]}x{mask.shape[0]} (sample {rec.sample_id})"
        )
    sample = {
        "image": torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0),
        "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8)),
        "expression": rec.expression,
        "category": rec.category,
        "sample_id": rec.sample_id,
        "image_id": rec.image_id,
        "split": rec.split,
        "index": index,
    }
    sample.update(extra)
    return sample


class ReferringDataset(Dataset):
    """Base class: a list of :class:`SampleRecord` plus pixel loaders.

    Subclasses fill ``self.records`` and ``self.problems`` in ``__init__`` and implement
    :meth:`load_mask` (binary uint8, native resolution) and optionally :meth:`load_image`.
    """

    format_name = "base"
    gsd_m: float | None = None  # ground resolution of the imagery in metres, when known

    def __init__(self, root, splits, transforms=None, on_error: str = "raise"):
        self.root = Path(root)
        self.splits = check_splits(splits)
        self.transforms = transforms
        self.on_error = check_on_error(on_error)
        self.records: list[SampleRecord] = []
        self.problems: list[Problem] = []
        self.skipped: list[str] = []

    # -- pixels -------------------------------------------------------------------------------
    def load_image(self, rec: SampleRecord) -> np.ndarray:
        return read_rgb(rec.image_path)

    def load_mask(self, rec: SampleRecord) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_extra(self, rec: SampleRecord) -> dict:
        """Extra keys for a sample (e.g. georeferencing of a custom chip)."""
        return {}

    # -- Dataset ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> dict:
        rec = self.records[index]
        image = self.load_image(rec)
        mask = self.load_mask(rec)
        return to_sample(rec, index, image, mask, **self.sample_extra(rec))

    def __getitem__(self, index: int) -> dict:
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(index)
        index %= n
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                sample = self.load(i)
                break
            except DatasetError as exc:
                if self.on_error == "raise":
                    raise
                self.skipped.append(self.records[i].sample_id)
                log.warning("skipping unreadable sample %s: %s", self.records[i].sample_id, exc)
        else:
            raise DatasetError(f"no readable sample in {self.root}")
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def drop_unreadable(self) -> list[Problem]:
        """Decode every sample once and drop the unreadable ones; return what was dropped."""
        keep, dropped = [], []
        for i, rec in enumerate(self.records):
            try:
                self.load(i)
                keep.append(rec)
            except DatasetError as exc:
                dropped.append(Problem("unreadable", str(exc), rec.sample_id))
        self.records = keep
        return dropped

    def categories(self) -> list[str]:
        return sorted({r.category for r in self.records})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, splits={self.splits}, samples={len(self)})"
