"""The reproduction configs and recipe settings: one MCI iteration on RefSegRS on top of an
init-weights file, the batch-size convention, antialiased resizing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def test_refsegrs_config_runs_one_mci_iteration_on_an_init_weights_file(tmp_path):
    """configs/btdnet_refsegrs.yaml sets one MCI iteration and the paper's modules; on an
    `rrsis init-weights` file (pretrained encoders, untrained heads, here a tiny one with three
    MCI iterations and the legacy modules) the heads are rebuilt and the encoders carried over."""
    from rrsis_geo.models import create_model, get_config, save_checkpoint
    from rrsis_geo.training.bundle import build_bundle
    from rrsis_geo.training.config import load_config

    cfg = load_config(REPO / "configs" / "btdnet_refsegrs.yaml")
    overrides = cfg["model"]["overrides"]
    assert get_config(cfg["model"]["name"], **overrides).mci.iters == 1
    init = create_model("btdnet-tiny", pretrained=False, seed=5, mci={"iters": 3, "variant": "legacy"},
                        bsc={"variant": "legacy"}, fgbg={"variant": "legacy"})
    save_checkpoint(init, tmp_path / "init.safetensors", init={"swin": "s.pth", "bert": "b/"})
    model = build_bundle("btdnet-tiny", overrides, tmp_path / "init.safetensors").model
    assert len(model.mci.text_layers) == len(model.mci.vis_layers) == len(model.mci.self_layers) == 1
    assert (model.cfg.bsc.variant, model.cfg.fgbg.variant, model.cfg.loss.ce_type) == ("paper", "paper", "gce")
    old = init.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith(("vision.", "text.")):
            assert torch.equal(v, old[k]), k
    # a trained checkpoint (no init-weights mark) still refuses to lose trained weights
    save_checkpoint(init, tmp_path / "trained.safetensors")
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="drop trained weights"):
        build_bundle("btdnet-tiny", overrides, tmp_path / "trained.safetensors")


def test_rrsisd_config_uses_the_paper_modules():
    from rrsis_geo.models import get_config
    from rrsis_geo.training.config import load_config

    cfg = load_config(REPO / "configs" / "btdnet_rrsisd.yaml")
    m = get_config(cfg["model"]["name"], **cfg["model"]["overrides"])
    assert (m.bsc.variant, m.mci.variant, m.fgbg.variant, m.loss.ce_type) == ("paper", "paper", "paper", "gce")
    assert cfg["data"]["antialias"] is True and cfg["optim"]["batch_size_scope"] == "global"


def test_ablation_switches_are_settable_from_the_command_line():
    from rrsis_geo.models import get_config
    from rrsis_geo.training.config import load_config

    cfg = load_config(REPO / "configs" / "btdnet_rrsisd.yaml",
                      ["model.overrides.bsc.l2v_stages=[]", "model.overrides.fgbg.bg_prior=false"])
    m = get_config(cfg["model"]["name"], **cfg["model"]["overrides"])
    assert m.bsc.l2v_stages == () and m.bsc.v2l_stages == (0, 1, 2, 3) and m.fgbg.bg_prior is False
    assert m.bsc.variant == "paper"  # the file's other overrides stay


def test_batch_size_scope():
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.training.config import global_batch_size, load_config

    o = load_config(None, ["data.root=x", "optim.batch_size=8"])["optim"]
    assert global_batch_size(o, 4) == 8  # the paper's "batch 8 on four GPUs" read as global
    o = load_config(None, ["data.root=x", "optim.batch_size=8", "optim.batch_size_scope=per_process"])["optim"]
    assert global_batch_size(o, 4) == 32 and global_batch_size(o, 1) == 8  # the parents' convention
    with pytest.raises(ConfigError):
        load_config(None, ["data.root=x", "optim.batch_size_scope=local"])


def test_antialiased_resize_averages_what_it_drops():
    from rrsis_geo.data.transforms import Resize

    g = torch.Generator().manual_seed(0)
    sample = {"image": torch.rand(3, 80, 80, generator=g), "mask": torch.zeros(80, 80, dtype=torch.uint8)}
    plain, smooth = Resize(32)(sample)["image"], Resize(32, antialias=True)(sample)["image"]
    assert plain.shape == smooth.shape == (3, 32, 32)
    # noise averaged over the ~2.5 x 2.5 source pixels each output pixel covers: less spread
    assert smooth.std() < 0.8 * plain.std()
    assert torch.equal(Resize(80, antialias=True)(sample)["image"], sample["image"])  # no resize, no change


def test_demo_config_builds_the_shipped_models_modules():
    """configs/demo_lite.yaml pins the variants the shipped demo model was trained with, so
    `make demo-model` still builds that architecture."""
    from rrsis_geo.models import config_to_dict, get_config, read_metadata
    from rrsis_geo.training.config import load_config
    from rrsis_geo.weights import shipped_path

    cfg = load_config(REPO / "configs" / "demo_lite.yaml")
    built = json.loads(json.dumps(config_to_dict(get_config(cfg["model"]["name"], **cfg["model"]["overrides"]))))
    path = shipped_path("btdnet-lite-demo")
    if not path.exists():
        pytest.skip("the shipped demo model is not in this checkout")
    stored = read_metadata(path)["config"]
    for section in ("bsc", "mci", "fgbg"):
        assert built[section]["variant"] == "legacy"
        assert {k: built[section][k] for k in stored[section]} == stored[section], section


def test_overrides_never_rebuild_the_encoders_of_an_init_weights_file(tmp_path):
    """Every architecture names its encoder prefixes: on an `rrsis init-weights` file an override
    that would reshape RSRefSeg's SigLIP image tower is refused, not silently re-initialised."""
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models import create_model, get_config, save_checkpoint
    from rrsis_geo.training.bundle import build_bundle

    init = create_model("rsrefseg-tiny", pretrained=False, seed=5)
    save_checkpoint(init, tmp_path / "init.safetensors", init={"siglip": "s/", "sam": "m/"})
    siglip = get_config("rsrefseg-tiny").siglip
    wider = {"siglip": {"text": siglip.text, "vision": {**siglip.vision, "intermediate_size": 96}}}
    with pytest.raises(ConfigError, match="siglip_vision"):
        build_bundle("rsrefseg-tiny", wider, tmp_path / "init.safetensors")
