"""The plugin inside real QGIS 3.22 (in-process ``processing.run``), driving the FAKE rrsis
test double: parameter mapping, progress and messages, styling, cancellation, error mapping,
missing executable, layers that are not files. End-to-end runs with the real command are in
test_qgis_e2e.py."""

from __future__ import annotations

import json
import os
import sys
import zipfile

import pytest

from tests.qgis.qgis_support import FAKE_RRSIS, SAMPLE, make_profile, run_driver

pytestmark = pytest.mark.qgis

#: Extent (EPSG:3857) and pixel size used to export the local XYZ layer.
XYZ_EXTENT = (-4_000_000.0, 4_000_000.0, -2_000_000.0, 2_000_000.0)  # xmin, xmax, ymin, ymax
XYZ_PIXEL = 40_000.0


def _xyz_tiles(root):
    """Write z0..z2 XYZ tiles as PNGs with the standard library only (solid colours)."""
    import struct
    import zlib

    def png(r, g, b):
        raw = b"".join(b"\x00" + bytes((r, g, b)) * 256 for _ in range(256))
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    for z in range(3):
        for x in range(2 ** z):
            for y in range(2 ** z):
                path = root / str(z) / str(x) / f"{y}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png(60 * x, 60 * y, 200))


@pytest.fixture(scope="module")
def fake_runs(qgis_available, plugin_zip, tmp_path_factory):
    base = tmp_path_factory.mktemp("qgis-fake")
    profile = make_profile(base, plugin_zip)
    # The fake runs under the interpreter running pytest (any Python 3 would do).
    fake = base / "rrsis"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_RRSIS}" "$@"\n')
    fake.chmod(0o755)
    dirs = {}

    def out_dir(name):
        dirs[name] = base / name
        dirs[name].mkdir()
        return dirs[name]

    empty_path = base / "empty-path"
    empty_path.mkdir()
    tiles = base / "tiles"
    _xyz_tiles(tiles)
    xyz_uri = f"type=xyz&url=file://{tiles}/%7Bz%7D/%7Bx%7D/%7By%7D.png&zmin=0&zmax=2"
    checkpoint = base / "my-model.safetensors"
    checkpoint.write_bytes(b"\0" * 16)

    common_env = {"FAKE_RRSIS_MODE": "ok", "FAKE_RRSIS_ARGV": None, "FAKE_RRSIS_PIDFILE": None,
                  "FAKE_RRSIS_COPY_SCENE": None}
    scenarios = [
        {
            "name": "ok_loaded",
            "setting": str(fake),
            "load": True,
            # With QGIS's default, a named file outside the temp dir would name the layer after
            # the file (tests/qgis/test_qgis_e2e.py checks that); here the algorithm's name shows.
            "prefer_filename": False,
            "env": {**common_env, "FAKE_RRSIS_MODE": "noise",
                    "FAKE_RRSIS_ARGV": str(base / "argv_ok.json")},
            "params": {
                "INPUT": str(SAMPLE), "EXPRESSION": "-the lake north of the road",
                "MODEL": 2, "BANDS": [3, 2, 1], "TILE": 256, "OVERLAP": 32, "BATCH_SIZE": 2,
                "THRESHOLD": 0.3, "MIN_AREA": 50, "SIMPLIFY": 2.5, "DEVICE": 1,
                "ASSUME_CRS": "EPSG:32614", "DST_CRS": "EPSG:4326", "WHOLE_SCENE": True,
                "OUTPUT": str(out_dir("ok_loaded") / "lakes.geojson"),
            },
        },
        {
            "name": "checkpoint_defaults",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_ARGV": str(base / "argv_ckpt.json")},
            "params": {
                "INPUT": str(SAMPLE), "EXPRESSION": "the road", "CHECKPOINT": str(checkpoint),
                "OUTPUT": str(out_dir("checkpoint_defaults") / "roads.geojson"),
            },
        },
        {
            "name": "cancel_sigint",
            "setting": str(fake),
            "cancel_at_percent": 20,
            "env": {**common_env, "FAKE_RRSIS_MODE": "slow",
                    "FAKE_RRSIS_PIDFILE": str(base / "pid_sigint")},
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("cancel_sigint") / "lakes.geojson")},
        },
        {
            "name": "cancel_stubborn",
            "setting": str(fake),
            "cancel_at_percent": 20,
            "env": {**common_env, "FAKE_RRSIS_MODE": "stubborn",
                    "FAKE_RRSIS_PIDFILE": str(base / "pid_stubborn")},
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("cancel_stubborn") / "lakes.geojson")},
        },
        {
            "name": "bad_expression",
            "setting": str(fake),
            "env": common_env,
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "   ",
                       "OUTPUT": str(out_dir("bad_expression") / "x.geojson")},
        },
        {
            "name": "crash",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_MODE": "crash"},
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("crash") / "x.geojson")},
        },
        {
            "name": "missing_setting_path",
            "setting": str(base / "gone" / "bin" / "rrsis"),
            "env": common_env,
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("missing_setting_path") / "x.geojson")},
        },
        {
            "name": "missing_on_path",
            "setting": "",
            "env": {**common_env, "PATH": str(empty_path)},
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("missing_on_path") / "x.geojson")},
        },
        {
            "name": "xyz_without_extent",
            "setting": str(fake),
            "env": common_env,
            "layer": {"uri": xyz_uri, "provider": "wms", "name": "local xyz"},
            "params": {"EXPRESSION": "the lake",
                       "OUTPUT": str(out_dir("xyz_without_extent") / "x.geojson")},
        },
        {
            "name": "xyz_exported",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_COPY_SCENE": str(base / "xyz_scene.tif")},
            "layer": {"uri": xyz_uri, "provider": "wms", "name": "local xyz"},
            "params": {"EXPRESSION": "the lake", "PIXEL_SIZE": XYZ_PIXEL,
                       "EXTENT": "{},{},{},{} [EPSG:3857]".format(*XYZ_EXTENT),
                       "OUTPUT": str(out_dir("xyz_exported") / "x.geojson")},
        },
    ]
    # Extents in the sample's own CRS: 30 pixels in from the top-left corner, 100 x 60 pixels,
    # 2 m inside the pixel edges (so an export must snap outward to the grid).
    import rasterio

    with rasterio.open(SAMPLE) as src:
        left, top, res = src.bounds.left, src.bounds.top, src.res[0]
    clip = (left + 30 * res + 2, left + 130 * res - 2, top - 90 * res + 2, top - 30 * res - 2)
    extent = "{},{},{},{} [EPSG:26914]".format(*clip)
    no_crs = base / "no_crs.tif"
    with rasterio.open(SAMPLE) as src:
        meta = src.profile.copy()
        meta.update(width=64, height=64, crs=None, transform=rasterio.Affine(5, 0, 0, 0, -5, 0))
        with rasterio.open(no_crs, "w", **meta) as dst:
            dst.write(src.read(window=((0, 64), (0, 64))))
    zipped = base / "scene.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(SAMPLE, "naip.tif")
    scenarios += [
        {
            "name": "file_extent_aoi",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_ARGV": str(base / "argv_aoi.json"),
                    "FAKE_RRSIS_COPY_AOI": str(base / "aoi.gpkg")},
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "EXTENT": extent,
                       "OUTPUT": str(out_dir("file_extent_aoi") / "x.geojson")},
        },
        {
            "name": "no_crs_assumed_aoi",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_ARGV": str(base / "argv_no_crs.json"),
                    "FAKE_RRSIS_COPY_AOI": str(base / "aoi_no_crs.gpkg")},
            "params": {"INPUT": str(no_crs), "EXPRESSION": "the lake", "ASSUME_CRS": "EPSG:32614",
                       "EXTENT": "0,200,-100,0 [EPSG:32614]",
                       "OUTPUT": str(out_dir("no_crs_assumed_aoi") / "x.geojson")},
        },
        {
            "name": "zipped_exported",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_COPY_SCENE": str(base / "zipped_scene.tif")},
            "layer": {"uri": f"/vsizip/{zipped}/naip.tif", "provider": "gdal", "name": "zipped"},
            "params": {"EXPRESSION": "the lake", "EXTENT": extent,
                       "OUTPUT": str(out_dir("zipped_exported") / "x.geojson")},
        },
        {
            "name": "file_resampled",
            "setting": str(fake),
            "env": {**common_env, "FAKE_RRSIS_COPY_SCENE": str(base / "resampled_scene.tif")},
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "PIXEL_SIZE": 10.0,
                       "EXTENT": "{},{},{},{} [EPSG:26914]".format(left, left + 1000, top - 600, top),
                       "OUTPUT": str(out_dir("file_resampled") / "x.geojson")},
        },
    ]

    # Scene-level runs (the default mode) and the mode parameter.
    def argv_env(name, **extra):
        return {**common_env, "FAKE_RRSIS_ARGV": str(base / f"argv_{name}.json"), **extra}

    scenarios += [
        {
            "name": "scene_gpkg_loaded",
            "setting": str(fake),
            "load": True,
            "prefer_filename": False,
            "env": argv_env("scene_gpkg_loaded"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the largest lake",
                       "OUTPUT": str(out_dir("scene_gpkg_loaded") / "lakes.gpkg")},
        },
        {
            "name": "scene_gpkg_filenames",
            "setting": str(fake),
            "load": True,
            "prefer_filename": True,
            "env": common_env,
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the largest lake",
                       "OUTPUT": str(out_dir("scene_gpkg_filenames") / "lakes.gpkg")},
        },
        {
            "name": "abstained",
            "setting": str(fake),
            "load": True,
            "prefer_filename": False,
            "env": argv_env("abstained"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the volcano", "MODE": 0,
                       "OUTPUT": str(out_dir("abstained") / "volcano.gpkg")},
        },
        {
            "name": "forced",
            "setting": str(fake),
            "env": argv_env("forced"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the volcano", "FORCE": True,
                       "PRESENCE": 0.4, "OUTPUT": str(out_dir("forced") / "volcano.gpkg")},
        },
        {
            "name": "per_tile_loaded",
            "setting": str(fake),
            "load": True,
            "prefer_filename": False,
            "env": argv_env("per_tile_loaded"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "MODE": 1,
                       "OUTPUT": str(out_dir("per_tile_loaded") / "tiles.gpkg")},
        },
        {
            "name": "mode_whole_scene",
            "setting": str(fake),
            "env": argv_env("mode_whole_scene"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "MODE": 2,
                       "OUTPUT": str(out_dir("mode_whole_scene") / "x.gpkg")},
        },
        {
            "name": "legacy_whole_scene_with_mode_default",
            "setting": str(fake),
            "env": argv_env("legacy_whole_scene_with_mode_default"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "MODE": 0,
                       "WHOLE_SCENE": True,
                       "OUTPUT": str(out_dir("legacy_whole_scene_with_mode_default") / "x.gpkg")},
        },
        {
            "name": "legacy_conflict",
            "setting": str(fake),
            "env": argv_env("legacy_conflict"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "MODE": 1,
                       "WHOLE_SCENE": True, "OUTPUT": str(out_dir("legacy_conflict") / "x.gpkg")},
        },
        {
            "name": "candidates_separate",
            "setting": str(fake),
            "load": True,
            "prefer_filename": False,
            "env": argv_env("candidates_separate"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the largest lake",
                       "OUTPUT": str(out_dir("candidates_separate") / "lake.geojson"),
                       "CANDIDATES": str(dirs["candidates_separate"] / "all.geojson")},
        },
        {
            "name": "candidates_per_tile",
            "setting": str(fake),
            "env": argv_env("candidates_per_tile"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the lake", "MODE": 1,
                       "OUTPUT": str(out_dir("candidates_per_tile") / "x.geojson"),
                       "CANDIDATES": str(dirs["candidates_per_tile"] / "c.geojson")},
        },
        {
            # Formats the command does not write: QGIS converts the answer layer of the
            # command's GeoPackage, and the candidates file the command wrote beside it.
            "name": "scene_converted",
            "setting": str(fake),
            "env": argv_env("scene_converted"),
            "params": {"INPUT": str(SAMPLE), "EXPRESSION": "the largest lake",
                       "OUTPUT": str(out_dir("scene_converted") / "lake.gml"),
                       "CANDIDATES": str(dirs["scene_converted"] / "all.gml")},
        },
    ]

    records = run_driver(profile, scenarios, base)
    return {"records": records, "runs": records["scenarios"], "base": base, "dirs": dirs}


