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


def test_dihedral_is_the_group_of_the_square():
    a = np.arange(12).reshape(3, 4)
    outs = [layout.dihedral(a, k) for k in range(8)]
    assert np.array_equal(outs[0], a)
    assert np.array_equal(outs[4], a[:, ::-1])  # a mirror: west and east swap
    assert np.array_equal(outs[1], np.rot90(a))  # a quarter turn: north-east corner goes north-west
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8  # eight distinct symmetries
    stack = np.stack([a, a + 100])
    assert np.array_equal(layout.dihedral(stack, 5)[1], layout.dihedral(a + 100, 5))  # bands turn together


def test_train_windows_stay_inside_the_train_regions():
    W, H, size, gap = 1100, 820, 256, 16
    split = layout.split_by_cells({(1, 1): "val", (2, 1): "test", (3, 0): "val"})
    chips = layout.grid("s", W, H, size, gap, split)
    valid = np.ones((H, W), bool)
    valid[:40, :300] = False  # an invalid corner: no window may cover it
    wins = layout.train_windows(chips, valid, size, gap, 400, np.random.default_rng(0))
    assert len(wins) > 20 and len({(w.col_off, w.row_off) for w in wins}) == len(wins)
    held_out = [c for c in chips if c.split != "train"]
    for w in wins:
        assert w.split == "train" and w.window and 0 <= w.op < 8
        assert 0 <= w.col_off and w.col_off + size <= W and 0 <= w.row_off and w.row_off + size <= H
        assert valid[w.row_off:w.row_off + size, w.col_off:w.col_off + size].all()
        for c in held_out:  # never overlaps a held-out chip, and keeps half the gap from it
            grown = layout.Chip("s", 0, 0, c.col_off - gap // 2, c.row_off - gap // 2, size + gap, c.split)
            assert not w.overlaps(grown)
    # windows reach positions the grid never had (that is their point)
    assert any((w.col_off, w.row_off) not in {(c.col_off, c.row_off) for c in chips} for w in wins)
    again = layout.train_windows(chips, valid, size, gap, 400, np.random.default_rng(0))
    assert again == wins  # seeded: the training set rebuilds identically
