"""Label rules: target masks and polygons from the bands of one scene (no language, no model).

Every rule is a threshold on a band index (NDWI from green + NIR, NDVI from red + NIR,
brightness), followed by the same cleaning: a morphological opening, removal of components
below a minimum area, and filling only of *small* holes (islands and other holes of at least the
minimum area are kept, so a lake with an island stays a ring). Water is further split by shape:
thin water (what an opening of radius ``thick_r`` removes) that is long is a ``river``; thick
water is ``sea`` when it covers a large share of the chip, otherwise a ``lake``.

Masks are computed on the whole scene (so the opening sees context across chip borders) and
cut to chips; targets are the connected components of the cut masks inside one chip, so a lake
cut by the chip edge is the part the chip shows. Everything here is pure numpy/scipy on arrays;
:func:`component_polygons` turns a component into a georeferenced (multi)polygon on a transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

# 4-connectivity everywhere: it is what rasterio.features.shapes traces, so one component is one
# polygon (diagonal-only neighbours would otherwise be one target but two polygons).
FOUR = ndi.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class SceneRules:
    """Thresholds for one scene (band values are reflectance-like floats, 0..1)."""

    name: str
    ndwi_min: float = 0.1  # water: (G - NIR) / (G + NIR) above this ...
    nir_max: float = 0.25  # ... and NIR below this (bright NIR is never open water)
    ndvi_field_min: float = 0.55  # vegetated field: NDVI above this ...
    green_field_min: float = 0.0  # ... and green above this (dark forest is not a field)
    ndvi_bare_max: float = 0.2  # bare field: NDVI below this, not water, and bright
    bright_bare_min: float = 0.1
    open_r: int = 1  # opening radius (px) for every class
    field_open_r: int = 2  # fields are opened harder so neighbouring parcels separate
    thick_r: int = 3  # water narrower than ~2 * thick_r px is "thin" (river candidates)
    min_area_px: int = 60  # smaller components are dropped, smaller holes filled
    distractor_min_area_px: int = 180  # a rejected component this big still counts as "another one"
    sea_inlet_share: float = 0.1  # an elongated piece of the sea under this share of the chip is a river
    sea_inlet_max_iso: float = 0.15  # ... elongated: 4 pi A / P^2 below this
    sea_min_area_px: int = 13_000  # thick water this large in the *scene* -> "sea" (every piece a chip shows)
    sea_name: str | None = "sea"  # None: large thick water is still a "lake"
    river_min_len_px: float = 40.0  # thin water at least this long (skeleton-ish) -> "river"
    land_nir_min: float = 0.09  # "clearly land": not water and NIR above this
    land_ring_min: float = 0.5  # a lake / river needs this share of clearly-land pixels around it
    rivers: bool = True  # False: thin water is never a river (a scene with none in view)
    river_max_iso: float = 0.0  # thick water less compact than this (4 pi A / P^2) -> "river"; 0: never
    field_smooth_px: int = 1  # NDVI / brightness are box-averaged over this size before the field rules (1: off)
    field_min_area_px: int = 0  # fields and bare fields need at least this many px (0: min_area_px)
    field_min_solidity: float = 0.8  # fields are convex parcels; merged blobs are dropped
    field_max_share: float = 0.15  # a "field" covering more of the chip is a merged blob
    bare_min_rectangularity: float = 0.7  # bare fields are rectangles (beaches, towns are not)
    classes: tuple = ("water", "field", "bare")


def disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= r * r


def indices(red, green, nir, blue=None) -> dict[str, np.ndarray]:
    """NDWI (McFeeters: green vs NIR), NDVI, and visible brightness; 0 where undefined."""
    red, green, nir = (np.asarray(a, np.float64) for a in (red, green, nir))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndwi = np.where(green + nir > 0, (green - nir) / (green + nir), 0.0)
        ndvi = np.where(nir + red > 0, (nir - red) / (nir + red), 0.0)
    vis = [red, green] + ([np.asarray(blue, np.float64)] if blue is not None else [])
    return {"ndwi": ndwi, "ndvi": ndvi, "bright": np.mean(vis, axis=0), "green": green, "nir": nir}


def clean(mask: np.ndarray, open_r: int, min_area: int) -> np.ndarray:
    """Opening, then drop components < min_area, then fill holes < min_area (keep larger ones)."""
    m = np.asarray(mask, bool)
    if open_r > 0:
        m = ndi.binary_opening(m, structure=disk(open_r))
    m = remove_small(m, min_area)
    holes = ~m
    lab, n = ndi.label(holes, structure=FOUR)
    if n:
        sizes = np.bincount(lab.ravel())
        small = sizes < min_area
        small[0] = False
        # a hole touching the array border is not a hole (it is outside); never fill it
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        small[border] = False
        m = m | small[lab]
    return m


def remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    lab, n = ndi.label(mask, structure=FOUR)
    if n == 0:
        return np.zeros_like(mask, bool)
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_area
    keep[0] = False
    return keep[lab]


def class_masks(ix: dict[str, np.ndarray], rules: SceneRules, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Raw (thresholded) and cleaned class masks of a scene: water, thick/thin water, field, bare."""
    valid = np.ones(ix["ndwi"].shape, bool) if valid is None else valid
    raw_water = (ix["ndwi"] > rules.ndwi_min) & (ix["nir"] < rules.nir_max) & valid
    water = clean(raw_water, rules.open_r, rules.min_area_px)
    thick = clean(water & ndi.binary_opening(water, structure=disk(rules.thick_r)), 0, rules.min_area_px)
    thin = remove_small(water & ~ndi.binary_dilation(thick, structure=disk(1)), rules.min_area_px // 2)
    k = rules.field_smooth_px
    sm = (lambda a: ndi.uniform_filter(a, size=k, mode="nearest")) if k > 1 else (lambda a: a)  # noqa: E731
    ndvi, green, bright = sm(ix["ndvi"]), sm(ix["green"]), sm(ix["bright"])
    fmin = rules.field_min_area_px or rules.min_area_px
    raw_field = (ndvi > rules.ndvi_field_min) & (green > rules.green_field_min) & valid & ~raw_water
    field_ = clean(raw_field, rules.field_open_r, fmin)
    raw_bare = (ndvi < rules.ndvi_bare_max) & (bright > rules.bright_bare_min) & ~raw_water & valid
    bare = clean(raw_bare, rules.field_open_r, fmin)
    land = ~raw_water & (ix["nir"] >= rules.land_nir_min) & valid
    sea = remove_small(thick, rules.sea_min_area_px) if rules.sea_name else np.zeros_like(thick)
    return {"land": land, "sea": sea, "raw_water": raw_water, "water": water, "thick_water": thick, "thin_water": thin,
            "raw_field": raw_field, "field": field_, "raw_bare": raw_bare, "bare": bare}


@dataclass
class Target:
    """One labelled object inside one chip (pixel coordinates are the chip's)."""

    category: str
    mask: np.ndarray  # bool, chip-sized
    rule: str
    area: int = 0
    cx: float = 0.0  # centroid column (px, pixel-centre convention: 0.5 is the first pixel's centre)
    cy: float = 0.0
    bbox: tuple = (0, 0, 0, 0)  # col0, row0, col1, row1 (exclusive)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        rows, cols = np.nonzero(self.mask)
        self.area = int(rows.size)
        if self.area:
            self.cx, self.cy = float(cols.mean() + 0.5), float(rows.mean() + 0.5)
            self.bbox = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def solidity(mask: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError

    rows, cols = np.nonzero(mask)
    if rows.size < 3:
        return 1.0
    # hull of the pixel squares' corners, so a full rectangle has solidity 1
    pts = np.concatenate([np.stack([cols + dx, rows + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return 1.0
    return float(rows.size / hull.volume) if hull.volume > 0 else 1.0


def rectangularity(mask: np.ndarray) -> float:
    """Area over the area of the minimum rotated rectangle around the pixel squares."""
    from shapely.geometry import MultiPoint

    rows, cols = np.nonzero(mask)
    if rows.size < 3:
        return 1.0
    pts = np.concatenate([np.stack([cols + dx, rows + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    rect = MultiPoint(pts).minimum_rotated_rectangle
    return float(rows.size / rect.area) if rect.area > 0 else 1.0


def thin_length(mask: np.ndarray) -> float:
    """Length of a thin object: half its perimeter in px edges (width is negligible)."""
    m = np.pad(mask.astype(np.int8), 1)
    edges = np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum()
    return float(edges) / 2.0


def isoperimetric(mask: np.ndarray) -> float:
    """4 pi A / P^2 on the pixel outline (1 for a disc, ~0.785 for a square, small for rivers)."""
    m = np.pad(mask.astype(np.int8), 1)
    perim = np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum()
    return float(4 * np.pi * mask.sum() / perim**2) if perim else 1.0


def chip_targets(masks: dict[str, np.ndarray], rules: SceneRules) -> tuple[list[Target], list[Target]]:
    """Targets of one chip from its cut class masks (components inside the chip), and distractors.

    Distractors are components of a class mask that a shape test rejected (a merged blob of
    fields, a short piece of thin water): they are never referred to, but the expression
    generator counts them as objects of their category, so "the only field" or "the largest
    field" is not said while another field-like object is in view.
    """
    size = masks["water"].shape[0] * masks["water"].shape[1]
    out: list[Target] = []
    rejected: list[Target] = []
    r = rules
    water_rule = f"NDWI>{r.ndwi_min} & NIR<{r.nir_max}; open r{r.open_r}; min {r.min_area_px}px"

    def comps(m, min_area):
        lab, n = ndi.label(m, structure=FOUR)
        for k in range(1, n + 1):
            c = lab == k
            if c.sum() >= min_area:
                yield c

    def keep(t, ok):
        if ok:
            out.append(t)
        elif t.area >= r.distractor_min_area_px:
            rejected.append(t)  # big enough for a person to name it too

    def land_ring(c):
        # pixels 2..4 px out: the first pixel out is often mixed (water edge), not land yet
        ring = ndi.binary_dilation(c, structure=disk(4)) & ~ndi.binary_dilation(c, structure=disk(1))
        return float(masks["land"][ring].mean()) if ring.any() else 0.0

    if "water" in r.classes:
        inland = f"land (not water, NIR>={r.land_nir_min}) >= {r.land_ring_min:.0%} of the ring 2-4 px out"
        grown = disk(r.thick_r + 1)
        for c in comps(masks["thick_water"], r.min_area_px):
            # give back the rim and short inlets the opening took off (water within thick_r + 1 px)
            c = c | (masks["water"] & ndi.binary_dilation(c, structure=grown) & ~masks["thick_water"])
            elongated = bool(r.river_max_iso) and isoperimetric(c) < r.sea_inlet_max_iso
            if r.sea_name and masks["sea"][c].mean() > 0.5 and elongated and c.sum() < r.sea_inlet_share * size:
                # a creek the chip shows running into the sea: what a person sees here is a river
                out.append(Target("river", c, f"{water_rule}; thick (open r{r.thick_r}); part of the scene's sea but "
                                  f"< {r.sea_inlet_share:.0%} of the chip and 4piA/P^2 < {r.sea_inlet_max_iso}"))
                continue
            if r.sea_name and masks["sea"][c].mean() > 0.5:
                out.append(Target(r.sea_name, c, f"{water_rule}; thick (open r{r.thick_r}); part of >= {r.sea_min_area_px}px "
                                  "thick water in the scene"))
                continue
            if r.river_max_iso and isoperimetric(c) < r.river_max_iso:
                t = Target("river", c, f"{water_rule}; thick (open r{r.thick_r}); 4piA/P^2 < {r.river_max_iso}; {inland}")
            else:
                t = Target("lake", c, f"{water_rule}; thick (open r{r.thick_r})"
                           + (f"; < {r.sea_min_area_px}px in the scene" if r.sea_name else "")
                           + (f"; 4piA/P^2 >= {r.river_max_iso}" if r.river_max_iso else "") + f"; {inland}")
            keep(t, land_ring(c) >= r.land_ring_min)
        thin = masks["thin_water"] & ~ndi.binary_dilation(masks["thick_water"], structure=grown)
        for c in comps(thin if r.rivers else np.zeros_like(thin), r.min_area_px // 2):
            length = thin_length(c)
            t = Target("river", c, f"{water_rule}; thin (removed by open r{r.thick_r}); length >= {r.river_min_len_px:.0f}px; {inland}")
            ok = length >= r.river_min_len_px and c.sum() / length < 2 * r.thick_r and land_ring(c) >= r.land_ring_min
            keep(t, ok)
    if "field" in r.classes:
        for c in comps(masks["field"], r.field_min_area_px or r.min_area_px):
            t = Target("field", c, f"NDVI>{r.ndvi_field_min} & green>{r.green_field_min} (box {r.field_smooth_px}px); open r{r.field_open_r}; "
                       f"solidity>={r.field_min_solidity}; <= {r.field_max_share:.0%} of chip")
            keep(t, c.sum() / size <= r.field_max_share and solidity(c) >= r.field_min_solidity)
    if "bare" in r.classes:
        for c in comps(masks["bare"], r.field_min_area_px or r.min_area_px):
            t = Target("bare field", c, f"NDVI<{r.ndvi_bare_max} & bright>{r.bright_bare_min} (box {r.field_smooth_px}px) & not water; "
                       f"open r{r.field_open_r}; rectangularity>={r.bare_min_rectangularity}; <= {r.field_max_share:.0%} of chip")
            keep(t, c.sum() / size <= r.field_max_share and rectangularity(c) >= r.bare_min_rectangularity)
    return out, rejected


def component_polygons(mask: np.ndarray, transform):
    """The georeferenced (multi)polygon of a boolean mask on ``transform`` (holes kept)."""
    from rasterio.features import shapes
    from shapely.geometry import shape
    from shapely.ops import unary_union

    polys = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=transform, connectivity=4) if v == 1]
    return unary_union(polys) if len(polys) > 1 else polys[0]