def _argv(fake_runs, name):
    """The arguments the fake received in scenario ``name``."""
    stem = {"ok_loaded": "ok", "checkpoint_defaults": "ckpt"}.get(name, name)
    return json.loads((fake_runs["base"] / f"argv_{stem}.json").read_text())


def test_plugin_loads_like_qgis_loads_it(fake_runs):
    plugin = fake_runs["records"]["plugin"]
    assert plugin["module"] == "rrsis_geo_qgis.plugin"
    assert plugin["provider_setting"] is True
    assert plugin["threaded"] is True
    for name in ["INPUT", "EXPRESSION", "MODEL", "CHECKPOINT", "BANDS", "TILE", "OVERLAP",
                 "THRESHOLD", "MIN_AREA", "SIMPLIFY", "DEVICE", "OUTPUT", "PROB", "MODE", "FORCE",
                 "PRESENCE", "CANDIDATES", "WHOLE_SCENE"]:
        assert name in plugin["parameters"]
    assert {"OUTPUT", "PROB", "FEATURES", "MANIFEST", "RUN_ID", "CANDIDATES", "RULE",
            "ABSTAINED"} <= set(plugin["outputs"])
    # The mode enum replaces the whole-scene checkbox, which stays (hidden) for saved scripts.
    assert plugin["hidden"] == ["WHOLE_SCENE"]
    assert {"FORCE", "PRESENCE"} <= set(plugin["advanced"]) and "MODE" not in plugin["advanced"]
    assert [o.split(":")[0] for o in plugin["enums"]["MODE"]] == ["Scene-level", "Per tile",
                                                                  "Whole scene"]
    assert plugin["defaults"]["MODE"] == 0 and plugin["defaults"]["FORCE"] is False
    assert fake_runs["records"]["unloaded"] is True
    assert fake_runs["records"]["imported"] == []  # no torch, rrsis_geo, ... in QGIS's Python


