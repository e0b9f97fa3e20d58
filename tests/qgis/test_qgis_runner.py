"""The plugin's subprocess runner, without QGIS: locating the command, the argument list, the
JSON protocol, error messages, cancellation and leftovers. Uses the fake rrsis test double."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from qgis_plugin import runner

from tests.qgis.qgis_support import FAKE_RRSIS, SAMPLE


def fake_argv(tmp_path, out="out.geojson", expression="the lake", **kw):
    request = runner.SegmentRequest(scene=str(SAMPLE), expression=expression,
                                    output=str(tmp_path / out), **kw)
    return [sys.executable, str(FAKE_RRSIS)] + request.args()


def fake_env(**extra):
    env = runner.child_env()
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------ locating the command

def test_resolve_empty_setting_uses_path():
    assert runner.resolve_command("", which=lambda name: "/opt/env/bin/rrsis") == ["/opt/env/bin/rrsis"]


def test_resolve_empty_setting_not_on_path_says_where_to_set_it():
    with pytest.raises(runner.RrsisNotFound, match="not found on PATH.*Processing > Options > Providers > rrsis-geo > rrsis executable"):
        runner.resolve_command("  ", which=lambda name: None)


def test_resolve_missing_file(tmp_path):
    with pytest.raises(runner.RrsisNotFound, match="does not exist"):
        runner.resolve_command(str(tmp_path / "nope" / "rrsis"))


def test_resolve_not_executable(tmp_path):
    path = tmp_path / "rrsis"
    path.write_text("not a program")
    with pytest.raises(runner.RrsisNotFound, match="not an executable"):
        runner.resolve_command(str(path))


def test_resolve_environment_folder_prefers_rrsis_then_python(tmp_path):
    env = tmp_path / "venv"
    (env / "bin").mkdir(parents=True)
    python = env / "bin" / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    assert runner.resolve_command(str(env)) == [str(python), "-m", "cli"]
    rrsis = env / "bin" / "rrsis"
    rrsis.write_text("#!/bin/sh\n")
    rrsis.chmod(0o755)
    assert runner.resolve_command(str(env)) == [str(rrsis)]


def test_resolve_empty_folder(tmp_path):
    with pytest.raises(runner.RrsisNotFound, match="neither an rrsis executable nor a Python"):
        runner.resolve_command(str(tmp_path))


def test_resolve_python_interpreter_runs_module():
    assert runner.resolve_command(sys.executable)[1:] == ["-m", "cli"]


# ------------------------------------------------------------------ arguments and environment

def test_arguments_options_first_positionals_after_double_dash():
    args = runner.SegmentRequest(
        scene="/d/scene.tif", expression="-the leftmost pond", output="/d/o.gpkg",
        model="btdnet-tiny", bands=[4, 3, 2], tile=256, overlap=32, batch_size=2,
        threshold=0.3, min_area=50, simplify=2.5, device="cpu", prob="/d/p.tif",
        aoi="/t/aoi.gpkg", assume_crs="EPSG:32614", dst_crs="EPSG:4326", whole_scene=True,
        source_label="Ortho (wms: https://x/wms)",
    ).args()
    assert args[0] == "segment"
    assert args[-3:] == ["--", "/d/scene.tif", "-the leftmost pond"]
    flags = args[1:-3]
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs["-o"] == "/d/o.gpkg" and pairs["--progress"] == "json"
    assert pairs["--model"] == "btdnet-tiny" and pairs["--bands"] == "4,3,2"
    assert pairs["--tile"] == "256" and pairs["--overlap"] == "32" and pairs["--batch-size"] == "2"
    assert float(pairs["--threshold"]) == 0.3 and float(pairs["--min-area"]) == 50.0
    assert float(pairs["--simplify"]) == 2.5 and pairs["--device"] == "cpu"
    assert pairs["--prob"] == "/d/p.tif" and pairs["--aoi"] == "/t/aoi.gpkg"
    assert pairs["--assume-crs"] == "EPSG:32614" and pairs["--dst-crs"] == "EPSG:4326"
    assert pairs["--source-label"] == "Ortho (wms: https://x/wms)"
    assert "--overwrite" in flags and "--whole-scene" in flags


def test_arguments_for_scene_level_and_per_tile_runs():
    args = runner.SegmentRequest(scene="s.tif", expression="the volcano", output="o.geojson",
                                 candidates="/d/c.geojson", presence=0.25, force=True).args()
    flags = args[: args.index("--")]
    assert flags[flags.index("--candidates") + 1] == "/d/c.geojson"
    assert float(flags[flags.index("--presence") + 1]) == 0.25
    assert "--force" in flags
    assert "--per-tile" not in flags and "--whole-scene" not in flags  # scene-level: no flag
    args = runner.SegmentRequest(scene="s.tif", expression="x", output="o.gpkg", per_tile=True).args()
    assert "--per-tile" in args and "--whole-scene" not in args
    assert not {"--candidates", "--presence", "--force"} & set(args)


def test_arguments_leave_unset_options_to_the_cli():
    args = runner.SegmentRequest(scene="s.tif", expression="x", output="o.gpkg", overwrite=False).args()
    assert args == ["segment", "-o", "o.gpkg", "--progress", "json", "--", "s.tif", "x"]


def test_child_env_drops_host_python_and_proj():
    env = runner.child_env({"PATH": "/bin", "PYTHONHOME": "/qgis", "PYTHONPATH": "/qgis/py",
                            "PROJ_LIB": "/qgis/proj", "GDAL_DATA": "/qgis/gdal", "HOME": "/h"})
    assert env["PATH"] == "/bin" and env["HOME"] == "/h"
    assert not {"PYTHONHOME", "PYTHONPATH", "PROJ_LIB", "GDAL_DATA"} & set(env)
    assert env["PYTHONUNBUFFERED"] == "1"


# ------------------------------------------------------------------ the protocol

def test_run_reports_events_in_order_and_returns_done(tmp_path):
    events, texts = [], []
    done = runner.run_cli(fake_argv(tmp_path), on_event=events.append,
                          on_text=lambda s, l: texts.append((s, l)),
                          env=fake_env(FAKE_RRSIS_MODE="noise"))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    percents = [e["percent"] for e in events if e["event"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert {"level": "warning", "message": "scene is smaller than one tile", "event": "log"} in events
    # Lines that are not protocol events are passed on, not lost or misparsed.
    assert ("stdout", "some library printed this") in texts
    assert ("stderr", "a warning on stderr") in texts
    assert done["output"] == str(tmp_path / "out.geojson") and done["features"] == 1
    assert done["mode"] == "scene" and done["abstained"] is False and done["rule"]
    assert json.loads((tmp_path / "out.geojson").read_text())["features"]


@pytest.mark.parametrize(
    "expression, mode, code, message",
    [
        ("  ", "ok", 2, "the expression is empty; describe the object to find, e.g. 'the lake'"),
        ("the lake", "crash", 1,
         "Internal error: ZeroDivisionError: division by zero (set RRSIS_DEBUG=1 for the traceback)"),
    ],
)
def test_failure_carries_the_cli_message_and_exit_code(tmp_path, expression, mode, code, message):
    with pytest.raises(runner.CliFailed) as info:
        runner.run_cli(fake_argv(tmp_path, expression=expression), env=fake_env(FAKE_RRSIS_MODE=mode))
    assert str(info.value) == message
    assert info.value.exit_code == code
    assert not (tmp_path / "out.geojson").exists()


def test_error_message_without_json_uses_stderr_error_line():
    stderr = ["Usage: rrsis segment [OPTIONS] SCENE EXPRESSION", "Try 'rrsis segment -h' for help.", "",
              "Error: No such option: --progress"]
    assert runner.error_message([], stderr, 2) == "No such option: --progress"
    assert runner.error_message([], [], 1) == "rrsis exited with code 1 and no message"


def test_exit_zero_without_done_event_is_an_error(tmp_path):
    with pytest.raises(runner.CliFailed, match="without reporting a result"):
        runner.run_cli(fake_argv(tmp_path), env=fake_env(FAKE_RRSIS_MODE="nodone"))


def test_missing_executable_is_reported(tmp_path):
    with pytest.raises(runner.RrsisNotFound, match="does not exist"):
        runner.run_cli([str(tmp_path / "rrsis"), "segment"])


# ------------------------------------------------------------------ cancellation

@pytest.mark.parametrize("mode", ["slow", "stubborn"])
def test_cancel_stops_the_process_within_a_second_and_leaves_nothing(tmp_path, mode):
    """``slow`` exits on SIGINT (cleaning its temp file); ``stubborn`` ignores SIGINT, keeps its
    temp file and must be killed: the guard then removes the leftover."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "other.txt").write_text("not ours")
    pidfile = tmp_path / "pid"
    cancel = {"at": None}

    def on_event(event):
        if event["event"] == "progress" and event["done"] >= 3 and cancel["at"] is None:
            cancel["at"] = time.monotonic()

    argv = fake_argv(out_dir)
    guard = runner.OutputGuard([str(out_dir / "out.geojson")])
    with pytest.raises(runner.RunCancelled):
        with guard:
            runner.run_cli(argv, on_event=on_event, is_canceled=lambda: cancel["at"] is not None,
                           env=fake_env(FAKE_RRSIS_MODE=mode, FAKE_RRSIS_PIDFILE=str(pidfile)))
    latency = time.monotonic() - cancel["at"]
    assert latency < 1.0, latency
    pid = int(pidfile.read_text())
    assert not pid_alive(pid)
    assert sorted(os.listdir(out_dir)) == ["other.txt"]


