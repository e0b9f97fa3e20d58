"""Trainer tests with the tiny TEST DOUBLE model (tests/training/tiny_model.py)."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rrsis_geo.errors import Cancelled, CheckpointError, OutputError
from rrsis_geo.training.logs import read_csv
from rrsis_geo.training.run import run_training
from rrsis_geo.training.sampler import GlobalBatchSampler, category_weights
from rrsis_geo.training.state import load_state, model_state_from
from rrsis_geo.training.trainer import poly_lambda
from tests.training.tiny_model import tiny_bundle


def _params(out_dir):
    tensors, _ = load_state(Path(out_dir) / "last.state.safetensors")
    return model_state_from(tensors)


def test_poly_schedule_with_warmup():
    f = poly_lambda(100, 0.9, warmup_iters=10, warmup_factor=0.1)
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx((1 - 0.05) ** 0.9 * (0.1 * 0.5 + 0.5))
    assert f(10) == pytest.approx(0.9**0.9)
    assert f(100) == 0.0 and f(150) == 0.0


def test_sampler_shares_global_batches():
    one = list(GlobalBatchSampler(10, 4, seed=1, epoch=2))
    assert len(one) == 2 and all(len(b) == 4 for b in one)
    r0 = list(GlobalBatchSampler(10, 4, rank=0, world=2, seed=1, epoch=2))
    r1 = list(GlobalBatchSampler(10, 4, rank=1, world=2, seed=1, epoch=2))
    assert [a + b for a, b in zip(r0, r1)] == one
    acc = list(GlobalBatchSampler(10, 4, accumulation=2, seed=1, epoch=2))
    assert [acc[0] + acc[1], acc[2] + acc[3]] == one
    assert list(GlobalBatchSampler(10, 4, seed=1, epoch=2, start_step=1)) == one[1:]
    assert list(GlobalBatchSampler(10, 4, seed=1, epoch=3)) != one


def test_category_balance_draws_rare_categories_as_often_as_asked():
    from rrsis_geo.errors import ConfigError

    cats = ["lake"] * 90 + ["bare"] * 10
    assert torch.equal(category_weights(cats, 0.0), torch.ones(100, dtype=torch.float64))
    w = category_weights(cats, 1.0)
    assert w[0] == pytest.approx(1 / 90) and w[-1] == pytest.approx(1 / 10)
    with pytest.raises(ConfigError, match="category_balance"):
        category_weights(cats, -1.0)

    def bare_share(power, epochs=20):
        drawn = [i for e in range(epochs) for b in GlobalBatchSampler(100, 10, seed=3, epoch=e, weights=category_weights(cats, power)) for i in b]
        assert len(drawn) == 100 * epochs  # an epoch keeps its length
        return sum(i >= 90 for i in drawn) / len(drawn)

    assert 0.4 < bare_share(1.0) < 0.6  # equal categories
    assert 0.2 < bare_share(0.5) < 0.32  # square root: 10/sqrt(10) of 90/sqrt(90)+10/sqrt(10) = 0.25
    # still a function of (seed, epoch) only, so a run resumes mid-epoch on the same draws
    w = category_weights(cats, 0.5)
    one = list(GlobalBatchSampler(100, 10, seed=1, epoch=2, weights=w))
    assert one == list(GlobalBatchSampler(100, 10, seed=1, epoch=2, weights=w))
    assert list(GlobalBatchSampler(100, 10, seed=1, epoch=2, start_step=4, weights=w)) == one[4:]
    assert one != list(GlobalBatchSampler(100, 10, seed=1, epoch=3, weights=w))
    assert len({i for b in one for i in b}) < 100  # with replacement


def test_category_balance_needs_categories(make_cfg):
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="category_column"):  # the shapes data has one category
        run_training(make_cfg("data.category_balance=0.5"), bundle=tiny_bundle())


def test_tiny_model_overfits(make_cfg):
    """Loss falls by half and mIoU on the 16 training samples rises past 70% (bar stated here;
    it reaches 99-100% with this recipe on seeds 0-3) within 64 steps."""
    cfg = make_cfg("optim.epochs=16", "run.deterministic=false", "data.val_split=train", "eval.every_epochs=1",
                   "optim.encoder_lr=2e-2", "optim.head_lr=2e-2")
    result = run_training(cfg, bundle=tiny_bundle(width=16))
    assert result["history"][0]["mIoU"] < 60.0  # it starts poor: the rise is real
    out = cfg["run"]["out_dir"]
    train = read_csv(f"{out}/train.csv")
    first = sum(float(r["loss"]) for r in train[:4]) / 4
    last = sum(float(r["loss"]) for r in train[-4:]) / 4
    assert last < 0.5 * first
    assert result["history"][-1]["mIoU"] >= 70.0, result["history"][-1]


def test_outputs_and_self_describing_checkpoints(make_cfg):
    cfg = make_cfg("optim.epochs=2", "log.tensorboard=true")
    run_training(cfg, bundle=tiny_bundle())
    out = Path(cfg["run"]["out_dir"])
    for name in ("config.yaml", "last.safetensors", "best.safetensors", "last.state.safetensors", "train.csv", "val.csv", "curves.png"):
        assert (out / name).exists(), name
    assert any((out / "tb").iterdir())
    with safe_open(str(out / "best.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["rrsis_meta"])["training"]
    assert meta["data"]["format"] == "refsegrs" and meta["data"]["train_samples"] == 16
    assert "oIoU" in meta["metrics"] and meta["config"]["optim"]["epochs"] == 2
    assert not list(out.glob(".*tmp*"))  # no temporary file left behind
    val = read_csv(out / "val.csv")
    assert len(val) == 2 and {"mIoU", "oIoU", "Pr@0.5"} <= set(val[0])


def test_threads_pinned_and_compute_recorded(make_cfg):
    """run.threads sets PyTorch's CPU thread count, and the checkpoint says what did the arithmetic
    (a CPU rebuild is bit for bit only on the same instruction set and thread count)."""
    before = torch.get_num_threads()
    n = before + 1  # differs from the default whatever the machine
    try:
        cfg = make_cfg("optim.epochs=1", f"run.threads={n}")
        run_training(cfg, bundle=tiny_bundle())
        assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
    with safe_open(str(Path(cfg["run"]["out_dir"]) / "last.safetensors"), "pt") as f:
        compute = json.loads(f.metadata()["rrsis_meta"])["training"]["compute"]
    assert compute["device"] == "cpu" and compute["threads"] == n and compute["world"] == 1
    assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and compute["torch"] == torch.__version__
    assert compute["packages"]["numpy"] == np.__version__


def _straight_and_interrupted(make_cfg, interrupt, extra=()):
    overrides = ("data.occlusion_p=0.5", "data.occlusion_box=6", "optim.warmup_iters=2", "optim.clip_grad_norm=1.0", *extra)
    straight = make_cfg(*overrides, out="straight")
    run_training(straight, bundle=tiny_bundle())
    cfg = make_cfg(*overrides, out="resumed")
    with pytest.raises(interrupt[0]):
        run_training(cfg, bundle=tiny_bundle(), hooks=[interrupt[1]])
    run_training(cfg, bundle=tiny_bundle(seed=123))  # resumes from last.state; different init to prove it loads
    a, b = _params(straight["run"]["out_dir"]), _params(cfg["run"]["out_dir"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = load_state(Path(straight["run"]["out_dir"]) / "last.state.safetensors")[0]
    sb = load_state(Path(cfg["run"]["out_dir"]) / "last.state.safetensors")[0]
    for k in sa:
        if k.startswith("optim."):
            assert torch.equal(sa[k], sb[k]), k


class Killed(Exception):
    pass


def test_resume_after_kill_equals_straight_run(make_cfg):
    """N epochs straight == N-1 epochs, killed, then resumed (parameter for parameter)."""

    def kill(tr):
        if tr.epoch == 2 and tr.step_in_epoch == 1:
            raise Killed()  # not caught by the trainer: like SIGKILL, state stays at end of epoch 2

    _straight_and_interrupted(make_cfg, (Killed, kill))


def test_resume_after_ctrl_c_mid_epoch_equals_straight_run(make_cfg):
    def ctrl_c(tr):
        if tr.epoch == 1 and tr.step_in_epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: the trainer stops at this step's end

    _straight_and_interrupted(make_cfg, (Cancelled, ctrl_c), extra=("optim.accumulation=2",))


def test_resume_refuses_other_config(make_cfg):
    cfg = make_cfg("optim.epochs=1")
    run_training(cfg, bundle=tiny_bundle())
    other = make_cfg("optim.epochs=1", "optim.head_lr=0.5")
    with pytest.raises(CheckpointError, match="optim.head_lr"):
        run_training(other, bundle=tiny_bundle())


def test_full_disk_keeps_previous_checkpoint(make_cfg, monkeypatch):
    cfg = make_cfg("optim.epochs=1")
    run_training(cfg, bundle=tiny_bundle())
    out = Path(cfg["run"]["out_dir"])
    before = (out / "last.state.safetensors").read_bytes()
    import safetensors.torch

    def full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    cfg2 = make_cfg("optim.epochs=2")
    cfg2["run"]["resume"] = "never"
    with pytest.raises(OutputError, match="No space left"):
        run_training(cfg2, bundle=tiny_bundle())
    assert (out / "last.state.safetensors").read_bytes() == before
    assert not list(out.glob(".*tmp*"))


def test_trains_on_custom_geotiff_data(tmp_path):
    """The custom reader's georeferencing keys travel through collate and the loop."""
    from rrsis_geo.training.config import load_config
    from tests.data.custom import data as custom_data

    custom_data.write(tmp_path / "geo")
    cfg = load_config(None, [
        f"data.root={tmp_path / 'geo'}", "data.format=custom", "data.input_size=16", "data.num_workers=0",
        "data.custom.expression_column=text", "data.custom.chip_size=16", "data.custom.block_chips=2",
        "data.custom.val_fraction=0.3", "data.custom.negative_fraction=1.0", f"run.out_dir={tmp_path / 'run'}",
        "run.device=cpu", "optim.batch_size=2", "optim.epochs=1", "log.progress=false", "log.tensorboard=false"])
    result = run_training(cfg, bundle=tiny_bundle())
    with safe_open(str(tmp_path / "run" / "last.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["rrsis_meta"])
    assert meta["gsd_m"] == 2.0  # the raster's pixel size, in metres
    # what the training pixels were: the engine scales and tiles scenes to match
    assert meta["gsd_m_range"] == [2.0, 2.0] and meta["chip_px"] == 16
    assert meta["radiometry"] == {"uint8": {"lo": [0.0] * 3, "hi": [255.0] * 3, "note": "training data: 8-bit values as stored"}}
    assert meta["training"]["data"]["train_samples"] >= 2 and result["history"][0]["n"] >= 1


def test_input_metadata_records_only_what_the_data_knows():
    from rrsis_geo.training.trainer import input_metadata

    radiometry = {"uint16": {"lo": [0.0], "hi": [3000.0], "note": "value_scale 3000"}}
    info = {"gsd_m": 5.0, "gsd_m_values": [{"gsd_m": 5.0}, {"gsd_m": 10.0}], "chip_px": 256, "radiometry": radiometry}
    assert input_metadata(info) == {"gsd_m": 5.0, "gsd_m_range": [5.0, 10.0], "chip_px": 256, "radiometry": radiometry}
    partly = {"gsd_m": 5.0, "gsd_m_values": [{"gsd_m": 5.0}, {"gsd_m": None}], "chip_px": None, "radiometry": None}
    assert input_metadata(partly) == {"gsd_m": 5.0}  # a raster of unknown resolution: no range
    assert input_metadata({"gsd_m": None, "gsd_m_values": None}) == {}  # e.g. RRSIS-D


def test_accumulation_matches_full_batch(make_cfg):
    """batch 4 in one step == batch 4 as 2 accumulated micro-batches of 2."""
    a = make_cfg("optim.epochs=1", "optim.clip_grad_norm=1.0", out="full")
    b = make_cfg("optim.epochs=1", "optim.clip_grad_norm=1.0", "optim.accumulation=2", out="acc")
    run_training(a, bundle=tiny_bundle(dropout=0.0))
    run_training(b, bundle=tiny_bundle(dropout=0.0))
    pa, pb = _params(a["run"]["out_dir"]), _params(b["run"]["out_dir"])
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=1e-4, atol=1e-6)
    assert not torch.equal(pa["head.weight"], tiny_bundle().model.state_dict()["head.weight"])  # it trained


def test_loader_worker_count_does_not_change_training(make_cfg):
    """Augmentation draws from (seed, epoch, sample index) only, so two loader workers train the same
    weights as none: a GPU machine may raise data.num_workers (make demo-model TRAIN_ARGS) freely."""
    common = ("optim.epochs=2", "data.occlusion_p=0.5")
    a = make_cfg(*common, "data.num_workers=0", out="w0")
    b = make_cfg(*common, "data.num_workers=2", out="w2")
    run_training(a, bundle=tiny_bundle())
    run_training(b, bundle=tiny_bundle())
    pa, pb = _params(a["run"]["out_dir"]), _params(b["run"]["out_dir"])
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    c = make_cfg(*common, "data.num_workers=0", "run.seed=1", out="s1")  # the check can tell runs apart
    run_training(c, bundle=tiny_bundle())
    assert not all(torch.equal(pa[k], v) for k, v in _params(c["run"]["out_dir"]).items())


def test_bf16_autocast_on_cpu_and_fp16_refused(make_cfg):
    from rrsis_geo.errors import ConfigError

    run_training(make_cfg("optim.epochs=1", "optim.amp=bf16", "run.deterministic=false"), bundle=tiny_bundle())
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        run_training(make_cfg("optim.epochs=1", "optim.amp=fp16", out="fp16"), bundle=tiny_bundle())


def test_verify_drops_corrupt_samples(make_cfg, tmp_path):
    import shutil

    from rrsis_geo.errors import DatasetError

    root = tmp_path / "copy"
    shutil.copytree(make_cfg()["data"]["root"], root)
    (root / "images" / "0000.tif").write_bytes(b"broken")
    with pytest.raises(DatasetError, match="0000.tif"):
        run_training(make_cfg("optim.epochs=1", f"data.root={root}", out="r1"), bundle=tiny_bundle())
    result = run_training(make_cfg("optim.epochs=1", f"data.root={root}", "data.verify=true", out="r2"), bundle=tiny_bundle())
    with safe_open(str(Path(result["out_dir"]) / "last.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["rrsis_meta"])
    assert meta["training"]["data"]["dropped_unreadable"] == 1 and meta["training"]["data"]["train_samples"] == 15


def test_freeze_keeps_named_parameters_bit_identical(make_cfg):
    """optim.freeze: the frozen prefix ends exactly where it started; the rest trains."""
    bundle = tiny_bundle()
    start = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    cfg = make_cfg("optim.epochs=1", 'optim.freeze=["text."]')
    run_training(cfg, bundle=bundle)
    end = _params(cfg["run"]["out_dir"])
    assert all(torch.equal(end[k], start[k]) for k in start if k.startswith("text."))
    assert any(not torch.equal(end[k], start[k]) for k in start if k.startswith("vision."))


def test_freeze_prefix_that_names_nothing_is_refused(make_cfg):
    from rrsis_geo.errors import ConfigError

    cfg = make_cfg('optim.freeze=["txt."]')
    with pytest.raises(ConfigError, match="no parameter name starts with 'txt.'"):
        run_training(cfg, bundle=tiny_bundle())


def test_band_count_must_match_the_model(make_cfg, tmp_path):
    """A 4-band model (red, green, blue, NIR) on 3-band data is one ConfigError before any step,
    not a shape error from the first convolution."""
    import dataclasses

    from rrsis_geo.errors import ConfigError
    from tests.data.custom import data as custom_data

    four = dataclasses.replace(tiny_bundle(), mean=(0.5,) * 4, std=(0.25,) * 4)
    with pytest.raises(ConfigError, match=r"the model takes 4 bands \(vision.in_chans\) but refsegrs images have 3"):
        run_training(make_cfg(), bundle=four)
    custom_data.write(tmp_path / "geo")
    cfg = make_cfg(f"data.root={tmp_path / 'geo'}", "data.format=custom", "data.custom.expression_column=text",
                   "data.custom.bands=[1,2,3]")
    with pytest.raises(ConfigError, match="the model takes 4 bands .* data.custom.bands names 3"):
        run_training(cfg, bundle=four)
