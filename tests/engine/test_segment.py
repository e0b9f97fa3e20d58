"""The engine's properties (design/engine.md), each checked end to end with fake models."""

import dataclasses
import json
import os

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod
from rasterio.transform import Affine, from_origin
from scipy import ndimage

from rrsis_geo.engine.segment import SegmentOptions, segment_scene, work_dir_for
from rrsis_geo.errors import Cancelled, ExpressionError, OutputError, RasterError
from tests.fakes import (BoxFilterModel, ConstantModel, FailingModel, IdentityModel,
                         PointwiseModel, ThresholdModel)
from tests.rasters import smooth_field, write_raster


def run(tmp_path, scene, model, name="out.gpkg", **opts):
    out = str(tmp_path / name)
    opts.setdefault("prob_path", str(tmp_path / (name + ".prob.tif")))
    opts.setdefault("per_tile", True)  # these tests check the tiling machinery: every object out
    result = segment_scene(scene, "the thing", out, model, SegmentOptions(**opts))
    return result, out


def read_prob(path):
    with rasterio.open(path) as src:
        return src.read(1)


def block_scene(tmp_path, block=True):
    """A 40 x 40 UTM scene, dark except (optionally) one bright 10 x 10 block at rows/cols 10-19."""
    data = np.zeros((3, 40, 40), dtype="uint8") + 20
    if block:
        data[0, 10:20, 10:20] = 230
    return write_raster(tmp_path / "s.tif", data)


def normalised(data_uint8, mean=0.5, std=0.25):
    return (data_uint8.astype(np.float32) / 255.0 - mean) / std


# ----------------------------------------------------------------------------- seamless
@pytest.mark.parametrize("tile,overlap", [(64, 16), (64, 40), (48, 8), (100, 30)])
def test_tiled_equals_untiled_pointwise(tmp_path, tile, overlap):
    data = smooth_field(150, 230)
    scene = write_raster(tmp_path / "s.tif", data)
    model = PointwiseModel(input_size=tile)
    result, _ = run(tmp_path, scene, model, tile=tile, overlap=overlap)
    prob = read_prob(result.prob)
    ref = model.predict(normalised(data)[None], None)[0]
    assert prob.shape == ref.shape
    assert np.abs(prob - ref).max() <= 1e-5
    assert result.tiles_predicted == result.tiles_total > 4


@pytest.mark.parametrize("tile,overlap,radius", [(64, 32, 2), (80, 48, 3)])
def test_tiled_equals_untiled_with_receptive_field(tmp_path, tile, overlap, radius):
    # The model's output within `radius` of a tile edge is wrong (padding); the blending margin
    # (overlap/4 >= radius) must keep those pixels out of the result.
    data = smooth_field(170, 210, seed=3)
    scene = write_raster(tmp_path / "s.tif", data)
    model = BoxFilterModel(radius=radius, input_size=tile)
    result, _ = run(tmp_path, scene, model, tile=tile, overlap=overlap)
    ref = model.predict(normalised(data)[None], None)[0]
    assert np.abs(read_prob(result.prob) - ref).max() <= 1e-5


def test_flat_window_shows_seams_that_the_margin_removes(tmp_path):
    # Guard on the test above: with no margin the receptive-field model does leave seams.
    from rrsis_geo.engine import blending

    data = smooth_field(170, 210, seed=3)
    scene = write_raster(tmp_path / "s.tif", data)
    model = BoxFilterModel(radius=3, input_size=64)
    orig = blending.default_margin
    try:
        import rrsis_geo.engine.segment as seg

        seg.default_margin = lambda overlap: 0
        result, _ = run(tmp_path, scene, model, tile=64, overlap=32)
    finally:
        seg.default_margin = orig
    ref = model.predict(normalised(data)[None], None)[0]
    assert np.abs(read_prob(result.prob) - ref).max() > 1e-4  # well past the 1e-5 property


@pytest.mark.parametrize("w,h", [(100, 37), (37, 100), (20, 15), (129, 65)])
def test_every_valid_pixel_weighted_edges_included(tmp_path, w, h):
    scene = write_raster(tmp_path / "s.tif", smooth_field(h, w))
    result, _ = run(tmp_path, scene, PointwiseModel(input_size=32), tile=32, overlap=8)
    prob = read_prob(result.prob)
    assert prob.shape == (h, w)
    assert (prob >= 0).all()  # -1 would mark a pixel no tile weighted


