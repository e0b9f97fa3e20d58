"""Every generated expression must be true of its target, in its chip's frame, and name only it."""

import math
import random

import numpy as np
import pytest

from scripts.demo_data import expressions as ex
from scripts.demo_data.labels import Target

S = 256


def blob(r0, c0, r1, c1, cat="lake"):
    m = np.zeros((S, S), bool)
    m[r0:r1, c0:c1] = True
    return Target(cat, m, "test")


def random_layout(seed, n_max=7):
    rng = random.Random(seed)
    taken = np.zeros((S, S), bool)
    objs = []
    for _ in range(rng.randint(2, n_max)):
        for _try in range(20):
            h, w = rng.randint(4, 70), rng.randint(4, 70)
            r0, c0 = rng.randint(0, S - h), rng.randint(0, S - w)
            if not taken[max(r0 - 2, 0) : r0 + h + 2, max(c0 - 2, 0) : c0 + w + 2].any():
                taken[r0 : r0 + h, c0 : c0 + w] = True
                objs.append(blob(r0, c0, r0 + h, c0 + w, rng.choice(["lake", "lake", "field", "river"])))
                break
    n_d = rng.randint(0, 2)
    return objs[: len(objs) - n_d] or objs, objs[len(objs) - n_d :] if len(objs) > n_d else []


def check(e, targets, distractors):
    """Raise AssertionError if the expression's fact is not true of its target."""
    allo = list(targets) + list(distractors)
    t = allo[e.target]
    same = [o for o in allo if o.category == t.category]
    others = [o for o in same if o is not t]
    assert e.target < len(targets), "a distractor was made an answer"
    key, _, val = e.fact.partition("=")
    if e.fact == "unique":
        assert not others
    elif key == "rank":
        k, n = map(int, val.split("/"))
        assert n == len(same)
        order = sorted(same, key=lambda o: -o.area)
        assert order[k - 1] is t
        if k == 1:
            assert "larg" in e.text or "bigg" in e.text
            assert all(t.area > o.area for o in others)
        if k == n:
            assert "small" in e.text or "tiniest" in e.text or "less extensive" in e.text
            assert all(t.area < o.area for o in others)
    elif key == "cell":
        col, row = ex.cell_of(t.cx / S, t.cy / S)
        assert ex.CELL_NAMES[(col, row)] == val
        assert not any(ex.cell_of(o.cx / S, o.cy / S) == (col, row) for o in others)
        # the words agree with the frame: a "north-west" target is in the chip's north-west quadrant
        if "north" in val:
            assert t.cy < S / 3
        if "south" in val:
            assert t.cy > 2 * S / 3
        if "west" in val:
            assert t.cx < S / 3
        if "east" in val:
            assert t.cx > 2 * S / 3
        if val == "centre":
            assert S / 3 <= t.cx <= 2 * S / 3 and S / 3 <= t.cy <= 2 * S / 3
    elif key == "extreme":
        coord = {"north": -t.cy, "south": t.cy, "west": -t.cx, "east": t.cx}[val]
        for o in others:
            assert coord > {"north": -o.cy, "south": o.cy, "west": -o.cx, "east": o.cx}[val]
    elif key.endswith("-of"):
        sector = key[:-3]
        a = allo[int(val[1:])]
        assert sector in e.text
        got, clearance = ex.sector_of(t.cx - a.cx, t.cy - a.cy)
        assert got == sector and clearance > 0
        rivals = [o for o in others if o is not a and ex.sector_of(o.cx - a.cx, o.cy - a.cy)[0] == sector]
        assert not rivals
    elif key == "nearest-to":
        from scipy import ndimage as ndi

        a = allo[int(val[1:])]
        dist = ndi.distance_transform_edt(~a.mask)
        d_t = dist[t.mask].min()
        assert all(dist[o.mask].min() > d_t for o in others if o is not a)
    else:
        raise AssertionError(f"unknown fact {e.fact}")


def test_largest_is_the_largest_of_its_category_in_the_chip():
    ts = [blob(10, 10, 60, 60), blob(100, 100, 120, 120), blob(200, 10, 210, 20), blob(150, 150, 250, 250, "field")]
    es = ex.generate(ts, S, S, seed=1)
    largest = [e for e in es if e.fact == "rank=1/3"]
    assert largest and {e.target for e in largest} == {0}
    # the field is bigger than every lake but is not a lake: it must not steal "the largest lake"
    assert all(e.target != 3 for e in es if e.kind == "size" and "lake" in e.text)
    for e in es:
        check(e, ts, [])


def test_north_west_target_is_in_the_north_west_of_the_chip_frame():
    ts = [blob(10, 10, 30, 30), blob(200, 200, 230, 230), blob(120, 200, 140, 220)]
    es = ex.generate(ts, S, S, seed=3, per_fact=3)
    nw = [e for e in es if e.fact == "cell=north-west"]
    assert nw and all(e.target == 0 for e in nw)
    assert any("north-west" in e.text or "top-left" in e.text or "upper left" in e.text for e in nw)


def test_no_size_words_when_sizes_are_close():
    ts = [blob(10, 10, 40, 40), blob(100, 100, 131, 131)]
    assert not [e for e in ex.generate(ts, S, S) if e.kind == "size"]


def test_category_only_needs_uniqueness_including_distractors():
    t = [blob(10, 10, 40, 40), blob(200, 200, 230, 230, "field")]
    assert any(e.kind == "category" and e.target == 0 for e in ex.generate(t, S, S))
    d = [blob(100, 100, 150, 150)]  # another lake-like object the rules rejected
    es = ex.generate(t, S, S, distractors=d)
    assert not any(e.kind == "category" and e.target == 0 for e in es)
    # and the bigger distractor forbids calling the target "the largest lake"
    assert not any("larg" in e.text and e.target == 0 for e in es)


def test_relation_direction_matches_the_geometry():
    lake = blob(100, 100, 160, 160)  # largest: the anchor
    pond_e = blob(120, 220, 130, 230)  # east of it
    pond_w = blob(125, 10, 135, 20)  # west of it
    es = ex.generate([lake, pond_e, pond_w], S, S, seed=0, per_fact=3)
    east = [e for e in es if e.fact == "east-of=#0"]
    assert east and all(e.target == 1 for e in east)
    assert any(e.text.startswith("the small") for e in east)
    for e in es:
        check(e, [lake, pond_e, pond_w], [])


def test_sector_of_compass():
    assert ex.sector_of(10, 0)[0] == "east"
    assert ex.sector_of(0, -10)[0] == "north"  # y grows down: negative dy is north
    assert ex.sector_of(-10, 10)[0] == "south-west"
    assert ex.sector_of(10, -10)[1] == pytest.approx(22.5)
    assert ex.sector_of(10, -math.tan(math.radians(22))*10)[1] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("seed", range(40))
def test_random_layouts_every_expression_is_true_and_unambiguous(seed):
    targets, distractors = random_layout(seed)
    es = ex.generate(targets, S, S, seed=seed, per_fact=3, distractors=distractors)
    by_text = {}
    for e in es:
        check(e, targets, distractors)
        by_text.setdefault(e.text, set()).add(e.target)
        assert e.needs_language == (e.kind != "category")
        assert "  " not in e.text and "small small" not in e.text and e.text.count("image") <= 1
    assert all(len(v) == 1 for v in by_text.values())


def test_plural():
    assert ex.plural("lake") == "lakes"
    assert ex.plural("body of water") == "bodies of water"
    assert ex.plural("field of bare soil") == "fields of bare soil"
    assert ex.plural("stretch of open water") == "stretches of open water"
