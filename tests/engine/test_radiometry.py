"""A scene reaches the model as the model's training pixels were made: the value gains its
checkpoint records (``radiometry``) and the ground a training window covered (``chip_px``,
``gsd_m_range``)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from rrsis_geo.engine.raster import open_scene, scene_scaling
from rrsis_geo.engine.resolution import MAX_RESAMPLE, training_tile
from rrsis_geo.engine.segment import SegmentOptions, segment_scene
from rrsis_geo.errors import ModelError
from rrsis_geo.predictor import ModelInfo
from tests.fakes import IdentityModel
from tests.rasters import write_raster

FULL_SCALE = np.array([2000.0, 2000.0, 2000.0, 5000.0])  # Sentinel-2 L1C x 10000 -> 255, as the demo chips
RADIOMETRY = {
    "uint8": {"lo": [0.0], "hi": [255.0], "note": "8-bit as stored"},
    "uint16": {"lo": [0.0] * 4, "hi": FULL_SCALE.tolist(), "note": "Sentinel-2 L1C reflectance x 10000"},
}


def model_with(extra: dict, bands: int = 4) -> IdentityModel:
    """A fake model that records the tiles it is given, with ``extra`` as its checkpoint's metadata."""
    model = IdentityModel(input_size=64, bands=bands)
    model.info = replace(model.info, extra=extra)
    return model


def segment(tmp_path, scene, model, name="out.gpkg", progress=None, **opts):
    result = segment_scene(scene, "the lake", str(tmp_path / name), model, SegmentOptions(**opts),
                           progress=progress)
    return json.loads(open(result.manifest).read())


def model_input(model, manifest) -> np.ndarray:
    """The tiles of the scene's tile plan as the model saw them, back in [0, 1] units."""
    return np.concatenate(model.calls)[: manifest["result"]["tiles_total"]] * 0.25 + 0.5


