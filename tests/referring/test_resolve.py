"""Resolution on synthetic candidate sets: each rule picks the object a person would."""

import dataclasses

import pytest
import shapely

from rrsis_geo.engine.geometry import MetricContext
from rrsis_geo.referring.candidates import Candidate, Frame, build_candidates, equivalent_rectangle
from rrsis_geo.referring.expression import parse
from rrsis_geo.referring.resolve import in_region, region_box, resolve

FRAME = Frame(0.0, 0.0, 3000.0, 3000.0)  # a 3 km scene, metres, north up


def cand(x0, y0, x1, y1, score=0.8, glance=None, geom=None):
    g = geom if geom is not None else shapely.box(x0, y0, x1, y1)
    length, width = equivalent_rectangle(g.area, g.length)
    c = g.centroid
    u, v = FRAME.uv(c.x, c.y)
    return Candidate(geometry=g, metric=g, area_m2=g.area, length_m=length, width_m=width,
                     elongation=length / width, x=c.x, y=c.y, u=u, v=v, score=score, score_max=score,
                     pixels=int(g.area / 100), glance=glance, record={})


# four lakes: big in the south-east, medium in the north-west, small in the north-east, tiny centre
LAKES = [
    cand(2000, 200, 2800, 900),     # 0: 560,000 m2, south-east
    cand(100, 2300, 700, 2900),     # 1: 360,000 m2, north-west
    cand(2400, 2500, 2700, 2800),   # 2: 90,000 m2, north-east
    cand(1400, 1400, 1600, 1600),   # 3: 40,000 m2, centre
]


def answer(text, cands=LAKES, **kw):
    res = resolve(parse(text), cands, **kw)
    return res.selected, res


@pytest.mark.parametrize("text,expected", [
    ("the largest lake", [0]),
    ("the biggest lake", [0]),
    ("the second largest lake", [1]),
    ("the third largest lake", [2]),
    ("the smallest lake", [3]),
    ("the second smallest lake", [2]),
    ("the lake in the north-west corner", [1]),
    ("the lake at the upper right", [2]),
    ("the lake in the south-east", [0]),
    ("the lake in the centre", [3]),
    ("the northernmost lake", [2]),
    ("the westernmost lake", [1]),
    ("the southernmost lake", [0]),
    ("the leftmost lake", [1]),
])
def test_size_and_position_pick_the_named_lake(text, expected):
    selected, res = answer(text)
    assert selected == expected, res.rule
    assert not res.abstained


def test_comparatives_compare_the_two_largest():
    assert answer("the smaller of the two lakes")[0] == [1]  # not the tiny one in the centre
    assert answer("the larger lake")[0] == [0]
    assert answer("the smaller lake")[1].rule == "smaller of 2 lake candidates (the 2 largest of 4): 0.36 km2"


def test_the_smaller_with_one_candidate_abstains_the_larger_names_it():
    selected, res = answer("the smaller of the two lakes", [LAKES[0]])
    assert selected == [] and res.abstained and res.rule == "no smaller lake: only 1 candidate"
    assert answer("the larger of the two lakes", [LAKES[0]])[0] == [0]  # the other one was missed


def test_rule_states_the_measure_in_metric_units():
    _, res = answer("the largest lake")
    assert res.rule == "largest of 4 lake candidates: 0.56 km2"
    _, res = answer("the second smallest lake")
    assert res.rule.startswith("2nd smallest of 4") and res.rule.endswith("90,000 m2")


def test_ordinal_beyond_the_candidates_abstains():
    selected, res = answer("the fifth largest lake")
    assert selected == [] and res.abstained and "only 4" in res.rule


def test_region_without_a_candidate_names_the_nearest_and_says_so():
    cands = [LAKES[0], LAKES[2]]  # nothing in the west third
    selected, res = answer("the lake in the west", cands)
    assert len(selected) == 1 and "none of 2" in res.rule
    # the south-east lake's centroid (u 0.8, v 0.18) is farther from the west side than
    # the north-east one's? both are east; the nearer to (1/6, 1/2) wins
    assert selected == [0] or selected == [1]


def test_region_without_a_centroid_inside_takes_the_object_covering_it():
    sea = cand(0, 0, 0, 0, geom=shapely.box(1500, 0, 3000, 3000).union(shapely.box(900, 0, 1500, 600)))
    pond = cand(2400, 2500, 2500, 2600)
    assert not in_region(sea, "south-east")  # its centroid is in the east third's middle
    selected, res = answer("the sea in the south-east corner", [pond, sea], frame=FRAME)
    assert selected == [1] and res.rule.startswith("covering most of the south-east"), res.rule
    assert region_box(FRAME, "south-east").bounds == (2000.0, 0.0, 3000.0, 1000.0)
    assert region_box(FRAME, "north").bounds == (0.0, 2000.0, 3000.0, 3000.0)


