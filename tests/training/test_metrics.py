"""Metrics against hand-computed values."""

import numpy as np
import pytest

from rrsis_geo.training.metrics import RefSegMetrics, format_table, intersection_union


def _mask(shape, *cells):
    m = np.zeros(shape, bool)
    for r, c in cells:
        m[r, c] = True
    return m


def _three_samples(metrics):
    # s1: pred 4 px, gt 4 px, overlap 2 -> I=2, U=6, IoU=1/3
    p1 = _mask((4, 4), (0, 0), (0, 1), (1, 0), (1, 1))
    g1 = _mask((4, 4), (1, 0), (1, 1), (2, 0), (2, 1))
    # s2: pred == gt, 2 px -> I=2, U=2, IoU=1
    p2 = g2 = _mask((4, 4), (3, 3), (3, 2))
    # s3: both empty -> I=0, U=0, IoU=0 by convention
    p3 = g3 = np.zeros((4, 4), bool)
    metrics.update(np.stack([p1, p2, p3]), np.stack([g1, g2, g3]), categories=["a", "b", "a"], sample_ids=["s1", "s2", "s3"])


def test_hand_values():
    m = RefSegMetrics()
    _three_samples(m)
    r = m.compute()
    assert r["n"] == 3
    assert r["mIoU"] == pytest.approx(100 * (1 / 3 + 1 + 0) / 3)
    assert r["oIoU"] == pytest.approx(100 * 4 / 8)  # (2+2+0) / (6+2+0)
    assert r["Pr@0.5"] == pytest.approx(100 / 3) and r["Pr@0.9"] == pytest.approx(100 / 3)
    assert r["per_category"]["a"]["n"] == 2
    assert r["per_category"]["a"]["mIoU"] == pytest.approx(100 * (1 / 3) / 2)
    assert r["per_category"]["a"]["oIoU"] == pytest.approx(100 * 2 / 6)
    assert r["per_category"]["b"]["mIoU"] == pytest.approx(100.0)


def test_empty_policies():
    one = RefSegMetrics(empty="one")
    _three_samples(one)
    r = one.compute()
    assert r["mIoU"] == pytest.approx(100 * (1 / 3 + 1 + 1) / 3)
    assert r["oIoU"] == pytest.approx(50.0)  # U = 0 adds nothing
    ex = RefSegMetrics(empty="exclude")
    _three_samples(ex)
    r = ex.compute()
    assert r["n"] == 2 and r["n_empty_excluded"] == 1
    assert r["mIoU"] == pytest.approx(100 * (1 / 3 + 1) / 2)
    # empty gt but a non-empty prediction: IoU 0 under every policy except exclude
    m = RefSegMetrics(empty="one")
    m.update(_mask((2, 2), (0, 0)), np.zeros((2, 2), bool))
    assert m.compute()["mIoU"] == 0.0


def test_all_empty_unions_give_zero_not_nan():
    m = RefSegMetrics()
    m.update(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 3), bool))
    r = m.compute()
    assert r["oIoU"] == 0.0 and r["mIoU"] == 0.0


def test_boundary_ge_vs_strict():
    # IoU exactly 0.5 and exactly 0.8 (I=4, U=5); pick sizes so the floats are exact
    g = np.zeros((1, 10), bool)
    g[0, :4] = True
    p = np.zeros((1, 10), bool)
    p[0, :2] = True  # I=2, U=4 -> 0.5
    g2 = np.zeros((1, 10), bool)
    g2[0, :5] = True
    p2 = np.zeros((1, 10), bool)
    p2[0, :4] = True  # I=4, U=5 -> 0.8
    ge = RefSegMetrics()
    ge.update(np.stack([p, p2]), np.stack([g, g2]))
    st = RefSegMetrics(strict=True)
    st.update(np.stack([p, p2]), np.stack([g, g2]))
    a, b = ge.compute(), st.compute()
    assert a["Pr@0.5"] == 100.0 and b["Pr@0.5"] == 50.0
    assert a["Pr@0.8"] == 50.0 and b["Pr@0.8"] == 0.0
    assert a["Pr@0.6"] == b["Pr@0.6"] == 50.0


def test_intersection_union_and_shape_check():
    assert intersection_union([[1, 0], [1, 1]], [[1, 1], [0, 1]]) == (2, 4)
    with pytest.raises(ValueError):
        intersection_union(np.zeros((2, 2)), np.zeros((2, 3)))


def test_accepts_tensors_and_table():
    torch = pytest.importorskip("torch")
    m = RefSegMetrics()
    m.update(torch.ones(2, 2, dtype=torch.bool), torch.ones(2, 2), categories="ship", sample_ids="x")
    r = m.compute()
    assert r["mIoU"] == 100.0 and m.per_sample()[0]["iou"] == 1.0
    table = format_table(r)
    assert "overall" in table and "ship" in table and "Pr@0.9" in table


def test_bad_policy():
    with pytest.raises(ValueError):
        RefSegMetrics(empty="maybe")
