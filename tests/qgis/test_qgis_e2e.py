"""End to end: QGIS 3.22 running the REAL ``rrsis`` command (btdnet-tiny on the bundled sample
scene), in-process with ``processing.run`` and out-of-process with ``qgis_process.bin``.

The command under test is this checkout's ``cli`` (or ``RRSIS_TEST_EXECUTABLE``); the
``qgis_process`` test also runs against the fake test double, which checks the qgis_process
plumbing independently of the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.qgis.qgis_support import (
    DOCUMENTED_FIELDS,
    FAKE_RRSIS,
    PLUGIN,
    QGIS_PROCESS,
    QGIS_PYTHON,
    SAMPLE,
    cli_error_line,
    make_profile,
    run_driver,
)

pytestmark = [pytest.mark.qgis, pytest.mark.slow]

TINY, CPU = 2, 1  # enum indices of btdnet-tiny and cpu
TILE = 256


@pytest.fixture(scope="module")
def no_crs_scene(tmp_path_factory):
    """A 256 x 256 crop of the sample scene, written without any CRS."""
    import rasterio
    from rasterio.windows import Window

    path = tmp_path_factory.mktemp("nocrs") / "no_crs.tif"
    with rasterio.open(SAMPLE) as src:
        data = src.read(window=Window(0, 0, 256, 256))
        profile = src.profile.copy()
    profile.update(width=256, height=256, crs=None, transform=rasterio.Affine(5, 0, 0, 0, -5, 0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def real_runs(qgis_available, plugin_zip, real_rrsis, no_crs_scene, tmp_path_factory):
    import rasterio

    base = tmp_path_factory.mktemp("qgis-real")
    profile = make_profile(base, plugin_zip)
    dirs = {}

    def out_dir(name):
        dirs[name] = base / name
        dirs[name].mkdir()
        return dirs[name]

    with rasterio.open(SAMPLE) as src:
        left, top, res = src.bounds.left, src.bounds.top, src.res[0]
    clip = (left, left + 300 * res, top - 300 * res, top)
    base_params = {"INPUT": str(SAMPLE), "MODEL": TINY, "DEVICE": CPU, "TILE": TILE}
    scenarios = [
        {
            "name": "loaded",
            "setting": real_rrsis,
            "load": True,
            "params": {**base_params, "EXPRESSION": "the largest lake",
                       "OUTPUT": str(out_dir("loaded") / "lakes.gpkg"),
                       # A temporary output: the provider must make it a GeoTIFF.
                       "PROB": "TEMPORARY_OUTPUT"},
        },
        {
            "name": "converted",
            "setting": real_rrsis,
            "params": {**base_params, "EXPRESSION": "the road",
                       "EXTENT": "{},{},{},{} [EPSG:26914]".format(*clip),
                       "OUTPUT": str(out_dir("converted") / "roads.gml")},
        },
        {
            "name": "cancelled",
            "setting": real_rrsis,
            "cancel_at_percent": 1.0,
            "params": {**base_params, "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("cancelled") / "lakes.gpkg"),
                       "PROB": str(dirs["cancelled"] / "lakes_prob.tif")},
        },
        {
            "name": "bad_expression",
            "setting": real_rrsis,
            "params": {**base_params, "EXPRESSION": "   ",
                       "OUTPUT": str(out_dir("bad_expression") / "x.gpkg")},
        },
        {
            "name": "no_crs",
            "setting": real_rrsis,
            "params": {**base_params, "INPUT": str(no_crs_scene), "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("no_crs") / "x.gpkg")},
        },
        {
            "name": "no_crs_assumed",
            "setting": real_rrsis,
            "params": {**base_params, "INPUT": str(no_crs_scene), "EXPRESSION": "the lake",
                       "ASSUME_CRS": "EPSG:32614",
                       "OUTPUT": str(out_dir("no_crs_assumed") / "x.gpkg")},
        },
    ]
    records = run_driver(profile, scenarios, base)
    return {"runs": records["scenarios"], "dirs": dirs, "base": base,
            "clip": (clip[0], clip[2], clip[1], clip[3])}


def test_processing_run_writes_a_valid_layer_in_the_raster_crs(real_runs):
    run = real_runs["runs"]["loaded"]
    assert run["ok"], run
    out = run["output"]
    assert out["valid"] and out["crs"] == "EPSG:26914"
    assert out["geometry_type"] == 2  # polygons
    assert set(DOCUMENTED_FIELDS) <= set(out["fields"]), out["fields"]
    assert run["results"]["FEATURES"] == out["count"]
    assert run["results"]["PROB"].endswith(".tif")
    prob = run["prob"]
    assert prob["valid"] and prob["crs"] == "EPSG:26914"
    assert (prob["width"], prob["height"]) == (934, 723)
    manifest = real_runs["dirs"]["loaded"] / "lakes.gpkg.manifest.json"
    assert run["results"]["MANIFEST"] == str(manifest) and manifest.exists()
    assert run["results"]["RUN_ID"]
    assert run["progress"][-1] == 100.0


def test_processing_run_features_carry_provenance(real_runs):
    import geopandas as gpd

    run = real_runs["runs"]["loaded"]
    frame = gpd.read_file(real_runs["dirs"]["loaded"] / "lakes.gpkg")
    assert frame.crs.to_epsg() == 26914
    if len(frame):
        assert set(frame["expression"]) == {"the largest lake"}
        assert set(frame["run_id"]) == {run["results"]["RUN_ID"]}
        assert (frame["area_m2"] > 0).all()


def test_results_are_loaded_and_styled(real_runs):
    loaded = {layer["name"]: layer for layer in real_runs["runs"]["loaded"]["loaded"]}
    assert loaded["rrsis: the largest lake"]["outline"] == "#ffd400"
    assert loaded["rrsis probability: the largest lake"]["renderer"] == "singlebandpseudocolor"


def test_other_ogr_formats_are_converted_with_attributes(real_runs):
    """GML is not a format the CLI writes: the plugin converts it (two files, moved into place
    together). The Extent was passed as an AOI: features lie inside it and name the file."""
    import geopandas as gpd
    from shapely.geometry import box

    run = real_runs["runs"]["converted"]
    assert run["ok"], run
    out = run["output"]
    assert out["valid"] and out["crs"] == "EPSG:26914"
    assert set(DOCUMENTED_FIELDS) <= set(out["fields"])
    names = sorted(os.listdir(real_runs["dirs"]["converted"]))
    assert names == ["roads.gml", "roads.gml.manifest.json", "roads.xsd"]
    frame = gpd.read_file(real_runs["dirs"]["converted"] / "roads.gml")
    assert len(frame) == run["results"]["FEATURES"]
    if len(frame):
        assert frame.geometry.within(box(*real_runs["clip"]).buffer(1.0)).all()
        assert set(frame["source"]) == {str(SAMPLE)}


def test_cancelled_real_run_stops_quickly_and_leaves_nothing(real_runs):
    run = real_runs["runs"]["cancelled"]
    assert not run["ok"] and run["error"].startswith("Cancelled"), run
    assert run["cancel_latency"] < 1.0
    assert os.listdir(real_runs["dirs"]["cancelled"]) == []


@pytest.mark.parametrize(
    "name, cli_args",
    [
        ("bad_expression", lambda scene, out: ["--", str(SAMPLE), "   "]),
        ("no_crs", lambda scene, out: ["--", str(scene), "the lake"]),
    ],
)
def test_cli_error_message_reaches_qgis(real_runs, real_rrsis, no_crs_scene, tmp_path, name, cli_args):
    run = real_runs["runs"][name]
    assert not run["ok"] and run["error_type"] == "QgsProcessingException", run
    out = tmp_path / "x.gpkg"
    message = cli_error_line(
        real_rrsis,
        ["segment", "-o", str(out), "--model", "btdnet-tiny", "--device", "cpu",
         *cli_args(no_crs_scene, out)],
    )
    assert run["error"].startswith(f"rrsis failed: {message}")
    if "--assume-crs" in message:  # the CLI's flag, named as QGIS shows it
        assert "'Assume CRS' parameter" in run["error"]
    assert os.listdir(real_runs["dirs"][name]) == []


def test_assume_crs_makes_a_raster_without_crs_usable(real_runs):
    run = real_runs["runs"]["no_crs_assumed"]
    assert run["ok"], run
    assert run["output"]["valid"] and run["output"]["crs"] == "EPSG:32614"


# ------------------------------------------------------------------ qgis_process


@pytest.fixture(scope="module")
def fake_executable(tmp_path_factory):
    path = tmp_path_factory.mktemp("fake-rrsis") / "rrsis"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_RRSIS}" "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture(params=["fake", "real"])
def executable(request):
    if request.param == "fake":
        return "fake", request.getfixturevalue("fake_executable")
    return "real", request.getfixturevalue("real_rrsis")


def test_qgis_process_runs_the_algorithm_and_returns_json(qgis_available, plugin_zip, executable, tmp_path):
    kind, path = executable
    profile = make_profile(tmp_path, plugin_zip)
    env = profile.env()
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", PLUGIN], capture_output=True,
                            text=True, env=env, timeout=120)
    assert enable.returncode == 0, enable.stderr
    # The provider setting, stored where QGIS's settings dialog stores it.
    code = (
        "import sys; from qgis.core import QgsApplication, QgsSettings; "
        "QgsApplication.setOrganizationName('QGIS'); QgsApplication.setApplicationName('QGIS3'); "
        "app = QgsApplication([], False); app.initQgis(); "
        "QgsSettings().setValue('Processing/Configuration/RRSIS_EXECUTABLE', sys.argv[1]); "
        "QgsSettings().sync()"
    )
    setting = subprocess.run([QGIS_PYTHON, "-c", code, path], capture_output=True, text=True,
                             env=env, timeout=120)
    assert setting.returncode == 0, setting.stderr

    out = tmp_path / "out" / "lakes.geojson"
    out.parent.mkdir()
    proc = subprocess.run(
        [QGIS_PROCESS, "--json", "run", "rrsis:segment", "--",
         f"INPUT={SAMPLE}", "EXPRESSION=the lake", f"MODEL={TINY}", f"DEVICE={CPU}",
         f"TILE={TILE}", f"OUTPUT={out}"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    answer = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert answer["algorithm_details"]["id"] == "rrsis:segment"
    results = answer["results"]
    assert results["OUTPUT"] == str(out)
    assert isinstance(results["FEATURES"], (int, float)) and results["RUN_ID"]
    assert results["MANIFEST"] == str(out) + ".manifest.json"

    import geopandas as gpd

    frame = gpd.read_file(out)
    assert len(frame) == results["FEATURES"]
    assert set(DOCUMENTED_FIELDS) <= set(frame.columns)
    if kind == "real":
        assert frame.crs.to_epsg() == 26914