def test_a_reference_with_a_region_word_gets_the_same_fallback():
    """"the pond north of the sea in the south-east": the reference is found the way the main query
    would find it (the sea covering most of the south-east third, not the small lake nearest to
    it), so the pond north of the sea is named, not the one north of the small lake."""
    sea = cand(0, 0, 0, 0, geom=shapely.box(1500, 0, 3000, 3000).union(shapely.box(900, 0, 1500, 600)))
    lake = cand(1900, 900, 1990, 990)  # centroid just outside the south-east third
    ponds = [cand(2200, 2900, 2300, 2990), cand(1900, 1900, 1990, 1990)]  # north of the sea / of the lake
    q = parse("the pond north of the sea in the south-east corner")
    res = resolve(q, ponds, references=[(q.relation.references[0], [sea, lake])], frame=FRAME)
    assert res.selected == [0] and not res.abstained, res.rule


def test_region_prefers_glance_support_then_size():
    a = cand(100, 100, 300, 300, glance=0.1)       # small, south-west
    b = cand(400, 400, 900, 900, glance=0.05)      # larger, south-west
    assert answer("the lake in the south-west", [a, b])[0] == [0]
    a.glance = b.glance = None
    assert answer("the lake in the south-west", [a, b])[0] == [1]  # equal glance: the bigger


def test_a_side_word_names_the_side_middle_before_its_corners():
    """"the lake at the top": of two lakes in the north third, the one in the top row's middle cell,
    even against more glance support in the north-west corner (that one is "at the upper left");
    with none in the middle cell, the third's best supported; "all" keeps the whole third."""
    corner = cand(200, 2400, 500, 2700, glance=0.7)     # north-west corner cell
    middle = cand(1300, 2100, 1600, 2400, glance=0.1)   # the top row's middle cell
    for text in ("the lake at the top of the image", "the lake in the north", "the lake in the upper middle"):
        selected, res = answer(text, [corner, middle])
        assert selected == [1], (text, res.rule)
    assert res.rule == "in the north of the scene: 2 of 2 lake candidates, 1 in its middle cell, best supported"
    assert answer("the lake in the north", [corner, LAKES[2]])[0] == [0]  # both in corners: glance
    assert sorted(answer("all the lakes in the north", [corner, middle])[0]) == [0, 1]
    west_middle = cand(100, 1300, 400, 1600, glance=0.1)
    assert answer("the lake on the left side", [corner, west_middle])[0] == [1]


def test_a_count_names_that_many_under_the_rule():
    selected, res = answer("the two largest lakes")
    assert selected == [0, 1] and res.rule == "2 largest of 4 lake candidates: 0.56 km2, 0.36 km2"
    assert answer("the 3 smallest lakes")[0] == [3, 2, 1]
    selected, res = answer("the two northernmost lakes")
    assert selected == [2, 1] and res.rule.endswith("; the first 2"), res.rule
    selected, res = answer("the five largest lakes")
    assert selected == [0, 1, 2, 3] and res.rule.endswith("only 4 of the 5 asked for"), res.rule
    weak = [*LAKES[:3], cand(100, 100, 1900, 1900, score=0.3)]  # a large weak candidate
    assert answer("the two largest lakes", weak)[0] == [0, 1]  # a count chooses among the confident ones


def test_a_measured_bound_filters_before_the_rule():
    selected, res = answer("lakes larger than 10 ha")
    assert sorted(selected) == [0, 1] and res.rule.endswith("larger than 0.10 km2: 2 of 4"), res.rule
    assert answer("all the lakes smaller than 5 ha")[0] == [3]
    assert answer("the smallest lake larger than 5 ha")[0] == [2]  # 90,000 m2, not the 40,000 m2 one
    assert answer("the lake over 20 ha in the north")[0] == [1]
    selected, res = answer("lakes larger than 100 ha")
    assert selected == [] and res.abstained and res.rule == "no lake candidate larger than 1.00 km2 (4 measured)"
    assert answer("rivers longer than 500 m", [LAKES[0], LAKES[3]])[0] == [0]  # 0.8 km long, the other 0.2 km


