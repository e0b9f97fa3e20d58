import numpy as np
from PIL import Image

from rrsis_geo.engine.segment import SegmentOptions, segment_scene
from tests.fakes import ThresholdModel
from tests.rasters import write_raster


def test_preview_draws_polygons_where_they_are(tmp_path):
    data = np.zeros((3, 100, 200), dtype="uint8") + 30
    data[:, 20:60, 120:180] = 200  # bright block -> target (band 0 > 0.5)
    scene = write_raster(tmp_path / "s.tif", data)
    png = tmp_path / "p.png"
    segment_scene(scene, "the block", str(tmp_path / "o.gpkg"), ThresholdModel(input_size=64),
                  SegmentOptions(preview_path=str(png)))
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # a small scene is enlarged to 768 px on its long side, keeping its aspect
    assert img.shape[:2] == (384, 768)
    k = 768 / 200
    inside, outside = img[int(40 * k), int(150 * k)], img[int(80 * k), int(40 * k)]
    assert inside[0] > inside[2] + 40  # red fill over the target
    assert abs(outside[0] - outside[2]) < 10  # untouched grey elsewhere