def test_parameters_reach_the_command(fake_runs):
    run = fake_runs["runs"]["ok_loaded"]
    assert run["ok"], run
    argv = json.loads((fake_runs["base"] / "argv_ok.json").read_text())
    options, positionals = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    assert positionals == [str(SAMPLE), "-the lake north of the road"]
    pairs = dict(zip(options[1::2], options[2::2]))
    assert pairs["--model"] == "btdnet-tiny" and pairs["--bands"] == "3,2,1"
    assert pairs["--tile"] == "256" and pairs["--overlap"] == "32" and pairs["--batch-size"] == "2"
    assert float(pairs["--threshold"]) == pytest.approx(0.3)
    assert float(pairs["--min-area"]) == 50 and float(pairs["--simplify"]) == 2.5
    assert pairs["--device"] == "cpu" and pairs["--progress"] == "json"
    assert pairs["--assume-crs"] == "EPSG:32614" and pairs["--dst-crs"] == "EPSG:4326"
    assert "--whole-scene" in options

    argv = json.loads((fake_runs["base"] / "argv_ckpt.json").read_text())
    pairs = dict(zip(argv[1::2], argv[2::2]))
    assert pairs["--model"].endswith("my-model.safetensors")
    assert pairs["--device"] == "auto"
    for unset in ("--bands", "--tile", "--overlap", "--threshold", "--min-area", "--simplify",
                  "--prob", "--aoi", "--assume-crs", "--dst-crs", "--whole-scene", "--per-tile",
                  "--force", "--presence", "--candidates"):
        assert unset not in argv


