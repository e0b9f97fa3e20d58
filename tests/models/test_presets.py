"""Every preset builds offline; btdnet-b is the paper's architecture; the CLI reports it."""

from __future__ import annotations

import json

import pytest
import torch

from rrsis_geo.models import create_model, get_config, list_presets


def test_presets_listed():
    assert list_presets("btdnet") == ["btdnet-b", "btdnet-lite", "btdnet-tiny"]


def test_btdnet_b_is_the_paper_model_and_runs(text_proc):
    cfg = get_config("btdnet-b")
    assert (cfg.vision.embed_dim, cfg.vision.depths, cfg.vision.num_heads, cfg.vision.window_size) == \
        (128, (2, 2, 18, 2), (4, 8, 16, 32), 12)
    assert cfg.vision.drop_path_rate == 0.3 and cfg.text.stage_layers == (3, 3, 3, 3)
    assert cfg.fgbg.n_bg_tokens == 5 and cfg.max_tokens == 20 and cfg.input_size == 512
    assert (cfg.loss.fgbg_weight, cfg.loss.rec_weight) == (0.6, 0.1)
    model = create_model("btdnet-b").eval()  # no weight files named: random, offline
    assert model.vision.channels == [128, 256, 512, 1024]
    assert 200e6 < sum(p.numel() for p in model.parameters()) < 240e6
    # windows stay 12 at 512 (stage 3 is 16x16): the pretrained 23x23 tables fit without resizing
    assert model.vision.state_dict()["layers.3.blocks.0.attn.relative_position_bias_table"].shape == (23 * 23, 32)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96), text_proc(["the bridge over the river"]))
    assert out.logits.shape == (1, 2, 64, 96) and torch.isfinite(out.logits).all()


def test_btdnet_lite_runs(text_proc):
    model = create_model("btdnet-lite").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 64), text_proc(["vehicle"]))
    assert out.logits.shape == (1, 2, 96, 64)


def test_tiny_is_small():
    n = sum(p.numel() for p in create_model("btdnet-tiny").parameters())
    assert 1e6 < n < 6e6


def test_cli_model_info(tmp_path):
    from click.testing import CliRunner

    from cli.main import cli
    from rrsis_geo.models import save_checkpoint

    r = CliRunner().invoke(cli, ["model", "info", "btdnet-tiny", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["input_size"] == 512 and data["parameters"]["total"] > 1e6 and data["gflops_per_tile"] > 1
    path = save_checkpoint(create_model("btdnet-tiny", input_size=64), tmp_path / "t.safetensors")
    r = CliRunner().invoke(cli, ["model", "info", str(path), "--no-flops"])
    assert r.exit_code == 0 and "sha256" in r.output and "dmols" in r.output
    r = CliRunner().invoke(cli, ["model", "info", str(tmp_path / "missing.safetensors")])
    assert r.exit_code == 2 and "neither a shipped model" in r.output


def test_architecture_does_not_depend_on_input_size():
    """The trainer may train at another size: parameter shapes must not change with input_size
    (timm would otherwise shrink Swin windows on small maps)."""
    a = create_model("btdnet-tiny").state_dict()
    b = create_model("btdnet-tiny", input_size=64).state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def test_max_tokens_beyond_bert_positions_refused():
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="max_tokens=200"):
        create_model("btdnet-tiny", max_tokens=200)  # tiny BERT has 128 positions
    with pytest.raises(ConfigError, match="mean/std have 3/3 values but the model takes 4 bands"):
        create_model("btdnet-tiny", vision__in_chans=4)


def test_four_band_model(text_proc):
    """A model built for 4 bands (e.g. RGB+NIR, random patch embedding) runs and says so."""
    import numpy as np

    from rrsis_geo.errors import ModelError
    from rrsis_geo.models.inference import BTDNetPredictor, info_from_model

    model = create_model("btdnet-tiny", input_size=64, vision__in_chans=4, mean=(0.5,) * 4, std=(0.25,) * 4)
    pred = BTDNetPredictor(model, info_from_model(model, "nir", "test"), device="cpu")
    assert pred.info.bands == 4 and pred.info.mean == (0.5,) * 4
    assert pred.predict(np.zeros((1, 4, 64, 64), np.float32), "vehicle").shape == (1, 64, 64)
    with pytest.raises(ModelError, match="expects 4 bands, got 3"):
        pred.predict(np.zeros((1, 3, 64, 64), np.float32), "vehicle")