# ------------------------------------------------------------------ one object, one feature
def annulus(h, w, cy, cx, r_out, r_in):
    y, x = np.mgrid[0:h, 0:w]
    d2 = (y - cy) ** 2 + (x - cx) ** 2
    return (d2 <= r_out**2) & (d2 > r_in**2)


def test_object_across_four_tiles_and_strip_seams_is_one_feature_with_hole(tmp_path):
    h = w = 200
    ring = annulus(h, w, 100, 100, 45, 15)
    data = np.zeros((3, h, w), dtype="uint8") + 20
    data[0][ring] = 230
    scene = write_raster(tmp_path / "s.tif", data, res=10.0)
    # tiles of 64 with seams near 45/90/136 and vectorising strips of 33 rows
    result, out = run(tmp_path, scene, ThresholdModel(input_size=64), tile=64, overlap=16,
                      strip_rows=33)
    frame = gpd.read_file(out)
    assert len(frame) == 1
    geom = frame.geometry.iloc[0]
    assert geom.geom_type == "Polygon" and len(geom.interiors) == 1
    assert frame.pixels.iloc[0] == ring.sum()
    assert abs(frame.area_m2.iloc[0] - ring.sum() * 100.0) <= 100.0
    assert geom.area == pytest.approx(ring.sum() * 100.0, abs=100.0)
    assert frame.score.iloc[0] == pytest.approx(0.9, abs=1e-5)


def test_diagonal_touch_across_seam_stays_two_features(tmp_path):
    data = np.zeros((3, 40, 40), dtype="uint8") + 20
    data[0, 15:20, 10:15] = 230  # ends on row 19
    data[0, 20:25, 15:20] = 230  # starts on row 20, touching only at a corner
    scene = write_raster(tmp_path / "s.tif", data)
    _, out = run(tmp_path, scene, ThresholdModel(input_size=32), tile=32, overlap=8, strip_rows=20)
    assert len(gpd.read_file(out)) == 2


def test_strip_size_does_not_change_features(tmp_path):
    data = smooth_field(120, 90, seed=5)
    scene = write_raster(tmp_path / "s.tif", data)
    model = ThresholdModel(input_size=32, level=0.55)
    _, a = run(tmp_path, scene, model, name="a.gpkg", tile=32, overlap=8, strip_rows=7)
    _, b = run(tmp_path, scene, model, name="b.gpkg", tile=32, overlap=8, strip_rows=1000)
    fa, fb = gpd.read_file(a), gpd.read_file(b)
    assert len(fa) == len(fb) > 5
    ua, ub = shapely.union_all(fa.geometry), shapely.union_all(fb.geometry)
    assert ua.symmetric_difference(ub).area < 1e-6
    assert sorted(fa.pixels) == sorted(fb.pixels)


# ----------------------------------------------------------------------------- nodata
@pytest.mark.parametrize("kind", ["nodata", "alpha", "internal_mask", "nan"])
def test_no_feature_in_invalid_area_and_invalid_tiles_skipped(tmp_path, kind):
    h, w = 96, 200
    valid = np.zeros((h, w), dtype=bool)
    valid[:, :70] = True
    valid[40:60, 70:90] = True  # a notch
    if kind == "nan":
        data = smooth_field(h, w, dtype="float32")
        data[:, ~valid] = np.nan
        scene = write_raster(tmp_path / "s.tif", data)
    else:
        data = smooth_field(h, w)
        if kind == "nodata":
            data[:, ~valid] = 0
            scene = write_raster(tmp_path / "s.tif", data, nodata=0)
        elif kind == "alpha":
            scene = write_raster(tmp_path / "s.tif", data, alpha=np.where(valid, 255, 0))
        else:
            scene = write_raster(tmp_path / "s.tif", data, mask=valid)
    model = ConstantModel(1.0, input_size=32)
    result, out = run(tmp_path, scene, model, tile=32, overlap=8)
    frame = gpd.read_file(out)
    union = shapely.union_all(frame.geometry)
    assert union.area == pytest.approx(valid.sum() * 100.0)
    assert result.tiles_skipped > 0
    assert sum(len(c) for c in model.calls) == result.tiles_predicted
    assert (read_prob(result.prob)[~valid] == -1).all()


def test_fully_invalid_scene_gives_valid_empty_layer(tmp_path):
    data = np.zeros((3, 50, 50), dtype="uint8")
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    model = ConstantModel(1.0, input_size=32)
    result, out = run(tmp_path, scene, model, tile=32, overlap=8)
    assert model.calls == [] and result.features == 0
    frame = gpd.read_file(out)
    assert len(frame) == 0 and frame.crs == "EPSG:32633"
    assert {"expression", "score", "area_m2", "model_id", "run_id"} <= set(frame.columns)