MODE_FLAGS = ("--per-tile", "--whole-scene")


@pytest.mark.parametrize("name, flags", [
    ("scene_gpkg_loaded", []),  # MODE left out: scene-level, the CLI's default (no flag)
    ("abstained", []),  # MODE 0
    ("per_tile_loaded", ["--per-tile"]),  # MODE 1
    ("mode_whole_scene", ["--whole-scene"]),  # MODE 2
    ("ok_loaded", ["--whole-scene"]),  # the older WHOLE_SCENE flag alone
    ("legacy_whole_scene_with_mode_default", ["--whole-scene"]),
])
def test_mode_maps_to_the_cli_flags(fake_runs, name, flags):
    run = fake_runs["runs"][name]
    assert run["ok"], run
    argv = _argv(fake_runs, name)
    assert [a for a in argv[: argv.index("--")] if a in MODE_FLAGS] == flags


def test_whole_scene_flag_and_per_tile_mode_contradict(fake_runs):
    run = fake_runs["runs"]["legacy_conflict"]
    assert run["error_type"] == "QgsProcessingException"
    assert "WHOLE_SCENE" in run["error"] and "'Per tile'" in run["error"]
    assert not (fake_runs["base"] / "argv_legacy_conflict.json").exists()  # never started
    assert os.listdir(fake_runs["dirs"]["legacy_conflict"]) == []


