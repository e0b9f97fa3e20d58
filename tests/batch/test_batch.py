"""``rrsis batch`` end to end on Dask distributed and serially.

The model is a test double (tests/fakes.py ``CategoryModel``, whose category maps are known), so
these tests check the batch's own logic: one engine run per scene, faults, retries, resume, the
index and the merged answers. Most run on an in-process ``LocalCluster`` (2 worker threads),
reached through the CLI's ``--scheduler ADDRESS`` like any cluster, so the monkeypatched loader
reaches its workers. The worker-kill test runs real worker processes (``scheduler="local"``); they
import the fake by name (``BatchJob.loader``).
"""

import json
import os

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal
from rasterio.transform import from_origin

import rrsis_geo.models
from cli.main import cli
from rrsis_geo.batch.inputs import list_scenes
from rrsis_geo.batch.run import local_plan, run_batch
from rrsis_geo.batch.tasks import BatchJob
from rrsis_geo.engine.segment import SegmentOptions
from tests.fakes import CategoryModel
from tests.rasters import write_raster

EXPR = "the largest lake"
# (origin x, origin y, lakes as (row0, row1, col0, col1)), 10 m pixels, 180 x 150 px
SCENES = {
    "north": (500000.0, 5000000.0, [(10, 60, 10, 70), (100, 130, 90, 140)]),
    "south": (500000.0, 4998000.0, [(120, 170, 20, 60)]),
    "east": (502000.0, 5000000.0, [(30, 50, 100, 140), (60, 150, 10, 50)]),
}


def write_scene(path, lakes, x0, y0, crs="EPSG:32633"):
    data = np.full((3, 180, 150), 30, dtype="uint8")
    for r0, r1, c0, c1 in lakes:
        data[0, r0:r1, c0:c1] = 220
    return write_raster(path, data, crs=crs, transform=from_origin(x0, y0, 10.0, 10.0))


