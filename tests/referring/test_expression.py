"""Referring-expression analysis: a table of everyday wordings, and every wording the demo generator makes."""

from __future__ import annotations

import pytest

from rrsis_geo.referring.expression import (
    COMPOUND_NOUNS,
    Limit,
    Position,
    Query,
    Size,
    normalise_noun,
    parse,
    singular,
)
from scripts.demo_data import expressions as ex

AREA_DESC, AREA_ASC = Size("area", "desc"), Size("area", "asc")
# comparatives compare two: "the larger lake", "the smaller of the two ponds"
LARGER, SMALLER = Size("area", "desc", among=2), Size("area", "asc", among=2)
# words that must never reach a referent (the phrase the model is asked for the category map)
OPERATOR_WORDS = {"largest", "biggest", "larger", "bigger", "smallest", "tiniest", "smaller", "less", "second",
                  "northernmost", "topmost", "furthest", "closest", "nearest", "next", "north", "south", "east",
                  "west", "centre", "middle", "left", "right", "upper", "lower", "corner", "image", "lying",
                  "located", "two"}


def region(d: str) -> Position:
    return Position("region", d)


def extreme(d: str) -> Position:
    return Position("extreme", d)


def rel(kind: str, *heads: str | None, direction: str | None = None) -> tuple:
    """A relation as (kind, direction, heads of its references)."""
    return kind, direction, heads


def relation_of(q: Query) -> tuple | None:
    r = q.relation
    return None if r is None else (r.kind, r.direction, tuple(ref.head for ref in r.references))


