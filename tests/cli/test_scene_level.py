"""``rrsis segment`` in its default scene-level mode, end to end through the click application,
on a multi-tile scene. The model is a test double (tests/fakes.py CategoryModel) whose category
maps are known, so the test checks the engine's and the resolver's logic, not a learned model."""

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

import rrsis_geo.models
from cli.main import cli
from tests.fakes import CategoryModel
from tests.rasters import write_raster

ORIGIN = (500000.0, 5000000.0)
RES = 10.0
# lakes (band 1 bright) as (row0, row1, col0, col1), 300 x 240 px scene at 10 m
LAKES = {"big_se": (150, 220, 190, 280), "mid_nw": (10, 60, 10, 70), "small_ne": (15, 35, 240, 270)}
RIVER_COLS = (140, 150)  # band 2 bright: a north-south river


def box_of(r0, r1, c0, c1):
    x0, y0 = ORIGIN
    return shapely.box(x0 + c0 * RES, y0 - r1 * RES, x0 + c1 * RES, y0 - r0 * RES)


@pytest.fixture
def scene(tmp_path):
    data = np.full((3, 240, 300), 30, dtype="uint8")
    for r0, r1, c0, c1 in LAKES.values():
        data[0, r0:r1, c0:c1] = 220
    data[1, :, RIVER_COLS[0]:RIVER_COLS[1]] = 220
    return write_raster(tmp_path / "scene.tif", data, transform=from_origin(*ORIGIN, RES, RES))


@pytest.fixture
def model(monkeypatch):
    fake = CategoryModel(input_size=64)
    monkeypatch.setattr(rrsis_geo.models, "load_predictor", lambda *a, **k: fake)
    return fake


def segment(*args):
    result = CliRunner().invoke(cli, ["segment", *map(str, args), "--progress", "json"])
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, events


@pytest.mark.parametrize("expression,lake", [
    ("the largest lake", "big_se"),
    ("the second largest lake", "mid_nw"),
    ("the smallest pond", "small_ne"),
    ("the lake in the north-west corner", "mid_nw"),
    ("the largest lake in the north", "mid_nw"),  # the scene's largest is in the south-east
    ("the northernmost lake", "small_ne"),
    ("the lake east of the river", "big_se"),
    ("the lake nearest to the river", "big_se"),
    ("the lake west of the river", "mid_nw"),
])
def test_answer_layer_holds_exactly_the_named_lake(tmp_path, scene, model, expression, lake):
    out = tmp_path / "out.gpkg"
    result, events = segment(scene, expression, "-o", out)
    assert result.exit_code == 0, result.output
    assert set(pyogrio.list_layers(out)[:, 0]) == {"answer", "candidates"}
    answer = gpd.read_file(out, layer="answer")
    candidates = gpd.read_file(out, layer="candidates")
    assert len(answer) == 1
    assert answer.geometry[0].normalize().equals(box_of(*LAKES[lake]).normalize())
    assert answer.area_m2[0] == pytest.approx(box_of(*LAKES[lake]).area)
    assert len(candidates) == 3 and candidates.selected.sum() == 1
    assert (candidates.rule == events[-1]["rule"]).all()
    done = events[-1]
    assert done["event"] == "done" and done["answer_features"] == 1 and done["candidates"] == 3
    assert done["abstained"] is False and done["rule"]
    # no tile was asked the whole sentence: tiles get the category phrases, the glance the sentence
    tiled = {p for p, n in model.phrases if n and p != expression}
    assert tiled <= {"all the lakes", "all the rivers"}
    assert sum(1 for p, _ in model.phrases if p == expression) == 1


def test_the_manifest_lists_each_joined_relation_once():
    from rrsis_geo.engine.segment import _relation_record
    from rrsis_geo.referring.expression import parse

    record = _relation_record(parse("the lake north of the sea and near the river and west of the pond").relation)
    assert (record["kind"], record["references"]) == ("direction", ["the sea"])
    assert [(r["kind"], r["direction"], r["references"]) for r in record["also"]] == [
        ("near", None, ["the river"]), ("direction", "west", ["the pond"])]
    assert all("also" not in r for r in record["also"])


def test_the_glance_reads_the_sentence_without_the_request_words(tmp_path, scene, model):
    out = tmp_path / "o.gpkg"
    result, events = segment(scene, "Show me the largest lake, please", "-o", out)
    assert result.exit_code == 0 and events[-1]["answer_features"] == 1
    asked = [p for p, _ in model.phrases]
    assert "the largest lake" in asked and not any("please" in p or "Show" in p for p in asked)
    assert json.load(open(str(out) + ".manifest.json"))["scene_level"]["glance_phrase"] == "the largest lake"


def test_largest_lake_rule_reports_the_area(tmp_path, scene, model):
    result, events = segment(scene, "the largest lake", "-o", tmp_path / "o.gpkg")
    area_km2 = box_of(*LAKES["big_se"]).area / 1e6
    assert events[-1]["rule"] == f"largest of 3 lake candidates: {area_km2:.2f} km2"


def test_all_lakes_selects_every_lake(tmp_path, scene, model):
    result, events = segment(scene, "all the lakes", "-o", tmp_path / "o.gpkg")
    assert result.exit_code == 0
    assert events[-1]["answer_features"] == 3


