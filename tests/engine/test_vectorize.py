"""The strip vectoriser (rrsis_geo/engine/vectorize.py) against a slow whole-mask reference.

The reference is what a user would write: label the whole mask, ``rasterio.features.shapes`` on
it (4-connectivity), exact metric areas, area filter. The vectoriser must give the same objects,
vertex for vertex, whatever the strip height, and its pixel-count filter must never drop an
object the exact metric test keeps.
"""

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from pyproj import Geod
from scipy import ndimage
from shapely.geometry import shape

from rrsis_geo.engine.geometry import MetricContext
from rrsis_geo.engine.vectorize import SeamMerger, area_bound, areas_m2

FOUR = ndimage.generate_binary_structure(2, 1)


# ------------------------------------------------------------------------ helpers
def reference(prob, threshold=0.5, transform=Affine.identity()):
    """Slow reference: every object of the whole mask, as (polygon, pixels, prob sum, prob max)."""
    mask = prob > threshold
    labels, n = ndimage.label(mask, structure=FOUR)
    geoms = {}
    for geom, value in rasterio.features.shapes(labels.astype(np.int32), mask=mask, connectivity=4,
                                                transform=transform):
        assert int(value) not in geoms  # one polygon per object
        geoms[int(value)] = shape(geom)
    idx = np.arange(1, n + 1)
    pixels = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    sums = ndimage.sum_labels(prob, labels, idx) if n else []
    maxs = ndimage.maximum(prob, labels, idx) if n else []
    return [(geoms[i], int(pixels[i - 1]), float(sums[i - 1]), float(maxs[i - 1])) for i in idx]


def vectorise(prob, strip, threshold=0.5, transform=Affine.identity(), **kw):
    """The strip vectoriser over ``prob``, ``strip`` rows at a time: list of tuples as above."""
    h, w = prob.shape
    merger = SeamMerger(w, threshold, transform, **kw)
    batches = [merger.add_strip(y0, prob[y0 : y0 + strip]) for y0 in range(0, h, strip)]
    batches.append(merger.finish())
    out = []
    for b in batches:
        out += list(zip(b.geometry, b.pixels.tolist(), b.prob_sum.tolist(), b.prob_max.tolist()))
    return out


def key(geom):
    return shapely.normalize(geom).wkt


def assert_same_objects(got, want):
    """Same objects, vertex for vertex, with the same statistics; every polygon valid."""
    assert len(got) == len(want)
    got, want = sorted(got, key=lambda o: key(o[0])), sorted(want, key=lambda o: key(o[0]))
    for (g, gp, gs, gm), (r, rp, rs, rm) in zip(got, want):
        assert g.geom_type == "Polygon" and g.is_valid
        assert key(g) == key(r)
        assert shapely.equals(g, r)
        assert gp == rp and gs == pytest.approx(rs, rel=1e-9) and gm == pytest.approx(rm)
        assert g.area == pytest.approx(gp)  # pixel space: area = pixel count


def random_prob(seed, h, w):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.0, 2.0)
    z = rng.standard_normal((h, w))
    if sigma > 0.4:
        z = ndimage.gaussian_filter(z, sigma)
    z = (z - z.mean()) / (z.std() + 1e-9)
    return (1.0 / (1.0 + np.exp(-3 * (z - rng.uniform(-0.6, 0.6))))).astype(np.float32)


def draw(rows):
    """A probability array from a picture: '#' = 0.9, '.' = 0.1."""
    return np.array([[0.9 if ch == "#" else 0.1 for ch in r] for r in rows], dtype=np.float32)


# ------------------------------------------------------------- identity with the reference
@pytest.mark.parametrize("seed", range(12))
def test_random_masks_match_whole_mask_reference_for_any_strip_height(seed):
    rng = np.random.default_rng(1000 + seed)
    h, w = int(rng.integers(1, 70)), int(rng.integers(1, 70))
    prob = random_prob(seed, h, w)
    want = reference(prob)
    for strip in (1, 2, 3, 5, 16, 1000):
        assert_same_objects(vectorise(prob, strip), want)


def test_long_strips_are_worked_through_in_chunks_with_the_same_result(monkeypatch):
    import rrsis_geo.engine.vectorize as vectorize

    prob = random_prob(21, 90, 50)
    want = reference(prob)
    monkeypatch.setattr(vectorize, "CHUNK_PIXELS", 1)  # chunks of 16 rows
    assert_same_objects(vectorise(prob, 90), want)
    assert_same_objects(vectorise(prob, 40), want)


def test_checkerboard_corners_stay_separate_objects():
    # every pixel touches its neighbours only at corners: one square feature per pixel
    prob = np.where(np.indices((9, 12)).sum(axis=0) % 2 == 0, 0.9, 0.1).astype(np.float32)
    got = vectorise(prob, 2)
    assert len(got) == 54 and {o[1] for o in got} == {1}
    assert_same_objects(got, reference(prob))