# text -> the fields it must give (fields left out are not checked; size/position/relation are
# always checked and default to None)
CASES: list[tuple[str, dict]] = [
    # everyday analyst sentences
    ("the bridge over the river", dict(head="bridge", referent="the bridge", relation=rel("over", "river"))),
    ("the town", dict(head="town", referent="the town", number="one", attributes=())),
    ("the clouds", dict(head="cloud", referent="the clouds", number="plural")),
    ("all the green fields", dict(head="green field", referent="all the green fields", number="all", attributes=())),
    ("the biggest building in the north", dict(head="building", referent="the building", size=AREA_DESC,
                                               position=region("north"))),
    ("the river", dict(head="river", referent="the river", number="one", unparsed=())),
    ("the longest river", dict(head="river", size=Size("length", "desc"), referent="the river")),
    ("the shortest river", dict(head="river", size=Size("length", "asc"))),
    ("the lake nearest to the town", dict(head="lake", referent="the lake", relation=rel("near", "town"))),
    ("the second smallest pond", dict(head="pond", size=Size("area", "asc", 2), referent="the pond")),
    ("the largest lake", dict(head="lake", size=AREA_DESC, number="one", referent="the lake")),
    ("lakes", dict(head="lake", number="plural", referent="lakes")),
    ("all the lakes", dict(head="lake", number="all", referent="all the lakes")),
    # size
    ("the third largest building", dict(head="building", size=Size("area", "desc", 3))),
    ("the 2nd biggest lake", dict(head="lake", size=Size("area", "desc", 2))),
    ("the tiniest pond", dict(head="pond", size=AREA_ASC)),
    ("the widest river", dict(head="river", size=AREA_DESC)),
    ("the larger lake", dict(head="lake", size=LARGER, number="one")),
    ("the larger of the two", dict(head=None, size=LARGER, number="one")),
    ("the lake with the largest area", dict(head="lake", size=AREA_DESC, referent="the lake")),
    ("the lake with the longest length", dict(head="lake", size=Size("length", "desc"))),
    ("the biggest one", dict(head=None, size=AREA_DESC, number="one")),
    ("the largest of the fields", dict(head="field", size=AREA_DESC, number="one")),
    ("largest of the lakes", dict(head="lake", size=AREA_DESC, number="one")),
    ("the second largest of the lakes", dict(head="lake", size=Size("area", "desc", 2), number="one")),
    ("the second largest green field", dict(head="green field", attributes=(), size=Size("area", "desc", 2))),
    ("the less extensive bare plot", dict(head="bare plot", size=SMALLER)),
    ("largest lake", dict(head="lake", size=AREA_DESC, referent="lake")),
    ("The LARGEST lake.", dict(text="The LARGEST lake.", head="lake", size=AREA_DESC, referent="the lake")),
    ("the lake that is the largest", dict(head="lake", size=AREA_DESC, referent="the lake")),
    # position: regions
    ("the lake located in the north-west corner of the image", dict(head="lake", referent="the lake",
                                                                    position=region("north-west"))),
    ("the field at the upper left", dict(head="field", position=region("north-west"))),
    ("the lake in the centre", dict(head="lake", position=region("centre"))),
    ("the pond on the left side", dict(head="pond", position=region("west"))),
    ("the lake at the top of the image", dict(head="lake", position=region("north"))),
    ("the lake in the south", dict(head="lake", position=region("south"))),
    ("the field in the bottom-right corner", dict(head="field", position=region("south-east"))),
    ("the lake in the middle of the image", dict(head="lake", position=region("centre"))),
    ("the lake in the upper middle", dict(head="lake", position=region("north"))),
    ("the lake to the east", dict(head="lake", position=region("east"), relation=None)),
    ("the field in the Northwest", dict(head="field", position=region("north-west"))),
    ("all the lakes in the west", dict(head="lake", number="all", referent="all the lakes", position=region("west"))),
    ("in the north", dict(head=None, position=region("north"))),
    ("the central lake", dict(head="lake", position=region("centre"))),
    # position: extremes
    ("the northernmost lake", dict(head="lake", position=extreme("north"), referent="the lake")),
    ("the leftmost pond", dict(head="pond", position=extreme("west"))),
    ("the lake furthest east", dict(head="lake", position=extreme("east"), relation=None)),
    ("the topmost field", dict(head="field", position=extreme("north"))),
    ("the bottommost field", dict(head="field", position=extreme("south"))),
    ("the easternmost of the lakes", dict(head="lake", position=extreme("east"), number="one")),
    ("the furthest north lake", dict(head="lake", position=extreme("north"), relation=None)),
    ("the most northern lake", dict(head="lake", position=extreme("north"))),
    ("the upper lake", dict(head="lake", position=extreme("north"))),
    # relations
    ("the small lake east of the large lake", dict(head="lake", attributes=("small",), referent="the small lake",
                                                   relation=rel("direction", "lake", direction="east"))),
    ("the lake to the north-west of the town", dict(head="lake", relation=rel("direction", "town",
                                                                             direction="north-west"))),
    ("the lake lying south of the river", dict(head="lake", relation=rel("direction", "river", direction="south"))),
    ("the lake north-east of the forest", dict(head="lake", relation=rel("direction", "forest",
                                                                         direction="north-east"))),
    ("the lake to the left of the river", dict(head="lake", relation=rel("direction", "river", direction="west"))),
    ("the field closest to the river", dict(head="field", relation=rel("near", "river"))),
    ("the nearest lake to the town", dict(head="lake", referent="the lake", relation=rel("near", "town"))),
    ("the lake next to the river", dict(head="lake", relation=rel("near", "river"))),
    ("the house by the river", dict(head="house", relation=rel("near", "river"))),
    ("the lake adjacent to the road", dict(head="lake", relation=rel("near", "road"))),
    ("the road running along the river", dict(head="road", relation=rel("near", "river"))),
    ("the house close to the lake", dict(head="house", relation=rel("near", "lake"))),
    ("the lake beside the road", dict(head="lake", relation=rel("near", "road"))),
    ("the lake furthest from the sea", dict(head="lake", relation=rel("far", "sea"), position=None)),
    ("the farthest lake from the sea", dict(head="lake", referent="the lake", relation=rel("far", "sea"))),
    ("the lake far from the town", dict(head="lake", relation=rel("far", "town"))),
    ("the bridge across the river", dict(head="bridge", relation=rel("over", "river"))),
    ("the bridge that crosses the river", dict(head="bridge", referent="the bridge", relation=rel("over", "river"))),
    ("the bridge spanning the river", dict(head="bridge", relation=rel("over", "river"))),
    ("the island in the lake", dict(head="island", referent="the island", relation=rel("in", "lake"))),
    ("the boat on the river", dict(head="boat", relation=rel("in", "river"))),
    ("the island inside the lake", dict(head="island", relation=rel("in", "lake"))),
    ("the island in the middle of the lake", dict(head="island", relation=rel("in", "lake"), position=None)),
    ("the buses in the car park", dict(head="bus", number="plural", relation=rel("in", "car park"))),
    ("the house between the river and the road", dict(head="house", relation=rel("between", "river", "road"))),
    ("the lake east of the river in the north", dict(head="lake", relation=rel("direction", "river",
                                                                              direction="east"))),
    ("east of the largest lake", dict(head=None, referent="", relation=rel("direction", "lake", direction="east"))),
    # category, number and the frame
    ("the lake in the image", dict(head="lake", referent="the lake", unparsed=())),
    ("the lake of the image", dict(head="lake", referent="the lake")),
    ("the pond shown in the picture", dict(head="pond", referent="the pond")),
    ("the only lake", dict(head="lake", number="one", attributes=("only",))),
    ("every lake", dict(head="lake", number="all")),
    ("each pond", dict(head="pond", number="all")),
    ("all lakes", dict(head="lake", number="all")),
    ("two lakes", dict(head="lake", number="plural")),
    ("some fields", dict(head="field", number="plural")),
    ("each of the lakes", dict(head="lake", number="all")),
    ("one of the lakes", dict(head="lake", number="one")),
    ("every water body in the image", dict(head="water body", number="all", referent="every water body")),
    ("all the bodies of water", dict(head="body of water", number="all")),
    ("the larger of the two bodies of water", dict(head="body of water", size=LARGER, number="one")),
    ("the tennis courts", dict(head="tennis court", number="plural")),
    ("the small green lake", dict(head="lake", attributes=("small", "green"), referent="the small green lake")),
    ("the bare field", dict(head="bare field", attributes=())),
    ("the lake with an island", dict(head="lake", referent="the lake with an island",
                                     unparsed=("with", "an", "island"))),
    ("the muddy lake", dict(head="lake", attributes=("muddy",), unparsed=("muddy",))),
    ("it", dict(head=None, referent="it", number="one")),
    ("the ones", dict(head=None, number="plural")),
    ("qwerty zzz", dict(head="zzz", referent="qwerty zzz", unparsed=("qwerty",))),
    ("  the   lake\tin the  north ", dict(text="the lake in the north", position=region("north"))),
    # counts, measured bounds, "above" / "below"
    ("the two largest lakes", dict(head="lake", number="plural", size=AREA_DESC, count=2)),
    ("the 3 northernmost fields", dict(head="field", number="plural", position=extreme("north"), count=3)),
    ("the largest lake", dict(head="lake", number="one", size=AREA_DESC, count=None)),
    ("lakes larger than 2 ha", dict(head="lake", number="plural", limit=Limit("area", ">", 20_000.0))),
    ("the lakes of more than 1.5 km²", dict(head="lake", limit=Limit("area", ">", 1_500_000.0))),
    ("all the ponds smaller than 5,000 m2", dict(head="pond", number="all", limit=Limit("area", "<", 5_000.0))),
    ("fields with an area of at least 10ha", dict(head="field", limit=Limit("area", ">", 100_000.0))),
    ("rivers longer than 2 km", dict(head="river", limit=Limit("length", ">", 2_000.0))),
    ("the lake over 3 acres in the north", dict(head="lake", position=region("north"),
                                                limit=Limit("area", ">", 3 * 4046.8564224))),
    ("the lake over the river", dict(head="lake", relation=rel("over", "river"), limit=None)),
    ("the lake above the river", dict(head="lake", relation=rel("direction", "river", direction="north"))),
    ("the pond below the large lake", dict(head="pond", relation=rel("direction", "lake", direction="south"))),
    # compass abbreviations; "nearest the top" / "closest to the centre" are extremes, not references
    ("the lake in the NE", dict(head="lake", position=region("north-east"))),
    ("the largest lake in the SW quadrant", dict(head="lake", size=AREA_DESC, position=region("south-west"))),
    ("the lake N of the river", dict(head="lake", relation=rel("direction", "river", direction="north"))),
    ("the lake closest to the centre", dict(head="lake", position=extreme("centre"), relation=None)),
    ("the field nearest the top edge", dict(head="field", position=extreme("north"), relation=None)),
    ("the lake nearest to the north lake", dict(head="lake", position=None, relation=rel("near", "lake"))),
    ("the lake in the lower half", dict(head="lake", position=Position("half", "south"))),
    ("the second lake from the left", dict(head="lake", referent="the lake", position=Position("extreme", "west", 2))),
    ("the second northernmost field", dict(head="field", referent="the field", position=Position("extreme", "north", 2))),
    ("show me the largest lake", dict(head="lake", referent="the lake", size=AREA_DESC)),
    ("Please find all the lakes", dict(head="lake", referent="all the lakes", number="all")),
    ("where is the sea?", dict(head="sea", referent="the sea")),
    ("the largest lake please", dict(head="lake", referent="the lake", size=AREA_DESC)),
    ("the largest lake within 1 km of the river", dict(head="lake", size=AREA_DESC, relation=rel("within", "river"))),
    ("fields less than 200 metres from the river", dict(head="field", limit=None, relation=rel("within", "river"))),
    ("the northernmost lake in the west", dict(head="lake", position=extreme("north"), within=region("west"))),
    ("the lake in the west furthest north", dict(head="lake", position=extreme("north"), within=region("west"))),
    ("the largest lake in the north", dict(head="lake", size=AREA_DESC, position=region("north"), within=None)),
    ("the field in the western half of the image", dict(head="field", position=Position("half", "west"))),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0] for c in CASES])