def s2_like(h=80, w=96, seed=0) -> np.ndarray:
    """uint16 red, green, blue, NIR, a sixth of each band past the training gains' full scale."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 2400, (h, w)) for _ in range(3)] + [rng.integers(0, 6000, (h, w))]).astype("uint16")


# ------------------------------------------------------------------------------ radiometry
def test_uint16_scene_and_its_8bit_training_chip_give_the_model_the_same_input(tmp_path):
    """The issue's case: the 8-bit chip made with the training gains and the uint16 file it was
    made from must reach the model alike (within one 8-bit step), not stretched to percentiles."""
    raw = s2_like()
    chip8 = np.clip(np.round(raw * (255 / FULL_SCALE)[:, None, None]), 0, 255).astype("uint8")
    seen = {}
    for name, data in (("uint16", raw), ("uint8", chip8)):
        scene = write_raster(tmp_path / f"{name}.tif", data, photometric="minisblack")
        model = model_with({"radiometry": RADIOMETRY})
        manifest = segment(tmp_path, scene, model, name=f"{name}.gpkg", tile=64, overlap=8)
        assert manifest["normalisation"]["method"] == f"checkpoint:{name}"
        seen[name] = model_input(model, manifest)
    assert seen["uint16"].shape == seen["uint8"].shape
    assert np.abs(seen["uint16"] - seen["uint8"]).max() <= 1 / 255


def test_without_a_radiometry_record_uint16_is_stretched_to_its_percentiles(tmp_path):
    raw = s2_like()
    scene = write_raster(tmp_path / "s.tif", raw, photometric="minisblack")
    events = []
    manifest = segment(tmp_path, scene, model_with({}), progress=events.append, tile=64, overlap=8)
    norm = manifest["normalisation"]
    assert norm["method"] == "percentile2-98"
    np.testing.assert_allclose(norm["hi"], np.percentile(raw.reshape(4, -1).astype(float), 98, axis=1))
    assert not [e for e in events if e.get("level") == "warning"]


def test_warnings_reach_the_json_log(tmp_path, capsys):
    """A uint16 scene for a model trained on 8-bit data only is stretched, with a warning; a scene
    far finer than the training resolution gets one too. Both are lines of --progress json."""
    from cli.progress import Reporter

    scene = write_raster(tmp_path / "s.tif", s2_like()[:3], res=0.5)
    model = model_with({"radiometry": {"uint8": RADIOMETRY["uint8"]}, "chip_px": 64, "gsd_m_range": [5.0, 10.0]}, bands=3)
    manifest = segment(tmp_path, scene, model, progress=Reporter("json"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [e["message"] for e in lines if e["event"] == "log" and e["level"] == "warning"]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert any("trained on uint8 data; this uint16 scene is stretched to its own 2-98 % range" in w for w in warnings)
    assert any("(0.5 m) is 10.0x finer than the model's training data (5-10 m)" in w for w in warnings)
    assert manifest["normalisation"]["method"] == "percentile2-98"
    assert manifest["parameters"]["tile"] == 64 * MAX_RESAMPLE  # resampled as far as allowed


def test_scaling_choice_and_warnings_for_scenes_far_from_the_training_values(tmp_path):
    def scaling_of(data, extra=None, **kw):
        path = write_raster(tmp_path / "s.tif", data, photometric="minisblack", **kw)
        info = open_scene(path, needed_bands=4)
        with rasterio.open(path) as ds:
            return scene_scaling(ds, info, {"radiometry": RADIOMETRY} if extra is None else extra)

    raw = s2_like()
    scaling, warning = scaling_of(raw)
    assert (scaling.method, scaling.hi, warning) == ("checkpoint:uint16", tuple(FULL_SCALE), None)
    bright_nir = raw.copy()
    bright_nir[3] += 6000  # every NIR pixel above the training maximum (5000)
    _, warning = scaling_of(bright_nir)
    assert warning.startswith("this uint16 scene is far from the values the model was trained on "
                              "(Sentinel-2 L1C reflectance x 10000): band 4: 100 % of its pixels")
    assert "band 1" not in warning and "--bands" in warning and "\n" not in warning
    dark_red = raw.copy()
    dark_red[0] //= 100  # e.g. reflectance x 100 instead of x 10000
    _, warning = scaling_of(dark_red)
    assert "band 1: 98 % of its pixels lie in the lowest 5 % of the training range 0..2000" in warning
    assert "band 4" not in warning
    # a fixed value_range wins over the radiometry; an 8-bit scene keeps 0..255 whatever is recorded
    fixed = {"value_range": {"lo": [0], "hi": [10000]}, "radiometry": RADIOMETRY}
    assert scaling_of(raw, fixed) == (scaling_of(raw, {"value_range": fixed["value_range"]})[0], None)
    assert scaling_of(raw, fixed)[0].method == "checkpoint"
    scaling, warning = scaling_of(raw.astype("uint8"), {"radiometry": {"uint16": RADIOMETRY["uint16"]}})
    assert (scaling.method, warning) == ("uint8", None)


def test_model_info_refuses_bad_input_metadata_in_one_line():
    def info(**extra):
        return ModelInfo(model_id="m", checksum="c", bands=4, mean=(0.5,), std=(0.25,), extra=extra)

    assert info(radiometry=RADIOMETRY, chip_px=256, gsd_m_range=[5.0, 10.0]).extra["chip_px"] == 256
    bad = [
        ({"radiometry": {"uint16": {"lo": [0], "hi": [1, 1, 1]}}}, r"\.hi has 3 values for 4 bands"),
        ({"radiometry": {"uint16": {"lo": [0], "hi": [0]}}}, "needs lo < hi"),
        ({"radiometry": {"uint16": {"lo": [0], "hi": [float("nan")]}}}, "must be finite numbers"),
        ({"radiometry": {"rgb": {"lo": [0], "hi": [1]}}}, "numeric data type"),
        ({"gsd_m_range": [0.0, 5.0]}, "0 < min <= max"),
        ({"chip_px": 0}, "chip_px must be a whole number"),
    ]
    for extra, match in bad:
        with pytest.raises(ModelError, match=match) as err:
            info(**extra)
        assert "\n" not in str(err.value) and str(err.value).startswith("model m: ")
    with pytest.raises(ModelError, match="gsd_m must be > 0"):
        ModelInfo(model_id="m", checksum="c", gsd_m=-1.0)
    with pytest.raises(ModelError, match="gsd_m 20.0 lies outside gsd_m_range"):
        ModelInfo(model_id="m", checksum="c", gsd_m=20.0, extra={"gsd_m_range": [5.0, 10.0]})


# --------------------------------------------------------------------------- ground resolution
TRAINED = ModelInfo(model_id="m", checksum="c", input_size=192, gsd_m=10.0,
                    extra={"chip_px": 256, "gsd_m_range": [5.0, 10.0]})


def scene_at(tmp_path, res, **kw):
    return open_scene(write_raster(tmp_path / f"r{res}.tif", np.zeros((3, 20, 30), "uint8"), res=res, **kw))


@pytest.mark.parametrize("res,tile,warns", [
    (5.0, 256, False), (7.0, 256, False), (10.0, 256, False),  # within the training range: as trained
    (2.5, 512, False), (20.0, 128, False),  # finer / coarser: a tile covers one training window's ground
    (1.25, 1024, False), (0.5, 1024, True), (100.0, 64, True),  # at most MAX_RESAMPLE, then a warning
])
def test_training_tile_covers_the_ground_of_a_training_window(tmp_path, res, tile, warns):
    got, warning = training_tile(scene_at(tmp_path, res), TRAINED, None)
    assert got == tile and (warning is not None) == warns
    if warns:
        assert "results will be poor" in warning and "\n" not in warning


def test_an_explicit_tile_wins_but_a_far_off_scene_still_warns(tmp_path):
    assert training_tile(scene_at(tmp_path, 2.5), TRAINED, 300) == (300, None)
    tile, warning = training_tile(scene_at(tmp_path, 100.0), TRAINED, 300)
    assert tile == 300 and "(100 m) is 10.0x coarser than the model's training data (5-10 m)" in warning


def test_training_tile_without_metadata_is_the_input_size(tmp_path):
    plain = ModelInfo(model_id="m", checksum="c", input_size=192, gsd_m=10.0)
    assert training_tile(scene_at(tmp_path, 2.5), plain, None) == (192, None)
    assert training_tile(scene_at(tmp_path, 0.1), plain, 100) == (100, None)
    one_gsd = replace(plain, extra={"chip_px": 256})  # gsd_m alone is the range
    assert training_tile(scene_at(tmp_path, 5.0), one_gsd, None) == (512, None)


def test_training_tile_measures_a_geographic_scene_in_metres(tmp_path):
    deg = 2.5 / 111_320  # about 2.5 m at the equator
    info = scene_at(tmp_path, 0, crs="EPSG:4326", transform=from_origin(10.0, 0.001, deg, deg))
    tile, warning = training_tile(info, TRAINED, None)
    assert abs(tile - 512) <= 4 and warning is None  # in degrees it would be 1e-5 "m": clamped and warned