def test_force_and_presence_reach_the_command(fake_runs):
    run = fake_runs["runs"]["forced"]
    assert run["ok"], run
    argv = _argv(fake_runs, "forced")
    assert "--force" in argv and float(argv[argv.index("--presence") + 1]) == pytest.approx(0.4)
    assert run["results"]["ABSTAINED"] is False and run["results"]["FEATURES"] == 1
    assert any("answering anyway because of --force" in w for w in run["log"]["warning"])


def test_scene_level_run_loads_answer_over_faint_candidates(fake_runs):
    run = fake_runs["runs"]["scene_gpkg_loaded"]
    assert run["ok"], run
    out = str(fake_runs["dirs"]["scene_gpkg_loaded"] / "lakes.gpkg")
    assert run["results"]["OUTPUT"] == out + "|layername=answer"
    assert run["results"]["CANDIDATES"] == out + "|layername=candidates"
    assert run["results"]["FEATURES"] == 1 and run["output"]["count"] == 1
    assert run["candidates"]["count"] == 3
    assert run["results"]["RULE"] == "largest of 3 lake candidates: 100 m2"
    assert run["results"]["ABSTAINED"] is False
    # Top to bottom in the layer tree: the answer, then its candidates just below.
    answer, candidates = run["loaded"]
    assert answer["in_tree"] and candidates["in_tree"]
    assert answer["name"] == "rrsis answer: the largest lake"
    assert candidates["name"] == "rrsis candidates: the largest lake"
    assert answer["source"].endswith("|layername=answer") and answer["count"] == 1
    assert candidates["source"].endswith("|layername=candidates") and candidates["count"] == 3
    assert answer["outline"] == "#ffd400" and answer["fill_alpha"] > 0
    # Faint: no fill, a thinner and translucent outline.
    assert candidates["brush"] == 0  # Qt.NoBrush
    assert candidates["outline_width"] < answer["outline_width"]
    assert candidates["outline_alpha"] < 255 and candidates["outline"] != answer["outline"]
    assert "Rule: largest of 3 lake candidates: 100 m2" in run["log"]["info"]
    assert "1 answer feature(s) of 3 candidate(s) in 0.0 s" in run["log"]["info"]
    assert not [w for w in run["log"]["warning"] if w.startswith("No answer")]
    assert run["log"]["error"] == []


def test_scene_level_layer_names_follow_the_output_file_when_qgis_prefers_it(fake_runs):
    """With "Prefer output filename for layer names" QGIS names a GeoPackage layer after its
    table ("answer"); the plugin adds the file's name."""
    run = fake_runs["runs"]["scene_gpkg_filenames"]
    assert run["ok"], run
    assert [layer["name"] for layer in run["loaded"]] == ["lakes: answer", "lakes: candidates"]