def test_parse_table(text, expected):
    q = parse(text)
    expected = {"size": None, "position": None, "relation": None, **expected}
    got = {k: relation_of(q) if k == "relation" else getattr(q, k) for k in expected}
    assert got == expected


def test_table_is_large_enough():
    assert len(CASES) >= 60


def test_operator_words_never_reach_the_referent():
    for text, _ in CASES:
        q = parse(text)
        words = set(q.referent.split()) - {"two"}  # "two lakes" is a number, not an operator
        assert not words & (OPERATOR_WORDS | {"over", "between"}), text


def test_relations_joined_by_and():
    chain = parse("the field south of the river and east of the lake").relation.chain()
    assert [(r.kind, r.direction, [q.head for q in r.references]) for r in chain] == [
        ("direction", "south", ["river"]), ("direction", "east", ["lake"])]
    assert len(parse("the lake between the river and the sea").relation.chain()) == 1
    assert [q.text for q in parse("the lake east of the river and the sea").relation.references] == [
        "the river and the sea"]  # no second relation: one reference phrase, as before


def test_a_distance_is_read_in_metres():
    assert parse("lakes within 500 m of the sea").relation.distance_m == 500.0
    assert parse("the field less than 1.5 km away from the lake").relation.distance_m == 1500.0
    assert parse("ponds within 2 miles of the river").relation.distance_m == pytest.approx(3218.688)


