"""The real model: btdnet-tiny trained through `rrsis train`, evaluated through `rrsis eval`."""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from cli.main import cli
from rrsis_geo.training.logs import read_csv
from tests.training import shapes_data


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """6 epochs x 2 steps of btdnet-tiny on 8 coloured-square samples at 64 px."""
    tmp = tmp_path_factory.mktemp("btdnet")
    root = shapes_data.write(tmp / "shapes", n_train=8, n_val=4, size=64)
    cfg = {
        "run": {"out_dir": str(tmp / "run"), "device": "cpu"},
        "model": {"name": "btdnet-tiny"},
        "data": {"format": "refsegrs", "root": str(root), "input_size": 64, "num_workers": 0, "val_split": "train"},
        "optim": {"epochs": 6, "batch_size": 4, "encoder_lr": 1e-3, "head_lr": 1e-3},
        "log": {"every_iters": 1, "progress": False},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(cli, ["train", "--config", str(path), "--set", "eval.batch_size=8"])
    finally:
        torch.set_num_threads(n)
    assert res.exit_code == 0, res.output
    return tmp, root, Path(cfg["run"]["out_dir"]), res.output


@pytest.mark.slow
def test_btdnet_tiny_overfits(trained_run):
    """Loss falls by half and training-set mIoU rises past 75% (seen: 60.9 -> 86.7)."""
    _, _, out, output = trained_run
    assert "best val oIoU" in output
    train = read_csv(out / "train.csv")
    assert len(train) == 12
    first = sum(float(r["loss"]) for r in train[:3]) / 3
    last = sum(float(r["loss"]) for r in train[-3:]) / 3
    assert last < 0.5 * first
    val = read_csv(out / "val.csv")
    assert float(val[-1]["mIoU"]) >= 75.0 and float(val[-1]["mIoU"]) > float(val[0]["mIoU"]) + 10


@pytest.mark.slow
def test_checkpoint_is_self_describing_and_segment_ready(trained_run):
    from rrsis_geo.models import load_predictor, read_metadata

    _, root, out, _ = trained_run
    meta = read_metadata(out / "best.safetensors")
    assert meta["input_size"] == 64 and meta["gsd_m"] == 0.13  # RefSegRS ground resolution
    assert meta["training"]["data"]["format"] == "refsegrs" and meta["training"]["data"]["train_samples"] == 8
    assert meta["metrics"]["oIoU"] > 0 and meta["training"]["config"]["optim"]["epochs"] == 6
    pred = load_predictor(str(out / "best.safetensors"), device="cpu")  # what `rrsis segment --model` does
    assert pred.info.input_size == 64
    import numpy as np

    probs = pred.predict(np.zeros((1, 3, 64, 64), np.float32), pred.encode_expression("the red square"))
    assert probs.shape == (1, 64, 64)
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["eval"]["batch_size"] == 8 and resolved["model"]["name"] == "btdnet-tiny"
    assert (out / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_eval_cli_writes_table_json_csv_grid(trained_run, tmp_path):
    _, root, out, _ = trained_run
    res = CliRunner().invoke(cli, ["eval", "--model", str(out / "best.safetensors"), "--format", "refsegrs", str(root),
                                   "--split", "val", "--out", str(tmp_path / "ev"), "--grid", "4"])
    assert res.exit_code == 0, res.output
    assert "overall" in res.output and "Pr@0.5" in res.output and "blue" not in res.output.split("\n")[0]
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["metrics"]["n"] == 4 and len(report["samples"]) == 4
    for name in ("metrics.csv", "per_sample.csv", "grid.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 0
    res = CliRunner().invoke(cli, ["eval", "--model", str(out / "best.safetensors"), "--format", "refsegrs", str(root),
                                   "--split", "val", "--native", "--strict", "--json"])
    assert res.exit_code == 0, res.output
    j = json.loads(res.output)
    assert j["options"]["native_resolution"] and j["options"]["strict"] and j["options"]["threshold"] == 0.5
    # --threshold scores the decision `rrsis segment --threshold` makes: a lower one marks more pixels
    pixels = {}
    for t in ("0.05", "0.95"):
        res = CliRunner().invoke(cli, ["eval", "--model", str(out / "best.safetensors"), "--format", "refsegrs", str(root),
                                       "--split", "val", "--threshold", t, "--out", str(tmp_path / t), "--grid", "0"])
        assert res.exit_code == 0 and f"threshold {t}" in res.output, res.output
        pixels[t] = sum(int(r["pred_pixels"]) for r in csv.DictReader(open(tmp_path / t / "per_sample.csv")))
    assert pixels["0.05"] > pixels["0.95"]
    res = CliRunner().invoke(cli, ["eval", "--model", str(out / "best.safetensors"), "--format", "refsegrs", str(root),
                                   "--threshold", "1.5"])
    assert res.exit_code == 2 and "--threshold" in res.output


@pytest.mark.slow
def test_calibrate_chooses_the_best_threshold_and_eval_uses_it(trained_run, tmp_path):
    """`rrsis model calibrate`: one sweep, the best mIoU on the split, stored in a copy that `rrsis eval`
    (and segment) then use by default; the sweep's score is what eval measures at that threshold."""
    from safetensors.torch import load_file

    from rrsis_geo.models import read_metadata

    _, root, out, _ = trained_run
    src, cal = out / "best.safetensors", tmp_path / "cal.safetensors"
    grid = ["0.05", "0.3", "0.7", "0.95"]
    res = CliRunner().invoke(cli, ["model", "calibrate", str(src), str(root), "--format", "refsegrs", "-o", str(cal),
                                   "--thresholds", ",".join(grid)])
    assert res.exit_code == 0, res.output
    c = read_metadata(cal)["calibration"]
    assert c["grid"] == [0.05, 0.3, 0.5, 0.7, 0.95] and c["split"] == "val" and c["n"] == 4  # the model's 0.5 is tried too
    scores = {}
    for t in c["grid"]:
        r = CliRunner().invoke(cli, ["eval", "--model", str(src), "--format", "refsegrs", str(root), "--split", "val",
                                     "--threshold", str(t), "--json"])
        scores[t] = json.loads(r.output)["metrics"]["mIoU"]
    assert c["threshold"] == max(scores, key=lambda t: (round(scores[t], 6), -abs(t - 0.5)))
    assert abs(c["score"] - scores[c["threshold"]]) < 1e-3 and abs(c["previous_score"] - scores[0.5]) < 1e-3
    assert f"-> {c['threshold']:g}" in res.output and "<- chosen" in res.output
    res = CliRunner().invoke(cli, ["eval", "--model", str(cal), "--format", "refsegrs", str(root), "--split", "val", "--json"])
    j = json.loads(res.output)
    assert j["options"]["threshold"] == c["threshold"] and abs(j["metrics"]["mIoU"] - scores[c["threshold"]]) < 1e-9
    a, b = load_file(str(src)), load_file(str(cal))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # fine-tuning a calibrated model starts again from the paper's 0.5
    from rrsis_geo.training.bundle import build_bundle

    cal_meta = read_metadata(cal)
    if cal_meta["threshold"] != 0.5:
        assert build_bundle("btdnet-tiny", init=cal).model.cfg.threshold == 0.5


def test_calibrate_cli_bad_inputs_are_one_line(trained_run, tmp_path):
    _, root, out, _ = trained_run
    src = str(out / "best.safetensors")
    base = ["model", "calibrate", src, str(root), "--format", "refsegrs"]
    for extra, expect in ((["-o", src], "exists: pass --force"),
                          (["-o", str(tmp_path / "a.safetensors"), "--thresholds", "0.2,x"], "--thresholds"),
                          (["-o", str(tmp_path / "b.safetensors"), "--thresholds", "0.2,1.5"], "between 0 and 1"),
                          (["-o", str(tmp_path / "no" / "c.safetensors")], "does not exist")):
        res = CliRunner().invoke(cli, base + extra)
        assert res.exit_code != 0 and expect in res.output and "Traceback" not in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "a.safetensors").exists() and not (tmp_path / "b.safetensors").exists()


def test_foreground_threshold_is_the_softmax_probability():
    import torch

    from rrsis_geo.training.bundle import foreground

    logits = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    p = logits.softmax(1)[:, 1]
    assert torch.equal(foreground(logits), p > 0.5)  # the paper's fg > bg
    assert torch.equal(foreground(logits, 0.2), p > 0.2) and foreground(logits, 0.2).sum() > foreground(logits).sum()


def test_train_cli_bad_inputs_are_one_line(tmp_path):
    runner = CliRunner()
    cfgp = tmp_path / "c.yaml"
    cfgp.write_text("data:\n  root: /nowhere\n  format: rrsisd\n")
    res = runner.invoke(cli, ["train", "--config", str(cfgp), "--set", "optim.head_rl=1"])
    assert res.exit_code == 2 and "did you mean 'optim.head_lr'" in res.output and res.output.count("\n") == 1
    res = runner.invoke(cli, ["train", "--config", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(cli, ["train", "--config", str(cfgp), "--set", "model.name=btdnet-tiny", "--set", f"run.out_dir={tmp_path / 'r'}"])
    assert res.exit_code == 2 and "/nowhere" in res.output and res.output.count("\n") == 1
    res = runner.invoke(cli, ["train", "--config", str(cfgp), "--set", "model.init=/no/such.safetensors"])
    assert res.exit_code == 2 and "rrsis init-weights" in res.output


def test_eval_cli_bad_checkpoint(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"nope")
    res = CliRunner().invoke(cli, ["eval", "--model", str(tmp_path / "x.safetensors"), "--format", "refsegrs", str(tmp_path)])
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_init_weights_from_user_files(tmp_path):
    """btdnet-tiny stands in for btdnet-b: fake Microsoft Swin .pth + HF BERT folder in the real formats."""
    from rrsis_geo.models import create_model, load_checkpoint
    from tests.models.test_pretrained import microsoft_swin_state_dict

    sd = microsoft_swin_state_dict()
    torch.save({"model": sd}, tmp_path / "swin.pth")
    bert_dir = tmp_path / "bert"
    bert_dir.mkdir()
    src = create_model("btdnet-tiny", seed=7, pretrained=False).text.bert
    torch.save({"bert." + k: v.clone() for k, v in src.state_dict().items()}, bert_dir / "pytorch_model.bin")
    (bert_dir / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
                                                      "intermediate_size": 128, "vocab_size": 30522}))
    out = tmp_path / "init.safetensors"
    args = ["init-weights", "--swin", str(tmp_path / "swin.pth"), "--bert", str(bert_dir), "-o", str(out), "--preset", "btdnet-tiny", "--input-size", "64"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    model, meta = load_checkpoint(out)
    assert meta["input_size"] == 64 and meta["init"]["swin"].endswith("swin.pth")
    assert torch.equal(model.vision.state_dict()["patch_embed.proj.weight"], sd["patch_embed.proj.weight"])
    assert torch.equal(model.text.bert.state_dict()["encoder.layer.0.attention.self.query.weight"],
                       src.state_dict()["encoder.layer.0.attention.self.query.weight"])
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "--force" in res.output


@pytest.mark.slow
def test_btdnet_tiny_resume_is_exact(tmp_path):
    """The real model (dropout, D-MOLS masking, AdamW state) in deterministic CPU mode:
    2 epochs straight == 1 epoch, killed, resumed; parameter for parameter."""
    from rrsis_geo.training.config import load_config
    from rrsis_geo.training.run import run_training
    from rrsis_geo.training.state import load_state, model_state_from

    root = shapes_data.write(tmp_path / "shapes", n_train=4, n_val=2, size=64)

    def cfg(out):
        return load_config(None, [f"data.root={root}", "data.format=refsegrs", "data.input_size=64", "data.num_workers=0",
                                  f"run.out_dir={tmp_path / out}", "run.device=cpu", "run.deterministic=true", "model.name=btdnet-tiny",
                                  "optim.batch_size=2", "optim.epochs=2", "optim.encoder_lr=1e-3", "optim.head_lr=1e-3",
                                  "data.occlusion_p=0.5", "data.occlusion_box=16", "log.progress=false", "log.tensorboard=false"])

    class Killed(Exception):
        pass

    def kill(tr):
        if tr.epoch == 1:
            raise Killed()

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_training(cfg("straight"))
        with pytest.raises(Killed):
            run_training(cfg("resumed"), hooks=[kill])
        run_training(cfg("resumed"))
    finally:
        torch.set_num_threads(n)
        torch.use_deterministic_algorithms(False)
    a = model_state_from(load_state(tmp_path / "straight" / "last.state.safetensors")[0])
    b = model_state_from(load_state(tmp_path / "resumed" / "last.state.safetensors")[0])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_grow_adds_the_refinement_to_a_trained_checkpoint(tmp_path):
    """``model.init`` + ``model.overrides`` that add modules: every trained tensor carries over, the
    new branch starts at zero (same predictions as the checkpoint), the grown model round-trips;
    overrides that would drop or reshape trained tensors are refused in one line."""
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models import TextProcessor, create_model, load_checkpoint, save_checkpoint
    from rrsis_geo.training.bundle import build_bundle

    src = create_model("btdnet-tiny", seed=3, pretrained=False).eval()
    save_checkpoint(src, tmp_path / "src.safetensors", threshold=0.2)
    grown = build_bundle("btdnet-tiny", {"decoder": {"fine_stride": 2}, "loss": {"dice_weight": 1.0}},
                         tmp_path / "src.safetensors").model.eval()
    assert grown.cfg.decoder.fine_stride == 2 and grown.cfg.loss.dice_weight == 1.0 and grown.cfg.threshold == 0.5
    assert grown.provenance["grown_with"] == ["decoder", "loss"] and grown.provenance["new_tensors"] > 0
    text = TextProcessor.from_config(src.cfg)(["the small pond east of the lake", "the field"])
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(grown(x, text).logits, src(x, text).logits)
        for k, v in src.state_dict().items():
            assert torch.equal(grown.state_dict()[k], v), k
        torch.nn.init.normal_(grown.refine.out.weight, std=0.5)  # as after training
        save_checkpoint(grown, tmp_path / "grown.safetensors")
        back, _ = load_checkpoint(tmp_path / "grown.safetensors")
        assert torch.equal(back(x, text).logits, grown(x, text).logits)
        assert not torch.equal(back(x, text).logits, src(x, text).logits)
    with pytest.raises(ConfigError, match="reshape trained weights"):
        build_bundle("btdnet-tiny", {"decoder": {"dim": 64}}, tmp_path / "src.safetensors")
    with pytest.raises(ConfigError, match="drop trained weights"):
        build_bundle("btdnet-tiny", {"decoder": {"fine_stride": 4}}, tmp_path / "grown.safetensors")
    with pytest.raises(ConfigError, match="unknown config key"):
        build_bundle("btdnet-tiny", {"decoder": {"stride": 2}}, tmp_path / "src.safetensors")
