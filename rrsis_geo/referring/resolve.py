"""Resolution in the scene frame: which candidates an analysed expression names.

The rules, applied to the candidates that pass the presence test (score_max >= presence) and are
at least ``min_pixels`` large; a singular expression chooses only among the **confident** ones,
whose mean probability is at least :data:`CONFIDENT` times the most confident candidate's (a large
weak detection of another kind of water is not "the largest lake"):

- **size** ("the largest", "the second smallest", "the longest"): rank by area or by length of the
  equivalent rectangle, in metres, and take the k-th. A comparative ("the smaller of the two
  lakes", "the larger lake") compares the two largest candidates.
- **position, region** ("in the north-west", "at the top"): the frame is cut in thirds; a corner
  word is its corner cell, a side word its third, "centre" the middle cell. Inside the region a
  singular side word first takes the candidates in the side's middle cell ("in the north", "in the
  upper middle": one in the north-west corner would have been called so), then the candidate with
  the most glance support wins (the whole-scene view of the sentence), then the largest. With none
  inside, the one covering most of the region, else the one nearest it, and the rule says so.
- **position, half** ("in the lower half", "in the western half"): as a region, the frame cut in
  halves (a corner word: its quarter).
- **position, extreme** ("the northernmost", "the leftmost", "the second from the left"): rank by
  the centroid along the direction and take the k-th.
- **a region with a size or an extreme** ("the largest lake in the north", "the northernmost lake
  in the west"): the size or extreme decides among the candidates centred in the region (none
  there: those reaching into it).
- **relation** ("east of X", "nearest to X", "within 500 m of X", "over X", "in X", "between X and
  Y"): X is resolved first among its own candidates; then candidates whose centroid lies in the
  direction's compass sector seen from X (its eighth, else its quarter; nearest first; seen from
  X's centroid, or from its nearest point when X is elongated like a river), the nearest / farthest
  by distance between outlines, those within the distance of X's outline (nearest first), those
  crossing X (by the length inside X), those inside X's outline, or nearest the line between X and Y.
- **none** ("the lake"): the most glance support, then the highest zoom score.
- **measured bound** ("larger than 2 ha", "longer than 1 km"): only candidates past the bound take
  part in the rules above.

Singular expressions name one candidate; a count ("the two largest lakes") names that many of
the first under the rule (among the confident ones, as one referent does); "all" and plural ones
every candidate that passes the region or relation filter. When nothing is left the answer is an
abstention with its reason. A singular answer touching the edge of the area searched says so in
the rule: it may continue beyond what was measured.
Everything is measured on the candidates' metric geometry, so "east" is map east and distances
are metres in every CRS.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import shapely
import shapely.ops

from rrsis_geo.referring.candidates import Candidate, Frame
from rrsis_geo.referring.expression import Limit, Query, Size

# direction -> unit vector (east, north)
_VEC = {
    "east": (1.0, 0.0), "west": (-1.0, 0.0), "north": (0.0, 1.0), "south": (0.0, -1.0),
    "north-east": (math.sqrt(0.5), math.sqrt(0.5)), "north-west": (-math.sqrt(0.5), math.sqrt(0.5)),
    "south-east": (math.sqrt(0.5), -math.sqrt(0.5)), "south-west": (-math.sqrt(0.5), -math.sqrt(0.5)),
}
_SUPERLATIVE = {("area", "desc"): "largest", ("area", "asc"): "smallest",
                ("length", "desc"): "longest", ("length", "asc"): "shortest"}
_COMPARATIVE = {("area", "desc"): "larger", ("area", "asc"): "smaller",
                ("length", "desc"): "longer", ("length", "asc"): "shorter"}
_EXTREME = {"north": "northernmost", "south": "southernmost", "east": "easternmost", "west": "westernmost",
            "north-east": "north-easternmost", "north-west": "north-westernmost",
            "south-east": "south-easternmost", "south-west": "south-westernmost", "centre": "most central"}
LARGE_WORDS = frozenset({"large", "big", "huge", "main"})
SMALL_WORDS = frozenset({"small", "little", "tiny"})
# a reference this elongated (length / width) is a line: directions are seen from its nearest point
ELONGATED = 3.0
# half-widths of the sector a direction word names: its own eighth of the compass, else a quarter
SECTOR_HALF_ANGLES = (22.5, 45.0)
# the same object found by two passes (e.g. "the small lake east of the large lake")
SAME_OBJECT_IOU = 0.5
# a singular expression's candidates: mean probability at least this share of the best candidate's.
# Chosen on the validation scenes (`benchmarks/bench_scene_referring.py --scenes val`, the shipped
# demo model): correct referents on the size, position and category expressions rose from 23 to
# 32 of 70 at 0.85 and 0.9 (0.8: 29, 0.95: 23).
CONFIDENT = 0.85


@dataclass
class Resolution:
    selected: list[int]  # indices into the candidates, in rank order
    rank: dict[int, int] = field(default_factory=dict)  # candidate index -> rank under the rule (1 = best)
    rule: str = ""
    abstained: bool = False
    pool: int = 0  # candidates the rule chose among

    @property
    def answer(self) -> int | None:
        return self.selected[0] if self.selected else None


def ordinal(k: int) -> str:
    if k == 1:
        return ""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix} "


def format_area(m2: float) -> str:
    return f"{m2 / 1e6:.2f} km2" if m2 >= 1e5 else f"{m2:,.0f} m2"


def format_length(m: float) -> str:
    return f"{m / 1000:.2f} km" if m >= 1000 else f"{m:,.0f} m"


def format_limit(limit: Limit) -> str:
    """"larger than 20,000 m2"-style text of a bound, in the units the rules use."""
    word = {("area", ">"): "larger than", ("area", "<"): "smaller than",
            ("length", ">"): "longer than", ("length", "<"): "shorter than"}[(limit.measure, limit.op)]
    value = format_area(limit.value) if limit.measure == "area" else format_length(limit.value)
    return f"{word} {value}"


def within_limit(c: Candidate, limit: Limit) -> bool:
    value = c.area_m2 if limit.measure == "area" else c.length_m
    return value > limit.value if limit.op == ">" else value < limit.value


def _noun(query: Query, n: int = 2) -> str:
    head = query.head or "object"
    return head if n == 1 else f"{head} candidates"


def in_region(c: Candidate, direction: str, cut: float = 1 / 3) -> bool:
    """Whether the centroid lies in the region a compass word names (thirds of the frame; with
    ``cut`` 0.5, halves and quarters)."""
    col = 0 if c.u < cut else (2 if c.u > 1 - cut else 1)
    row = 0 if c.v > 1 - cut else (2 if c.v < cut else 1)  # row 0 = north
    if direction == "centre":
        return (col, row) == (1, 1)
    ns = direction.split("-")[0] if "-" in direction else (direction if direction in ("north", "south") else None)
    ew = direction.split("-")[1] if "-" in direction else (direction if direction in ("east", "west") else None)
    ok_row = ns is None or row == (0 if ns == "north" else 2)
    ok_col = ew is None or col == (2 if ew == "east" else 0)
    return ok_row and ok_col


def in_side_middle(c: Candidate, direction: str) -> bool:
    """Whether the centroid lies in the middle cell of the side a side word names ("north": the
    top row's middle cell); false for corner words and "centre"."""
    if direction in ("north", "south"):
        return 1 / 3 <= c.u <= 2 / 3
    if direction in ("east", "west"):
        return 1 / 3 <= c.v <= 2 / 3
    return False


def region_anchor(direction: str, cut: float = 1 / 3) -> tuple[float, float]:
    """The (u, v) point a region word points at (a corner cell's centre, a side's middle)."""
    if direction == "centre":
        return 0.5, 0.5
    dx, dy = _VEC[direction]
    off = 0.5 - cut / 2
    return 0.5 + (dx and math.copysign(off, dx)), 0.5 + (dy and math.copysign(off, dy))


def _salience(c: Candidate) -> tuple:
    return (c.glance if c.glance is not None else 0.0, c.score, c.area_m2)


def _pick(order: list[int], query: Query, rank: int = 1) -> list[int]:
    if query.number != "one":
        return list(order)
    return order[rank - 1 : rank] if len(order) >= rank else []


def _same_object(a: Candidate, b: Candidate) -> bool:
    inter = a.metric.intersection(b.metric).area
    union = a.metric.area + b.metric.area - inter
    return union > 0 and inter / union >= SAME_OBJECT_IOU


def resolve(query: Query, candidates: list[Candidate], presence: float = 0.0, min_pixels: int = 1,
            references: list[tuple[Query, list[Candidate]]] | None = None,
            frame: Frame | None = None, remarks: bool = True) -> Resolution:
    """Resolve ``query`` among ``candidates``; ``references`` holds, for a relation, each reference
    phrase's query and its own candidates (in the order of ``query.relation.chain()``'s references);
    ``frame`` (the candidates' metric frame) lets a region word fall back to the candidate covering
    most of the region when no centroid lies inside it; ``remarks`` adds to the rule how many
    less confident candidates a singular expression left out and whether its answer touches the
    edge of the area searched (not in a reference's rule, which the relation's own rule quotes)."""
    pool = [i for i, c in enumerate(candidates) if c.score_max >= presence and c.pixels >= min_pixels]
    noun = query.head or "object"
    if not pool:
        return Resolution([], rule=f"no confident match: no {noun} candidate above the presence threshold "
                                   f"{presence:.2f}", abstained=True)
    weak = 0
    if query.number == "one" or query.count:  # one referent (or a count): among the confident candidates
        best = max(candidates[i].score for i in pool)
        confident = [i for i in pool if candidates[i].score >= CONFIDENT * best]
        weak, pool = len(pool) - len(confident), confident
    bound = ""
    if query.limit is not None:
        passing = [i for i in pool if within_limit(candidates[i], query.limit)]
        if not passing:
            return Resolution([], rule=f"no {noun} candidate {format_limit(query.limit)} ({len(pool)} measured)",
                              abstained=True, pool=len(pool))
        bound = f"{format_limit(query.limit)}: {len(passing)} of {len(pool)}"
        pool = passing
    area = query.within  # "the northernmost lake in the west", "the largest lake in the north"
    if area is None and query.size is not None and query.relation is None and query.position is not None:
        area = query.position if query.position.kind != "extreme" else None
    tag = ""
    if area is not None:
        cut = _cut(area)
        where = _where(area)
        inside = [i for i in pool if in_region(candidates[i], area.direction, cut)]
        if not inside and frame is not None:  # none centred there: those reaching into it
            box = region_box(frame, area.direction, cut)
            inside = [i for i in pool if candidates[i].metric.intersects(box)]
        if not inside:
            return Resolution([], rule=f"no {noun} candidate in {where} of the scene", abstained=True,
                              pool=len(pool))
        pool, tag = inside, f" in {where} of the scene"
    rel = query.relation
    if rel is not None:
        res = _resolve_relation(query, candidates, pool, references or [], presence, min_pixels, frame)
    elif query.size is not None:
        res = _resolve_size(query, candidates, pool, tag=tag)
    elif query.position is not None and query.position.kind == "extreme":
        res = _resolve_extreme(query, candidates, pool, tag=tag)
    elif query.position is not None:
        res = _resolve_region(query, candidates, pool, frame)
    else:
        order = sorted(pool, key=lambda i: _salience(candidates[i]), reverse=True)
        sel = _pick(order, query)
        c = candidates[sel[0]]
        if query.number == "one":
            g = f"glance {c.glance:.2f}, " if c.glance is not None else ""
            rule = f"best match of {len(pool)} {_noun(query, len(pool))} ({g}score {c.score:.2f})"
        else:
            rule = f"all {len(pool)} {noun} candidates"
        res = Resolution(sel, {i: k + 1 for k, i in enumerate(order)}, rule)
    res.pool = res.pool or len(pool)
    if query.count and not res.abstained:  # a count the rule did not apply itself
        asked, found = query.count, len(res.selected)
        if found > asked:
            res.selected = res.selected[:asked]
            res.rule += f"; the first {asked}"
        elif found < asked:
            res.rule += f"; only {found} of the {asked} asked for"
    if bound and not res.abstained:
        res.rule += f"; {bound}"
    if not res.selected and not res.abstained:
        res.abstained = True
    if weak and remarks:
        res.rule += f"; {weak} less confident {noun} candidate{'s' if weak > 1 else ''} not ranked"
    if remarks and query.number == "one" and res.answer is not None and candidates[res.answer].at_edge:
        res.rule += "; it touches the edge of the area searched and may continue beyond it"
    return res


def _resolve_size(query: Query, cands: list[Candidate], pool: list[int],
                  tag: str = "") -> Resolution:
    s = query.size
    key = (lambda i: cands[i].area_m2) if s.measure == "area" else (lambda i: cands[i].length_m)
    word = _SUPERLATIVE[(s.measure, s.order)]
    # "the smaller of the two" with one candidate: the one seen is likely the larger, the smaller
    # was missed ("the larger" with one candidate names it)
    if s.among and s.order == "asc" and query.number == "one" and len(pool) < s.among:
        return Resolution([], rule=f"no {_COMPARATIVE[(s.measure, s.order)]} {query.head or 'object'}: "
                                   f"only {len(pool)} candidate{tag}", abstained=True)
    if s.among:  # "the smaller of the two": the two most prominent (largest) candidates
        total = len(pool)
        pool = sorted(pool, key=key, reverse=True)[: s.among]
        word = _COMPARATIVE[(s.measure, s.order)]
        tag = f"{tag} (the {len(pool)} largest of {total})"
    order = sorted(pool, key=key, reverse=(s.order == "desc"))
    if query.count:  # "the two largest lakes"
        sel = order[: query.count]
        values = ", ".join(format_area(cands[i].area_m2) if s.measure == "area" else format_length(cands[i].length_m)
                           for i in sel)
        return Resolution(sel, {i: k + 1 for k, i in enumerate(order)},
                          f"{len(sel)} {word} of {len(order)} {_noun(query, len(order))}{tag}: {values}")
    if query.number != "one":
        return Resolution(order, {i: k + 1 for k, i in enumerate(order)},
                          f"all {len(order)} {query.head or 'object'} candidates{tag}, ranked {word} first")
    if len(order) < s.rank:
        return Resolution([], rule=f"no {ordinal(s.rank)}{word} {query.head or 'object'}: only {len(order)} "
                                   f"candidate{'s' if len(order) != 1 else ''}{tag}", abstained=True)
    i = order[s.rank - 1]
    value = format_area(cands[i].area_m2) if s.measure == "area" else format_length(cands[i].length_m)
    return Resolution([i], {j: k + 1 for k, j in enumerate(order)},
                      f"{ordinal(s.rank)}{word} of {len(order)} {_noun(query, len(order))}{tag}: {value}")


def _resolve_extreme(query: Query, cands: list[Candidate], pool: list[int], tag: str = "") -> Resolution:
    d = query.position.direction
    if d == "centre":
        key = lambda i: -math.hypot(cands[i].u - 0.5, cands[i].v - 0.5)  # noqa: E731
    else:
        dx, dy = _VEC[d]
        key = lambda i: cands[i].u * dx + cands[i].v * dy  # noqa: E731
    order = sorted(pool, key=key, reverse=True)
    rank = query.position.rank
    if query.number == "one" and len(order) < rank:
        return Resolution([], rule=f"no {ordinal(rank)}{_EXTREME[d]} {query.head or 'object'}: only {len(order)} "
                                   f"candidate{'s' if len(order) != 1 else ''}{tag}", abstained=True)
    sel = _pick(order, query, rank)
    return Resolution(sel, {i: k + 1 for k, i in enumerate(order)},
                      f"{ordinal(rank)}{_EXTREME[d]} of {len(order)} {_noun(query, len(order))}{tag}")


def region_box(frame: Frame, direction: str, cut: float = 1 / 3) -> shapely.Geometry:
    """The region a compass word names (see :func:`in_region`) as a box in the metric frame."""
    w, h = frame.maxx - frame.minx, frame.maxy - frame.miny
    n = round(1 / cut)  # 3 (thirds) or 2 (halves)
    cols = {"west": (0, 1), "east": (n - 1, n)}
    rows = {"north": (n - 1, n), "south": (0, 1)}  # counted from the south
    if direction == "centre":
        c = r = (1, n - 1)
    else:
        parts = direction.split("-")
        r = next((rows[p] for p in parts if p in rows), (0, n))
        c = next((cols[p] for p in parts if p in cols), (0, n))
    return shapely.box(frame.minx + w * c[0] / n, frame.miny + h * r[0] / n,
                       frame.minx + w * c[1] / n, frame.miny + h * r[1] / n)


def _cut(position) -> float:
    """Where a region word cuts the frame: at thirds, or at the middle for a half."""
    return 0.5 if position.kind == "half" else 1 / 3


def _where(position) -> str:
    """"the north-west", "the west half", "the centre": the region a position word names."""
    if position.direction == "centre":
        return "the centre"
    return f"the {position.direction}{' half' if position.kind == 'half' else ''}"


def _resolve_region(query: Query, cands: list[Candidate], pool: list[int], frame: Frame | None) -> Resolution:
    d = query.position.direction
    half = query.position.kind == "half"
    cut = _cut(query.position)
    inside = [i for i in pool if in_region(cands[i], d, cut)]
    where = _where(query.position)
    if inside:
        order = sorted(inside, key=lambda i: _salience(cands[i]), reverse=True)
        rest = [i for i in pool if i not in inside]
        if query.number != "one":
            return Resolution(order, {i: k + 1 for k, i in enumerate(order + rest)},
                              f"all {len(order)} of {len(pool)} {query.head or 'object'} candidates in {where} "
                              f"of the scene")
        middle = [] if half else [i for i in order if in_side_middle(cands[i], d)]
        of_middle = f", {len(middle)} in its middle cell" if middle and len(middle) < len(order) else ""
        order = middle + [i for i in order if i not in middle]
        return Resolution(order[:1], {i: k + 1 for k, i in enumerate(order + rest)},
                          f"in {where} of the scene: {len(order)} of {len(pool)} {query.head or 'object'} "
                          f"candidates{of_middle}, best supported")
    if query.number != "one":
        return Resolution([], rule=f"no {query.head or 'object'} candidate in {where} of the scene",
                          abstained=True)
    if frame is not None:  # the object covering most of the region ("the sea in the south-east")
        box = region_box(frame, d, cut)
        cover = {i: cands[i].metric.intersection(box).area for i in pool}
        order = sorted((i for i in pool if cover[i] > 0), key=lambda i: -cover[i])
        if order:
            return Resolution(order[:1], {i: k + 1 for k, i in enumerate(order)},
                              f"covering most of {where} of the scene ({format_area(cover[order[0]])} of it; "
                              f"no centroid of {len(pool)} {query.head or 'object'} candidates inside it)")
    au, av = region_anchor(d, cut)
    order = sorted(pool, key=lambda i: math.hypot(cands[i].u - au, cands[i].v - av))
    return Resolution(order[:1], {i: k + 1 for k, i in enumerate(order)},
                      f"nearest to {where} of the scene (none of {len(pool)} {query.head or 'object'} "
                      f"candidates inside it)")


def as_anchor(query: Query) -> Query:
    """A reference named by a size adjective ("east of the large lake") is the extreme of its kind."""
    if query.size is None and query.number == "one":
        if LARGE_WORDS.intersection(query.attributes):
            return dataclasses.replace(query, size=Size("area", "desc", 1))
        if SMALL_WORDS.intersection(query.attributes):
            return dataclasses.replace(query, size=Size("area", "asc", 1))
    return query


def _origin(anchor: Candidate, point: shapely.Point) -> shapely.Point:
    """Where a direction is seen from: a compact reference's centroid ("south-west of the lake"),
    an elongated one's nearest point ("east of the river" is across it, not of its middle)."""
    if anchor.elongation >= ELONGATED and not anchor.metric.contains(point):
        return shapely.ops.nearest_points(anchor.metric, point)[0]
    return anchor.metric.centroid


def _resolve_relation(query: Query, cands: list[Candidate], pool: list[int],
                      references: list[tuple[Query, list[Candidate]]], presence: float,
                      min_pixels: int, frame: Frame | None = None) -> Resolution:
    """One relation, or several joined by "and" ("south of the river and east of the lake"): each
    keeps the candidates it allows; those all allow are ranked by the sum of their places."""
    rels = query.relation.chain()
    anchors = []
    for ref_query, ref_cands in references:
        ref = resolve(as_anchor(ref_query), ref_cands, presence, min_pixels, frame=frame, remarks=False)
        if ref.abstained or ref.answer is None:
            return Resolution([], rule=f"the reference \"{ref_query.text}\" was not found ({ref.rule})",
                              abstained=True)
        anchors.append((ref_query, ref_cands[ref.answer], ref.rule))
    if len(anchors) < sum(len(r.references) for r in rels) or not anchors:
        return Resolution([], rule="the relation's reference could not be analysed", abstained=True)
    # the reference itself is not an answer ("the small lake east of the large lake")
    pool = [i for i in pool if not any(_same_object(cands[i], a) for _, a, _ in anchors)]
    if not pool:
        return Resolution([], rule=f"no {query.head or 'object'} candidate other than the reference",
                          abstained=True)
    orders, rules, k = [], [], 0
    for rel in rels:
        got = _relation_order(query, rel, cands, pool, anchors[k:k + len(rel.references)])
        k += len(rel.references)
        if isinstance(got, Resolution):
            return got
        orders.append(got[0])
        rules.append(got[1])
    rule = " and ".join(rules)
    if len(orders) == 1:
        order = orders[0]
    else:
        place = [{i: n for n, i in enumerate(o)} for o in orders]
        both = [i for i in orders[0] if all(i in p for p in place)]
        order = sorted(both, key=lambda i: sum(p[i] for p in place))  # ties: the first relation's order
        rule += f": {len(order)} candidates"
    if not order:
        return Resolution([], rule=f"no {query.head or 'object'} candidate {rule}", abstained=True)
    if query.size is not None:  # "the largest lake east of the river"
        sub = _resolve_size(query, cands, order, tag=f" {rule.split(',')[0]}")
        return sub
    sel = _pick(order, query)
    return Resolution(sel, {i: k + 1 for k, i in enumerate(order)}, rule)


def _relation_order(query: Query, rel, cands: list[Candidate], pool: list[int], anchors: list
                    ) -> tuple[list[int], str] | Resolution:
    """The candidates one relation allows, in its order, and its rule (a Resolution when it cannot
    be applied)."""
    a_query, anchor, a_rule = anchors[0]
    am = anchor.metric
    ref_text = f"\"{a_query.text}\" ({a_rule})"
    dist = {i: cands[i].metric.distance(am) for i in pool}

    if rel.kind == "direction":
        dx, dy = _VEC[rel.direction]
        cosine = {}
        for i in pool:  # the bearing from the reference to the candidate's centroid
            c = cands[i].metric.centroid
            a = _origin(anchor, c)
            vx, vy = c.x - a.x, c.y - a.y
            norm = math.hypot(vx, vy)
            cosine[i] = (vx * dx + vy * dy) / norm if norm > 0 else -1.0
        # the compass sector of the word (22.5 degrees either side); when it is empty, 45 degrees
        for half_angle in SECTOR_HALF_ANGLES:
            chosen = [i for i in pool if cosine[i] >= math.cos(math.radians(half_angle))]
            if chosen:
                break
        order = sorted(chosen, key=lambda i: dist[i])
        rule = f"{rel.direction} of {ref_text}, nearest of {len(order)} within {half_angle:g} degrees"
    elif rel.kind in ("near", "far"):
        order = sorted(pool, key=lambda i: (dist[i], cands[i].metric.centroid.distance(am.centroid)),
                       reverse=rel.kind == "far")
        word = "nearest to" if rel.kind == "near" else "farthest from"
        rule = f"{word} {ref_text} of {len(order)} {query.head or 'object'} candidates"
        if order:
            rule += f": {format_length(dist[order[0]])} away"
    elif rel.kind == "within":  # "within 500 m of the river": by distance between outlines, nearest first
        order = sorted((i for i in pool if dist[i] <= rel.distance_m), key=lambda i: dist[i])
        rule = f"within {format_length(rel.distance_m)} of {ref_text}, {len(order)} of {len(pool)} candidates"
    elif rel.kind == "over":
        inside = {i: cands[i].metric.intersection(am).area for i in pool}
        order = sorted((i for i in pool if dist[i] <= 0.0), key=lambda i: -inside[i])
        rule = f"crossing {ref_text}: {len(order)} candidates"
    elif rel.kind == "in":
        hull = shapely.Polygon(am.exterior) if am.geom_type == "Polygon" else shapely.convex_hull(am)
        order = sorted((i for i in pool if hull.contains(cands[i].metric.representative_point())),
                       key=lambda i: _salience(cands[i]), reverse=True)
        rule = f"inside {ref_text}: {len(order)} candidates"
    elif rel.kind == "between":
        if len(anchors) < 2:
            return Resolution([], rule="\"between\" needs two references", abstained=True)
        line = shapely.LineString([am.centroid, anchors[1][1].metric.centroid])
        pool = [i for i in pool if not _same_object(cands[i], anchors[1][1])]
        order = sorted((i for i in pool if 0.0 < line.project(cands[i].metric.centroid, normalized=True) < 1.0),
                       key=lambda i: cands[i].metric.centroid.distance(line))
        rule = f"between {ref_text} and \"{anchors[1][0].text}\": nearest the line of {len(order)}"
    else:
        return Resolution([], rule=f"unknown relation {rel.kind!r}", abstained=True)

    return order, rule
