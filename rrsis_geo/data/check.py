"""Inspect a dataset before a long run: counts, mask areas, integrity problems.

:func:`check_dataset` decodes every mask (at native resolution) and every distinct image once.
The report is a plain dict (JSON-ready)::

    {format, root, splits: {split: {samples, images, categories: {name: count},
                                    mask_area: {min, median, mean, max, mean_fraction}}},
     problems: [{kind, detail, sample_id}], problem_counts: {kind: count},
     samples: [{sample_id, split, image_id, expression, category, width, height,
                foreground_pixels, bbox}]}

``bbox`` is the mask's [x1, y1, x2, y2] in pixels, x2/y2 exclusive; ``null`` for an empty mask.
Problem kinds: ``missing_image``, ``unreadable_image``, ``unreadable_mask``,
``ref_without_mask``, ``empty_mask``, ``empty_expression``, ``size_mismatch``,
``extra_file``, ``missing_split``, ``outside_rasters``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from rrsis_geo.data import open_dataset
from rrsis_geo.data.base import SPLITS, Problem
from rrsis_geo.errors import DatasetError


def _mask_bbox(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _available_splits(fmt: str, root: Path, splits, problems: list[Problem]):
    if fmt != "refsegrs" or not Path(root).is_dir():
        return splits  # the reader names what is missing
    keep = []
    for s in splits:
        if (Path(root) / f"output_phrase_{s}.txt").exists():
            keep.append(s)
        else:
            problems.append(Problem("missing_split", f"{Path(root) / f'output_phrase_{s}.txt'} is missing"))
    if not keep:
        raise DatasetError(f"RefSegRS root {root} has no output_phrase_{{train,val,test}}.txt")
    return tuple(keep)


def check_dataset(fmt: str, root, splits=SPLITS, progress=None, **options) -> dict:
    """Check a dataset; ``progress`` wraps an iterable (e.g. tqdm) if given."""
    problems: list[Problem] = []
    splits = _available_splits(fmt, root, tuple(splits), problems)
    ds = open_dataset(fmt, root, splits=splits, **options)
    problems.extend(ds.problems)
    image_ok: dict[Path | str, tuple | None] = {}
    samples = []
    records = list(enumerate(ds.records))
    for i, rec in progress(records) if progress else records:
        key = rec.image_path if fmt != "custom" else rec.image_id
        if key not in image_ok:
            try:
                image_ok[key] = ds.load_image(rec).shape[:2]
            except DatasetError as exc:
                image_ok[key] = None
                problems.append(Problem("unreadable_image", str(exc), rec.sample_id))
        size = image_ok[key]
        try:
            mask = ds.load_mask(rec)
        except DatasetError as exc:
            problems.append(Problem("unreadable_mask", str(exc), rec.sample_id))
            continue
        fg = int(np.count_nonzero(mask))
        is_negative = bool(rec.extra.get("negative", False))
        if fg == 0 and not is_negative:
            problems.append(Problem("empty_mask", f"sample {rec.sample_id}: the mask has no foreground pixel", rec.sample_id))
        if size is not None and tuple(size) != mask.shape:
            problems.append(Problem("size_mismatch", f"sample {rec.sample_id}: image {size[1]}x{size[0]} but mask {mask.shape[1]}x{mask.shape[0]}", rec.sample_id))
        samples.append({
            "sample_id": rec.sample_id, "split": rec.split, "image_id": rec.image_id,
            "expression": rec.expression, "category": rec.category,
            "width": int(mask.shape[1]), "height": int(mask.shape[0]),
            "foreground_pixels": fg, "bbox": _mask_bbox(mask), "readable_image": size is not None,
            **({"negative": True} if is_negative else {}),
        })

    per_split = {}
    for split in splits:
        rows = [s for s in samples if s["split"] == split]
        areas = np.array([s["foreground_pixels"] for s in rows], dtype=np.float64)
        fracs = np.array([s["foreground_pixels"] / (s["width"] * s["height"]) for s in rows]) if rows else np.zeros(0)
        per_split[split] = {
            "samples": len(rows),
            "images": len({s["image_id"] for s in rows}),
            "categories": dict(sorted(Counter(s["category"] for s in rows).items())),
            "mask_area": {
                "min": float(areas.min()) if len(areas) else 0.0,
                "median": float(np.median(areas)) if len(areas) else 0.0,
                "mean": float(areas.mean()) if len(areas) else 0.0,
                "max": float(areas.max()) if len(areas) else 0.0,
                "mean_fraction": float(fracs.mean()) if len(fracs) else 0.0,
            },
        }
    return {
        "format": fmt,
        "root": str(root),
        "splits": per_split,
        "problems": [p.as_dict() for p in problems],
        "problem_counts": dict(sorted(Counter(p.kind for p in problems).items())),
        "samples": samples,
    }


def format_report(report: dict, max_problems: int = 20) -> str:
    lines = [f"{report['format']} dataset at {report['root']}"]
    for split, s in report["splits"].items():
        a = s["mask_area"]
        lines.append(f"  {split}: {s['samples']} samples, {s['images']} images; mask area px "
                     f"min {a['min']:.0f} / median {a['median']:.0f} / mean {a['mean']:.0f} / max {a['max']:.0f} "
                     f"(mean {100 * a['mean_fraction']:.2f}% of the image)")
        for name, n in s["categories"].items():
            lines.append(f"      {name:<28}{n:>7}")
    if report["problems"]:
        counts = ", ".join(f"{k}: {v}" for k, v in report["problem_counts"].items())
        lines.append(f"  problems ({counts}):")
        for p in report["problems"][:max_problems]:
            lines.append(f"    [{p['kind']}] {p['detail']}")
        if len(report["problems"]) > max_problems:
            lines.append(f"    ... {len(report['problems']) - max_problems} more (use --json for all)")
    else:
        lines.append("  no problems found")
    return "\n".join(lines)