def test_operators_property():
    assert parse("the largest lake in the north").operators == ["size", "position"]
    assert parse("the lake east of the river").operators == ["relation"]
    assert parse("the lake").operators == []


def test_reference_carries_its_own_operators():
    ref = parse("east of the largest lake").relation.references[0]
    assert (ref.head, ref.size, ref.referent) == ("lake", AREA_DESC, "the lake")
    ref = parse("the lake south of the river in the north").relation.references[0]
    assert (ref.head, ref.position) == ("river", region("north"))
    assert parse("the small lake east of the large lake").relation.references[0].attributes == ("large",)


def test_empty_raises_but_nonsense_does_not():
    for blank in ("", "   ", "\t\n"):
        with pytest.raises(ValueError, match="empty expression"):
            parse(blank)
    q = parse("?!")
    assert (q.head, q.referent, q.operators) == (None, "", [])


@pytest.mark.parametrize("plural,single", [
    ("lakes", "lake"), ("ponds", "pond"), ("bodies of water", "body of water"), ("ferries", "ferry"),
    ("buses", "bus"), ("boxes", "box"), ("grass", "grass"), ("glass", "glass"),
    ("fields of bare soil", "field of bare soil"), ("sea", "sea"), ("series", "series"), ("ships", "ship"),
    ("churches", "church"), ("dunes", "dune"), ("trees", "tree"), ("houses", "house"), ("courses", "course"),
    ("green fields", "green field"), ("stretches of open water", "stretch of open water"),
])
def test_singular(plural, single):
    assert singular(plural) == single


def test_normalise_noun():
    assert normalise_noun("  Bodies   of WATER ") == "body of water"
    assert normalise_noun("Lakes") == "lake"


def test_compound_nouns():
    assert len(COMPOUND_NOUNS) == len(set(COMPOUND_NOUNS))
    sizes = [len(c.split()) for c in COMPOUND_NOUNS]
    assert sizes == sorted(sizes, reverse=True)
    for noun in ("body of water", "bodies of water", "stretch of open water", "field of green crops", "sea area",
                 "ground track field", "parking lot", "sandy beach"):
        assert noun in COMPOUND_NOUNS
    for noun in COMPOUND_NOUNS:
        q = parse(f"the largest {noun}")
        assert (q.head, q.attributes, q.size) == (normalise_noun(noun), (), AREA_DESC), noun


# --- every wording the demo generator makes -------------------------------------------------------

