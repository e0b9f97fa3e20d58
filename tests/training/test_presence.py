"""Presence thresholds: the choice on (peak, present) pairs, the vocabulary a training set
records, and `rrsis model calibrate-presence` on the shipped demo model and its validation chips."""

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from cli.main import cli
from rrsis_geo.training.calibrate import choose_presence
from rrsis_geo.training.run import training_vocabulary
from tests.conftest import ROOT


def test_presence_separates_present_from_absent_peaks():
    peaks = [(0.9, True), (0.8, True), (0.6, True), (0.3, False), (0.5, False), (0.2, False)]
    r = choose_presence(peaks, grid=(0.1, 0.4, 0.55, 0.7, 0.85))
    assert r["best"]["presence"] == 0.55 and r["best"]["balanced_accuracy"] == 1.0
    assert (r["positives"], r["negatives"]) == (3, 3)


def test_presence_prefers_the_lowest_of_equals_and_never_goes_below_the_floor():
    peaks = [(0.9, True), (0.1, False)]
    r = choose_presence(peaks, grid=(0.05, 0.2, 0.5, 0.8), floor=0.15)
    assert [row["presence"] for row in r["rows"]] == [0.15, 0.2, 0.5, 0.8]
    assert r["best"]["presence"] == 0.15  # every one separates; the lowest keeps most answers


def test_training_vocabulary_groups_head_nouns_by_category():
    records = [SimpleNamespace(expression=e, category=c) for e, c in [
        ("the largest lake", "lake"), ("the pond in the north", "lake"), ("all the lakes", "lake"),
        ("the river", "river"), ("the stream east of the lake", "river"), ("the thing", "")]]
    vocab = training_vocabulary(SimpleNamespace(records=records))
    assert vocab["categories"]["lake"] == {"nouns": ["lake", "pond"], "prompt": "all the lakes"}
    assert vocab["categories"]["river"] == {"nouns": ["river", "stream"], "prompt": None}
    assert training_vocabulary(SimpleNamespace(records=[])) is None


@pytest.mark.slow
def test_calibrate_presence_on_the_demo_validation_chips(tmp_path):
    from safetensors.torch import load_file

    import torch
    from rrsis_geo.models import read_metadata
    from rrsis_geo.weights import shipped_path

    src, dst = shipped_path("btdnet-lite-demo"), tmp_path / "p.safetensors"
    res = CliRunner().invoke(cli, ["model", "calibrate-presence", str(src), f"{ROOT}/data/demo", "--format", "custom",
                                   "--split-column", "split", "--raster-column", "chip", "--category-column",
                                   "category", "-o", str(dst), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    meta = read_metadata(dst)
    c = meta["presence_calibration"]
    assert meta["presence"] == c["presence"] >= meta["threshold"]
    # 8 validation chips, each asked the 5 category prompts; the named pairs are the chips' categories
    assert c["images"] == 8 and c["positives"] + c["negatives"] == 40
    assert c["prompts"]["lake"] == "all the lakes"
    assert f"presence {c['presence']:g}" in res.output and "<- chosen" in res.output
    a, b = load_file(str(src)), load_file(str(dst))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    json.dumps(meta)  # the metadata stays JSON


def test_calibrate_presence_needs_a_vocabulary(tmp_path):
    from rrsis_geo.models import create_model, save_checkpoint

    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(create_model("btdnet-tiny", input_size=64), ckpt)
    res = CliRunner().invoke(cli, ["model", "calibrate-presence", str(ckpt), f"{ROOT}/data/demo", "--format", "custom",
                                   "-o", str(tmp_path / "o.safetensors")])
    assert res.exit_code == 2 and "records no vocabulary" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "o.safetensors").exists()