@pytest.mark.parametrize("expression,lakes", [
    ("the two largest lakes", {"big_se", "mid_nw"}),  # 63 ha and 30 ha; the 6 ha one is third
    ("lakes larger than 10 ha", {"big_se", "mid_nw"}),
    ("the lakes smaller than 0.4 km2", {"mid_nw", "small_ne"}),
    ("show me the lakes within 500 m of the river", {"big_se"}),  # 400 m; the others 700 and 900 m
])
def test_counts_and_measured_bounds_answer_that_set(tmp_path, scene, model, expression, lakes):
    out = tmp_path / "o.gpkg"
    result, events = segment(scene, expression, "-o", out)
    assert result.exit_code == 0, result.output
    answer = gpd.read_file(out, layer="answer")
    expected = shapely.union_all([box_of(*LAKES[k]) for k in lakes])
    assert len(answer) == len(lakes) and shapely.union_all(answer.geometry).normalize().equals(expected.normalize())
    query = json.load(open(str(out) + ".manifest.json"))["scene_level"]["query"]
    assert (query["count"] is not None) == ("two" in expression)
    assert (query["limit"] is not None) == ("than" in expression)


def test_candidates_on_the_scene_edge_are_flagged(tmp_path, scene, model):
    """The river runs from the scene's top to its bottom: it may continue beyond, and the rule says
    so; no lake touches the edge."""
    out = tmp_path / "o.gpkg"
    result, events = segment(scene, "the river", "-o", out)
    assert result.exit_code == 0, result.output
    assert events[-1]["rule"].endswith("it touches the edge of the area searched and may continue beyond it")
    assert gpd.read_file(out, layer="candidates").at_edge.tolist() == [1]
    segment(scene, "the largest lake", "-o", out, "--overwrite")
    assert gpd.read_file(out, layer="candidates").at_edge.tolist() == [0, 0, 0]


def test_unknown_noun_abstains_without_running_the_model(tmp_path, scene, model):
    out = tmp_path / "o.gpkg"
    result, events = segment(scene, "the bridge over the river", "-o", out)
    assert result.exit_code == 0, result.output
    assert model.calls == []
    warnings = [e["message"] for e in events if e["event"] == "log" and e["level"] == "warning"]
    assert any('"bridge"' in w and "lake" in w and "river" in w for w in warnings)
    assert events[-1]["abstained"] is True and events[-1]["answer_features"] == 0
    assert len(gpd.read_file(out, layer="answer")) == 0
    assert gpd.read_file(out, layer="answer").crs == "EPSG:32633"


def test_an_unknown_everyday_word_is_refused_with_the_known_word_to_try(tmp_path, scene, model):
    result, events = segment(scene, "the largest reservoir", "-o", tmp_path / "o.gpkg")
    assert result.exit_code == 0 and model.calls == []
    assert events[-1]["abstained"] is True
    assert events[-1]["rule"].startswith('unknown to this model: "reservoir" (try "lake"); it knows:')
    _, events = segment(scene, "the bridge over the river", "-o", tmp_path / "p.gpkg")
    assert "try" not in events[-1]["rule"]  # no known word is near "bridge"


def test_force_answers_an_unknown_noun(tmp_path, scene, model):
    result, events = segment(scene, "the largest bridge", "-o", tmp_path / "o.gpkg", "--force")
    assert result.exit_code == 0
    assert model.calls  # the model ran
    assert any("--force" in e["message"] for e in events if e["event"] == "log")


def test_empty_map_is_no_confident_match(tmp_path, model):
    scene = write_raster(tmp_path / "dark.tif", np.full((3, 100, 130), 30, dtype="uint8"))
    out = tmp_path / "o.gpkg"
    result, events = segment(scene, "the largest lake", "-o", out)
    assert result.exit_code == 0
    assert events[-1]["abstained"] is True and "no confident match" in events[-1]["rule"]
    assert len(gpd.read_file(out, layer="answer")) == 0
    assert len(gpd.read_file(out, layer="candidates")) == 0


def test_formats_without_layers_write_candidates_beside(tmp_path, scene, model):
    out, cands = tmp_path / "a.geojson", tmp_path / "c.fgb"
    result, events = segment(scene, "the largest lake", "-o", out, "--candidates", cands)
    assert result.exit_code == 0, result.output
    assert len(gpd.read_file(out)) == 1 and len(gpd.read_file(cands)) == 3
    manifest = json.load(open(str(out) + ".manifest.json"))
    assert manifest["scene_level"]["query"]["size"] == {"measure": "area", "order": "desc", "rank": 1, "among": None}
    assert manifest["scene_level"]["zoom_phrases"] == ["all the lakes"]


def test_per_tile_keeps_every_object(tmp_path, scene, model):
    out = tmp_path / "o.gpkg"
    result, events = segment(scene, "the largest lake", "-o", out, "--per-tile")
    assert result.exit_code == 0
    assert len(gpd.read_file(out)) == 3 and "rule" not in events[-1]
    assert {p for p, _ in model.phrases} == {"the largest lake"}


@pytest.mark.parametrize("args,message", [
    (["--per-tile", "--whole-scene"], "exclude each other"),
    (["--per-tile", "--candidates", "c.gpkg"], "--candidates is for scene-level runs"),
])
def test_conflicting_mode_options_are_refused(tmp_path, scene, model, args, message):
    result = CliRunner().invoke(cli, ["segment", scene, "the lake", "-o", str(tmp_path / "o.gpkg"), *args])
    assert result.exit_code == 2 and message in result.output
    assert model.calls == []


def test_one_progress_bar_over_every_pass(tmp_path, scene, model):
    """A relation to another category runs two tiled passes; the percentages rise once over both."""
    result, events = segment(scene, "the lake east of the river", "-o", tmp_path / "o.gpkg")
    assert result.exit_code == 0
    assert events[0]["event"] == "start" and events[0]["passes"] == 2
    progress = [e for e in events if e["event"] == "progress"]
    percents = [e["percent"] for e in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert {e.get("pass") for e in progress if e["stage"] != "write"} == {1, 2}
    assert max(e["percent"] for e in progress if e.get("pass") == 1) <= 49.5
