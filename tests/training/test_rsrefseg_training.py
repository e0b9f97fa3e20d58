"""RSRefSeg through the same trainer and evaluator: rsrefseg-tiny trained by `rrsis train`,
scored by `rrsis eval`, its checkpoint ready for `rrsis segment`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from cli.main import cli
from rrsis_geo.training.logs import read_csv
from tests.training import shapes_data


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """40 epochs x 2 steps of rsrefseg-tiny on 8 coloured-square samples at 64 px (~20 s)."""
    tmp = tmp_path_factory.mktemp("rsrefseg")
    root = shapes_data.write(tmp / "shapes", n_train=8, n_val=4, size=64)
    cfg = {
        "run": {"out_dir": str(tmp / "run"), "device": "cpu"},
        "model": {"name": "rsrefseg-tiny"},
        "data": {"format": "refsegrs", "root": str(root), "input_size": 64, "num_workers": 0, "val_split": "train"},
        "optim": {"epochs": 40, "batch_size": 4, "encoder_lr": 1e-2, "head_lr": 1e-2, "weight_decay": 0.05},
        "log": {"every_iters": 1, "progress": False, "tensorboard": False},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = CliRunner().invoke(cli, ["train", "--config", str(path)])
    finally:
        torch.set_num_threads(n)
    assert res.exit_code == 0, res.output
    return root, Path(cfg["run"]["out_dir"])


def test_rsrefseg_tiny_overfits_through_the_cli(trained_run):
    """Loss falls by more than half and training-set mIoU rises past 50% (seen: 0.7 -> 62)."""
    _, out = trained_run
    train = read_csv(out / "train.csv")
    assert len(train) == 80
    first = sum(float(r["loss"]) for r in train[:3]) / 3
    last = sum(float(r["loss"]) for r in train[-6:]) / 6
    assert last < 0.5 * first
    val = read_csv(out / "val.csv")
    assert float(val[-1]["mIoU"]) >= 50.0 and float(val[-1]["mIoU"]) > float(val[0]["mIoU"]) + 30


def test_the_trained_checkpoint_describes_itself_and_segments(trained_run):
    from rrsis_geo.models import load_predictor, read_metadata

    _, out = trained_run
    meta = read_metadata(out / "best.safetensors")
    assert meta["architecture"] == "rsrefseg" and meta["preset"] == "rsrefseg-tiny" and meta["input_size"] == 64
    assert meta["training"]["config"]["model"]["name"] == "rsrefseg-tiny" and meta["metrics"]["oIoU"] > 0
    pred = load_predictor(str(out / "best.safetensors"), device="cpu")
    probs = pred.predict(np.zeros((1, 3, 64, 64), np.float32), pred.encode_expression("the red square"))
    assert probs.shape == (1, 64, 64)


def test_eval_cli_scores_the_checkpoint(trained_run, tmp_path):
    root, out = trained_run
    res = CliRunner().invoke(cli, ["eval", "--model", str(out / "best.safetensors"), "--format", "refsegrs", str(root),
                                   "--split", "train", "--out", str(tmp_path / "ev"), "--grid", "4"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["metrics"]["n"] == 8 and (tmp_path / "ev" / "grid.png").stat().st_size > 0
    # the evaluator scores the best checkpoint as training's validation did (same split, same size)
    best = max(float(r["oIoU"]) for r in read_csv(out / "val.csv"))
    assert report["metrics"]["oIoU"] == pytest.approx(best, abs=1e-3)