NOUN_WORDS = sorted({n for phrases in ex.NOUNS.values() for n in phrases})
# anchors a relation names: (text, its head, its size)
ANCHORS = [("the river", "river", None), ("the largest lake", "lake", AREA_DESC), ("the large lake", "lake", None),
           ("the larger green field", "green field", LARGER), ("the largest sea area", "sea area", AREA_DESC),
           ("the bare field", "bare field", None)]


def head_of(noun: str) -> tuple[str, tuple[str, ...]]:
    """Expected head and attributes of a generator noun: "small lake" is a lake that is small."""
    first, _, rest = noun.partition(" ")
    return (rest, (first,)) if first == "small" else (noun, ())


def generated() -> list[tuple[str, str, dict]]:
    """(template table, text, expected fields) for every template, noun and fill."""
    out = []

    def add(table: str, text: str, **expected):
        out.append((table, text, {"noun": noun, **expected}))

    for noun in NOUN_WORDS:
        nouns = dict(n=noun, ns=ex.plural(noun))
        for t in ex.CATEGORY_ONLY:
            add("CATEGORY_ONLY", t.format(**nouns), number="one")
        for t in ex.CATEGORY_SET:
            add("CATEGORY_SET", t.format(**nouns), number="all")
        for (col, row), cells in ex.CELLS.items():
            for cell in cells:
                for t in ex.POSITION:
                    add("POSITION", t.format(cell=cell, **nouns), position=region(ex.CELL_NAMES[col, row]))
        for key, (_, _, templates) in ex.EXTREMES.items():
            for t in templates:
                add("EXTREMES", t.format(**nouns), position=extreme(key))
        for name, templates, size in [("SIZE_LARGEST", ex.SIZE_LARGEST, AREA_DESC),
                                      ("SIZE_LARGER", ex.SIZE_LARGER, LARGER),
                                      ("SIZE_SMALLEST", ex.SIZE_SMALLEST, AREA_ASC),
                                      ("SIZE_SMALLER", ex.SIZE_SMALLER, SMALLER),
                                      ("SIZE_SECOND", ex.SIZE_SECOND, Size("area", "desc", 2))]:
            for t in templates:
                add(name, t.format(**nouns), size=size, number="one")
        for anchor, a_head, a_size in ANCHORS:
            ref = (a_head, a_size)
            for d in ex.SECTORS:
                for adj in ("", "small "):
                    if adj and noun.startswith(adj):
                        continue  # the generator never says "the small small lake"
                    for t in ex.RELATION_DIR:
                        add("RELATION_DIR", t.format(adj=adj, d=d, a=anchor, **nouns),
                            relation=("direction", d, ref), adj=adj.strip())
            for t in ex.RELATION_NEAR:
                add("RELATION_NEAR", t.format(a=anchor, **nouns), relation=("near", None, ref))
    return out


GENERATED = generated()


def test_generator_covers_every_table():
    tables = {t for t, _, _ in GENERATED}
    assert tables == {"CATEGORY_ONLY", "CATEGORY_SET", "POSITION", "EXTREMES", "SIZE_LARGEST", "SIZE_LARGER",
                      "SIZE_SMALLEST", "SIZE_SMALLER", "SIZE_SECOND", "RELATION_DIR", "RELATION_NEAR"}
    assert len(GENERATED) > 5000


@pytest.mark.parametrize("table", sorted({t for t, _, _ in GENERATED}))
def test_generator_wordings(table):
    failures = []
    for _, text, exp in (g for g in GENERATED if g[0] == table):
        q = parse(text)
        head, attributes = head_of(normalise_noun(exp["noun"]))
        if exp.get("adj"):
            attributes = (exp["adj"],)
        if text.startswith("the only "):
            attributes = ("only", *attributes)
        got = dict(head=q.head, attributes=q.attributes, size=q.size, position=q.position)
        want = dict(head=head, attributes=attributes, size=exp.get("size"), position=exp.get("position"))
        if "number" in exp:
            got["number"], want["number"] = q.number, exp["number"]
        if q.relation is None:
            got["relation"] = None
        else:
            ref = q.relation.references[0]
            got["relation"] = (q.relation.kind, q.relation.direction, (ref.head, ref.size))
        want["relation"] = exp.get("relation")
        if OPERATOR_WORDS & set(q.referent.split()):
            got["referent"] = q.referent  # an operator word leaked into the category phrase
        if got != want:
            failures.append((text, got, want))
    assert not failures, failures[:5]