def test_aoi_limits_features(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(64, 64))
    aoi = gpd.GeoDataFrame(geometry=[shapely.box(500100, 4999700, 500300, 4999900)], crs="EPSG:32633")
    aoi.to_crs("EPSG:4326").to_file(tmp_path / "aoi.geojson")  # another CRS on purpose
    _, out = run(tmp_path, scene, ConstantModel(1.0, input_size=32), tile=32, overlap=8,
                 aoi=str(tmp_path / "aoi.geojson"))
    union = shapely.union_all(gpd.read_file(out).geometry)
    assert union.area == pytest.approx(200 * 200, rel=0.02)
    assert shapely.box(500100, 4999700, 500300, 4999900).buffer(10).contains(union)


# -------------------------------------------------------------------------------- CRS
def test_geographic_crs_areas_and_thresholds_in_metres(tmp_path):
    res = 0.0001  # about 11 m north-south, 5.6 m east-west at 60 N
    data = np.zeros((3, 80, 80), dtype="uint8") + 20
    data[0, 10:30, 10:30] = 230  # 20 x 20 px
    data[0, 50:54, 50:54] = 230  # 4 x 4 px
    transform = from_origin(10.0, 60.0, res, res)
    scene = write_raster(tmp_path / "s.tif", data, crs="EPSG:4326", transform=transform)
    geod = Geod(ellps="WGS84")

    def block_area(r0, c0, n):
        x0, y0 = transform * (c0, r0)
        x1, y1 = transform * (c0 + n, r0 + n)
        return abs(geod.geometry_area_perimeter(shapely.box(x0, y1, x1, y0))[0])

    big, small = block_area(10, 10, 20), block_area(50, 50, 4)
    _, out = run(tmp_path, scene, ThresholdModel(input_size=32), tile=32, overlap=8)
    frame = gpd.read_file(out).sort_values("area_m2")
    assert frame.crs == "EPSG:4326"
    assert frame.area_m2.tolist() == pytest.approx([small, big], rel=1e-6)
    assert 950 < small < 1050  # (4 px * 11.1 m) * (4 px * 5.57 m): square metres, not degrees
    # --min-area in m^2 between the two keeps only the big one
    _, out2 = run(tmp_path, scene, ThresholdModel(input_size=32), name="b.gpkg", tile=32,
                  overlap=8, min_area_m2=(small + big) / 2)
    assert gpd.read_file(out2).area_m2.tolist() == pytest.approx([big], rel=1e-6)


def test_simplify_tolerance_is_metres_on_geographic_data(tmp_path):
    h = w = 120
    disc = annulus(h, w, 60, 60, 45, -1)
    data = np.zeros((3, h, w), dtype="uint8") + 20
    data[0][disc] = 230
    transform = from_origin(10.0, 60.0, 0.0001, 0.0001)
    scene = write_raster(tmp_path / "s.tif", data, crs="EPSG:4326", transform=transform)
    _, raw = run(tmp_path, scene, ThresholdModel(input_size=64), name="r.gpkg", tile=64, overlap=16)
    _, simp = run(tmp_path, scene, ThresholdModel(input_size=64), name="s.gpkg", tile=64,
                  overlap=16, simplify_m=15.0)
    g_raw = gpd.read_file(raw).to_crs("EPSG:32632").geometry.iloc[0]
    g_simp = gpd.read_file(simp).to_crs("EPSG:32632").geometry.iloc[0]
    assert len(g_simp.exterior.coords) < len(g_raw.exterior.coords) / 3
    assert g_raw.hausdorff_distance(g_simp) <= 15.0 + 1e-6
    assert g_raw.hausdorff_distance(g_simp) > 3.0  # degrees would have changed nothing


def test_rotated_affine_places_pixels_where_the_transform_says(tmp_path):
    transform = Affine.translation(300000, 4000000) * Affine.rotation(30) * Affine.scale(2.0, -2.0)
    data = np.zeros((3, 40, 50), dtype="uint8") + 20
    data[0, 5:15, 30:42] = 230
    scene = write_raster(tmp_path / "s.tif", data, transform=transform)
    _, out = run(tmp_path, scene, ThresholdModel(input_size=32), tile=32, overlap=8)
    frame = gpd.read_file(out)
    assert len(frame) == 1
    corners = [transform * (c, r) for c, r in ((30, 5), (42, 5), (42, 15), (30, 15))]
    expected = shapely.Polygon(corners)
    assert frame.geometry.iloc[0].symmetric_difference(expected).area < 1e-6
    assert frame.area_m2.iloc[0] == pytest.approx(10 * 12 * 4.0)


