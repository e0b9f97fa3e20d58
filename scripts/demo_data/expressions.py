"""Referring expressions from the geometry of one chip's targets, in that chip's frame.

Position words (north-west, the northernmost ...) are about where a target's centroid lies in the
chip (north is up: every chip is north-up, row 0 at the top); size words rank a target among the
targets *of its category in the same chip*; relations name a target by its direction from, or
distance to, an anchor the chip names uniquely (the only river, the largest lake). A fact is only
stated when it singles out one target with a margin, so every expression has exactly one answer in
its chip; :func:`generate` drops any wording that would still point at two targets.

Types: ``category`` (the category alone, only when it is unique in the chip), ``size``,
``position``, ``relation``. Everything but ``category`` needs the language to be answered.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

NOUNS = {
    "lake": ["lake", "body of water", "lake"],
    "pond": ["pond", "small lake", "pond"],
    "river": ["river", "stream", "channel"],
    "sea": ["sea", "open water", "sea"],
    "sea part": ["sea area", "stretch of open water", "area of sea"],  # when a chip shows several pieces
    "field": ["green field", "vegetated field", "field of green crops"],
    "bare field": ["bare field", "bare plot", "field of bare soil"],
}

# 3 x 3 cells of the chip: (col, row) -> phrases ("in the ..."-style endings)
CELLS = {
    (0, 0): ["in the north-west corner", "in the top-left corner", "at the upper left"],
    (1, 0): ["in the north", "at the top of the image", "in the upper middle"],
    (2, 0): ["in the north-east corner", "in the top-right corner", "at the upper right"],
    (0, 1): ["in the west", "on the left side", "on the left of the image"],
    (1, 1): ["in the centre", "in the middle of the image", "at the centre"],
    (2, 1): ["in the east", "on the right side", "on the right of the image"],
    (0, 2): ["in the south-west corner", "in the bottom-left corner", "at the lower left"],
    (1, 2): ["in the south", "at the bottom of the image", "in the lower middle"],
    (2, 2): ["in the south-east corner", "in the bottom-right corner", "at the lower right"],
}
CELL_NAMES = {(0, 0): "north-west", (1, 0): "north", (2, 0): "north-east", (0, 1): "west", (1, 1): "centre",
              (2, 1): "east", (0, 2): "south-west", (1, 2): "south", (2, 2): "south-east"}

# extremes: key -> (axis, sign, phrases): "the northernmost lake"
EXTREMES = {
    "north": ("y", -1, ["the northernmost {n}", "the {n} furthest north", "the topmost {n}"]),
    "south": ("y", +1, ["the southernmost {n}", "the {n} furthest south", "the bottommost {n}"]),
    "west": ("x", -1, ["the westernmost {n}", "the {n} furthest west", "the leftmost {n}"]),
    "east": ("x", +1, ["the easternmost {n}", "the {n} furthest east", "the rightmost {n}"]),
}

# 8 compass sectors, angle in degrees counter-clockwise from east with north up
SECTORS = ["east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east"]

SIZE_LARGEST = ["the largest {n}", "the biggest {n}", "the {n} with the largest area"]
SIZE_LARGER = ["the larger {n}", "the bigger {n}", "the larger of the two {ns}"]
SIZE_SMALLEST = ["the smallest {n}", "the tiniest {n}", "the {n} with the smallest area"]
SIZE_SMALLER = ["the smaller {n}", "the smaller of the two {ns}", "the less extensive {n}"]
SIZE_SECOND = ["the second largest {n}", "the second biggest {n}"]
CATEGORY_ONLY = ["the {n}", "the {n} in the image", "the only {n}"]
POSITION = ["the {n} {cell}", "the {n} located {cell}", "the {n} {cell} of the image"]
RELATION_DIR = ["the {adj}{n} {d} of {a}", "the {adj}{n} to the {d} of {a}", "the {adj}{n} lying {d} of {a}"]
CATEGORY_SET = ["all the {ns}", "every {n} in the image", "all {ns}"]  # training builds only: see category_sets
RELATION_NEAR = ["the {n} closest to {a}", "the {n} nearest to {a}", "the {n} next to {a}"]

POND_MAX_M2 = 20_000.0  # a lake smaller than 2 ha may be called a pond


@dataclass(frozen=True)
class Expr:
    target: int  # index into the chip's target list
    text: str
    kind: str  # category | size | position | relation
    fact: str  # the geometric fact it states, e.g. "cell=north-west", "rank=1/3", "east-of=#2"

    @property
    def needs_language(self) -> bool:
        return self.kind != "category"


def plural(n: str) -> str:
    """Plural of a noun phrase: the head noun (before " of ") takes the ending."""
    head, sep, tail = n.partition(" of ")
    if head.endswith("y"):
        head = head[:-1] + "ies"
    elif head.endswith(("ch", "sh", "s", "x")):
        head += "es"
    else:
        head += "s"
    return head + sep + tail


def cell_of(u: float, v: float) -> tuple[int, int]:
    """3 x 3 cell of a normalised position (u right, v down, both in [0, 1])."""
    return min(int(u * 3), 2), min(int(v * 3), 2)


def sector_of(dx: float, dy_down: float) -> tuple[str, float]:
    """Compass sector of a displacement (x right, y down) and its angular distance to the sector edge."""
    ang = math.degrees(math.atan2(-dy_down, dx)) % 360.0
    k = int(((ang + 22.5) % 360.0) // 45.0)
    centre = k * 45.0
    off = abs((ang - centre + 180.0) % 360.0 - 180.0)
    return SECTORS[k], 22.5 - off


def _noun(cat: str, area_m2: float | None, rng: random.Random, k: int = 0, several: bool = False) -> str:
    if cat == "sea" and several:
        return NOUNS["sea part"][k % len(NOUNS["sea part"])]
    if cat == "lake" and area_m2 is not None and area_m2 < POND_MAX_M2 and rng.random() < 0.5:
        return NOUNS["pond"][k % len(NOUNS["pond"])]
    return NOUNS[cat][k % len(NOUNS[cat])]


def generate(targets, width: int, height: int, gsd: float | None = None, seed: int = 0, per_fact: int = 2,
             margin: float = 0.04, size_ratio: float = 1.5, max_relations: int = 3, distractors=()) -> list[Expr]:
    """Expressions for the targets of one chip (``targets`` have category, area, cx, cy, mask).

    ``distractors`` are objects of a category that are never referred to but count for every
    uniqueness test (only, largest, the one in a cell, the one in a direction). ``margin`` (share
    of the chip side) keeps positions away from cell borders and extremes apart from the
    runner-up; ``size_ratio`` is how much bigger the largest must be than the next.
    """
    rng = random.Random(seed)
    out: list[Expr] = []
    n_ref = len(targets)
    targets = list(targets) + list(distractors)
    by_cat: dict[str, list[int]] = {}
    for i, t in enumerate(targets):
        by_cat.setdefault(t.category, []).append(i)
    m2 = (lambda i: targets[i].area * gsd * gsd) if gsd else (lambda i: None)
    u = [t.cx / width for t in targets]
    v = [t.cy / height for t in targets]

    def emit(i, kind, fact, templates, **fmt):
        if i >= n_ref:
            return  # a distractor is never the answer
        picks = rng.sample(range(len(templates)), min(per_fact, len(templates)))
        for j, k in enumerate(picks):
            n = _noun(targets[i].category, m2(i), rng, j, several=len(by_cat[targets[i].category]) > 1)
            if fmt.get("adj") and n.startswith(fmt["adj"]):
                fmt = {**fmt, "adj": ""}  # "the small small lake"
            text = templates[k].format(n=n, ns=plural(n), **fmt)
            out.append(Expr(i, " ".join(text.split()), kind, fact))

    # how a target can be named on its own (for relations): only, or largest of its category
    anchor_name: dict[int, str] = {}
    for cat, idx in by_cat.items():
        if len(idx) == 1:
            i = idx[0]
            emit(i, "category", "unique", CATEGORY_ONLY, )
            if i < n_ref:
                anchor_name[i] = f"the {NOUNS[cat][0]}"
            continue
        order = sorted(idx, key=lambda i: -targets[i].area)
        a = [targets[i].area for i in order]
        two = len(idx) == 2
        if a[0] >= size_ratio * a[1]:
            emit(order[0], "size", f"rank=1/{len(idx)}", SIZE_LARGER if two else SIZE_LARGEST)
            if order[0] < n_ref:
                noun = NOUNS["sea part"][0] if cat == "sea" else NOUNS[cat][0]
                anchor_name[order[0]] = f"the {'larger' if two else 'largest'} {noun}"
        if a[-2] >= size_ratio * a[-1]:
            emit(order[-1], "size", f"rank={len(idx)}/{len(idx)}", SIZE_SMALLER if two else SIZE_SMALLEST)
        if len(idx) >= 3 and a[0] >= 1.3 * a[1] and a[1] >= 1.3 * a[2]:
            emit(order[1], "size", f"rank=2/{len(idx)}", SIZE_SECOND)

    # positions: a cell holding exactly one target of the category, centroid clear of the cell borders
    for cat, idx in by_cat.items():
        cells = {i: cell_of(u[i], v[i]) for i in idx}
        for i in idx:
            c = cells[i]
            if sum(1 for j in idx if cells[j] == c) != 1:
                continue
            edges_u = [1 / 3, 2 / 3]
            edges_v = [1 / 3, 2 / 3]
            if min(abs(u[i] - e) for e in edges_u) < margin or min(abs(v[i] - e) for e in edges_v) < margin:
                continue
            if len(idx) == 1 and rng.random() < 0.5:
                continue  # a unique object's cell is still a position fact, but keep the mix balanced
            cell = CELLS[c][rng.randrange(3)]
            emit(i, "position", f"cell={CELL_NAMES[c]}", POSITION if "image" not in cell else POSITION[:2], cell=cell)
        if len(idx) >= 2:
            for key, (axis, sign, templates) in EXTREMES.items():
                coord = u if axis == "x" else v
                order = sorted(idx, key=lambda i: sign * coord[i], reverse=True)
                if abs(coord[order[0]] - coord[order[1]]) >= 2.5 * margin:
                    emit(order[0], "position", f"extreme={key}", templates)

    # relations: direction from an anchor (unique sector among the category), or nearest to an anchor
    from scipy import ndimage as ndi

    n_rel = {i: 0 for i in range(len(targets))}
    centre_in = lambda m, t: bool(m[min(int(t.cy), m.shape[0] - 1), min(int(t.cx), m.shape[1] - 1)])  # noqa: E731
    for a_i, a_name in anchor_name.items():
        dist_to_anchor = None
        for cat, idx in by_cat.items():
            cands = [i for i in idx if i != a_i]
            if not cands:
                continue
            sectors, too_close = {}, set()
            for i in cands:
                dx, dy = targets[i].cx - targets[a_i].cx, targets[i].cy - targets[a_i].cy
                sectors[i] = sector_of(dx, dy)
                if math.hypot(dx / width, dy / height) < 0.15 or centre_in(targets[a_i].mask, targets[i]):
                    too_close.add(i)  # too close to, or inside, the anchor for a direction to mean anything
            for i, (sec, clearance) in sectors.items():
                # every other object of the category counts as a rival, close ones included
                if i in too_close or clearance < 7.5 or n_rel[i] >= max_relations:
                    continue
                if sum(1 for j in sectors if sectors[j][0] == sec) != 1:
                    continue
                same = cat == targets[a_i].category
                adj = ""
                if same and targets[i].area * 2 <= targets[a_i].area:
                    adj = "small "
                a_txt = a_name.replace("the largest ", "the large ") if same and rng.random() < 0.5 else a_name
                emit(i, "relation", f"{sec}-of=#{a_i}", RELATION_DIR, adj=adj, d=sec, a=a_txt)
                n_rel[i] += 1
            if len(cands) >= 2:
                if dist_to_anchor is None:
                    dist_to_anchor = ndi.distance_transform_edt(~targets[a_i].mask)
                d = {i: float(dist_to_anchor[targets[i].mask].min()) for i in cands}
                order = sorted(cands, key=lambda i: d[i])
                if d[order[1]] >= 2.0 * max(d[order[0]], 3.0) and n_rel[order[0]] < max_relations:
                    emit(order[0], "relation", f"nearest-to=#{a_i}", RELATION_NEAR, a=a_name)
                    n_rel[order[0]] += 1

    # one wording, one answer: drop any text that ended up naming two different targets
    seen: dict[str, set] = {}
    for e in out:
        seen.setdefault(e.text, set()).add(e.target)
    unique, done = [], set()
    for e in out:
        if len(seen[e.text]) == 1 and (e.target, e.text) not in done:
            done.add((e.target, e.text))
            unique.append(e)
    return unique


def category_sets(targets, distractors=(), seed: int = 0, per_fact: int = 2) -> list[tuple[str, str, list]]:
    """"All the lakes": (wording, category, its objects) for every category with two or more objects
    (targets and distractors) in the chip.

    Its answer is every object of the category, distractors included (a merged blob of fields is
    still field): the category mask that the held-out no-language baseline predicts. Training
    builds add these so the model is told, for all objects of a category at once, what belongs to
    it; held-out builds never do.
    """
    rng = random.Random(seed)
    by_cat: dict[str, list] = {}
    for t in [*targets, *distractors]:
        by_cat.setdefault(t.category, []).append(t)
    out = []
    for cat in sorted(by_cat):
        if len(by_cat[cat]) < 2:
            continue
        for j, k in enumerate(rng.sample(range(len(CATEGORY_SET)), min(per_fact, len(CATEGORY_SET)))):
            n = _noun(cat, None, rng, j, several=True)  # no area: a set of lakes is never "ponds"
            out.append((CATEGORY_SET[k].format(n=n, ns=plural(n)), cat, by_cat[cat]))
    return out