def test_object_crossing_several_seams_is_one_feature():
    # a snake running down through every strip seam (strips of 2 rows)
    pic = ["..........",
           ".######...",
           "......#...",
           "..#####...",
           "..#.......",
           "..######..",
           ".......#..",
           ".#######..",
           ".#........",
           ".#........"]
    prob = draw(pic)
    got = vectorise(prob, 2)
    assert len(got) == 1
    assert got[0][1] == sum(r.count("#") for r in pic)
    assert_same_objects(got, reference(prob))


def test_u_shape_joined_only_below_the_seams_is_one_feature():
    # two arms that meet only in the bottom strip: open as two objects for four strips
    pic = ["##......##",
           "##......##",
           "##......##",
           "##......##",
           "##......##",
           "##......##",
           "##########",
           ".........."]
    prob = draw(pic)
    for strip in (1, 2, 3):
        got = vectorise(prob, strip)
        assert len(got) == 1 and len(got[0][0].interiors) == 0
        assert_same_objects(got, reference(prob))


def test_corner_touch_of_one_object_known_only_strips_later_gives_a_valid_polygon():
    # The top block and the right block touch at one corner on the seam below row 2 (pixels
    # (2, 4) and (3, 5)); they are one object only because they join at the bottom, strips later.
    # The outline must pass that corner with the enclosed background as a hole touching the
    # shell there, not as a self-touching ring.
    pic = ["..........",
           "..###.....",
           "..###.....",
           "..#..##...",
           "..#..##...",
           "..#...#...",
           "..#####...",
           ".........."]
    prob = draw(pic)
    ref = reference(prob)
    assert len(ref) == 1
    for strip in (1, 2, 3, 4):
        got = vectorise(prob, strip)
        assert len(got) == 1 and got[0][0].is_valid
        assert_same_objects(got, ref)


def test_hole_spanning_seams_is_kept():
    h = w = 40
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (yy - 20) ** 2 + (xx - 19) ** 2
    ring = (d2 <= 17**2) & (d2 > 7**2)
    ring[20, 30:33] = False  # a notch that does not open the ring
    island = (yy - 20) ** 2 + (xx - 19) ** 2 <= 2**2  # an object inside the hole
    prob = np.where(ring | island, 0.9, 0.1).astype(np.float32)
    for strip in (3, 5, 7):
        got = vectorise(prob, strip)
        assert len(got) == 2
        annulus = max(got, key=lambda o: o[1])[0]
        assert len(annulus.interiors) >= 1
        assert annulus.area == pytest.approx(ring.sum())
        assert_same_objects(got, reference(prob))


def test_probability_statistics_and_threshold():
    prob = random_prob(7, 50, 60)
    valid = np.ones_like(prob, bool)
    valid[10:20, 10:30] = False
    merger = SeamMerger(60, 0.6)
    objs = [merger.add_strip(y0, prob[y0 : y0 + 8], valid[y0 : y0 + 8]) for y0 in range(0, 50, 8)]
    objs.append(merger.finish())
    got = [o for b in objs for o in zip(b.geometry, b.pixels, b.prob_sum, b.prob_max)]
    assert_same_objects(got, reference(np.where(valid, prob, 0.0), threshold=0.6))


def test_affine_maps_vertices_to_the_crs():
    transform = Affine.translation(300000, 4000000) @ Affine.rotation(30) @ Affine.scale(2.0, -2.0)
    prob = random_prob(3, 30, 40)
    got = vectorise(prob, 4, transform=transform)
    want = reference(prob, transform=transform)
    assert len(got) == len(want)
    got = sorted(got, key=lambda o: o[0].centroid.coords[0])
    want = sorted(want, key=lambda o: o[0].centroid.coords[0])
    for (g, gp, *_), (r, rp, *_) in zip(got, want):
        assert gp == rp and g.is_valid
        assert shapely.equals_exact(shapely.normalize(g), shapely.normalize(r), tolerance=1e-6)
        assert g.area == pytest.approx(gp * 4.0)


def test_strips_out_of_order_are_refused():
    merger = SeamMerger(5, 0.5)
    merger.add_strip(0, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="in order"):
        merger.add_strip(5, np.zeros((3, 5), np.float32))


def test_memory_holds_only_objects_open_at_the_seam():
    # 40 strips of small objects: what waits between strips stays the size of one seam's objects
    w = 64
    merger = SeamMerger(w, 0.5)
    pending = []
    for i in range(40):
        strip = random_prob(50 + i, 16, w)
        merger.add_strip(16 * i, strip)
        pending.append(len(merger.pending.sx))
        open_ids = np.unique(merger.prev_gid[merger.prev_gid > 0])
        assert set(np.unique(merger.pending.gid).tolist()) <= set(open_ids.tolist())
        assert len(merger.pixels) == len(open_ids) + 1
    assert max(pending) < 40 * w  # never the whole scene's outlines
    merger.finish()
    assert len(merger.pending.sx) == 0 and len(merger.pixels) == 1


