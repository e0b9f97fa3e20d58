"""``rrsis:batch`` ("Segment many scenes") in QGIS 3.22, running the REAL ``rrsis batch``
command (btdnet-tiny, an untrained preset: the tests check the plumbing, not the answers) on
crops of the bundled sample scene plus one corrupt file."""

from __future__ import annotations

import pytest

from tests.qgis.qgis_support import SAMPLE, make_profile, run_driver

pytestmark = [pytest.mark.qgis, pytest.mark.slow]

TINY, CPU = 2, 1  # enum indices of btdnet-tiny and cpu


@pytest.fixture(scope="module")
def batch_runs(qgis_available, plugin_zip, real_rrsis, tmp_path_factory):
    import rasterio
    from rasterio.windows import Window

    base = tmp_path_factory.mktemp("qgis-batch")
    scenes = base / "scenes"
    scenes.mkdir()
    with rasterio.open(SAMPLE) as src:
        for k, (col, row) in enumerate([(0, 0), (300, 200)]):
            window = Window(col, row, 160, 160)
            profile = {**src.profile, "width": 160, "height": 160,
                       "transform": rasterio.windows.transform(window, src.transform)}
            with rasterio.open(scenes / f"crop{k}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
                dst.colorinterp = src.colorinterp
    (scenes / "corrupt.tif").write_bytes(b"not a raster")
    listed = base / "list.txt"
    listed.write_text("scenes/crop1.tif\n")
    common = {"EXPRESSION": "the largest lake", "MODEL": TINY, "DEVICE": CPU}
    scenarios = [
        {"name": "folder", "algorithm": "rrsis:batch", "setting": real_rrsis,
         "params": {**common, "FOLDER": str(scenes), "OUTPUT_FOLDER": str(base / "out")}},
        {"name": "again", "algorithm": "rrsis:batch", "setting": real_rrsis,
         "params": {**common, "FOLDER": str(scenes), "OUTPUT_FOLDER": str(base / "out")}},
        {"name": "list_and_layer", "algorithm": "rrsis:batch", "setting": real_rrsis,
         "params": {**common, "LIST": str(listed), "LAYERS": [str(scenes / "crop0.tif")],
                    "OUTPUT_FOLDER": str(base / "out2")}},
        {"name": "no_scenes", "algorithm": "rrsis:batch", "setting": real_rrsis,
         "params": {**common, "OUTPUT_FOLDER": str(base / "out3")}},
    ]
    records = run_driver(profile=make_profile(base, plugin_zip), scenarios=scenarios, workdir=base)
    assert records["imported"] == [], records["imported"]  # QGIS's Python never imports them
    return records["scenarios"], base


def test_a_folder_with_a_bad_scene_gives_the_others_and_warns(batch_runs):
    runs, base = batch_runs
    run = runs["folder"]
    assert run["ok"], run.get("error")
    assert run["results"]["DONE"] == 2 and run["results"]["FAILED"] == 1
    assert any("--scheduler none" in c for c in run["log"]["command"])
    assert any(w.startswith("corrupt:") and "readable raster" in w for w in run["log"]["warning"])
    assert run["progress"] and max(run["progress"]) == 100.0
    assert run["index"]["valid"] and run["index"]["count"] == 3 and run["index"]["crs"] == "EPSG:26914"
    assert run["answers"]["valid"] and "scene" in run["answers"]["fields"]
    assert (base / "out" / "crop0.gpkg").exists() and (base / "out" / "crop1.gpkg").exists()


def test_running_again_reuses_finished_scenes(batch_runs):
    runs, _ = batch_runs
    run = runs["again"]
    assert run["ok"], run.get("error")
    assert any("2 already done" in line for line in run["log"]["info"])
    assert run["results"]["DONE"] == 2 and run["results"]["FAILED"] == 1


def test_a_list_and_layers_together(batch_runs):
    runs, base = batch_runs
    run = runs["list_and_layer"]
    assert run["ok"], run.get("error")
    assert run["results"]["DONE"] == 2 and run["results"]["FAILED"] == 0
    assert sorted(p.name for p in (base / "out2").glob("*.gpkg")) == ["answers.gpkg", "crop0.gpkg", "crop1.gpkg",
                                                                      "index.gpkg"]


def test_no_scenes_is_a_clear_error(batch_runs):
    runs, _ = batch_runs
    run = runs["no_scenes"]
    assert not run["ok"] and run["error_type"] == "QgsProcessingException"
    assert "No scenes" in run["error"]