def test_abstained_run_loads_an_empty_answer_and_warns(fake_runs):
    run = fake_runs["runs"]["abstained"]
    assert run["ok"], run  # an abstention is a success
    rule = 'unknown to this model: "volcano"; it knows: lake, road, river'
    assert run["results"]["ABSTAINED"] is True and run["results"]["RULE"] == rule
    assert run["results"]["FEATURES"] == 0
    assert run["output"]["valid"] and run["output"]["count"] == 0
    assert run["output"]["geometry_type"] == 2  # an empty polygon layer, still loadable
    answer, candidates = run["loaded"]
    assert answer["name"] == "rrsis answer: the volcano" and answer["count"] == 0
    assert candidates["name"] == "rrsis candidates: the volcano" and candidates["count"] == 0
    assert f"Rule: {rule}" in run["log"]["info"]
    assert f"No answer: {rule}" in run["log"]["warning"]
    # The command's own warning (what the model knows) is passed on too.
    assert any("--force answers anyway" in w for w in run["log"]["warning"])
    assert "--force" not in _argv(fake_runs, "abstained")


def test_per_tile_keeps_one_layer(fake_runs):
    run = fake_runs["runs"]["per_tile_loaded"]
    assert run["ok"], run
    out = str(fake_runs["dirs"]["per_tile_loaded"] / "tiles.gpkg")
    assert run["results"]["OUTPUT"] == out
    assert "CANDIDATES" not in run["results"] and run["results"]["RULE"] is None
    assert run["results"]["ABSTAINED"] is False
    (loaded,) = run["loaded"]
    assert loaded["name"] == "rrsis: the lake" and loaded["source"] == out
    assert loaded["outline"] == "#ffd400" and loaded["count"] == 1
    assert "1 feature(s) in 0.0 s" in run["log"]["info"]
    assert not [line for line in run["log"]["info"] if line.startswith("Rule:")]


def test_candidates_output_for_a_format_with_one_layer(fake_runs):
    run = fake_runs["runs"]["candidates_separate"]
    assert run["ok"], run
    folder = fake_runs["dirs"]["candidates_separate"]
    argv = _argv(fake_runs, "candidates_separate")
    assert argv[argv.index("--candidates") + 1] == str(folder / "all.geojson")
    assert run["results"]["OUTPUT"] == str(folder / "lake.geojson")
    assert run["results"]["CANDIDATES"] == str(folder / "all.geojson")
    assert run["output"]["count"] == 1 and run["candidates"]["count"] == 3
    answer, candidates = run["loaded"]
    assert answer["name"] == "rrsis answer: the largest lake" and answer["outline"] == "#ffd400"
    assert candidates["name"] == "rrsis candidates: the largest lake" and candidates["brush"] == 0
    assert candidates["source"] == str(folder / "all.geojson")


def test_candidates_are_refused_outside_scene_level(fake_runs):
    run = fake_runs["runs"]["candidates_per_tile"]
    assert run["error_type"] == "QgsProcessingException"
    assert "scene-level runs only" in run["error"]
    assert not (fake_runs["base"] / "argv_candidates_per_tile.json").exists()
    assert os.listdir(fake_runs["dirs"]["candidates_per_tile"]) == []


def test_scene_level_outputs_in_other_formats_are_converted(fake_runs):
    import geopandas as gpd

    run = fake_runs["runs"]["scene_converted"]
    assert run["ok"], run
    folder = fake_runs["dirs"]["scene_converted"]
    argv = _argv(fake_runs, "scene_converted")
    assert argv[argv.index("-o") + 1].endswith("segments.gpkg")
    assert argv[argv.index("--candidates") + 1].endswith("candidates.gpkg")
    # The answer layer of the command's GeoPackage, not its first or its candidates.
    assert len(gpd.read_file(folder / "lake.gml")) == 1
    assert sorted(gpd.read_file(folder / "all.gml")["rank"]) == [1, 2, 3]
    assert run["results"]["OUTPUT"] == str(folder / "lake.gml")
    assert run["results"]["CANDIDATES"] == str(folder / "all.gml")
    assert "lake.gml.manifest.json" in os.listdir(folder)


