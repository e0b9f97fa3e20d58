"""The target-level bootstrap of ``scripts/demo_data/diagnose.py``: how sure a mIoU lead is when
every target is named by several expressions."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.demo_data.diagnose import target_bootstrap, target_bootstrap_oiou


def test_no_difference_and_a_constant_difference_are_exact():
    targets = np.repeat(np.arange(10), 3)
    assert target_bootstrap(np.zeros(30), targets) == (0.0, 0.0, 0.0)
    assert target_bootstrap(np.full(30, 0.25), targets) == pytest.approx((0.25, 0.25, 0.25))


def test_rewordings_of_a_target_are_not_new_evidence():
    """Saying each of 12 targets' facts 5 times must not narrow the interval: the expressions of one
    target are resampled together. (Resampling expressions would shrink it by about sqrt(5).)"""
    rng = np.random.default_rng(0)
    per_target = rng.normal(0.05, 0.2, 12)
    once = target_bootstrap(per_target, np.arange(12))
    five = target_bootstrap(np.repeat(per_target, 5), np.repeat(np.arange(12), 5))
    assert five[0] == pytest.approx(once[0])
    assert five[2] - five[1] == pytest.approx(once[2] - once[1], rel=0.15)
    naive = target_bootstrap(np.repeat(per_target, 5), np.arange(60))
    assert naive[2] - naive[1] < 0.6 * (five[2] - five[1])


def test_targets_with_more_expressions_weigh_more():
    """The lead is the mean over expressions (as mIoU is), so a target named 9 times counts 9 times."""
    diff = np.array([1.0] * 9 + [0.0])
    mean, lo, hi = target_bootstrap(diff, np.array([0] * 9 + [1]))
    assert mean == pytest.approx(0.9) and lo <= 0.9 <= hi


def test_oiou_lead_is_a_ratio_of_sums_resampled_by_target():
    """oIoU weighs big targets by their pixels: a model that nails one 1000 px target and misses
    three 10 px ones leads a rule that does the opposite, though its mIoU is lower."""
    model = [(1000, 1000), (0, 10), (0, 10), (0, 10)]
    rule = [(0, 1000), (10, 10), (10, 10), (10, 10)]
    lead, lo, hi = target_bootstrap_oiou(model, rule, np.arange(4))
    assert lead == pytest.approx(1000 / 1030 - 30 / 1030)
    assert lo <= lead <= hi
    # the same figures told five times per target: the same lead, no narrower an interval
    five = target_bootstrap_oiou(np.repeat(model, 5, axis=0), np.repeat(rule, 5, axis=0), np.repeat(np.arange(4), 5))
    assert five[0] == pytest.approx(lead) and five[1:] == pytest.approx((lo, hi), abs=0.05)


def test_oiou_lead_of_identical_predictions_is_exactly_zero():
    parts = [(5, 10), (3, 9), (0, 4)]
    assert target_bootstrap_oiou(parts, parts, [0, 1, 2]) == (0.0, 0.0, 0.0)
