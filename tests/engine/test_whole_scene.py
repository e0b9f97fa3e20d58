import geopandas as gpd
import numpy as np
import pytest
import shapely

from rrsis_geo.engine.segment import SegmentOptions, segment_scene
from rrsis_geo.engine.whole_scene import resize_to
from rrsis_geo.errors import InputError
from tests.fakes import ThresholdModel
from tests.rasters import write_raster


def test_model_sees_the_whole_scene_once_and_polygons_land_in_place(tmp_path):
    h, w = 150, 230  # not square, not the model size
    data = np.zeros((3, h, w), dtype="uint8") + 20
    data[0, 10:50, 150:220] = 230  # a block in the north-east
    scene = write_raster(tmp_path / "s.tif", data, res=10.0)
    model = ThresholdModel(input_size=64)
    result = segment_scene(scene, "the block in the north-east", str(tmp_path / "o.gpkg"), model,
                           SegmentOptions(whole_scene=True))
    assert len(model.calls) == 1 and model.calls[0].shape == (1, 3, 64, 64)
    frame = gpd.read_file(result.output)
    assert len(frame) == 1
    truth = shapely.box(500000 + 150 * 10, 5000000 - 50 * 10, 500000 + 220 * 10, 5000000 - 10 * 10)
    geom = frame.geometry.iloc[0]
    assert geom.intersection(truth).area / geom.union(truth).area > 0.9


def test_whole_scene_refuses_large_scenes(tmp_path):
    scene = write_raster(tmp_path / "s.tif", np.zeros((3, 300, 40), dtype="uint8"))
    with pytest.raises(InputError, match="about one tile"):
        segment_scene(scene, "x", str(tmp_path / "o.gpkg"), ThresholdModel(input_size=64),
                      SegmentOptions(whole_scene=True))
    assert not (tmp_path / "o.gpkg").exists()


def test_resize_round_trip_keeps_a_smooth_field():
    y, x = np.mgrid[0:64, 0:64]
    f = (np.sin(x / 9.0) + np.cos(y / 7.0)).astype(np.float32)
    back = resize_to(resize_to(f, 150, 230), 64, 64)
    assert np.abs(back - f).max() < 0.05
    assert resize_to(f, 150, 230).shape == (150, 230)
