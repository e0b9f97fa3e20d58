import numpy as np
import pytest
from affine import Affine

from scripts.demo_data import labels
from tests.demo_data.synth import BARE, FIELD, WATER, bands, canvas, disc, paint, rect

H = W = 128
RULES = labels.SceneRules(name="t", ndwi_min=0.2, nir_max=0.1, land_nir_min=0.2, ndvi_field_min=0.6, ndvi_bare_max=0.2,
                          bright_bare_min=0.2, min_area_px=30, distractor_min_area_px=60, sea_name="sea", sea_min_area_px=5000, river_max_iso=0.1)


def scene():
    a = canvas(H, W)
    lake = disc(H, W, 30, 30, 18)
    island = disc(H, W, 30, 30, 6)
    paint(a, lake & ~island, WATER)
    river = rect(H, W, 100, 5, 103, 120)  # 3 px wide, 115 px long
    paint(a, river, WATER)
    paint(a, rect(H, W, 10, 80, 50, 120), FIELD)
    paint(a, rect(H, W, 60, 70, 85, 110), BARE)
    paint(a, rect(H, W, 70, 10, 72, 12), WATER)  # 4 px speck: noise
    return a, lake & ~island, river


def targets_of(a):
    ix = labels.indices(**{k: v for k, v in bands(a).items() if k != "blue"}, blue=a[2])
    m = labels.class_masks(ix, RULES)
    return labels.chip_targets(m, RULES)


def test_rules_find_each_category_once_and_drop_specks():
    a, _lake, _river = scene()
    t, d = targets_of(a)
    assert sorted(x.category for x in t) == ["bare field", "field", "lake", "river"]
    assert not d


def test_lake_keeps_its_island_as_a_hole_and_the_polygon_rasterises_back():
    from rasterio.features import rasterize

    a, lake, _ = scene()
    t, _ = targets_of(a)
    (lk,) = [x for x in t if x.category == "lake"]
    # the opening must not eat the lake's rim: the target is the painted ring, pixel for pixel
    assert (lk.mask == lake).all()
    tr = Affine(5.0, 0, 500_000.0, 0, -5.0, 5_000_000.0)
    poly = labels.component_polygons(lk.mask, tr)
    assert len(poly.interiors) == 1  # the island
    back = rasterize([(poly, 1)], out_shape=(H, W), transform=tr, dtype="uint8").astype(bool)
    assert (back == lk.mask).all()
    x0, y0, x1, y1 = poly.bounds
    assert x0 >= tr.c and y1 <= tr.f and x1 <= tr.c + W * 5 and y0 >= tr.f - H * 5


def test_thin_long_water_is_a_river_and_a_wide_disc_is_not():
    a, _, river = scene()
    t, _ = targets_of(a)
    (rv,) = [x for x in t if x.category == "river"]
    assert (rv.mask & river).sum() >= 0.9 * river.sum()


def test_large_scene_water_is_sea_even_where_a_chip_shows_a_small_piece():
    a = canvas(H, W)
    paint(a, rect(H, W, 0, 0, H, 60), WATER)  # 7680 px: sea at the scene level
    paint(a, disc(H, W, 64, 100, 10), WATER)  # a small lake beside it
    ix = labels.indices(a[0], a[1], a[3], a[2])
    m = labels.class_masks(ix, RULES)
    t, _ = labels.chip_targets(m, RULES)
    assert sorted(x.category for x in t) == ["lake", "sea"]
    # a chip that shows only a 20 x 20 corner of the sea still calls it sea, not a lake
    win = (slice(0, 64), slice(40, 104))
    t, _ = labels.chip_targets({k: v[win] for k, v in m.items()}, RULES)
    assert sorted(x.category for x in t) == ["lake", "sea"]


def test_clean_fills_small_holes_keeps_large_ones_and_border_background():
    m = rect(64, 64, 5, 5, 60, 60)
    m[20:22, 20:22] = False  # 4 px hole: filled
    m[35:45, 35:45] = False  # 100 px hole: kept
    c = labels.clean(m, 0, 30)
    assert c[20:22, 20:22].all() and not c[35:45, 35:45].any()
    assert not c[0].any()  # the outside is never a hole


def test_merged_irregular_field_is_a_distractor_not_a_target():
    a = canvas(H, W)
    l_shape = rect(H, W, 10, 10, 110, 30) | rect(H, W, 90, 10, 110, 110)  # an L: solidity ~0.5
    paint(a, l_shape, FIELD)
    paint(a, rect(H, W, 20, 60, 40, 80), FIELD)
    t, d = targets_of(a)
    assert [x.category for x in t] == ["field"] and [x.category for x in d] == ["field"]
    assert d[0].area > t[0].area


@pytest.mark.parametrize("shape,expect", [((40, 40), 1.0), ((4, 100), 1.0)])
def test_solidity_and_rectangularity_of_rectangles(shape, expect):
    m = np.zeros((128, 128), bool)
    m[5 : 5 + shape[0], 5 : 5 + shape[1]] = True
    assert labels.solidity(m) == pytest.approx(expect, abs=1e-6)
    assert labels.rectangularity(m) == pytest.approx(expect, abs=1e-6)
