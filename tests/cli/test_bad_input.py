"""Every input a user can get wrong: one line on stderr, exit code 2, no traceback, nothing
written. These run the real ``rrsis`` entry point in a subprocess."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.rasters import smooth_field, write_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rrsis(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    d = tmp_path_factory.mktemp("rasters")
    good = write_raster(d / "good.tif", smooth_field(40, 60, bands=4))
    nocrs = write_raster(d / "nocrs.tif", smooth_field(40, 60), crs=None)
    nogeo = str(d / "nogeo.tif")
    import rasterio

    with rasterio.open(nogeo, "w", driver="GTiff", width=10, height=10, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 10, 10), dtype="uint8"))
    cplx = write_raster(d / "complex.tif", np.zeros((3, 10, 10), dtype="complex64"))
    text = d / "notes.tif"
    text.write_text("this is not a raster")
    return {"good": good, "nocrs": nocrs, "nogeo": nogeo, "complex": cplx, "text": str(text),
            "dir": str(d)}


CASES = [
    ("missing file", ["{dir}/nope.tif", "the lake", "-o", "{out}"], "not found"),
    ("not a raster", ["{text}", "the lake", "-o", "{out}"], "not a readable raster"),
    ("no crs", ["{nocrs}", "the lake", "-o", "{out}"], "--assume-crs"),
    ("no geotransform", ["{nogeo}", "the lake", "-o", "{out}"], "no geotransform"),
    ("complex dtype", ["{complex}", "the lake", "-o", "{out}"], "unsupported data type"),
    ("band out of range", ["{good}", "the lake", "-o", "{out}", "--bands", "1,2,9"], "out of range"),
    ("two bands", ["{good}", "the lake", "-o", "{out}", "--bands", "1,2"], "exactly 3 bands"),
    ("bands garbage", ["{good}", "the lake", "-o", "{out}", "--bands", "red,green"], "band numbers"),
    ("empty expression", ["{good}", "   ", "-o", "{out}"], "expression is empty"),
    ("unknown extension", ["{good}", "the lake", "-o", "{dir}/out.docx"], "unknown output format"),
    ("missing folder", ["{good}", "the lake", "-o", "{dir}/no/such/out.gpkg"], "folder does not exist"),
    ("overlap >= tile", ["{good}", "the lake", "-o", "{out}", "--tile", "64", "--overlap", "64"],
     "must be smaller than --tile"),
    ("bad prob path", ["{good}", "the lake", "-o", "{out}", "--prob", "{dir}/p.png"], "GeoTIFF"),
    ("bad dst crs", ["{good}", "the lake", "-o", "{out}", "--dst-crs", "EPSG:99999999"],
     "not a coordinate reference system"),
]


@pytest.mark.parametrize("name,args,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(rasters, tmp_path, name, args, message):
    out = str(tmp_path / "out.gpkg")
    argv = [a.format(out=out, **rasters) for a in args]
    proc = rrsis("segment", *argv, "--model", "btdnet-tiny")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert not os.path.exists(out)
    assert os.listdir(tmp_path) == []


def test_existing_output_left_untouched(rasters, tmp_path):
    out = tmp_path / "out.gpkg"
    out.write_bytes(b"keep me")
    proc = rrsis("segment", rasters["good"], "the lake", "-o", str(out))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert out.read_bytes() == b"keep me"


def test_usage_error_exit_2(rasters):
    proc = rrsis("segment", rasters["good"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_json_progress_reports_errors_as_json(rasters, tmp_path):
    import json

    proc = rrsis("segment", rasters["nocrs"], "x", "-o", str(tmp_path / "o.gpkg"), "--progress", "json")
    events = [json.loads(l) for l in proc.stdout.splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 2
    assert "--assume-crs" in events[-1]["message"]


def test_info_prints_plan(rasters):
    import json

    proc = rrsis("info", rasters["good"], "--tile", "32", "--overlap", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["tile_plan"]["tiles"] == 6  # 2 rows x 3 cols for 60 x 40 at 32/8
    assert summary["model_bands"] == [1, 2, 3]
    proc = rrsis("info", rasters["nocrs"])
    assert proc.returncode == 2 and "--assume-crs" in proc.stderr


def test_help_is_instant_and_torch_free():
    code = "import sys; from cli.main import cli; import click.testing as t; " \
           "r = t.CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; " \
           "assert 'segment' in r.output; assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
