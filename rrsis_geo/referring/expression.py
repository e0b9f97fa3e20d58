"""Analysis of a referring expression: what is named (the referent) and how it is picked (operators).

The grammar is a set of regular expressions over lower-case word tokens (no tagger, no corpora)::

    expression := [quantifier "of"] np {post} [relation]
    np         := {det | size | extreme | adjective | modifier} head [tail]
    size       := [ordinal] SIZE_WORD                      "the second largest", "the less extensive"
    extreme    := DIRECTION-most | ("furthest"|"most") DIR  "the northernmost", "the furthest north"
                | ("nearest"|"closest") [to] the DIR       "the lake closest to the centre"
                | [ORDINAL ...] "from the" DIR             "the second lake from the left"
                | DIR                                      "the upper lake" ("central": the centre region)
    post       := "with the" size ("area"|"length")        "the lake with the largest area"
                | ("furthest"|"farthest") DIR              "the lake furthest east"
                | PREP ["the"] DIR [REGION_NOUN]           "in the north-west corner", "on the left side"
                | [of|with an area of] CMP NUMBER UNIT     "larger than 2 ha", "over 1.5 km2", "at most 500 m"
    relation   := ("between" ref "and" ref | [to the] DIR "of" ref | ("above"|"below") ref
                | NEAR ref | FAR ref | OVER ref | IN ref | "within" DISTANCE "of" ref) ["and" relation]
    ref        := expression                              (parsed recursively: it may carry operators)

Before matching, multi-word nouns (:data:`COMPOUND_NOUNS`) become one token, references to the
frame ("in the image"), fillers ("located", "that is"), "please" and a request's opening words
("show me", "find", "where is") are dropped, "the nearest X to Y" is read as "the X nearest to Y",
and a partitive ("the larger of the two lakes") loses its "of the two".
A region is only a region when nothing but a preposition or the end follows it ("in the west
lake" is a relation to a lake). The head is the last word of the noun phrase (the words before its
first preposition) that is not a determiner, operator or known adjective; the words before it are
its attributes; unknown attributes and the words after the head that no rule consumed are
``unparsed`` and stay in the referent. A number word or numeral among the determiners ("the two
largest lakes", "the 3 northernmost fields") is the count of referents; "above" and "below" are
north and south as on a map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import NamedTuple


@dataclass(frozen=True)
class Size:
    """Rank by size: "the second largest" is ``Size("area", "desc", 2)``."""

    measure: str  # "area" | "length"
    order: str  # "desc" (largest first) | "asc" (smallest first)
    rank: int = 1
    among: int | None = None  # a comparative ("the larger lake", "the smaller of the two") compares two


@dataclass(frozen=True)
class Limit:
    """A measured bound: "larger than 2 ha" is ``Limit("area", ">", 20000.0)`` (square metres;
    lengths in metres)."""

    measure: str  # "area" | "length"
    op: str  # ">" | "<"
    value: float


@dataclass(frozen=True)
class Position:
    """Where the referent lies in the scene frame: a region of it, or the extreme along a direction."""

    kind: str  # "region" (a third of the frame, a corner cell) | "half" ("the lower half") | "extreme"
    direction: str  # north, south, east, west, north-east, north-west, south-east, south-west, centre
    rank: int = 1  # an extreme's place: "the second northernmost", "the third from the left"


@dataclass(frozen=True)
class Relation:
    """Position relative to other referents (one, or two for "between")."""

    kind: str  # "direction" | "near" | "far" | "over" | "in" | "between" | "within"
    direction: str | None
    references: tuple[Query, ...]
    distance_m: float | None = None  # "within": "within 500 m of the river"
    also: Relation | None = None  # "south of the river and east of the lake": the second one

    def chain(self) -> list[Relation]:
        """This relation and those joined to it by "and", in order."""
        return [self, *(self.also.chain() if self.also else ())]


@dataclass(frozen=True)
class Query:
    """An analysed referring expression."""

    text: str
    referent: str
    head: str | None
    attributes: tuple[str, ...]
    number: str  # "one" | "all" | "plural"
    size: Size | None = None
    position: Position | None = None
    relation: Relation | None = None
    unparsed: tuple[str, ...] = ()
    limit: Limit | None = None
    sentence: str = ""  # the text without a request's opening words and "please": what the glance pass reads
    count: int | None = None  # "the two largest lakes": 2
    within: Position | None = None  # a region beside an extreme: "the northernmost lake in the west"

    @property
    def operators(self) -> list[str]:
        """Names of the operators present, in the order size, position, relation, limit."""
        return [name for name in ("size", "position", "relation", "limit") if getattr(self, name) is not None]


# --- vocabulary -------------------------------------------------------------------------------

_COMPOUNDS = {
    "body of water", "water body", "bodies of water", "bare field", "green field", "vegetated field",
    "field of green crops", "field of bare soil", "bare plot", "open water", "stretch of open water",
    "sea area", "area of sea", "parking lot", "car park", "sports field", "football field",
    "tennis court", "swimming pool", "storage tank", "solar panel", "solar farm", "wind turbine",
    "golf course", "baseball field", "basketball court", "ground track field", "train station",
    "railway station", "oil tank", "water tower", "power plant", "residential area",
    "industrial area", "sandy beach",
}
COMPOUND_NOUNS: tuple[str, ...] = tuple(sorted(_COMPOUNDS, key=lambda s: (-len(s.split()), -len(s), s)))
_MAX_COMPOUND = max(len(c.split()) for c in COMPOUND_NOUNS)

_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
DETERMINERS = frozenset({"the", "a", "an", "all", "every", "each", "any", "some", "this", "that", "these",
                         "those", "both", "several", "many", *_NUMBERS})
_ALL_DETS = frozenset({"all", "every", "each"})
_PLURAL_DETS = frozenset({"these", "those", "both", "several", "many", *_NUMBERS[1:]})
ADJECTIVES = frozenset({
    "small", "large", "big", "little", "tiny", "huge", "long", "narrow", "wide", "green", "bare", "blue",
    "dark", "bright", "white", "red", "brown", "round", "rectangular", "square", "only", "other", "main",
    "whole", "entire", "sandy", "vegetated", "open", "artificial", "natural",
})
_PRONOUNS = frozenset({"one", "ones", "it", "them", "they"})
_PLURAL_PRONOUNS = frozenset({"ones", "them", "they"})
# words that end the first noun phrase (its head is the last noun-like word before one of them)
BOUNDARY = frozenset(
    "of with without in inside within on at to towards toward from by near next close beside besides "
    "adjacent along alongside across over crossing crosses spanning between among around and or but "
    "that which who where whose having containing surrounded enclosed under above below behind for "
    "than into onto".split())
# partitive quantifiers: "each of the lakes" -> number
_QUANTIFIERS = {"one": "one", "any": "one", "either": "one", "each": "all", "all": "all", "every": "all",
                "both": "plural", "some": "plural", "several": "plural", "many": "plural",
                **{n: "plural" for n in _NUMBERS[1:]}}

SIZE_WORDS = {
    **dict.fromkeys(("largest", "biggest", "greatest", "larger", "bigger", "greater", "widest", "wider",
                     "most extensive", "more extensive"), ("area", "desc")),
    **dict.fromkeys(("smallest", "tiniest", "smaller", "tinier", "narrowest", "narrower",
                     "least extensive", "less extensive"), ("area", "asc")),
    **dict.fromkeys(("longest", "longer"), ("length", "desc")),
    **dict.fromkeys(("shortest", "shorter"), ("length", "asc")),
}
# units of a measured bound -> (measure, metres or square metres per unit)
_AREA_UNITS = {"m2": 1.0, "sq m": 1.0, "square metre": 1.0, "square meter": 1.0, "km2": 1e6, "sq km": 1e6,
               "square kilometre": 1e6, "square kilometer": 1e6, "ha": 1e4, "hectare": 1e4,
               "acre": 4046.8564224}
_LENGTH_UNITS = {"m": 1.0, "metre": 1.0, "meter": 1.0, "km": 1e3, "kilometre": 1e3, "kilometer": 1e3,
                 "mile": 1609.344}
UNITS = {**{u: ("area", f) for u, f in _AREA_UNITS.items()}, **{u: ("length", f) for u, f in _LENGTH_UNITS.items()}}
_MORE = ("larger than", "bigger than", "greater than", "more than", "longer than", "wider than", "over", "above",
         "at least", "exceeding")
_LESS = ("smaller than", "less than", "shorter than", "narrower than", "under", "below", "at most", "up to")
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
            "fifth": 5, "5th": 5}


# --- nouns ------------------------------------------------------------------------------------

_IRREGULAR = {"buses": "bus", "gases": "gas", "leaves": "leaf", "men": "man", "women": "woman",
              "people": "person", "children": "child", "feet": "foot", "geese": "goose", "mice": "mouse",
              "wharves": "wharf", "shelves": "shelf", "oases": "oasis"}
_INVARIANT = frozenset({"series", "species", "sheep", "fish", "deer", "aircraft", "gas", "news", "lens"})


def _singular_word(word: str) -> str:
    """Singular of one word by suffix: -ies -> -y, -ches/-shes/-sses/-xes -> drop "es", -s -> drop "s";
    words ending in -ss, -us, -is (grass, bus, tennis) and a few invariants stay as they are."""
    low = word.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _INVARIANT or len(low) <= 3 or low.endswith(("ss", "us", "is")):
        return word
    if low.endswith("ies") and len(low) > 4:
        return word[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zzes")):
        return word[:-2]
    if low.endswith("s"):
        return word[:-1]
    return word


def singular(word_or_phrase: str) -> str:
    """Singular of a noun or noun phrase: the word before the first "of" takes the change
    ("fields of bare soil" -> "field of bare soil"), otherwise the last word ("green fields")."""
    words = word_or_phrase.split()
    if not words:
        return ""
    k = words.index("of", 1) - 1 if "of" in words[1:] else len(words) - 1
    words[k] = _singular_word(words[k])
    return " ".join(words)


def normalise_noun(noun: str) -> str:
    """Lower case, singular, single spaces: "Bodies  of Water" -> "body of water"."""
    return singular(" ".join(noun.lower().split()))


_COMPOUND_SINGULARS = frozenset(normalise_noun(c) for c in COMPOUND_NOUNS)


def _is_plural(noun: str) -> bool:
    return normalise_noun(noun) != " ".join(noun.lower().split())


# --- grammar ----------------------------------------------------------------------------------

def _rx(pattern: str) -> re.Pattern:
    """A pattern over space-joined tokens that must end at a token boundary."""
    return re.compile(rf"(?:{pattern})(?= |$)")


_W = r"(?:north|south|east|west)(?:ern|erly)?|top|upper|bottom|lower|left|right|centre|center|central|middle"
_W_SIDE = r"(?:north|south|east|west)(?:ern|erly)?|top|upper|bottom|lower|left|right"
_DIR = rf"(?:{_W})(?:[- ](?:{_W}))?(?:-hand)?"
_DIR_SIDE = rf"(?:{_W_SIDE})(?:[- ](?:{_W_SIDE}))?(?:-hand)?"  # no centre: "in the middle of X" is "in"
_REGION_NOUNS = (r"corners?|sides?|parts?|half|edges?|areas?|regions?|sections?|portions?|quadrants?"
                 r"|end|third|borders?|margins?|sectors?|zones?")
_FOLLOW = "|".join(sorted((BOUNDARY - {"of"}) | {"nearest", "closest", "furthest", "farthest", "far"}))
_ORD = "|".join(ORDINALS)
_SIZE = "|".join(sorted(SIZE_WORDS, key=len, reverse=True))
_NOT_OF = r"(?! of(?: |$))"

FRAME_RX = _rx(r"(?:in|of|on|within|from|across|throughout) (?:the|this|that)(?: (?:whole|entire))? "
               r"(?:image|picture|scene|map|photo|photograph|chip|tile|view|frame|raster|imagery)")
FILLER_RX = _rx(
    r"(?:that|which|who) (?:is|are)"
    r"|(?:that|which|who)(?= (?:crosses|cross|spans|span|runs|run|flows|flow|goes|passes|borders|touches"
    r"|lies|lie|sits|located|situated|lying|in|on|at|near|next|between|over|across|closest|nearest"
    r"|furthest|farthest)(?: |$))"
    r"|located|situated|lying|lies|lie|positioned|placed|found|shown|visible|seen|depicted|appearing"
    r"|sitting|sits|standing|stands|running|runs|flowing|flows|going|goes|passing|passes|leading|leads"
    r"|extending|stretching|is|are|being")
# a request's opening words: "show me the largest lake", "find all lakes", "where is the river"
COMMAND_RX = _rx(r"(?:(?:can|could) you )?(?:show(?: me)?|find(?: me)?|give me|select|highlight|segment|locate"
                 r"|outline|mark|detect|extract|map|get(?: me)?|delineate|digiti[sz]e|where(?: (?:is|are))?)")
SIZE_RX = _rx(rf"(?:(?P<ord>{_ORD}) )?(?P<word>{_SIZE})")
SIZE_POST_RX = _rx(rf"(?:with|having|of)(?: the)? (?:(?P<ord>{_ORD}) )?(?P<word>{_SIZE})"
                   r"(?: (?:surface|total))? (?P<noun>area|size|extent|surface|footprint|length|coverage)")
EXTREME_RX = _rx(rf"[a-z-]*(?:north|south|east|west)ernmost|topmost|uppermost|bottommost|lowermost|leftmost"
                 rf"|rightmost|cent(?:re|er)most"
                 rf"|(?:furthest|farthest|most)(?: to)?(?: the)? (?:{_DIR}){_NOT_OF}"
                 rf"|(?:nearest|closest)(?: to)?(?: the)? (?:{_DIR})(?: (?:edge|side|border|end))?"
                 rf"(?=$| (?:{_FOLLOW})(?: |$))"
                 rf"|(?:counting )?from the (?:{_DIR})(?: (?:edge|side|border|end))?(?=$| (?:{_FOLLOW})(?: |$))")
DIR_ADJ_RX = _rx(_DIR)
REGION_RX = _rx(rf"(?:in|at|on|to|towards|toward|near|along|within|by)(?: the)?(?: (?:very|far|extreme))? "
                rf"(?P<dir>{_DIR})(?: (?P<noun>{_REGION_NOUNS}))?(?=$| (?:{_FOLLOW})(?: |$))")


def _unit_pattern(units) -> str:
    """Alternatives for unit words, longest first; a unit word may take a plural "s" ("hectares",
    "square metres"); "m2", "sq km" do not."""
    return "|".join(sorted((re.escape(u) + ("s?" if u[-1].isalpha() and not u.startswith("sq ") else "")
                            for u in units), key=len, reverse=True))


_UNIT = _unit_pattern(UNITS)
LIMIT_RX = _rx(rf"(?:(?:with|having|of|covering)(?: an?| the)? (?:area|size|surface|extent|length) (?:of )?"
               rf"|of |covering |measuring )?"
               rf"(?P<cmp>{'|'.join(_MORE + _LESS)}) (?P<num>\d+(?:\.\d+)?) (?P<unit>{_UNIT})"
               r"(?! (?:away )?(?:from|of)(?: |$))")  # "less than 200 m from the river" is a distance
_LENGTH_UNIT = _unit_pattern(_LENGTH_UNITS)
RELATIONS: tuple[tuple[str, re.Pattern], ...] = (
    ("within", _rx(rf"(?:within|less than|no more than|at most|up to) (?P<num>\d+(?:\.\d+)?) (?P<unit>{_LENGTH_UNIT})"
                   r"(?: (?:away )?(?:of|from))")),
    ("between", _rx(r"between")),
    ("direction", _rx(r"(?:(?:directly|just|right|immediately) )?(?P<dir>above|below|beneath)")),
    ("direction", _rx(rf"(?:(?:to|towards|toward|in|on|at) (?:the )?)?(?:(?:far|directly|just|due|slightly"
                      rf"|immediately) )?(?P<dir>{_DIR_SIDE})(?: (?:side|part|end))? of")),
    ("far", _rx(r"(?:farthest|furthest|most distant|far|away|distant|remote)(?: away)? from")),
    ("near", _rx(r"(?:nearest|closest)(?: to)?|next to|near(?: to)?|beside|besides|by|adjacent to"
                 r"|alongside(?: of)?|along|close to|neighbou?ring|bordering|touching|around"
                 r"|at the (?:edge|side|foot) of|on the (?:edge|banks?|shores?|side|border) of")),
    ("over", _rx(r"over|across|crossing|crosses|cross|spanning|spans|span|traversing|bridging")),
    ("in", _rx(r"in the (?:middle|centre|center) of|inside(?: of)?|within|in|on top of|on|into"
               r"|surrounded by|enclosed by")),
)

_VERTICAL = {"north": "north", "top": "north", "upper": "north", "above": "north",
             "south": "south", "bottom": "south", "lower": "south", "below": "south", "beneath": "south"}
_HORIZONTAL = {"west": "west", "left": "west", "east": "east", "right": "east"}


def _direction(phrase: str) -> str:
    """Compass name of a direction phrase: "upper left" -> north-west, "easternmost" -> east,
    "in the middle" -> centre (a vertical or horizontal word wins over a centre word)."""
    parts = re.findall(r"north|south|east|west|top|upper|bottom|lower|left|right|above|below|beneath", phrase)
    v = next((_VERTICAL[p] for p in parts if p in _VERTICAL), None)
    h = next((_HORIZONTAL[p] for p in parts if p in _HORIZONTAL), None)
    return f"{v}-{h}" if v and h else v or h or "centre"


def _size(m: re.Match) -> Size:
    measure, order = SIZE_WORDS[m.group("word")]
    if m.groupdict().get("noun"):
        measure = "length" if m.group("noun") == "length" else "area"
    word = m.group("word")
    among = 2 if word.endswith("er") or word.startswith(("more ", "less ")) else None
    return Size(measure, order, ORDINALS.get(m.group("ord") or "", 1), among)


def _measured(m: re.Match) -> tuple[str, float]:
    """(measure, value in square metres or metres) of a match's ``num`` and ``unit`` groups."""
    unit = m.group("unit")
    measure, factor = UNITS[unit if unit in UNITS else singular(unit)]
    return measure, float(m.group("num")) * factor