def test_dst_crs_reprojects_output(tmp_path):
    scene = block_scene(tmp_path)
    _, out = run(tmp_path, scene, ThresholdModel(input_size=32), tile=32, overlap=8,
                 dst_crs="EPSG:4326")
    frame = gpd.read_file(out)
    assert frame.crs == "EPSG:4326"
    back = frame.to_crs("EPSG:32633").geometry.iloc[0]
    assert back.area == pytest.approx(100 * 100.0, rel=1e-4)
    assert frame.area_m2.iloc[0] == pytest.approx(100 * 100.0)


def test_raster_without_crs_refused_unless_assumed(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40), crs=None)
    with pytest.raises(RasterError, match="no coordinate reference system"):
        run(tmp_path, scene, PointwiseModel(input_size=32))
    _, out = run(tmp_path, scene, ThresholdModel(input_size=32, level=0.2), assume_crs="EPSG:32633")
    assert gpd.read_file(out).crs == "EPSG:32633"


# ------------------------------------------------------------------- normalisation, any raster
def test_uint16_scaled_once_per_scene_not_per_tile(tmp_path):
    h, w = 64, 256
    data = np.zeros((3, h, w), dtype="uint16")
    rng = np.random.default_rng(0)
    data[:, :, :128] = rng.integers(100, 200, (3, h, 128))  # a dark half
    data[:, :, 128:] = rng.integers(3000, 4000, (3, h, 128))  # a bright half
    scene = write_raster(tmp_path / "s.tif", data)
    result, _ = run(tmp_path, scene, IdentityModel(input_size=64), tile=64, overlap=16)
    lo, hi = np.percentile(data[0].astype(np.float64), [2, 98])
    expected = np.clip((data[0] - lo) / (hi - lo), 0, 1)
    got = read_prob(result.prob)
    assert np.abs(got - expected).max() < 1e-5
    assert got[:, :128].max() < 0.05  # per-tile stretching would have made the dark half bright


@pytest.mark.parametrize("dtype,bands", [("uint8", 1), ("uint16", 3), ("float32", 4), ("uint8", 4)])
def test_any_raster_dtype_and_band_count(tmp_path, dtype, bands):
    data = smooth_field(37, 100, bands=bands, dtype=dtype)
    scene = write_raster(tmp_path / "s.tif", data)
    model = PointwiseModel(input_size=32)
    result, out = run(tmp_path, scene, model, tile=32, overlap=4)
    assert read_prob(result.prob).shape == (37, 100)
    assert (read_prob(result.prob) >= 0).all()
    if bands == 1:  # grey: the single band fed three times
        tile = model.calls[0][0]
        assert np.array_equal(tile[0], tile[1]) and np.array_equal(tile[1], tile[2])


def test_band_selection_feeds_the_chosen_bands(tmp_path):
    data = np.stack([np.full((40, 40), v, dtype="uint8") for v in (10, 60, 110, 160)])
    scene = write_raster(tmp_path / "s.tif", data)
    model = IdentityModel(input_size=32)
    run(tmp_path, scene, model, tile=32, overlap=8, bands=(4, 2, 1))
    raw = model.calls[0][0] * 0.25 + 0.5
    assert np.allclose(raw[:, 0, 0], np.array([160, 60, 10]) / 255.0, atol=1e-6)
    with pytest.raises(RasterError, match="out of range"):
        run(tmp_path, scene, model, name="x.gpkg", bands=(1, 2, 5))
    with pytest.raises(RasterError, match="exactly 3"):
        run(tmp_path, scene, model, name="x.gpkg", bands=(1, 2))



