import itertools

import numpy as np
import pytest

from scripts.demo_data import baseline, layout


def test_grid_chips_never_overlap_and_keep_the_gap():
    chips = layout.grid("s", 1933, 1947, 256, 16, layout.split_by_rows(val_rows=(-2,), test_rows=(-1,)))
    assert len(chips) == 49
    for a, b in itertools.combinations(chips, 2):
        assert not a.overlaps(b)
        gap_x = max(b.col_off - (a.col_off + a.size), a.col_off - (b.col_off + b.size))
        gap_y = max(b.row_off - (a.row_off + a.size), a.row_off - (b.row_off + b.size))
        assert max(gap_x, gap_y) >= 16
    assert all(0 <= c.col_off and c.col_off + c.size <= 1933 and 0 <= c.row_off and c.row_off + c.size <= 1947 for c in chips)


def test_split_by_rows_holds_out_whole_southern_bands():
    chips = layout.grid("s", 1933, 1947, 256, 16, layout.split_by_rows(val_rows=(-2,), test_rows=(-1,)))
    by = {s: {c.row for c in chips if c.split == s} for s in ("train", "val", "test")}
    assert by == {"train": {0, 1, 2, 3, 4}, "val": {5}, "test": {6}}
    # every held-out chip lies south of every training chip
    assert min(c.row_off for c in chips if c.split != "train") > max(c.row_off + c.size for c in chips if c.split == "train")


def test_overlaps_detects_overlap():
    a = layout.Chip("s", 0, 0, 0, 0, 256, "train")
    assert a.overlaps(layout.Chip("s", 1, 0, 255, 0, 256, "test"))
    assert not a.overlaps(layout.Chip("s", 1, 0, 256, 0, 256, "test"))
    assert not a.overlaps(layout.Chip("other", 0, 0, 0, 0, 256, "test"))


def test_iou_metrics_by_definition():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True
    pred = np.zeros((4, 4), bool)
    pred[:2, :] = True
    assert baseline.iou_parts(pred, gt) == (4, 8)
    assert baseline.iou_parts(np.zeros_like(gt), np.zeros_like(gt)) == (0, 0)
    m = baseline.metrics([(4, 8), (0, 0), (9, 10)])
    assert m["mIoU"] == pytest.approx((0.5 + 0 + 0.9) / 3, abs=1e-4)  # IoU 0 when U = 0
    assert m["oIoU"] == pytest.approx(13 / 18, abs=1e-4)
    assert m["Pr@0.5"] == pytest.approx(2 / 3, abs=1e-4)
    assert baseline.metrics([])["n"] == 0