def test_guard_keeps_files_that_existed_before(tmp_path):
    out = tmp_path / "out.gpkg"
    out.write_text("previous result")
    guard = runner.OutputGuard([str(out)])
    (tmp_path / "out.gpkg.tmp-1234").write_text("partial")
    (tmp_path / "unrelated.tif").write_text("someone else's")
    removed = guard.cleanup()
    assert removed == [str(tmp_path / "out.gpkg.tmp-1234")]
    assert out.read_text() == "previous result"
    assert (tmp_path / "unrelated.tif").exists()


def test_stop_process_interrupts_then_kills(tmp_path):
    import subprocess

    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    runner.stop_process(proc, grace=0.3)
    assert time.monotonic() - start < 1.0
    assert proc.returncode == -signal.SIGKILL


def test_exited_process_whose_child_keeps_the_pipe_open_does_not_hang(tmp_path):
    """A grandchild that inherited stdout (e.g. a stray worker) must not block the run."""
    code = (
        "import json, subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(20)']); "
        "print(json.dumps({'event': 'done', 'output': 'x', 'prob': None, 'manifest': 'x.m', "
        "'features': 0, 'seconds': 0.0}), flush=True)"
    )
    start = time.monotonic()
    done = runner.run_cli([sys.executable, "-c", code])
    assert done["features"] == 0
    assert time.monotonic() - start < 5.0
