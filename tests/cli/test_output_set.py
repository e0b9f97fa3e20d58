"""``rrsis segment`` / ``rrsis info`` on the output-set safeguards: one line, exit 2, nothing touched."""

import json
import os
import subprocess
import sys

from rrsis_geo.engine.output import OutputLock
from tests.rasters import smooth_field, write_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rrsis(*args):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"}, timeout=300)


def one_line(proc) -> str:
    """The one error line (warnings, e.g. about an untrained preset, may precede it)."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_segment_refuses_an_output_another_run_is_writing(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 60))
    out = str(tmp_path / "out.gpkg")
    with OutputLock([out]):
        line = one_line(rrsis("segment", scene, "the lake", "-o", out, "--model", "btdnet-tiny", "--tile", "32"))
    assert f"another rrsis run is writing {out} (pid {os.getpid()})" in line
    assert sorted(os.listdir(tmp_path)) == ["s.tif"]


def test_segment_refuses_to_write_over_its_model_checkpoint(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 60))
    from rrsis_geo.models import create_model, save_checkpoint

    ckpt = tmp_path / "model.safetensors"
    save_checkpoint(create_model("btdnet-tiny", input_size=32), ckpt)
    before = ckpt.read_bytes()
    os.symlink(ckpt, tmp_path / "out.gpkg")
    line = one_line(rrsis("segment", scene, "the lake", "-o", str(tmp_path / "out.gpkg"), "--model", str(ckpt),
                          "--overwrite"))
    assert "is the model checkpoint" in line
    assert ckpt.read_bytes() == before


def test_info_shows_the_disk_estimate(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 60))
    proc = rrsis("info", scene, "--model", "btdnet-tiny", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["disk_estimate_bytes"] > 60 * 40 * 4
    assert "one model pass" in summary["disk_estimate"]
    proc = rrsis("info", scene, "--model", "btdnet-tiny")
    assert "disk_estimate:" in proc.stdout
