"""The shipped demo model: present, the default everywhere, and better than the no-language rule
on held-out areas (issue 6's bar, checked on the committed test split of data/demo)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rrsis_geo.errors import ModelError
from rrsis_geo.weights import DEFAULT_MODEL, SHIPPED

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
DEMO = ROOT / "data" / "demo"


def rrsis(*args, **kw):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=900, **kw)


def test_the_demo_model_ships_and_is_the_default():
    from cli.segment import segment

    assert DEFAULT_MODEL == "btdnet-lite-demo" and DEFAULT_MODEL in SHIPPED
    assert SHIPPED[DEFAULT_MODEL].path.is_file() and SHIPPED[DEFAULT_MODEL].card.is_file()
    default = next(p.default for p in segment.params if p.name == "model")
    assert default == DEFAULT_MODEL
    from rrsis_geo.models import read_metadata

    meta = read_metadata(SHIPPED[DEFAULT_MODEL].path)
    assert meta["preset"] == "btdnet-lite" and meta["config"]["mci"]["position"] == "fourier"
    # it stores only what training changed: the frozen text encoder comes from its package
    assert set(meta["base"]) == {"text."}
    assert SHIPPED[DEFAULT_MODEL].path.stat().st_size < 40e6


def test_a_missing_shipped_file_is_a_one_line_error(tmp_path, monkeypatch):
    import rrsis_geo.weights as weights
    from rrsis_geo.models import load_predictor

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match="missing from this installation.*make demo-model"):
        load_predictor(DEFAULT_MODEL)


def test_model_list_names_the_shipped_model_first():
    proc = rrsis("model", "list")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0].split()
    assert first[:2] == [DEFAULT_MODEL, "trained"]


@pytest.mark.slow
def test_the_demo_model_beats_the_no_language_baseline_on_held_out_areas(tmp_path):
    """The test split of data/demo (regions no training window touched), scored at the chips' own
    resolution, grouped as meta/baseline.json groups the rule baseline."""
    import geopandas as gpd

    from scripts.demo_data.compare import grouped

    proc = rrsis("eval", "--model", str(SHIPPED[DEFAULT_MODEL].path), "--format", "custom", str(DEMO), "--split", "test",
                 "--split-column", "split", "--raster-column", "chip", "--category-column", "category", "--native",
                 "--grid", "0", "--device", "cpu", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "per_sample.csv", newline="") as f:
        model = grouped(list(csv.DictReader(f)), gpd.read_file(DEMO / "demo.gpkg"))
    base = json.loads((DEMO / "meta" / "baseline.json").read_text())["splits"]["test"]
    m, b = model["needs_language"], base["needs_language"]["best"]
    assert m["n"] == b["n"] > 100
    for k in ("mIoU", "oIoU", "Pr@0.5"):
        assert m[k] > b[k], (k, m, b)