def test_a_four_band_model_reads_the_first_four_bands_and_refuses_an_rgb_scene(tmp_path):
    """Red, green, blue, NIR (the demo model's bands): a 4-band scene feeds its bands in order;
    an RGB scene is refused in one line that does not send the user hunting with --bands."""
    data = np.stack([np.full((40, 40), v, dtype="uint8") for v in (10, 60, 110, 160)])
    model = PointwiseModel(input_size=32, bands=4)
    run(tmp_path, write_raster(tmp_path / "rgbn.tif", data, photometric="minisblack"), model, tile=32, overlap=8)
    raw = model.calls[0][0] * 0.25 + 0.5
    assert np.allclose(raw[:, 0, 0], np.array([10, 60, 110, 160]) / 255.0, atol=1e-6)
    with pytest.raises(RasterError, match="the model takes 4 bands but the raster has only 3 usable") as err:
        run(tmp_path, write_raster(tmp_path / "rgb.tif", data[:3]), model, name="x.gpkg")
    assert "--bands" not in str(err.value) and "\n" not in str(err.value)
    # GDAL's default for a 4-band byte GeoTIFF marks band 4 alpha: the error names the way out
    rgba = write_raster(tmp_path / "rgba.tif", data)
    with pytest.raises(RasterError, match="band 4 of the raster is marked alpha.*--bands 1,2,3,4"):
        run(tmp_path, rgba, model, name="y.gpkg")
    model.calls.clear()
    run(tmp_path, rgba, model, name="z.gpkg", tile=32, overlap=8, bands=(1, 2, 3, 4))
    assert np.allclose((model.calls[0][0] * 0.25 + 0.5)[3, 0, 0], 160 / 255.0, atol=1e-6)

def test_model_info_refuses_normalisation_of_the_wrong_length():
    from rrsis_geo.errors import ModelError
    from rrsis_geo.predictor import ModelInfo

    with pytest.raises(ModelError, match="2 mean values for 3 bands"):
        ModelInfo(model_id="m", checksum="c", mean=(0.5, 0.5))
    with pytest.raises(ModelError, match="4 std values for 3 bands"):
        ModelInfo(model_id="m", checksum="c", std=(0.2,) * 4)
    assert ModelInfo(model_id="m", checksum="c", bands=4, mean=(0.5,), std=(0.2,)).bands == 4


def test_unsupported_dtype_refused(tmp_path):
    scene = write_raster(tmp_path / "s.tif", np.zeros((3, 20, 20), dtype="complex64"))
    with pytest.raises(RasterError, match="unsupported data type complex64"):
        run(tmp_path, scene, PointwiseModel(input_size=32))


# ------------------------------------------------------------------- provenance & outputs
def test_features_carry_provenance_and_manifest_records_run(tmp_path):
    data = np.zeros((3, 64, 64), dtype="uint8") + 20
    data[0, 5:20, 5:20] = 230
    data[0, 40:60, 30:50] = 230
    scene = write_raster(tmp_path / "s.tif", data)
    model = ThresholdModel(input_size=32)
    result, out = run(tmp_path, scene, model, tile=32, overlap=8)
    frame = gpd.read_file(out)
    assert len(frame) == 2
    assert set(frame.expression) == {"the thing"}
    assert set(frame.model_id) == {"fake-pointwise"} and set(frame.model_sha256) == {"fake"}
    assert set(frame.run_id) == {result.run_id}
    assert set(frame.source) == {scene}
    assert sorted(frame.area_m2) == [225 * 100.0, 400 * 100.0]
    assert model.expressions == ["the thing"]  # encoded once for all tiles
    manifest = json.load(open(result.manifest))
    assert manifest["run_id"] == result.run_id
    assert manifest["parameters"]["tile"] == 32 and manifest["parameters"]["overlap"] == 8
    assert manifest["result"]["features"] == 2
    assert {"rasterio", "gdal", "numpy", "shapely"} <= set(manifest["versions"])
    assert len(manifest["tiles"]) == result.tiles_predicted


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".parquet", ".shp", ".fgb"])
@pytest.mark.parametrize("empty", [False, True])
def test_output_formats_with_schema_and_crs(tmp_path, ext, empty):
    scene = block_scene(tmp_path, block=not empty)
    _, out = run(tmp_path, scene, ThresholdModel(input_size=32), name="o" + ext, tile=32, overlap=8)
    frame = gpd.read_parquet(out) if ext == ".parquet" else gpd.read_file(out)
    assert len(frame) == (0 if empty else 1)
    assert frame.crs == "EPSG:32633"
    expected = {"expression", "score", "area_m2", "model_id", "source", "run_id"}
    if ext == ".shp":  # dBase truncates names to 10 characters
        expected = {c[:10] for c in expected}
    if not (empty and ext == ".geojson"):  # GeoJSON has no schema apart from its features
        assert expected <= set(frame.columns)
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".")]
    assert leftovers == []
    if ext not in (".parquet", ".shp"):  # the layer is named after the target, not a temp file
        import pyogrio

        assert pyogrio.list_layers(out)[0][0] == "o"