def test_candidates_not_kept_is_said(fake_runs):
    run = fake_runs["runs"]["checkpoint_defaults"]  # scene-level, GeoJSON, no Candidates
    assert run["ok"], run
    assert any(line.startswith("The candidates are not kept") for line in run["log"]["info"])
    assert "CANDIDATES" not in run["results"]


def test_progress_and_messages_reach_the_feedback(fake_runs):
    run = fake_runs["runs"]["ok_loaded"]
    progress = run["progress"]
    assert progress == sorted(progress) and progress[-1] == 100.0 and len(progress) >= 5
    assert "scene is smaller than one tile" in run["log"]["warning"]
    assert "normalisation from the checkpoint" in run["log"]["info"]
    assert any(line.startswith("Run ") and "4 tile(s)" in line for line in run["log"]["info"])
    assert "some library printed this" in run["log"]["console"]
    assert "a warning on stderr" in run["log"]["console"]
    assert run["log"]["command"] and "--progress json" in run["log"]["command"][0]


def test_results_are_loaded_with_a_style(fake_runs):
    run = fake_runs["runs"]["ok_loaded"]
    out = str(fake_runs["dirs"]["ok_loaded"] / "lakes.geojson")
    assert run["results"]["OUTPUT"] == out
    assert run["results"]["FEATURES"] == 1
    manifest = json.loads((fake_runs["dirs"]["ok_loaded"] / "lakes.geojson.manifest.json").read_text())
    assert run["results"]["RUN_ID"] == manifest["run_id"]
    assert run["results"]["MANIFEST"] == out + ".manifest.json"
    (loaded,) = run["loaded"]
    assert loaded["name"] == "rrsis: -the lake north of the road"
    assert loaded["renderer"] == "singleSymbol"
    assert loaded["outline"] == "#ffd400"