def test_a_region_narrows_a_size_or_an_extreme():
    """"the largest lake in the north" is the north's largest (1), not the scene's (0, south-east)."""
    selected, res = answer("the largest lake in the north", frame=FRAME)
    assert selected == [1] and res.rule == "largest of 2 lake candidates in the north of the scene: 0.36 km2"
    assert answer("the smallest lake in the east", frame=FRAME)[0] == [2]
    assert answer("the northernmost lake in the west", frame=FRAME)[0] == [1]  # not 2, north-east
    assert answer("the two largest lakes in the north", frame=FRAME)[0] == [1, 2]
    selected, res = answer("the largest lake in the south-west", frame=FRAME)
    assert selected == [] and res.abstained and res.rule == "no lake candidate in the south-west of the scene"
    # none centred in the region: one reaching into it
    long_one = cand(100, 800, 400, 1600)  # centroid v 0.4 (the middle third); reaches y 800 (the south's)
    assert not in_region(long_one, "south")
    assert answer("the largest lake in the south", [long_one, LAKES[1]], frame=FRAME)[0] == [0]


def test_within_a_distance_of_a_reference():
    """Distances between outlines: the river (x 1300-1500) is 0 m from lake 3, 500 m from 0,
    600 m from 1, 900 m from 2."""
    river = cand(1300, 0, 1500, 3000)

    def within(text):
        q = parse(text)
        res = resolve(q, LAKES, references=[(q.relation.references[0], [river])], frame=FRAME)
        return res.selected, res

    assert within("lakes within 800 m of the river")[0] == [3, 0, 1]  # nearest first
    assert within("the largest lake within 550 m of the river")[0] == [0]
    selected, res = within("the lake less than 100 m from the river")
    assert selected == [3] and "within 100 m of \"the river\"" in res.rule
    assert within("all the lakes within 2 km of the river")[0] == [3, 0, 1, 2]
    assert within("lakes within 0.5 miles of the river")[0] == [3, 0, 1]  # 805 m


def test_relations_joined_by_and_keep_what_both_allow():
    """"the lake north of the sea and near the river": among the lakes north of the sea, the one
    nearest the river, not the one nearest the sea."""
    sea = cand(0, 0, 3000, 300)                    # along the south edge
    river = cand(2850, 0, 2950, 3000)              # along the east edge
    lakes = [cand(200, 500, 400, 700),             # 0: just north of the sea, far from the river
             cand(2500, 1500, 2700, 1700),         # 1: north of the sea, 150 m from the river
             cand(1400, 2600, 1600, 2800)]         # 2: far north

    def joined(text, cands):
        q = parse(text)
        refs = [(ref, [sea] if ref.head == "sea" else [river]) for rel in q.relation.chain() for ref in rel.references]
        return resolve(q, cands, references=refs, frame=FRAME)

    res = joined("the lake north of the sea and near the river", lakes)
    assert res.selected == [1] and " and nearest to \"the river\"" in res.rule, res.rule
    assert joined("the lake north of the sea and west of the river", [lakes[0], cand(2960, 500, 2990, 600)]).selected == [0]
    res = joined("the lake north of the sea and east of the river", lakes)  # nothing is east of the river
    assert res.abstained and res.selected == []


def test_an_extreme_takes_its_place():
    """West to east the lakes are 1, 3, 0, 2."""
    selected, res = answer("the second lake from the left")
    assert selected == [3] and res.rule == "2nd westernmost of 4 lake candidates"
    assert answer("the third lake from the left")[0] == [0]
    assert answer("the second northernmost lake")[0] == [1]
    selected, res = answer("the fifth lake from the left")
    assert selected == [] and res.abstained and res.rule == "no 5th westernmost lake: only 4 candidates"


def test_a_half_is_half_the_frame():
    """The centre lake (u 0.5) is in no third's side; at 0.45 it is in the western half only."""
    west_of_middle = cand(1250, 1400, 1450, 1600)  # centroid u 0.45, v 0.5
    assert not in_region(west_of_middle, "west") and in_region(west_of_middle, "west", cut=0.5)
    selected, res = answer("the lake in the western half", [LAKES[0], west_of_middle])
    assert selected == [1] and res.rule.startswith("in the west half of the scene"), res.rule
    assert answer("the lake in the west", [LAKES[0], west_of_middle])[0] == [1]  # nearest the west third
    assert answer("the lake in the west", [LAKES[0], west_of_middle])[1].rule.startswith("nearest to the west")
    assert region_box(FRAME, "south", cut=0.5).bounds == (0.0, 0.0, 3000.0, 1500.0)


