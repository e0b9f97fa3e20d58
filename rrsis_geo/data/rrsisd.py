"""RRSIS-D reader (Liu et al., RMSIN, CVPR 2024), the official layout as distributed::

    ROOT/rrsisd/refs(unc).p          refer pickle: list of refs
    ROOT/rrsisd/instances.json       COCO-style images / categories / annotations
    ROOT/images/rrsisd/JPEGImages/NNNNN.jpg

Quirks of the real files, all handled here (see docs/design training.md):

- the annotation's category key is spelled ``categories_id`` (``category_id`` also accepted);
- ``bbox`` is [x1, y1, x2, y2], not COCO's [x, y, w, h] (we never use it: the box is computed
  from the mask);
- ``area`` is wrong: it is ignored, areas are computed from the decoded mask;
- ``segmentation`` is a *list* of compressed RLEs that must be united with ``> 0``;
- the sentence to use is ``raw`` (``sent`` is a lower-cased, re-tokenised copy);
- downloads arrive with missing or extra files: a ref whose image or annotation is missing is
  left out and reported in ``problems``; extra JPEGs are reported, not read.

About the pickle: ``refs(unc).p`` is a Python pickle because the official release (inherited
from the ``refer`` toolkit) ships it that way; there is no other copy of the referring
expressions. We read it with a restricted unpickler that only builds plain containers and
scalars and refuses every other global, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np

from rrsis_geo.data.base import Problem, ReferringDataset, SampleRecord
from rrsis_geo.errors import DatasetError

REFS_FILE = "refs(unc).p"
INSTANCES_FILE = "instances.json"
IMAGE_DIR = Path("images") / "rrsisd" / "JPEGImages"

RRSISD_CATEGORIES = (
    "airplane", "airport", "golf field", "expressway service area", "baseball field", "stadium",
    "ground track field", "storage tank", "basketball court", "chimney", "tennis court",
    "overpass", "train station", "ship", "expressway toll station", "dam", "harbor", "bridge",
    "vehicle", "windmill",
)  # fmt: skip

_SAFE_GLOBALS = {
    ("builtins", name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                 "int", "float", "bool", "complex", "NoneType")
} | {("__builtin__", "set"), ("__builtin__", "frozenset"), ("_codecs", "encode"),
     ("collections", "OrderedDict")}  # fmt: skip


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only plain containers and scalars; any other class or function is refused."""

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_refs_pickle(path: Path) -> list[dict]:
    """Load the refer pickle safely (see the module docstring for why it is a pickle)."""
    data = Path(path).read_bytes()
    try:
        try:
            refs = _RestrictedUnpickler(io.BytesIO(data)).load()
        except UnicodeDecodeError:  # written by Python 2 with non-ASCII str
            refs = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:
        raise DatasetError(f"cannot read the RRSIS-D refs file {path}: {exc}") from None
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise DatasetError(f"{path} is not an RRSIS-D refs file (expected a list of refs)")
    return refs


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """Unite a list of RLEs (compressed or not) or polygons into one uint8 mask, with ``> 0``."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict):
        segmentation = [segmentation]
    rles = []
    for seg in segmentation:
        if isinstance(seg, dict):
            if isinstance(seg.get("counts"), list):  # uncompressed RLE
                seg = mask_utils.frPyObjects(seg, *seg["size"])
            rles.append(seg)
        elif isinstance(seg, (list, tuple)) and seg:  # polygon
            rles.extend(mask_utils.frPyObjects([list(map(float, seg))], height, width))
    if not rles:
        return np.zeros((height, width), np.uint8)
    decoded = mask_utils.decode(rles)
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    return (decoded.sum(axis=2) > 0).astype(np.uint8)


def find_layout(root: Path) -> tuple[Path, Path, Path]:
    """Return (refs, instances, image dir) for an RRSIS-D root, or say what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"RRSIS-D root {root} does not exist (pass the folder that holds rrsisd/ and images/)")
    ann_dir = root / "rrsisd"
    refs, inst, img_dir = ann_dir / REFS_FILE, ann_dir / INSTANCES_FILE, root / IMAGE_DIR
    for path, what in ((refs, "the refer pickle"), (inst, "the COCO instances"), (img_dir, "the JPEG folder")):
        if not path.exists():
            raise DatasetError(f"RRSIS-D root {root} is incomplete: {path} ({what}) is missing")
    return refs, inst, img_dir


