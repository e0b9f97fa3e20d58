"""The real ``rrsis segment`` on the bundled sample scene with the real (tiny, random) BTDNet."""

import json
import os
import signal
import subprocess
import sys
import time

import geopandas as gpd
import pytest

from tests.conftest import SAMPLE_SCENE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"}


def rrsis_cmd(*args):
    return [sys.executable, "-m", "cli", *args]


def test_segment_sample_scene_end_to_end(tmp_path):
    out = tmp_path / "lake.gpkg"
    proc = subprocess.run(
        rrsis_cmd("segment", SAMPLE_SCENE, "the large lake", "-o", str(out), "--model",
                  "btdnet-tiny", "--prob", str(tmp_path / "prob.tif"), "--progress", "json",
                  "--min-area", "100"),
        capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["tiles"] == 4
    assert events[-1]["event"] == "done" and events[-1]["output"] == str(out)
    percents = [e["percent"] for e in events if e["event"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100.0
    frame = gpd.read_file(out)
    assert frame.crs == "EPSG:26914"
    assert len(frame) == events[-1]["features"]
    if len(frame):
        assert set(frame.model_id) == {"btdnet-tiny"}
        assert (frame.area_m2 >= 100).all()
        assert frame.score.between(0, 1).all()
    manifest = json.load(open(str(out) + ".manifest.json"))
    assert manifest["model"]["id"] == "btdnet-tiny" and manifest["scene"]["crs"] == "EPSG:26914"
    import rasterio

    with rasterio.open(tmp_path / "prob.tif") as src:
        assert src.crs == "EPSG:26914" and (src.width, src.height) == (934, 723)
        assert src.overviews(1)  # a Cloud-Optimized GeoTIFF carries overviews


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A btdnet-tiny checkpoint with a 128-pixel input: `--model PATH` with no other flag."""
    from rrsis_geo.models import create_model, save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny128.safetensors"
    save_checkpoint(create_model("btdnet-tiny", input_size=128), path)
    return str(path)


def test_sigint_mid_run_leaves_nothing_and_rerun_resumes(tmp_path, small_checkpoint):
    out = tmp_path / "o.gpkg"
    args = rrsis_cmd("segment", SAMPLE_SCENE, "the lake", "-o", str(out), "--model", small_checkpoint,
                     "--batch-size", "1", "--progress", "json")
    # SIGINT at its default in the child, whatever this suite inherited: a shell without job control
    # starts background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["stage"] == "predict" and event["done"] >= 20:
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 130
    assert "resume" in proc.stderr.read()
    assert not out.exists() and not os.path.exists(str(out) + ".manifest.json")
    again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0, again.stderr
    start = json.loads(again.stdout.splitlines()[0])
    assert start["tiles"] == 63  # 9 x 7 tiles of the checkpoint's 128-pixel input size
    assert start["resumed_from_row"] > 0
    assert len(gpd.read_file(out)) == json.loads(again.stdout.splitlines()[-1])["features"]


@pytest.mark.parametrize("model,message", [("junk", "not a safetensors file"),
                                           ("btdnet-huge", "is neither a shipped model")])
def test_bad_model_argument(tmp_path, model, message):
    if model == "junk":
        model = str(tmp_path / "junk.safetensors")
        open(model, "w").write("not a checkpoint")
    proc = subprocess.run(rrsis_cmd("segment", SAMPLE_SCENE, "x", "-o", str(tmp_path / "o.gpkg"),
                                    "--model", model), capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.gpkg").exists()