def test_longest_uses_the_length_along_the_object():
    river = shapely.LineString([(100, 1500), (800, 1700), (1500, 1300), (2900, 1500)]).buffer(30)
    rivers = [cand(0, 0, 0, 0, geom=river), cand(1000, 2500, 1600, 2700)]
    assert answer("the longest river", rivers)[0] == [0]
    length = rivers[0].length_m
    assert 2900 < length < 3600  # the course, not the bounding box diagonal alone


def test_all_in_region_selects_every_candidate_there():
    selected, res = answer("all the lakes in the north")
    assert sorted(selected) == [1, 2]
    selected, _ = answer("all the lakes")
    assert sorted(selected) == [0, 1, 2, 3]


def test_relation_direction_and_nearest():
    river = cand(1300, 0, 1500, 3000)  # a north-south strip through the middle
    refs = [river]
    lakes = [cand(200, 1000, 500, 1300), cand(1800, 1000, 2000, 1200), cand(2600, 1000, 2900, 1300)]
    q = parse("the lake east of the river")
    res = resolve(q, lakes, references=[(q.relation.references[0], refs)])
    assert res.selected == [1], res.rule  # east of the river, nearest first
    q = parse("the lake west of the river")
    assert resolve(q, lakes, references=[(q.relation.references[0], refs)]).selected == [0]
    q = parse("the lake nearest to the river")
    assert resolve(q, lakes, references=[(q.relation.references[0], refs)]).selected == [1]
    q = parse("the lake farthest from the river")
    assert resolve(q, lakes, references=[(q.relation.references[0], refs)]).selected == [2]


def test_direction_from_a_compact_reference_is_its_compass_sector():
    lake = cand(1000, 1000, 1600, 1600)  # compact: seen from its centroid (1300, 1300)
    ponds = [cand(1000, 200, 1100, 300),   # due south of the centroid, nearer to the lake's outline
             cand(200, 200, 400, 400)]     # south-west, on the diagonal
    q = parse("the pond south-west of the lake")
    res = resolve(q, ponds, references=[(q.relation.references[0], [lake])])
    assert res.selected == [1] and "within 22.5 degrees" in res.rule, res.rule
    q = parse("the pond south of the lake")
    assert resolve(q, ponds, references=[(q.relation.references[0], [lake])]).selected == [0]


def test_relation_to_a_same_category_anchor_excludes_the_anchor():
    q = parse("the small lake east of the large lake")
    lakes = [cand(500, 500, 1500, 1500), cand(1700, 800, 1800, 900), cand(100, 800, 200, 900)]
    res = resolve(q, lakes, references=[(q.relation.references[0], lakes)])
    assert res.selected == [1], res.rule


def test_over_and_in_and_between():
    river = cand(0, 1400, 3000, 1600)  # west-east strip
    bridges = [cand(1000, 1350, 1050, 1650), cand(2000, 2000, 2050, 2300)]
    q = parse("the bridge over the river")
    assert resolve(q, bridges, references=[(q.relation.references[0], [river])]).selected == [0]

    lake = shapely.box(500, 500, 2500, 2500).difference(shapely.box(1400, 1400, 1600, 1600))
    islands = [cand(1400, 1400, 1600, 1600), cand(2700, 2700, 2900, 2900)]
    q = parse("the island in the lake")
    res = resolve(q, islands, references=[(q.relation.references[0], [cand(0, 0, 0, 0, geom=lake)])])
    assert res.selected == [0], res.rule

    west, east = cand(0, 1400, 200, 1600), cand(2800, 1400, 3000, 1600)
    houses = [cand(1400, 1450, 1500, 1550), cand(1400, 2600, 1500, 2700), cand(100, 100, 200, 200)]
    q = parse("the house between the lake and the pond")
    refs = [(q.relation.references[0], [west]), (q.relation.references[1], [east])]
    assert resolve(q, houses, references=refs).selected == [0]


def test_missing_reference_abstains_with_the_reason():
    q = parse("the lake east of the river")
    res = resolve(q, LAKES, references=[(q.relation.references[0], [])])
    assert res.abstained and res.selected == [] and "the river" in res.rule


def test_presence_and_size_filters_and_empty_maps():
    weak = [cand(0, 0, 100, 100, score=0.2), cand(200, 200, 300, 300, score=0.9)]
    assert answer("the lake", weak, presence=0.5)[0] == [1]
    selected, res = answer("the lake", weak, presence=0.95)
    assert selected == [] and res.abstained and "no confident match" in res.rule
    selected, res = answer("the largest lake", [])
    assert selected == [] and res.abstained
    speck = cand(0, 0, 10, 10)  # 1 pixel of 10 m
    assert answer("the smallest lake", [speck, LAKES[3]], min_pixels=16)[0] == [1]


