"""RSRefSeg through the command line: `rrsis segment` (scene-level and per tile), `rrsis
init-weights` from Hugging Face folders, `rrsis model list/info/export`."""

import json
import os
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import torch

from tests.conftest import SAMPLE_SCENE
from tests.models import hf_folders

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"}


def rrsis(*args):
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=600)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rrsis_geo.models import create_model, save_checkpoint

    return save_checkpoint(create_model("rsrefseg-tiny"), tmp_path_factory.mktemp("rs") / "rsrefseg-tiny.safetensors")


@pytest.mark.parametrize("mode", [[], ["--per-tile"]], ids=["scene-level", "per-tile"])
def test_segment_sample_scene(tmp_path, checkpoint, mode):
    out = tmp_path / "lake.gpkg"
    proc = rrsis("segment", SAMPLE_SCENE, "the large lake", "-o", out, "--model", checkpoint, "--tile", 256,
                 "--prob", tmp_path / "prob.tif", "--progress", "json", *mode)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["mode"] == ("per-tile" if mode else "scene")
    if mode:
        assert events[0]["tiles"] > 4  # 256-pixel tiles over a 934 x 723 scene
    frame = gpd.read_file(out, layer="answer") if not mode else gpd.read_file(out)
    assert frame.crs == "EPSG:26914"
    if len(frame):
        assert set(frame.model_id) == {"rsrefseg-tiny"} and frame.score.between(0, 1).all()
    manifest = json.load(open(str(out) + ".manifest.json"))
    assert manifest["model"]["id"] == "rsrefseg-tiny"
    import rasterio

    with rasterio.open(tmp_path / "prob.tif") as src:
        assert (src.width, src.height) == (934, 723)
        prob = src.read(1, masked=True)
        assert 0 <= prob.min() and prob.max() <= 1 and float(prob.std()) > 0  # the model's own map, not a constant


def test_segment_with_the_preset_name(tmp_path):
    out = tmp_path / "o.gpkg"
    proc = rrsis("segment", SAMPLE_SCENE, "the lake", "-o", out, "--model", "rsrefseg-tiny", "--tile", 512)
    assert proc.returncode == 0, proc.stderr
    assert "untrained preset" in proc.stderr and out.exists()


def test_init_weights_from_hf_folders(tmp_path):
    from rrsis_geo.models import load_checkpoint, read_metadata

    siglip, sam, siglip_sd, sam_sd = hf_folders.write(tmp_path / "hf")
    out = tmp_path / "init.safetensors"
    proc = rrsis("init-weights", "--preset", "rsrefseg-tiny", "--source", f"siglip={siglip}", "--source", f"sam={sam}",
                 "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert f"siglip: loaded" in proc.stdout and f"from {sam}" in proc.stdout
    meta = read_metadata(out)
    assert meta["init"] == {"siglip": str(siglip), "sam": str(sam)}
    assert meta["config"]["siglip"]["weights"] == str(siglip) and meta["architecture"] == "rsrefseg"
    model, _ = load_checkpoint(out)
    sd = model.state_dict()
    assert torch.equal(sd["sam_vision.layers.0.attn.qkv.base_layer.weight"], sam_sd["vision_encoder.layers.0.attn.qkv.weight"])
    assert torch.equal(sd["siglip_text.head.base_layer.weight"], siglip_sd["text_model.head.weight"])


def test_init_weights_refusals_are_one_line_and_write_nothing(tmp_path):
    siglip, sam, _, _ = hf_folders.write(tmp_path / "hf")
    out = tmp_path / "init.safetensors"
    proc = rrsis("init-weights", "--preset", "rsrefseg-tiny", "--source", f"siglip={siglip}", "-o", out)
    assert proc.returncode == 2 and "--source sam=PATH" in proc.stderr and "missing: sam" in proc.stderr
    proc = rrsis("init-weights", "--preset", "rsrefseg-tiny", "--source", f"siglip={siglip}", "--source", f"sam={sam}",
                 "--source", f"swin={sam}", "-o", out)
    assert proc.returncode == 2 and "unknown: swin" in proc.stderr
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "sam_bad"
    bad.mkdir()
    (bad / "config.json").write_text((sam / "config.json").read_text())
    state = load_file(str(sam / "model.safetensors"))
    state.pop("mask_decoder.iou_token.weight")
    save_file(state, str(bad / "model.safetensors"))
    proc = rrsis("init-weights", "--preset", "rsrefseg-tiny", "--source", f"siglip={siglip}", "--source", f"sam={bad}",
                 "-o", out)
    assert proc.returncode == 2 and "missing keys [mask_decoder.iou_token.weight]" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_model_list_and_info(checkpoint):
    proc = rrsis("model", "list")
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert "rsrefseg architecture only, 3 bands" in lines["rsrefseg-b"] and "rsrefseg-tiny" in lines
    proc = rrsis("model", "info", "rsrefseg-tiny", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["architecture"] == "rsrefseg" and info["prompt_tokens"] == 4 and info["gflops_per_tile"] > 0
    assert info["parameters"]["total"] == sum(v for k, v in info["parameters"].items() if k != "total")
    proc = rrsis("model", "info", "rsrefseg-b", "--no-flops")
    assert proc.returncode == 0 and "siglip_vision" in proc.stdout and "rsrefseg" in proc.stdout
    proc = rrsis("model", "info", checkpoint)
    assert proc.returncode == 0 and "sha256" in proc.stdout and "format_version" in proc.stdout


def test_export_and_load_round_trip(tmp_path, checkpoint):
    from rrsis_geo.models import load_checkpoint, load_predictor, read_metadata

    dst = tmp_path / "small.safetensors"
    proc = rrsis("model", "export", checkpoint, dst)
    assert proc.returncode == 0, proc.stderr
    meta = read_metadata(dst)
    assert meta["stored_dtype"] == "float16" and meta["architecture"] == "rsrefseg" and dst.stat().st_size < checkpoint.stat().st_size
    a, b = load_checkpoint(checkpoint)[0].state_dict(), load_checkpoint(dst)[0].state_dict()
    assert a.keys() == b.keys() and all(v.dtype == a[k].dtype for k, v in b.items())
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-3, atol=1e-4) for k in a)
    tiles = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    pa, pb = (load_predictor(str(p), device="cpu") for p in (checkpoint, dst))
    assert np.abs(pa.predict(tiles, "the lake") - pb.predict(tiles, "the lake")).max() < 1e-2
