"""Checkpoints written before the paper variants of BSC / MCI / Fg-Bg load and predict as before.

The reference outputs (``data/legacy_outputs.npz``) were made by the untouched earlier code with
``data/make_legacy_fixture.py`` (its docstring says how); the same inputs are rebuilt here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models.data.make_legacy_fixture import logits

FIXTURE = np.load(Path(__file__).parent / "data" / "legacy_outputs.npz")
# Float32 kernels round differently on other CPUs: on an AMD EPYC (AVX512) the logits (up to 9 in
# magnitude) differ from the fixture's by up to 7e-6. A module built or loaded wrongly moves them by
# far more than this bound, and the predicted classes must be the same.
ATOL = 1e-4


def test_config_without_variant_keys_is_the_legacy_model():
    from rrsis_geo.models.btdnet.config import config_from_dict

    cfg = config_from_dict(json.loads(str(FIXTURE["tiny_config"])))
    assert (cfg.bsc.variant, cfg.mci.variant, cfg.fgbg.variant) == ("legacy", "legacy", "legacy")


def test_legacy_tiny_rebuilds_the_same_parameters_and_outputs():
    """The old btdnet-tiny config (no variant keys), built with the same seed, draws the same
    random weights and gives the same logits as the old code did."""
    from rrsis_geo.models.btdnet.config import config_from_dict
    from rrsis_geo.models.registry import build_model

    model = build_model(config_from_dict(json.loads(str(FIXTURE["tiny_config"]))), pretrained=False, seed=0)
    out = logits(model)
    np.testing.assert_allclose(out, FIXTURE["tiny_logits"], rtol=0, atol=ATOL)
    assert np.array_equal(out.argmax(1), FIXTURE["tiny_logits"].argmax(1))


def test_shipped_demo_model_predicts_as_before():
    from rrsis_geo.models import load_checkpoint
    from rrsis_geo.weights import shipped_path

    path = shipped_path("btdnet-lite-demo")
    if not path.exists():
        pytest.skip("the shipped demo model is not in this checkout")
    model, _ = load_checkpoint(path)
    torch.set_num_threads(2)
    out = logits(model)
    np.testing.assert_allclose(out, FIXTURE["demo_logits"], rtol=0, atol=ATOL)
    assert np.array_equal(out.argmax(1), FIXTURE["demo_logits"].argmax(1))
