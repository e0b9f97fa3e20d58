"""Small synthetic scenes for the demo-data tests: band values that the rules read unambiguously."""

from __future__ import annotations

import numpy as np

# reflectance-like (red, green, blue, nir)
LAND = (0.15, 0.12, 0.10, 0.30)  # NDVI 0.33, NDWI < 0: neither water, field nor bare
WATER = (0.04, 0.10, 0.08, 0.02)  # NDWI 0.67
FIELD = (0.05, 0.10, 0.06, 0.45)  # NDVI 0.8
BARE = (0.30, 0.28, 0.25, 0.32)  # NDVI 0.03, bright


def canvas(h: int, w: int) -> np.ndarray:
    a = np.empty((4, h, w))
    a[:] = np.array(LAND)[:, None, None]
    return a


def paint(a: np.ndarray, mask: np.ndarray, value) -> None:
    for b in range(4):
        a[b][mask] = value[b]


def disc(h, w, cy, cx, r) -> np.ndarray:
    y, x = np.ogrid[:h, :w]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r * r


def rect(h, w, r0, c0, r1, c1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


def bands(a: np.ndarray) -> dict:
    return dict(red=a[0], green=a[1], blue=a[2], nir=a[3])
