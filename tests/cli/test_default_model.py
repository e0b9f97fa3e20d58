"""The default ``--model auto`` picks the shipped model that fits the scene's bands: RGB scenes get
btdnet-lite-demo-rgb, 4+ band scenes btdnet-lite-demo. ``load_predictor`` is replaced by a
recording test double (tests/fakes.py CategoryModel), so these tests check the choice, not a model."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from rasterio.transform import from_origin

import rrsis_geo.models
from cli.main import cli
from rrsis_geo.weights import AUTO, SHIPPED, choose_model
from tests.fakes import CategoryModel
from tests.rasters import write_raster


@pytest.fixture
def asked(monkeypatch):
    """The model names ``load_predictor`` was asked for; it answers with a fake of the named
    shipped model's band count."""
    names = []

    def load(name, **kw):
        names.append(name)
        return CategoryModel(input_size=64, bands=SHIPPED[name].bands if name in SHIPPED else 3)

    monkeypatch.setattr(rrsis_geo.models, "load_predictor", load)
    return names


def scene(tmp_path, bands: int, **kw):
    """A ``bands``-band uint8 scene with one bright lake; written MINISBLACK so that GDAL does not
    mark a fourth band alpha (its default for 4-band uint8 GeoTIFFs)."""
    data = np.full((bands, 96, 96), 30, dtype="uint8")
    data[0, 20:60, 20:60] = 220
    kw.setdefault("photometric", "MINISBLACK")
    kw = {k: v for k, v in kw.items() if v is not None}
    return write_raster(tmp_path / f"scene{bands}.tif", data, transform=from_origin(500000, 5000000, 10, 10), **kw)


def segment(*args):
    result = CliRunner().invoke(cli, ["segment", *map(str, args), "--progress", "json"])
    return result, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("bands,extra,expected", [
    (3, (), "btdnet-lite-demo-rgb"),
    (4, (), "btdnet-lite-demo"),
    (5, (), "btdnet-lite-demo"),
    (4, ("--bands", "1,2,3"), "btdnet-lite-demo-rgb"),
    (1, (), "btdnet-lite-demo-rgb"),  # grey: the band read three times
])
def test_the_default_model_follows_the_scene_bands(tmp_path, asked, bands, extra, expected):
    result, events = segment(scene(tmp_path, bands), "the largest lake", "-o", tmp_path / "out.gpkg", *extra)
    assert result.exit_code == 0, result.output
    assert asked == [expected]
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any(f"model: {expected}, chosen for" in m for m in logs), logs
    assert events[-1]["event"] == "done" and events[-1]["answer_features"] == 1


def test_a_named_model_is_used_as_named(tmp_path, asked):
    result, events = segment(scene(tmp_path, 3), "the largest lake", "-o", tmp_path / "out.gpkg",
                             "--model", "btdnet-lite-demo-rgb")
    assert result.exit_code == 0, result.output
    assert asked == ["btdnet-lite-demo-rgb"]
    assert not any("chosen for" in e.get("message", "") for e in events)


def test_alpha_bands_do_not_count(tmp_path, asked):
    """An RGBA orthophoto (GDAL's default marking of a 4-band uint8 GeoTIFF) is an RGB scene; the
    log says how to read band 4 as data (a NIR band marked alpha)."""
    path = scene(tmp_path, 4, photometric=None)
    result, events = segment(path, "the largest lake", "-o", tmp_path / "out.gpkg")
    assert result.exit_code == 0, result.output
    assert asked == ["btdnet-lite-demo-rgb"]
    logs = " ".join(e["message"] for e in events if e["event"] == "log")
    assert "band 4 is marked alpha" in logs and "--bands 1,2,3,4" in logs


def test_choose_model_reads_the_shipped_band_counts():
    assert [choose_model(AUTO, n) for n in (1, 2, 3, 4, 8)] == ["btdnet-lite-demo-rgb"] * 3 + ["btdnet-lite-demo"] * 2
    assert choose_model("btdnet-tiny", 4) == "btdnet-tiny"


def test_info_shows_the_chosen_model(tmp_path):
    """``rrsis info`` reads the chosen model's header (no torch), so it needs the shipped files."""
    if not all(m.path.is_file() for m in SHIPPED.values()):
        pytest.fail("a shipped model file is missing")
    for bands, name in ((3, "btdnet-lite-demo-rgb"), (4, "btdnet-lite-demo")):
        result = CliRunner().invoke(cli, ["info", str(scene(tmp_path, bands)), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["model"].startswith(f"{name} ({bands} bands")
