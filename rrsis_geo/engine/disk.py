"""How much disk a run needs, estimated before it starts (numpy and rasterio only: no torch).

A pass writes a float32 work raster the size of the scene in 256 x 256 blocks; blocks that are
all nodata are never written (the raster is sparse), so a pass costs about the scene's stored
fraction of blocks times the raster's full size. A GeoTIFF that leaves empty blocks out (a
sparse scene) reports them through its ``BLOCK_OFFSET_x_y`` metadata; other rasters count as
fully stored, which overestimates rather than runs out.
"""

from __future__ import annotations

import math
import os
import shutil

import rasterio

WORK_BLOCK = 256
PROB_BYTES = 4  # float32
_SAMPLE_SIDE = 256  # at most this many blocks a side are looked at
_SLACK = 16 * 2**20  # headers, vector outputs, the manifest, the glance


def stored_fraction(path: str) -> float:
    """The fraction of the raster's blocks stored in the file (1.0 when it cannot tell)."""
    try:
        with rasterio.open(path) as ds:
            if ds.driver != "GTiff":
                return 1.0
            bh, bw = ds.block_shapes[0]
            rows, cols = -(-ds.height // bh), -(-ds.width // bw)
            ys = sorted({int(i * rows / min(rows, _SAMPLE_SIDE)) for i in range(min(rows, _SAMPLE_SIDE))})
            xs = sorted({int(i * cols / min(cols, _SAMPLE_SIDE)) for i in range(min(cols, _SAMPLE_SIDE))})
            stored = sum(1 for y in ys for x in xs
                         if ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1))
            return stored / (len(ys) * len(xs))
    except Exception:
        return 1.0


def work_raster_bytes(width: int, height: int, fraction: float = 1.0) -> int:
    """Disk taken by one pass's work raster when ``fraction`` of its blocks hold valid pixels."""
    blocks = math.ceil(width / WORK_BLOCK) * math.ceil(height / WORK_BLOCK)
    written = min(blocks, math.ceil(blocks * min(1.0, fraction * 1.05)))  # 5% for partial edges
    return blocks * 16 + written * WORK_BLOCK * WORK_BLOCK * PROB_BYTES


def disk_estimate(width: int, height: int, fraction: float, passes: int = 1, prob_output: bool = False) -> int:
    """Bytes a run needs: one work raster per pass, the probability output (at most the size of a
    work raster) when one is asked for, and some slack."""
    one = work_raster_bytes(width, height, fraction)
    return passes * one + (one if prob_output else 0) + _SLACK


def free_bytes(folder: str) -> int:
    return shutil.disk_usage(folder).free


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # not reached


def folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))
