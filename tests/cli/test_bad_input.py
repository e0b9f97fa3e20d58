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
    big = write_raster(d / "big.tif", smooth_field(300, 300, bands=4))
    truncated = d / "truncated.tif"
    truncated.write_bytes(open(big, "rb").read()[:-20000])
    vrt = d / "missing.vrt"
    with rasterio.open(good) as src:
        t = src.transform
        vrt.write_text(
            f'<VRTDataset rasterXSize="60" rasterYSize="40"><SRS>{src.crs.to_wkt()}</SRS>'
            f"<GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>"
            + "".join(f'<VRTRasterBand dataType="Float32" band="{b}"><SimpleSource>'
                      f'<SourceFilename relativeToVRT="1">gone.tif</SourceFilename><SourceBand>{b}</SourceBand>'
                      "</SimpleSource></VRTRasterBand>" for b in (1, 2, 3, 4))
            + "</VRTDataset>")
    badckpt = d / "bad.safetensors"
    badckpt.write_bytes((10 << 30).to_bytes(8, "little") + b"{}")
    return {"good": good, "nocrs": nocrs, "nogeo": nogeo, "complex": cplx, "text": str(text),
            "truncated": str(truncated), "vrt": str(vrt), "badckpt": str(badckpt), "dir": str(d)}


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
    ("simplify nan", ["{good}", "the lake", "-o", "{out}", "--simplify", "nan"], "--simplify: 'nan' is not a finite"),
    ("min-area nan", ["{good}", "the lake", "-o", "{out}", "--min-area", "nan"], "--min-area: 'nan' is not a finite"),
    ("threshold inf", ["{good}", "the lake", "-o", "{out}", "--threshold", "inf"], "--threshold"),
    ("tile too large", ["{good}", "the lake", "-o", "{out}", "--tile", "100000"], "--tile: 100000 is not in the range"),
    ("batch too large", ["{good}", "the lake", "-o", "{out}", "--batch-size", "5000"], "--batch-size: 5000 is not in the range 1<=x<=1024"),
    ("truncated tiff", ["{truncated}", "the lake", "-o", "{out}"], "truncated.tif cannot be read"),
    ("vrt missing source", ["{vrt}", "the lake", "-o", "{out}"], "missing.vrt cannot be read"),
    ("expression not utf-8", ["{good}", "the \udcff lake", "-o", "{out}"], "not valid UTF-8"),
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

    proc = rrsis("info", rasters["good"], "--tile", "32", "--overlap", "8", "--json", "--model", "btdnet-tiny")
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


def one_line_exit_2(proc):
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_hostile_checkpoint_refused_before_loading(rasters, tmp_path):
    out = tmp_path / "out.gpkg"
    proc = rrsis("segment", rasters["good"], "the lake", "-o", str(out), "--model", rasters["badckpt"])
    assert "header length" in one_line_exit_2(proc)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name,content,message", [
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "aliases (*name) are not allowed"),
    ("binary", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00", "not UTF-8 text"),
])
def test_bad_training_config(tmp_path, name, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = rrsis("train", "--config", str(path), "--print-config")
    assert message in one_line_exit_2(proc)


def test_disk_full_is_one_line_naming_the_file(rasters, tmp_path, monkeypatch):
    import errno

    from click.testing import CliRunner

    import rrsis_geo.engine.segment as engine
    import rrsis_geo.models as models
    from cli.main import cli

    out = str(tmp_path / "out.gpkg")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", out)

    from types import SimpleNamespace

    model = SimpleNamespace(info=SimpleNamespace(checksum="0" * 64, bands=4))
    monkeypatch.setattr(models, "load_predictor", lambda *a, **k: model)
    monkeypatch.setattr(engine, "segment_scene", full)
    result = CliRunner().invoke(cli, ["segment", rasters["good"], "the lake", "-o", out])
    assert result.exit_code == 2, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert lines == [f"Error: no space left on device writing {out}; free some space or write elsewhere"]


def test_info_shows_the_plan_segment_uses(rasters):
    """The default model: 4 bands, and a tile covering one training window (256 px at 10 m)."""
    import json

    proc = rrsis("info", rasters["good"], "--bands", "1,2,3,4", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["model"].startswith("btdnet-lite-demo (4 bands")
    assert summary["model_bands"] == [1, 2, 3, 4]
    assert summary["tile_plan"]["tile"] == 256 and summary["tile_plan"]["overlap"] == 32


def test_rgb_scene_with_the_rgbn_model_named_says_what_to_do(tmp_path):
    rgb = write_raster(tmp_path / "rgb.tif", smooth_field(40, 60, bands=3))
    out = tmp_path / "out.gpkg"
    line = one_line_exit_2(rrsis("segment", rgb, "the lake", "-o", str(out), "--model", "btdnet-lite-demo"))
    assert "4 bands" in line and "--model btdnet-lite-demo-rgb, or leave --model out" in line
    assert not out.exists()


def test_untrained_preset_warns_in_one_line(rasters, tmp_path):
    out = tmp_path / "out.gpkg"
    proc = rrsis("segment", rasters["good"], "all the lakes", "-o", str(out), "--model", "btdnet-tiny",
                 "--tile", "32", "--per-tile")
    assert proc.returncode == 0, proc.stderr
    warnings = [l for l in proc.stderr.splitlines() if "untrained preset" in l]
    assert len(warnings) == 1 and "heads are random" in warnings[0]


def test_model_list_describes_bands():
    proc = rrsis("model", "list")
    lines = dict(l.split(None, 1) for l in proc.stdout.splitlines())
    assert "red, green, blue, NIR" in lines["btdnet-lite-demo"]
    assert "red, green and blue only" in lines["btdnet-lite-demo-rgb"]
    assert all("3 bands (red, green, blue)" in lines[p] for p in ("btdnet-lite", "btdnet-b", "btdnet-tiny"))
