import pytest

from rrsis_geo.data.chips import assign_blocks, block_of, place_chip


def test_centred_when_room():
    w = place_chip(50, 50, chip=20, block=100)
    assert (w.col_off, w.row_off, w.size) == (40, 40, 20)


def test_shifted_into_block_at_edges():
    w = place_chip(3, 98, chip=20, block=100)
    assert (w.col_off, w.row_off) == (0, 80)
    w = place_chip(101, 199, chip=20, block=100)
    assert (w.col_off, w.row_off) == (100, 180)


def test_chip_equal_to_block():
    w = place_chip(130, 70, chip=100, block=100)
    assert (w.col_off, w.row_off) == (100, 0)


def test_chip_larger_than_block_refused():
    with pytest.raises(ValueError):
        place_chip(0, 0, chip=200, block=100)


def test_negative_coordinates():
    assert block_of(-1, -0.5, 10) == (-1, -1)


def test_assign_blocks_is_stable_and_disjoint():
    keys = [f"b{i}" for i in range(20)]
    a = assign_blocks(keys, 0.2, 0.1, seed=3)
    assert a == assign_blocks(reversed(keys), 0.2, 0.1, seed=3)
    assert sum(v == "val" for v in a.values()) == 4 and sum(v == "test" for v in a.values()) == 2


def test_assign_two_blocks_keeps_train():
    a = assign_blocks(["x", "y"], 0.5)
    assert sorted(a.values()) == ["train", "val"]
    assert assign_blocks(["x"], 0.5) == {"x": "train"}