@pytest.fixture
def scenes(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name, (x0, y0, lakes) in SCENES.items():
        write_scene(folder / f"{name}.tif", lakes, x0, y0)
    return folder


@pytest.fixture
def model(monkeypatch):
    fake = CategoryModel(input_size=64)
    fake.loads = []

    def load(model, device="auto"):
        fake.loads.append(model)
        return fake

    monkeypatch.setattr(rrsis_geo.models, "load_predictor", load)
    return fake


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c


def rrsis(*args):
    result = CliRunner().invoke(cli, [*map(str, args), "--progress", "json"])
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, events


def layers(path):
    """Every layer of a GeoPackage, without the per-run id."""
    return {name: gpd.read_file(path, layer=name).drop(columns="run_id")
            for name, _ in pyogrio.list_layers(path)}


def assert_same_run(a, b):
    """Two outputs of the same job: the same layers, features and attributes, and manifests that
    record the same parameters (run id, time and duration aside)."""
    la, lb = layers(a), layers(b)
    assert list(la) == list(lb) == ["answer", "candidates"]
    for name in la:
        assert_geodataframe_equal(la[name], lb[name])
    ma, mb = (json.load(open(p + ".manifest.json")) for p in (a, b))
    for key in ("expression", "scene", "model", "parameters", "tiles"):
        pa, pb = ma[key], mb[key]
        if key == "parameters":  # the side outputs' paths differ by design
            pa, pb = ({k: v for k, v in p.items() if not k.endswith("_path")} for p in (pa, pb))
        assert pa == pb, key
    assert ma["result"]["features"] == mb["result"]["features"]


def test_each_scene_as_rrsis_segment_would_write_it(scenes, tmp_path, model, cluster):
    out = tmp_path / "out"
    result, events = rrsis("batch", scenes, EXPR, "-o", out, "--scheduler", cluster.scheduler_address,
                           "--min-area", 500)
    assert result.exit_code == 0, result.output
    assert events[0]["event"] == "start" and events[0]["workers"] == 2 and events[0]["todo"] == 3
    assert sorted(e["scene"] for e in events if e["event"] == "scene") == sorted(SCENES)
    assert events[-1]["event"] == "done" and events[-1]["done"] == 3 and events[-1]["failed"] == 0
    workers = {e["worker"] for e in events if e["event"] == "scene"}
    assert len(model.loads) == len(workers) <= 2  # the model is loaded once per worker, not per scene
    for name in SCENES:
        ref = tmp_path / "ref" / f"{name}.gpkg"
        ref.parent.mkdir(exist_ok=True)
        one, _ = rrsis("segment", scenes / f"{name}.tif", EXPR, "-o", ref, "--min-area", 500)
        assert one.exit_code == 0, one.output
        assert_same_run(str(out / f"{name}.gpkg"), str(ref))


def test_serial_gives_the_same_outputs(scenes, tmp_path, model, cluster):
    a, _ = rrsis("batch", scenes, EXPR, "-o", tmp_path / "dask", "--scheduler", cluster.scheduler_address)
    b, events = rrsis("batch", scenes, EXPR, "-o", tmp_path / "serial", "--scheduler", "none")
    assert a.exit_code == b.exit_code == 0
    assert events[0]["scheduler"] == "none"
    for name in SCENES:
        assert_same_run(str(tmp_path / "dask" / f"{name}.gpkg"), str(tmp_path / "serial" / f"{name}.gpkg"))
    for name in ("index.gpkg", "answers.gpkg"):
        fa, fb = (gpd.read_file(tmp_path / d / name) for d in ("dask", "serial"))
        drop = [c for c in ("run_id", "seconds", "worker", "output") if c in fa]
        assert_geodataframe_equal(fa.drop(columns=drop).sort_values("scene").reset_index(drop=True),
                                  fb.drop(columns=drop).sort_values("scene").reset_index(drop=True))


def test_bad_scenes_are_recorded_and_the_others_done(scenes, tmp_path, model, cluster):
    (scenes / "corrupt.tif").write_bytes(b"II*\x00 this is not a TIFF")
    write_raster(scenes / "nocrs.tif", np.full((3, 40, 40), 30, dtype="uint8"), crs=None)
    out = tmp_path / "out"
    result, events = rrsis("batch", scenes, EXPR, "-o", out, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 3, result.output
    assert "2 of 5 scenes failed" in result.output
    index = gpd.read_file(out / "index.gpkg").set_index("scene")
    assert list(index.index) == ["corrupt", "east", "nocrs", "north", "south"]  # input order (folder: sorted)
    assert (index.loc[list(SCENES), "status"] == "done").all()
    assert index.loc["corrupt", "status"] == "failed" and "readable raster" in index.loc["corrupt", "error"]
    assert index.loc["nocrs", "status"] == "failed" and "--assume-crs" in index.loc["nocrs", "error"]
    assert "\n" not in index.loc["nocrs", "error"]
    assert index.loc[["corrupt", "nocrs"]].geometry.isna().all()  # no footprint to give
    assert not (out / "corrupt.gpkg").exists() and not (out / "nocrs.gpkg").exists()
    assert events[-1]["failed"] == 2 and events[-1]["done"] == 3


def test_rerun_skips_finished_scenes_and_retries_failed_ones(scenes, tmp_path, model, cluster):
    (scenes / "corrupt.tif").write_bytes(b"not a raster")
    out = tmp_path / "out"
    first, _ = rrsis("batch", scenes, EXPR, "-o", out, "--scheduler", cluster.scheduler_address)
    assert first.exit_code == 3
    before = {n: os.stat(out / f"{n}.gpkg").st_mtime_ns for n in SCENES}
    model.calls.clear()
    write_scene(scenes / "corrupt.tif", [(10, 40, 10, 40)], 504000.0, 5000000.0)  # the user fixed it
    again, events = rrsis("batch", scenes, EXPR, "-o", out, "--scheduler", cluster.scheduler_address)
    assert again.exit_code == 0, again.output
    assert events[0]["reused"] == 3 and events[0]["todo"] == 1
    assert {e["scene"] for e in events if e["event"] == "scene" and not e["reused"]} == {"corrupt"}
    assert {n: os.stat(out / f"{n}.gpkg").st_mtime_ns for n in SCENES} == before  # untouched
    rerun_calls = len(model.calls)
    model.calls.clear()
    alone, _ = rrsis("segment", scenes / "corrupt.tif", EXPR, "-o", tmp_path / "alone.gpkg")
    assert alone.exit_code == 0 and rerun_calls == len(model.calls) > 0  # the model saw only the fixed scene
    index = gpd.read_file(out / "index.gpkg").set_index("scene")
    assert (index["status"] == "done").all() and index["reused"].sum() == 3
    # the same folder with another expression: its outputs are in the way, refused before any model
    model.calls.clear()
    other, events = rrsis("batch", scenes, "the largest river", "-o", out, "--scheduler", "none")
    assert other.exit_code == 2 and "exist from another run" in events[-1]["message"] and not model.calls


def test_index_and_answers_in_one_stated_crs(tmp_path, model, cluster):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_scene(folder / "utm33.tif", [(20, 80, 20, 90)], 500000.0, 5000000.0)
    write_scene(folder / "utm32.tif", [(30, 60, 30, 60), (100, 170, 60, 140)], 700000.0, 5000000.0,
                crs="EPSG:32632")
    out = tmp_path / "out"
    result, events = rrsis("batch", folder, EXPR, "-o", out, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    assert events[-1]["crs"] == "EPSG:4326"  # scenes in two CRSs: the index and answers in WGS 84
    index, answers = gpd.read_file(out / "index.gpkg"), gpd.read_file(out / "answers.gpkg")
    assert index.crs.to_epsg() == answers.crs.to_epsg() == 4326
    assert len(index) == 2 and index.geometry.is_valid.all() and answers.geometry.is_valid.all()
    assert sorted(answers["scene"]) == ["utm32", "utm33"]  # one answer each
    assert list(index.set_index("scene").loc[["utm32", "utm33"], "answer_features"]) == [1, 1]
    for name in ("utm32", "utm33"):
        scene_answer = gpd.read_file(out / f"{name}.gpkg", layer="answer")
        merged = answers[answers["scene"] == name]
        assert merged["source"].iloc[0] == str(folder / f"{name}.tif")
        assert merged["area_m2"].iloc[0] == pytest.approx(scene_answer["area_m2"].iloc[0])
        back = merged.to_crs(scene_answer.crs).geometry.iloc[0]
        assert shapely.symmetric_difference(back, scene_answer.geometry.iloc[0]).area < 1.0
        footprint = index.set_index("scene").geometry[name]
        assert footprint.contains(merged.geometry.iloc[0])
    # --dst-crs states the CRS of everything
    out2 = tmp_path / "out2"
    result, events = rrsis("batch", folder, EXPR, "-o", out2, "--scheduler", "none", "--dst-crs", "EPSG:3035")
    assert result.exit_code == 0 and events[-1]["crs"] == "EPSG:3035"
    assert gpd.read_file(out2 / "answers.gpkg").crs.to_epsg() == 3035
    assert gpd.read_file(out2 / "index.gpkg").crs.to_epsg() == 3035


def test_one_crs_for_all_scenes_is_kept(scenes, tmp_path, model):
    result, events = rrsis("batch", scenes, EXPR, "-o", tmp_path / "out", "--scheduler", "none")
    assert result.exit_code == 0 and events[-1]["crs"] == "EPSG:32633"
    assert events[-1]["answer_features"] == 3
    assert len(gpd.read_file(tmp_path / "out" / "answers.gpkg")) == 3


def test_a_lost_worker_reruns_its_scene_with_the_same_result(scenes, tmp_path):
    """Real worker processes: the fake model SIGKILLs its process in the middle of a scene, once.
    The scene runs again (resuming the engine's work folder) and gives what a serial run gives."""
    trigger = tmp_path / "die-once"
    trigger.write_text("")
    listed = list_scenes([str(scenes)], EXPR)
    options = SegmentOptions(batch_size=1)  # 12 model calls a pass: the 8th is in the middle of a scene
    job = BatchJob(outdir=str(tmp_path / "dask"), model=str(trigger), loader="tests.fakes:dying_category_model",
                   options=options)
    events = []
    result = run_batch(listed, job, scheduler="local", workers=2, retries=1, progress=events.append)
    assert not trigger.exists()  # a worker did die
    retries = [e for e in events if e["event"] == "retry"]
    assert len(retries) == 1 and "KilledWorker" in retries[0]["message"]
    assert result.failed == 0 and result.done == 3
    lost = retries[0]["scene"]
    assert {r["scene"]: r["attempts"] for r in result.records}[lost] == 2
    manifest = json.load(open(tmp_path / "dask" / f"{lost}.gpkg.manifest.json"))
    assert manifest["result"]["resumed_from_row"] > 0  # the second attempt went on from the first's work
    serial = BatchJob(outdir=str(tmp_path / "serial"), model=str(tmp_path), loader="tests.fakes:category_model",
                      options=options)
    run_batch(listed, serial, scheduler="none")
    for name in SCENES:
        assert_same_run(str(tmp_path / "dask" / f"{name}.gpkg"), str(tmp_path / "serial" / f"{name}.gpkg"))


def test_bad_batch_input_fails_before_any_model(scenes, tmp_path, model):
    cases = [
        (["batch", tmp_path / "nothing" / "*.tif", EXPR, "-o", tmp_path / "o"], "matches no files"),
        (["batch", scenes, EXPR, "-o", tmp_path / "o", "--scheduler", "nonsense"], "--scheduler"),
        (["batch", scenes, EXPR, "-o", tmp_path / "o", "--per-tile", "--whole-scene"], "exclude each other"),
        (["batch", scenes, EXPR, "-o", tmp_path / "o", "--scheduler", "none", "--workers", "2"], "--workers"),
        (["batch", scenes, EXPR, "-o", scenes / "north.tif"], "is a file"),
        (["batch", scenes, EXPR, "-o", tmp_path / "o", "-m", tmp_path / "none.safetensors"], "model"),
        (["batch", scenes, "the \udcff lake", "-o", tmp_path / "o"], "not valid UTF-8"),
    ]
    for args, message in cases:
        result, events = rrsis(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in events[-1]["message"] if events else message in result.output
    assert not model.calls


def test_local_plan_divides_the_cores():
    assert local_plan(None, "cpu", cores=16) == (4, 4, 0)
    assert local_plan(3, "cpu", cores=16) == (3, 5, 0)
    assert local_plan(None, "auto", cores=16, gpus=2) == (2, 8, 2)
    assert local_plan(None, "cpu", cores=2) == (1, 2, 0)


def test_index_existing_from_elsewhere_is_not_replaced(scenes, tmp_path, model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.gpkg").write_text("someone's file")
    result, _ = rrsis("batch", scenes, EXPR, "-o", out, "--scheduler", "none")
    assert result.exit_code == 2 and (out / "index.gpkg").read_text() == "someone's file"


def test_options_reach_the_engine(scenes, tmp_path, model):
    opts = SegmentOptions(min_area_m2=123.0, window="linear")
    listed = list_scenes([str(scenes / "north.tif")], EXPR)
    run_batch(listed, BatchJob(outdir=str(tmp_path / "o"), model=str(tmp_path), options=opts, prob=True),
              scheduler="none")
    manifest = json.load(open(tmp_path / "o" / "north.gpkg.manifest.json"))
    assert manifest["parameters"]["min_area_m2"] == 123.0 and manifest["parameters"]["window"] == "linear"
    assert (tmp_path / "o" / "north.prob.tif").exists()


class RiverCrash(CategoryModel):
    """Raises an ordinary exception (a model bug, not an input error) when asked about rivers."""

    def predict(self, tiles, encoded):
        if "river" in encoded["expression"]:
            raise RuntimeError("CUDA error: an illegal memory access")
        return super().predict(tiles, encoded)


@pytest.mark.parametrize("where", ["none", "cluster"])
def test_an_unexpected_error_fails_one_scene_only(scenes, tmp_path, monkeypatch, cluster, where):
    fake = RiverCrash(input_size=64)
    monkeypatch.setattr(rrsis_geo.models, "load_predictor", lambda *a, **k: fake)
    (tmp_path / "list.csv").write_text("scene,expression\nscenes/north.tif,\nscenes/south.tif,the widest river\n"
                                       "scenes/east.tif,\n")
    out = tmp_path / "out"
    scheduler = "none" if where == "none" else cluster.scheduler_address
    result, events = rrsis("batch", tmp_path / "list.csv", EXPR, "-o", out, "--scheduler", scheduler)
    assert result.exit_code == 3, result.output
    index = gpd.read_file(out / "index.gpkg").set_index("scene")
    assert list(index.index) == ["north", "south", "east"]
    assert list(index["expression"]) == [EXPR, "the widest river", EXPR]
    assert list(index["status"]) == ["done", "failed", "done"]
    assert index.loc["south", "error"] == "internal error: RuntimeError: CUDA error: an illegal memory access"
    assert not [e for e in events if e["event"] == "retry"]  # a scene's own failure is not retried


def test_auto_runs_each_scene_with_the_model_for_its_bands(tmp_path, monkeypatch):
    """The default ``--model auto`` chooses per scene, as ``rrsis segment`` does: a 3-band scene gets
    the RGB demo model, a 4-band one the RGBN model (the loader is a recording test double)."""
    from rrsis_geo.weights import SHIPPED

    loads = []

    def load(name, device="auto"):
        loads.append(name)
        return CategoryModel(input_size=64, bands=SHIPPED[name].bands)

    monkeypatch.setattr(rrsis_geo.models, "load_predictor", load)
    folder = tmp_path / "scenes"
    folder.mkdir()
    write_scene(folder / "rgb.tif", [(10, 60, 10, 70)], 500000.0, 5000000.0)
    data = np.full((4, 180, 150), 30, dtype="uint8")
    data[0, 100:130, 90:140] = 220
    write_raster(folder / "rgbn.tif", data, crs="EPSG:32633", transform=from_origin(502000.0, 5000000.0, 10.0, 10.0),
                 photometric="MINISBLACK")
    result, events = rrsis("batch", folder, EXPR, "-o", tmp_path / "out", "--scheduler", "none")
    assert result.exit_code == 0, result.output
    assert sorted(loads) == ["btdnet-lite-demo", "btdnet-lite-demo-rgb"]
    index = gpd.read_file(tmp_path / "out" / "index.gpkg").set_index("scene")
    # each fake reads its model's band count, so a scene given the other model fails its band check
    assert (index["status"] == "done").all() and (index["answer_features"] == 1).all(), index