def _limit(m: re.Match) -> Limit:
    measure, value = _measured(m)
    return Limit(measure, ">" if m.group("cmp") in _MORE else "<", value)


# --- tokens -----------------------------------------------------------------------------------

class Tok(NamedTuple):
    word: str  # canonical lower case; a compound noun is one token joined by "_"
    orig: str  # the words as written


_TOKEN = re.compile(r"\d+(?:[.,]\d+)+(?![A-Za-z])|[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
_NUMBER_UNIT = re.compile(r"(\d)(?=(?:" + "|".join(sorted((re.escape(u) for u in UNITS if " " not in u), key=len,
                                                            reverse=True)) + r")s?\b)")


def _number(word: str) -> str:
    """"1,500" -> "1500", "2,5" -> "2.5" (a comma before three digits groups thousands)."""
    return re.sub(r",(?=\d{3}(?!\d))", "", word).replace(",", ".")


_COMPASS_ABBREVIATIONS = {"ne": "north-east", "nw": "north-west", "se": "south-east", "sw": "south-west"}
_COMPASS_LETTERS = {"N": "north", "S": "south", "E": "east", "W": "west"}


def _tokens(text: str) -> list[Tok]:
    """Word tokens (punctuation dropped); "northwest" is spelt "north-west", "NE" "north-east" and a
    capital N, S, E or W its compass word; a possessive loses "'s"; numbers keep their decimals and a
    unit written on a number is its own token ("2ha", "3 km²")."""
    text = _NUMBER_UNIT.sub(r"\1 ", text.replace("²", "2"))
    out = []
    for m in _TOKEN.finditer(text):
        if m.group()[0].isdigit() and not m.group().isalnum():
            out.append(Tok(_number(m.group()), m.group()))
            continue
        if m.group() in _COMPASS_LETTERS or m.group().lower() in _COMPASS_ABBREVIATIONS:
            out.append(Tok(_COMPASS_LETTERS.get(m.group()) or _COMPASS_ABBREVIATIONS[m.group().lower()], m.group()))
            continue
        word = re.sub(r"['’]s$", "", m.group().lower())
        word = re.sub(r"^(north|south)-?(east|west)", r"\1-\2", word)
        out.append(Tok(word, m.group()))
    return out


def _text(toks: list[Tok]) -> str:
    return " ".join(t.orig for t in toks)


def _words(toks: list[Tok]) -> list[str]:
    return [t.word.replace("_", " ") for t in toks]


def _match(rx: re.Pattern, toks: list[Tok], i: int, end: int | None = None) -> tuple[int, re.Match] | None:
    """Match ``rx`` at token ``i``: (number of tokens matched, match) or None."""
    m = rx.match(" ".join(t.word for t in toks[i:end]))
    return (m.group(0).count(" ") + 1, m) if m else None


def _merge_compounds(toks: list[Tok]) -> list[Tok]:
    """Join the longest run of tokens that is a compound noun, singular or plural, into one token."""
    out, i = [], 0
    while i < len(toks):
        for n in range(min(_MAX_COMPOUND, len(toks) - i), 1, -1):
            run = toks[i:i + n]
            if normalise_noun(" ".join(t.word for t in run)) in _COMPOUND_SINGULARS:
                out.append(Tok("_".join(t.word for t in run), _text(run)))
                i += n
                break
        else:
            out.append(toks[i])
            i += 1
    return out


def _drop(toks: list[Tok], rx: re.Pattern) -> list[Tok]:
    """Remove every run of tokens that ``rx`` matches."""
    out, i = [], 0
    while i < len(toks):
        hit = _match(rx, toks, i)
        if hit:
            i += hit[0]
        else:
            out.append(toks[i])
            i += 1
    return out


def _reorder_superlative(toks: list[Tok]) -> list[Tok]:
    """"the nearest lake to the town" -> "the lake nearest to the town" (also closest, furthest from)."""
    for i, t in enumerate(toks[:-1]):
        if t.word not in ("nearest", "closest", "farthest", "furthest") or toks[i + 1].word in ("to", "from"):
            continue
        if DIR_ADJ_RX.match(toks[i + 1].word):
            continue  # "the furthest north lake" is an extreme
        for j in range(i + 2, len(toks)):
            if toks[j].word in ("to", "from"):
                return toks[:i] + toks[i + 1:j] + [t] + toks[j:]
            if toks[j].word in BOUNDARY:
                break
    return toks


def _skip_determiners(toks: list[Tok], i: int) -> int:
    """Index after "the two", "these", "all the" ... starting at ``i``."""
    while i < len(toks) and (toks[i].word in DETERMINERS or toks[i].word.isdigit()):
        i += 1
    return i


def _partitive(toks: list[Tok]) -> tuple[list[Tok], str | None]:
    """"the largest of the lakes" -> "the largest lakes", number "one" (a bare direction needs the
    article: "east of the lake" is a relation); "each of the lakes" -> "the lakes", number "all".
    Returns the tokens and the number the partitive imposes (or None)."""
    if len(toks) > 2 and toks[0].word in _QUANTIFIERS and toks[1].word == "of":
        return toks[2:], _QUANTIFIERS[toks[0].word]
    start = 1 if toks and toks[0].word in ("the", "a", "an") else 0
    if start == 0 and toks and DIR_ADJ_RX.match(toks[0].word):
        return toks, None  # "east of the lake" is a relation, not a partitive
    j = start
    while j < len(toks) and (hit := _np_operator(toks, j, len(toks))):
        j += hit[0]
    ops_end = j
    if j < len(toks) and toks[j].word == "one":
        j += 1
    if ops_end > start and j < len(toks) and toks[j].word == "of":
        return toks[:ops_end] + toks[_skip_determiners(toks, j + 1):], "one"
    return toks, None


# --- operators --------------------------------------------------------------------------------

def _np_operator(toks: list[Tok], j: int, end: int) -> tuple[int, Size | Position] | None:
    """A size or position word before the head: "second largest", "northernmost", "upper"."""
    if hit := _match(SIZE_RX, toks, j, end):
        return hit[0], _size(hit[1])
    if hit := _match(EXTREME_RX, toks, j, end):
        return hit[0], Position("extreme", _direction(hit[1].group(0)))
    if hit := _match(DIR_ADJ_RX, toks, j, end):
        d = _direction(hit[1].group(0))
        return hit[0], Position("region" if d == "centre" else "extreme", d)
    return None


def _post_operator(toks: list[Tok], i: int) -> tuple[int, Size | Position | Limit] | None:
    """A size or position phrase after the head: "with the largest area", "furthest east", "in the
    north", or a measured bound ("larger than 2 ha")."""
    if hit := _match(LIMIT_RX, toks, i):
        return hit[0], _limit(hit[1])
    if hit := _match(SIZE_POST_RX, toks, i):
        return hit[0], _size(hit[1])
    if hit := _match(EXTREME_RX, toks, i):
        return hit[0], Position("extreme", _direction(hit[1].group(0)))
    if hit := _match(REGION_RX, toks, i):
        d = _direction(hit[1].group("dir"))
        return hit[0], Position("half" if hit[1].group("noun") == "half" and d != "centre" else "region", d)
    return None


def _relation(toks: list[Tok], i: int) -> Relation | None:
    """A relation starting at token ``i``; its reference is the rest of the expression."""
    for kind, rx in RELATIONS:
        hit = _match(rx, toks, i)
        if not hit or i + hit[0] >= len(toks):
            continue
        rest = toks[i + hit[0]:]
        parts, also = [rest], None
        if kind == "between":
            k = next((k for k, t in enumerate(rest) if t.word == "and"), None)
            parts = [p for p in (rest[:k], rest[k + 1:]) if p] if k is not None else [rest]
        else:  # "south of the river and east of the lake": a second relation after "and"
            for k, t in enumerate(rest[:-1]):
                if t.word == "and" and k > 0 and (also := _relation(rest, k + 1)) is not None:
                    parts = [rest[:k]]
                    break
        direction = _direction(hit[1].group("dir")) if kind == "direction" else None
        distance = None
        if kind == "within":
            distance = _measured(hit[1])[1]
        return Relation(kind, direction, tuple(parse(_text(p)) for p in parts), distance, also)
    return None


def _first_of_each(op: Size | Position | None, size: Size | None, position: Position | None,
                   within: Position | None) -> tuple[Size | None, Position | None, Position | None]:
    """``(size, position, within)`` with ``op`` taken where none of its kind was found yet (the
    first size and the first position word count); a region beside an extreme is kept as
    ``within`` ("the northernmost lake in the west": position north, within the west)."""
    if op is None:
        return size, position, within
    if isinstance(op, Size):
        return size or op, position, within
    if position is None:
        return size, op, within
    if within is None and (position.kind == "extreme") != (op.kind == "extreme"):
        return (size, position, op) if position.kind == "extreme" else (size, op, position)
    return size, position, within


def _scan(toks: list[Tok]) -> tuple[list[Tok], tuple, Relation | None, Limit | None]:
    """Take the operator phrases out of the token list, left to right; a relation ends the scan.
    Returns the remaining (noun phrase) tokens and the operators found ((size, position, within),
    relation, limit)."""
    kept: list[Tok] = []
    size = position = within = limit = None
    i = 0
    while i < len(toks):
        if hit := _post_operator(toks, i):
            n, op = hit
            if isinstance(op, Limit):
                limit = limit or op
            else:
                size, position, within = _first_of_each(op, size, position, within)
            i += n
            continue
        # after a determiner, "nearest" or "by" belongs to the noun phrase ("the nearest lake")
        if not (kept and kept[-1].word in DETERMINERS) and (relation := _relation(toks, i)):
            return kept, (size, position, within), relation, limit
        kept.append(toks[i])
        i += 1
    return kept, (size, position, within), None, limit


# --- noun phrase ------------------------------------------------------------------------------

@dataclass
class _Phrase:
    referent: str
    head: str | None
    attributes: tuple[str, ...]
    number: str
    size: Size | None
    position: Position | None
    unparsed: tuple[str, ...]
    count: int | None = None
    within: Position | None = None
    ordinal: int | None = None


def _count(words: set[str]) -> int | None:
    """The count a number determiner gives ("two", "3"), if more than one."""
    counts = [_NUMBERS.index(w) + 1 if w in _NUMBERS else int(w) for w in words if w in _NUMBERS or w.isdigit()]
    return next((n for n in sorted(counts) if n > 1), None)


def _role(toks: list[Tok], j: int, end: int) -> str:
    word = toks[j].word
    if word == "one" and j == end - 1:
        return "word"  # "the largest one": a pronoun in the head's place
    if word in DETERMINERS or word.isdigit():
        return "det"
    if word in ORDINALS:
        return "ord"  # "the second lake from the left": an extreme's place
    return "adj" if word in ADJECTIVES else "word"


def _noun_phrase(toks: list[Tok], forced_number: str | None) -> _Phrase:
    """Determiners, operators, attributes and head of the first noun phrase; the rest is its tail."""
    cut = next((k for k in range(1, len(toks)) if toks[k].word in BOUNDARY), len(toks))
    roles: list[tuple[Tok, str]] = []
    size = position = within = None
    j = 0
    while j < cut:
        if hit := _np_operator(toks, j, cut):
            n, op = hit
            size, position, within = _first_of_each(op, size, position, within)
            j += n
            continue
        roles.append((toks[j], _role(toks, j, cut)))
        j += 1
    h = max((k for k, (_, r) in enumerate(roles) if r == "word"), default=None)
    head_tok = roles[h][0] if h is not None else None
    head = normalise_noun(head_tok.word.replace("_", " ")) if head_tok else None
    if head in _PRONOUNS:
        head = None
    before = roles if h is None else roles[:h]
    tail = toks[cut:]
    kept = [t for k, (t, r) in enumerate(roles) if r != "ord" and (r != "det" or h is None or k < h)]
    dets = {t.word for t, r in roles if r == "det"}
    if forced_number:
        number = forced_number
    elif dets & _ALL_DETS:
        number = "all"
    elif dets & _PLURAL_DETS or (head_tok and (head_tok.word in _PLURAL_PRONOUNS
                                               or (head and _is_plural(head_tok.word.replace("_", " "))))):
        number = "plural"
    else:
        number = "one"
    return _Phrase(
        referent=" ".join(_words(kept + tail)),
        head=head,
        attributes=tuple(_words([t for k, (t, r) in enumerate(roles) if r in ("adj", "word") and k != h])),
        number=number,
        size=size,
        position=position,
        unparsed=tuple(_words([t for t, r in before if r == "word"] + tail)),
        count=_count(dets) if number == "plural" else None,
        within=within,
        ordinal=next((ORDINALS[t.word] for t, r in roles if r == "ord"), None),
    )


_POLITE = frozenset({"please", "kindly"})


def _sentence(norm: str) -> str:
    """The sentence without a request's opening words and "please" ("show me the largest lake,
    please" -> "the largest lake"); the text itself when it has none."""
    toks = _tokens(norm)
    kept = [t for t in toks if t.word not in _POLITE]
    if kept and (hit := _match(COMMAND_RX, kept, 0)) and hit[0] < len(kept):
        kept = kept[hit[0]:]
    return norm if len(kept) == len(toks) else _text(kept)


def parse(text: str) -> Query:
    """Analyse a referring expression. Raises ``ValueError("empty expression")`` on a blank string."""
    norm = " ".join(text.split())
    if not norm:
        raise ValueError("empty expression")
    sentence = _sentence(norm)
    toks = _merge_compounds(_tokens(sentence))
    toks = _drop(_drop(toks, FRAME_RX), FILLER_RX)
    toks, forced_number = _partitive(_reorder_superlative(toks))
    np_toks, post, relation, limit = _scan(toks)
    np = _noun_phrase(np_toks, forced_number)
    ops = (np.size, np.position, np.within)  # the words before the head first, then those after it
    for op in post:
        ops = _first_of_each(op, *ops)
    size, position, within = ops
    if np.ordinal and position is not None and position.kind == "extreme":
        position = replace(position, rank=np.ordinal)
    return Query(text=norm, referent=np.referent, head=np.head, attributes=np.attributes, number=np.number,
                 size=size, position=position, relation=relation, unparsed=np.unparsed, limit=limit,
                 sentence=sentence, count=np.count, within=within)