def test_shapefile_keeps_the_full_sha256_under_a_short_name_without_warnings(tmp_path):
    import warnings

    scene = block_scene(tmp_path)
    model = ThresholdModel(input_size=32)
    model.info = dataclasses.replace(model.info, checksum="ab" * 32)  # a sha256's 64 characters
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the writer's field-name warnings are not the user's business
        _, out = run(tmp_path, scene, model, name="o.shp", tile=32, overlap=8)
    frame = gpd.read_file(out)
    assert list(frame["model_sha"]) == ["ab" * 32]


def test_source_label_replaces_scene_path(tmp_path):
    scene = block_scene(tmp_path)
    result, out = run(tmp_path, scene, ThresholdModel(input_size=32), tile=32, overlap=8,
                      source_label="Orthophoto (wms: https://example/wms)")
    assert set(gpd.read_file(out).source) == {"Orthophoto (wms: https://example/wms)"}
    assert json.load(open(result.manifest))["scene"]["label"] == "Orthophoto (wms: https://example/wms)"


def test_existing_output_not_clobbered(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="--overwrite"):
        segment_scene(scene, "x", str(out), PointwiseModel(input_size=32))
    assert out.read_bytes() == b"precious"
    segment_scene(scene, "x", str(out), PointwiseModel(input_size=32), SegmentOptions(overwrite=True))
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("name,match", [("out.xyz", "unknown output format"),
                                        ("nofolder/out.gpkg", "folder does not exist")])
def test_bad_output_paths(tmp_path, name, match):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    with pytest.raises(OutputError, match=match):
        segment_scene(scene, "x", str(tmp_path / name), PointwiseModel(input_size=32))


def test_empty_expression_refused(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    with pytest.raises(ExpressionError):
        segment_scene(scene, " \t ", str(tmp_path / "o.gpkg"), PointwiseModel(input_size=32))


def test_crash_mid_run_leaves_no_output(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(100, 100))
    with pytest.raises(RuntimeError, match="boom"):
        run(tmp_path, scene, FailingModel(after=2, input_size=32), tile=32, overlap=8, batch_size=1)
    visible = [f for f in os.listdir(tmp_path) if not f.startswith(".")]
    assert visible == ["s.tif"]


def test_interrupted_run_resumes_to_identical_output(tmp_path):
    data = smooth_field(160, 120, seed=7)
    scene = write_raster(tmp_path / "s.tif", data)
    opts = dict(tile=32, overlap=8, batch_size=2)
    ref, ref_out = run(tmp_path, scene, ThresholdModel(input_size=32, level=0.55), name="ref.gpkg", **opts)

    class Interrupting(ThresholdModel):
        def predict(self, tiles, enc):
            if len(self.calls) >= 9:
                raise KeyboardInterrupt
            return super().predict(tiles, enc)

    with pytest.raises(Cancelled, match="resume"):
        run(tmp_path, scene, Interrupting(input_size=32, level=0.55), name="res.gpkg", **opts)
    out = tmp_path / "res.gpkg"
    assert not out.exists() and not (tmp_path / "res.gpkg.prob.tif").exists()
    assert os.path.isdir(work_dir_for(str(out)))
    model = ThresholdModel(input_size=32, level=0.55)
    again, again_out = run(tmp_path, scene, model, name="res.gpkg", **opts)
    assert again.resumed_from_row > 0
    assert sum(len(c) for c in model.calls) < ref.tiles_predicted  # really resumed
    assert np.array_equal(read_prob(again.prob), read_prob(ref.prob))
    fa, fb = gpd.read_file(ref_out), gpd.read_file(again_out)
    assert len(fa) == len(fb)
    assert all(a.equals_exact(b, 0) for a, b in zip(fa.geometry, fb.geometry))
    assert not os.path.isdir(work_dir_for(str(out)))
    man = json.load(open(again.manifest))
    assert len(man["tiles"]) == ref.tiles_predicted  # no duplicated tile records


def test_model_warnings_become_progress_events(tmp_path):
    import warnings

    class Warns(PointwiseModel):
        def encode_expression(self, expression):
            warnings.warn("expression truncated to 20 tokens")
            return super().encode_expression(expression)

    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    events = []
    segment_scene(scene, "x", str(tmp_path / "o.gpkg"), Warns(input_size=32), progress=events.append)
    logs = [e for e in events if e["event"] == "log"]
    assert logs == [{"event": "log", "level": "warning", "message": "expression truncated to 20 tokens"}]