class RRSISD(ReferringDataset):
    """RRSIS-D samples: one per (ref, sentence)."""

    format_name = "rrsisd"

    def __init__(self, root, splits=("train",), transforms=None, on_error: str = "raise"):
        super().__init__(root, splits, transforms, on_error)
        refs_path, inst_path, self.image_dir = find_layout(self.root)
        refs = load_refs_pickle(refs_path)
        try:
            instances = json.loads(inst_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {inst_path}: {exc}") from None
        try:
            images = {img["id"]: img for img in instances["images"]}
            anns = {ann["id"]: ann for ann in instances["annotations"]}
            cats = {c["id"]: c["name"] for c in instances.get("categories", [])}
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{inst_path} is not COCO-style instances (missing {exc})") from None

        present = {p.name for p in self.image_dir.iterdir() if p.is_file()}
        used = {Path(str(img.get("file_name"))).name for img in images.values()}
        for ref in refs:
            split = ref.get("split")
            ref_id = ref.get("ref_id")
            image = images.get(ref.get("image_id"))
            file_name = (image or {}).get("file_name") or ref.get("file_name")
            if file_name:
                used.add(Path(file_name).name)
            if split not in self.splits:
                continue
            ann = anns.get(ref.get("ann_id"))
            if ann is None or not ann.get("segmentation"):
                self.problems.append(Problem("ref_without_mask", f"ref {ref_id}: annotation {ref.get('ann_id')} not in instances.json or has no segmentation", str(ref_id)))
                continue
            if not file_name or Path(file_name).name not in present:
                self.problems.append(Problem("missing_image", f"ref {ref_id}: {self.image_dir / str(file_name)} is missing", str(ref_id)))
                continue
            cat_id = ann.get("categories_id", ann.get("category_id", ref.get("category_id")))
            category = cats.get(cat_id, str(cat_id))
            height = (image or {}).get("height")
            width = (image or {}).get("width")
            for k, sent in enumerate(ref.get("sentences", [])):
                expr = str(sent.get("raw") or sent.get("sent") or "").strip()
                sent_id = sent.get("sent_id", k)
                sid = f"{ref_id}_{sent_id}"
                if not expr:
                    self.problems.append(Problem("empty_expression", f"ref {ref_id} sentence {sent_id} is empty", sid))
                    continue
                self.records.append(
                    SampleRecord(
                        sample_id=sid,
                        image_id=str(ref.get("image_id")),
                        split=split,
                        expression=expr,
                        category=category,
                        image_path=self.image_dir / Path(file_name).name,
                        extra={"ann_id": ann["id"], "ref_id": ref_id, "height": height, "width": width},
                    )
                )
        self._anns = anns
        for name in sorted(present - used):
            self.problems.append(Problem("extra_file", f"{self.image_dir / name} is not referenced by instances.json"))

    def load_mask(self, rec: SampleRecord) -> np.ndarray:
        ann = self._anns[rec.extra["ann_id"]]
        seg = ann["segmentation"]
        first = seg[0] if isinstance(seg, list) and seg else seg
        h, w = rec.extra["height"], rec.extra["width"]
        if isinstance(first, dict) and "size" in first:
            h, w = first["size"]
        if h is None or w is None:
            raise DatasetError(f"annotation {ann['id']} has polygons but its image has no height/width")
        try:
            return decode_segmentation(seg, int(h), int(w))
        except Exception as exc:
            raise DatasetError(f"cannot decode the mask of annotation {ann['id']} (sample {rec.sample_id}): {exc}") from None