# ----------------------------------------------------------------- minimum area by pixel count
def run_filtered(prob, strip, transform, metric, min_area):
    """What ``segment._vectorise`` does: the merger's pixel-count bound, then the exact test."""
    h, w = prob.shape
    merger = SeamMerger(w, 0.5, transform, min_area_m2=min_area,
                        area_bound=area_bound(metric, transform, w))
    batches = [merger.add_strip(y0, prob[y0 : y0 + strip]) for y0 in range(0, h, strip)]
    batches.append(merger.finish())
    built = sum(len(b) for b in batches)
    kept = []
    for b in batches:
        if len(b):
            areas = areas_m2(metric, b.geometry)
            kept += [key(g) for g, a in zip(b.geometry, areas) if a >= min_area]
    return sorted(kept), built


def exact_reference(prob, transform, metric):
    return [(key(g), metric.area_m2(g)) for g, *_ in reference(prob, transform=transform)]


def blobs(seed, h, w, density=0.08):
    """Many small objects of 1 to ~40 pixels."""
    rng = np.random.default_rng(seed)
    prob = np.full((h, w), 0.1, np.float32)
    for _ in range(int(h * w * density / 10)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        dy, dx = rng.integers(1, 7), rng.integers(1, 7)
        prob[y : y + dy, x : x + dx] = 0.9
        prob[y, x] = 0.9 if rng.random() < 0.5 else prob[y, x]
    return prob


@pytest.mark.parametrize("strip", [4, 17])
def test_pixel_count_filter_agrees_with_exact_filter_projected(strip):
    transform = Affine(0.5, 0, 500000, 0, -0.5, 5000000)  # 0.25 m2 pixels, UTM metres
    prob = blobs(1, 80, 90)
    metric = MetricContext("EPSG:32633", (500000, 4999960, 500045, 5000000))
    ref = exact_reference(prob, transform, metric)
    areas = sorted({a for _, a in ref})
    # thresholds exactly at object areas (kept: area >= min) and between them
    quarter, half = areas[len(areas) // 4], areas[len(areas) // 2]
    for min_area in [quarter, half, half + 0.1, 2.5]:
        got, built = run_filtered(prob, strip, transform, metric, min_area)
        assert got == sorted(k for k, a in ref if a >= min_area)
        assert built < len(ref)  # the small ones never became polygons


@pytest.mark.parametrize("strip", [3, 16])
def test_pixel_count_filter_agrees_with_exact_filter_on_epsg4326(strip):
    # 0.002 degree pixels from 40 N to 70 N: pixel areas differ by a factor of two top to bottom
    res = 0.002
    h, w = 300, 60
    transform = Affine(res, 0, 10.0, 0, -res * 50, 70.0)  # rows 0.1 degree apart
    prob = blobs(2, h, w, density=0.1)
    metric = MetricContext("EPSG:4326", (10.0, 40.0, 10.0 + w * res, 70.0))
    ref = exact_reference(prob, transform, metric)
    areas = sorted(a for _, a in ref)
    for q in (0.1, 0.3, 0.5, 0.7, 0.9):
        min_area = areas[int(q * (len(areas) - 1))]  # an object's exact area: that one is kept
        got, built = run_filtered(prob, strip, transform, metric, min_area)
        assert got == sorted(k for k, a in ref if a >= min_area)
        if q >= 0.5:
            assert built < len(ref)


def test_geodesic_edges_longer_than_the_pixel_sum_are_not_dropped():
    # A comb at 60 N with 0.02 degree pixels: its 300-pixel top edge is one geodesic that bulges
    # north of the parallel, so the exact area is well above pixel count x largest pixel area.
    res = 0.02
    prob = np.full((4, 302), 0.1, np.float32)
    prob[1, 1:301] = 0.9
    prob[2, 1:301:2] = 0.9
    transform = Affine(res, 0, 0.0, 0, -res, 60.0)
    metric = MetricContext("EPSG:4326", (0.0, 59.92, 302 * res, 60.0))
    (geom, pixels, *_), = reference(prob, transform=transform)
    exact = metric.area_m2(geom)
    a, _ = area_bound(metric, transform, 302)(0, 4)
    assert exact > 1.05 * pixels * a  # the scenario: pixel areas alone would drop it
    got, _ = run_filtered(prob, 2, transform, metric, exact)
    assert got == [key(geom)]


def test_area_bound_is_an_upper_bound_for_every_pixel_and_tight_for_the_largest():
    # strips spanning a few degrees of latitude: their pixels differ in area by up to ~20 %
    geod = Geod(ellps="WGS84")
    for lat0, res in ((0.3, 0.001), (-40.0, 0.5), (62.5, 0.5), (75.0, 0.01), (2.0, 0.5)):
        transform = Affine(res, 0, 20.0, 0, -res, lat0)
        metric = MetricContext("EPSG:4326", (20.0, lat0 - 10 * res, 20.0 + 3 * res, lat0))
        a, c = area_bound(metric, transform, 3)(0, 10)
        areas = []
        for r in range(10):  # every pixel of the strip
            x0, y0 = transform @ (0, r)
            x1, y1 = transform @ (1, r + 1)
            areas.append(abs(geod.geometry_area_perimeter(shapely.box(x0, y1, x1, y0))[0]))
        assert max(areas) <= a + c  # one pixel: n = 1
        assert max(areas) >= 0.97 * a  # and tight: set by the pixel nearest the equator
