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
#: The no-CRS crop has its origin at (0, 0) with 5 m pixels: its top-left 120 x 100 pixels.
NO_CRS_AOI = (0.0, 600.0, -500.0, 0.0)  # xmin, xmax, ymin, ymax


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
    base = tmp_path_factory.mktemp("qgis-real")
    profile = make_profile(base, plugin_zip)
    dirs = {}

    def out_dir(name):
        dirs[name] = base / name
        dirs[name].mkdir()
        return dirs[name]

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
            # Three things in one small run: a file without CRS used through Assume CRS, an
            # Extent passed as an AOI in that CRS, and an output format the CLI does not write.
            "name": "assumed_crs_aoi_converted",
            "setting": real_rrsis,
            "params": {**base_params, "INPUT": str(no_crs_scene), "EXPRESSION": "the road",
                       "ASSUME_CRS": "EPSG:32614",
                       "EXTENT": "{},{},{},{} [EPSG:32614]".format(*NO_CRS_AOI),
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
    ]
    records = run_driver(profile, scenarios, base)
    assert records["imported"] == [], records["imported"]  # QGIS's Python never imports them
    return {"runs": records["scenarios"], "dirs": dirs, "base": base}


def test_processing_run_writes_a_valid_layer_in_the_raster_crs(real_runs):
    run = real_runs["runs"]["loaded"]
    assert run["ok"], run
    # Scene-level (the default): the answer and its candidates, two layers of the GeoPackage.
    gpkg = str(real_runs["dirs"]["loaded"] / "lakes.gpkg")
    assert run["results"]["OUTPUT"] == gpkg + "|layername=answer"
    assert run["results"]["CANDIDATES"] == gpkg + "|layername=candidates"
    assert isinstance(run["results"]["RULE"], str)
    assert isinstance(run["results"]["ABSTAINED"], bool)
    out, candidates = run["output"], run["candidates"]
    for layer in (out, candidates):
        assert layer["valid"] and layer["crs"] == "EPSG:26914"
        assert layer["geometry_type"] == 2  # polygons
        assert set(DOCUMENTED_FIELDS) | {"rank", "selected"} <= set(layer["fields"]), layer["fields"]
    assert run["results"]["FEATURES"] == out["count"] <= candidates["count"]
    assert any(line.startswith("Rule: ") for line in run["log"]["info"])
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
    for layer in ("answer", "candidates"):
        frame = gpd.read_file(real_runs["dirs"]["loaded"] / "lakes.gpkg", layer=layer)
        assert frame.crs.to_epsg() == 26914
        if len(frame):
            assert set(frame["expression"]) == {"the largest lake"}
            assert set(frame["run_id"]) == {run["results"]["RUN_ID"]}
            assert (frame["area_m2"] > 0).all()


def test_results_are_loaded_and_styled(real_runs):
    """The results are loaded and styled. The probability raster is a temporary output, so it
    keeps the algorithm's descriptive name; the polygons go to a named file outside the temp dir,
    so QGIS's default "Prefer output filename for layer names" names the layers after the file
    (and the GeoPackage layer: answer, candidates).
    (The profile's TMPDIR is its own folder: under /tmp, QGIS would treat every pytest output as
    a temporary layer and this test would not see the difference.)"""
    layers = real_runs["runs"]["loaded"]["loaded"]
    loaded = {layer["name"]: layer for layer in layers}
    assert set(loaded) == {"lakes: answer", "lakes: candidates",
                           "rrsis probability: the largest lake"}, list(loaded)
    assert loaded["lakes: answer"]["outline"] == "#ffd400"
    assert loaded["lakes: candidates"]["brush"] == 0  # faint: no fill
    names = [layer["name"] for layer in layers]
    assert names.index("lakes: candidates") == names.index("lakes: answer") + 1
    assert loaded["rrsis probability: the largest lake"]["renderer"] == "singlebandpseudocolor"


def test_assume_crs_extent_and_format_conversion(real_runs, no_crs_scene):
    """The no-CRS file is used in the assumed CRS; the Extent (an AOI in that CRS) bounds the
    features, which name the file itself as source; GML is not a format the CLI writes, so the
    plugin converts it (two files, moved into place together)."""
    import geopandas as gpd
    from shapely.geometry import box

    run = real_runs["runs"]["assumed_crs_aoi_converted"]
    assert run["ok"], run
    out = run["output"]
    assert out["valid"] and out["crs"] == "EPSG:32614"
    assert set(DOCUMENTED_FIELDS) <= set(out["fields"])
    names = sorted(os.listdir(real_runs["dirs"]["converted"]))
    assert names == ["roads.gml", "roads.gml.manifest.json", "roads.xsd"]
    frame = gpd.read_file(real_runs["dirs"]["converted"] / "roads.gml")
    assert len(frame) == run["results"]["FEATURES"]
    if len(frame):
        xmin, xmax, ymin, ymax = NO_CRS_AOI
        assert frame.geometry.within(box(xmin, ymin, xmax, ymax).buffer(1.0)).all()
        assert set(frame["source"]) == {str(no_crs_scene)}


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

    import rasterio

    with rasterio.open(SAMPLE) as src:  # the top-left 200 x 200 pixels: one tile to predict
        left, top, res = src.bounds.left, src.bounds.top, src.res[0]
    extent = f"{left},{left + 200 * res},{top - 200 * res},{top} [EPSG:26914]"
    # GeoPackage keeps the schema even when the (random) tiny model finds nothing; the fake
    # writes GeoJSON only.
    out = tmp_path / "out" / ("lakes.gpkg" if kind == "real" else "lakes.geojson")
    out.parent.mkdir()
    proc = subprocess.run(
        [QGIS_PROCESS, "--json", "run", "rrsis:segment", "--",
         f"INPUT={SAMPLE}", "EXPRESSION=the lake", f"MODEL={TINY}", f"DEVICE={CPU}",
         f"TILE={TILE}", f"EXTENT={extent}", f"OUTPUT={out}"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    answer = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert answer["algorithm_details"]["id"] == "rrsis:segment"
    results = answer["results"]
    # Scene-level (the default): a GeoPackage's answer layer; GeoJSON holds the answer alone.
    assert results["OUTPUT"] == (f"{out}|layername=answer" if kind == "real" else str(out))
    assert isinstance(results["FEATURES"], (int, float)) and results["RUN_ID"]
    assert results["MANIFEST"] == str(out) + ".manifest.json"
    assert isinstance(results["RULE"], str) and isinstance(results["ABSTAINED"], bool)

    import geopandas as gpd

    frame = gpd.read_file(out, layer="answer") if kind == "real" else gpd.read_file(out)
    assert len(frame) == results["FEATURES"]
    assert set(DOCUMENTED_FIELDS) <= set(frame.columns)
    if kind == "real":
        assert frame.crs.to_epsg() == 26914
