"""Write a tiny RRSIS-D in the official layout, with the real files' quirks.

Run directly (``python tests/data/rrsisd/data.py OUT``) or call :func:`write`. Returns the
ground truth the tests compare against: {sample_id: (expression, category, mask)}.

Quirks reproduced: ``categories_id``; bbox as x1y1x2y2; a wrong ``area``; segmentation as a
list of two overlapping compressed RLEs (string counts, as in JSON) that must be united with
``> 0``; ``raw`` differs from ``sent``; one ref whose image is missing, one ref whose annotation
is missing, one extra JPEG nobody references; pickle protocol 2.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 24, 32  # non-square on purpose: catches transposed masks


def _rle(m: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def write(root) -> dict:
    root = Path(root)
    ann_dir = root / "rrsisd"
    img_dir = root / "images" / "rrsisd" / "JPEGImages"
    ann_dir.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    categories = [{"id": 1, "name": "airplane"}, {"id": 2, "name": "storage tank"}, {"id": 3, "name": "bridge"}]
    images, annotations, refs, truth = [], [], [], {}
    specs = [  # image id, split, category, boxes (y0, y1, x0, x1) of the two RLE parts, sentences
        (1, "train", 1, [(2, 10, 3, 12), (6, 14, 8, 20)], [("The airplane on the left.", "the airplane on the left")]),
        (2, "train", 2, [(10, 20, 15, 25), (12, 18, 20, 30)], [("Storage tank at the BOTTOM", "storage tank at the bottom"),
                                                                ("the round tank", "the round tank")]),
        (3, "val", 3, [(0, 5, 0, 32), (3, 8, 10, 14)], [("A long bridge across the top.", "a long bridge across the top")]),
        (4, "test", 1, [(5, 15, 5, 15), (8, 12, 8, 12)], [("plane in the middle", "plane in the middle")]),
        (5, "train", 2, [(1, 3, 1, 3), (2, 4, 2, 4)], [("image of this ref is missing", "x")]),
        (6, "test", 3, [(1, 3, 1, 3), (2, 4, 2, 4)], [("annotation of this ref is missing", "x")]),
    ]
    sent_id = 0
    for image_id, split, cat, parts, sentences in specs:
        file_name = f"{image_id:05d}.jpg"
        images.append({"file_name": file_name, "height": H, "width": W, "id": image_id})
        if image_id != 5:  # quirk: missing image
            Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(img_dir / file_name, quality=95)
        segs, union = [], np.zeros((H, W), np.uint8)
        for y0, y1, x0, x1 in parts:
            m = np.zeros((H, W), np.uint8)
            m[y0:y1, x0:x1] = 1
            union |= m
            segs.append(_rle(m))
        ys, xs = np.nonzero(union)
        ann_id = 100 + image_id
        if image_id != 6:  # quirk: ref without annotation
            annotations.append({
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],  # x1y1x2y2
                "categories_id": cat,  # the real files' spelling
                "id": ann_id, "image_id": image_id,
                "segmentation": segs,
                "area": 12345.0,  # wrong on purpose
            })
        sents = []
        for raw, sent in sentences:
            sents.append({"tokens": sent.split(), "raw": raw, "sent_id": sent_id, "sent": sent})
            if image_id not in (5, 6):
                cname = next(c["name"] for c in categories if c["id"] == cat)
                truth[f"{image_id}_{sent_id}"] = (raw, cname, union.copy(), split)
            sent_id += 1
        refs.append({"image_id": image_id, "split": split, "sentences": sents, "file_name": file_name,
                     "category_id": cat, "ann_id": ann_id, "sent_ids": [s["sent_id"] for s in sents], "ref_id": image_id})
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(img_dir / "99999.jpg")  # quirk: extra file
    (ann_dir / "instances.json").write_text(json.dumps({"images": images, "categories": categories, "annotations": annotations}))
    with open(ann_dir / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return truth


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "rrsisd_fixture")