@pytest.mark.parametrize("name", ["cancel_sigint", "cancel_stubborn"])
def test_cancel_stops_the_process_within_a_second_and_leaves_nothing(fake_runs, name):
    run = fake_runs["runs"][name]
    assert not run["ok"]
    assert run["error"].startswith("Cancelled")
    assert run["cancel_latency"] is not None and run["cancel_latency"] < 1.0, run["cancel_latency"]
    assert max(run["progress"]) < 100
    pid = int((fake_runs["base"] / f"pid_{name.split('_')[1]}").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # Nothing at the destination: no output, no manifest, no temporary file.
    assert os.listdir(fake_runs["dirs"][name]) == []


def test_cli_error_message_becomes_the_algorithm_error(fake_runs):
    run = fake_runs["runs"]["bad_expression"]
    assert run["error_type"] == "QgsProcessingException"
    assert run["error"] == ("rrsis failed: the expression is empty; describe the object to find, "
                            "e.g. 'the lake'")
    crash = fake_runs["runs"]["crash"]
    assert crash["error"] == ("rrsis failed: Internal error: ZeroDivisionError: division by zero "
                              "(set RRSIS_DEBUG=1 for the traceback)")
    for name in ("bad_expression", "crash"):
        assert os.listdir(fake_runs["dirs"][name]) == []


def test_missing_executable_says_what_to_set(fake_runs):
    run = fake_runs["runs"]["missing_setting_path"]
    assert run["error_type"] == "QgsProcessingException"
    assert "The rrsis executable does not exist: " + str(fake_runs["base"] / "gone" / "bin" / "rrsis") in run["error"]
    assert "Processing > Options > Providers > rrsis-geo > rrsis executable" in run["error"]
    run = fake_runs["runs"]["missing_on_path"]
    assert run["error_type"] == "QgsProcessingException"
    assert "The rrsis command was not found on PATH" in run["error"]


def test_web_layer_without_extent_is_refused_clearly(fake_runs):
    run = fake_runs["runs"]["xyz_without_extent"]
    assert run["error_type"] == "QgsProcessingException"
    assert "'local xyz' is a wms layer, not a raster file" in run["error"]
    assert "'Extent'" in run["error"] and "'Pixel size'" in run["error"]


def test_web_layer_is_exported_at_the_extent_and_pixel_size(fake_runs):
    import rasterio

    run = fake_runs["runs"]["xyz_exported"]
    assert run["ok"], run
    with rasterio.open(fake_runs["base"] / "xyz_scene.tif") as src:
        assert src.crs.to_epsg() == 3857
        assert (src.width, src.height) == (200, 100)
        assert src.res == pytest.approx((XYZ_PIXEL, XYZ_PIXEL))
        assert src.bounds.left == pytest.approx(XYZ_EXTENT[0])
        assert src.bounds.top == pytest.approx(XYZ_EXTENT[3])
        rgb = src.read([1, 2, 3])
    # Real tile content, not an empty raster: the tiles' blue channel is 200 everywhere.
    assert (rgb[2] == 200).mean() > 0.95
    assert rgb[0].max() > 0


def test_file_layer_with_extent_is_read_in_place_with_an_aoi(fake_runs):
    """The file itself goes to the command (so features name it as their source); the extent
    becomes an AOI polygon in the raster's CRS."""
    import geopandas as gpd
    import rasterio

    run = fake_runs["runs"]["file_extent_aoi"]
    assert run["ok"], run
    argv = json.loads((fake_runs["base"] / "argv_aoi.json").read_text())
    assert argv[-2] == str(SAMPLE)
    assert "--aoi" in argv
    aoi = gpd.read_file(fake_runs["base"] / "aoi.gpkg")
    assert aoi.crs.to_epsg() == 26914 and len(aoi) == 1
    with rasterio.open(SAMPLE) as src:
        left, top, res = src.bounds.left, src.bounds.top, src.res[0]
    assert tuple(aoi.total_bounds) == pytest.approx(
        (left + 30 * res + 2, top - 90 * res + 2, left + 130 * res - 2, top - 30 * res - 2))


def test_extent_on_a_file_without_crs_is_in_the_assumed_crs(fake_runs):
    import geopandas as gpd

    run = fake_runs["runs"]["no_crs_assumed_aoi"]
    assert run["ok"], run
    argv = json.loads((fake_runs["base"] / "argv_no_crs.json").read_text())
    assert argv[argv.index("--assume-crs") + 1] == "EPSG:32614"
    aoi = gpd.read_file(fake_runs["base"] / "aoi_no_crs.gpkg")
    assert aoi.crs.to_epsg() == 32614
    assert tuple(aoi.total_bounds) == pytest.approx((0, -100, 200, 0))


def test_non_file_gdal_layer_is_exported_on_its_own_pixel_grid(fake_runs):
    """A raster inside a zip is exported: the extent snaps outward to whole pixels and the
    values, data type and nodata are exactly the source's."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    run = fake_runs["runs"]["zipped_exported"]
    assert run["ok"], run
    with rasterio.open(SAMPLE) as src, rasterio.open(fake_runs["base"] / "zipped_scene.tif") as out:
        assert out.crs == src.crs and out.count == src.count and out.dtypes == src.dtypes
        assert (out.width, out.height) == (100, 60)
        assert out.nodata == src.nodata
        assert out.res == src.res
        assert (out.bounds.left, out.bounds.top) == pytest.approx(
            (src.bounds.left + 30 * src.res[0], src.bounds.top - 30 * src.res[1]))
        np.testing.assert_array_equal(out.read(), src.read(window=Window(30, 30, 100, 60)))


def test_pixel_size_resamples_a_file_layer(fake_runs):
    import rasterio

    run = fake_runs["runs"]["file_resampled"]
    assert run["ok"], run
    with rasterio.open(fake_runs["base"] / "resampled_scene.tif") as out:
        assert out.crs.to_epsg() == 26914
        assert (out.width, out.height) == (100, 60)
        assert out.res == pytest.approx((10.0, 10.0))