def test_regions_are_thirds_of_the_frame():
    c = cand(100, 2800, 200, 2900)
    assert in_region(c, "north-west") and in_region(c, "north") and in_region(c, "west")
    assert not in_region(c, "centre") and not in_region(c, "south") and not in_region(c, "east")


def test_candidates_in_a_geographic_crs_are_measured_in_metres():
    metric = MetricContext("EPSG:4326", (10.0, 50.0, 10.1, 50.1))
    g = shapely.box(10.0, 50.0, 10.01, 50.01)  # about 716 m x 1112 m
    frame = Frame.of(metric.to_metric(shapely.box(10.0, 50.0, 10.1, 50.1)))
    (c,) = build_candidates([{"geometry": g, "area_m2": metric.area_m2(g), "score": 0.9,
                              "score_max": 0.95, "pixels": 100}], metric, frame)
    assert c.area_m2 == pytest.approx(716 * 1112, rel=0.02)
    assert c.metric.area == pytest.approx(c.area_m2, rel=0.01)
    # near the frame's south-west corner (the UTM frame is a slightly turned trapezoid)
    assert c.u == pytest.approx(0.05, abs=0.025) and c.v == pytest.approx(0.05, abs=0.025)


def test_a_candidate_on_the_frame_edge_is_flagged_and_its_answer_says_so():
    """The largest lake cut by the scene's edge may be larger than measured: the answer says so."""
    metric = MetricContext("EPSG:32633", (0.0, 0.0, 3000.0, 3000.0))
    footprint = shapely.box(0.0, 0.0, 3000.0, 3000.0)
    rec = lambda g: {"geometry": g, "area_m2": g.area, "score": 0.9, "score_max": 0.99,  # noqa: E731
                     "pixels": int(g.area / 100)}
    edge, inner = build_candidates([rec(shapely.box(2000, 0, 3000, 900)), rec(shapely.box(100, 2000, 600, 2500))],
                                   metric, Frame.of(footprint), footprint)
    assert edge.at_edge and not inner.at_edge
    selected, res = answer("the largest lake", [edge, inner])
    assert selected == [0] and res.rule.endswith("; it touches the edge of the area searched and may continue beyond it")
    assert not answer("the smallest lake", [edge, inner])[1].rule.endswith("beyond it")
    aoi = shapely.box(500, 500, 2500, 2500)  # an AOI: its outline is the edge (within a pixel)
    (near,) = build_candidates([rec(shapely.box(1500, 505, 1800, 800))], metric, Frame.of(aoi), aoi)
    assert near.at_edge


def test_one_referent_is_chosen_among_the_confident_candidates():
    # a large weak detection (mean probability well below the others', peak still above presence)
    weak = dataclasses.replace(cand(100, 100, 1300, 1300, score=0.6), score_max=0.99)
    cands = [*(dataclasses.replace(c, score_max=0.99) for c in LAKES), weak]
    selected, res = answer("the largest lake", cands, presence=0.95)
    assert selected == [0], res.rule
    assert "of 4 lake candidates" in res.rule  # the weak one is not among those ranked
    assert res.rule.endswith("; 1 less confident lake candidate not ranked")
    assert answer("the southernmost lake", cands, presence=0.95)[0] == [0]
    # "all" still answers every candidate that passes the presence test
    assert sorted(answer("all the lakes", cands, presence=0.95)[0]) == [0, 1, 2, 3, 4]
    # a candidate as confident as the best is still a candidate
    weak.score = 0.8
    assert answer("the largest lake", cands, presence=0.95)[0] == [4]


def test_a_relation_says_its_unranked_candidates_once():
    weak = dataclasses.replace(cand(100, 100, 400, 400, score=0.5), score_max=0.99)
    cands = [*(dataclasses.replace(c, score_max=0.99) for c in LAKES), weak]
    ref = parse("the lake nearest to the largest lake").relation.references[0]
    res = resolve(parse("the lake nearest to the largest lake"), cands, presence=0.95, references=[(ref, cands)])
    assert res.selected == [3], res.rule  # the centre lake, 640 m from the largest
    assert res.rule.count("less confident") == 1 and res.rule.endswith("1 less confident lake candidate not ranked")
