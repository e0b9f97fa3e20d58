"""What a model was trained to find: its categories, the nouns that named them, and the phrase
that asks it for every object of a category (its category map).

A checkpoint stores this as metadata ``vocabulary``::

    {"categories": {"lake": {"nouns": ["lake", "pond", "body of water"], "prompt": "all the lakes"},
                    ...},
     "source": "head nouns of the 7120 training expressions"}

:func:`from_training` builds it from the training expressions and their categories; a referent
noun outside it is answered with a warning and no answer unless the user forces it (for an
everyday word in :data:`NEAR_WORDS`, the warning names the known word to try).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rrsis_geo.checkpoint_header import MAX_VOCABULARY_NOUNS, vocabulary_nouns
from rrsis_geo.errors import ModelError
from rrsis_geo.referring.expression import Query, normalise_noun, parse


# everyday words for what the demo categories' nouns name: an unknown noun listed here is still
# refused, with the known word to try instead ("reservoir": try "lake")
NEAR_WORDS = {
    **dict.fromkeys(("reservoir", "waterbody", "tarn", "mere", "loch"), "lake"),
    **dict.fromkeys(("creek", "brook", "canal", "waterway", "watercourse", "tributary"), "river"),
    **dict.fromkeys(("ocean", "bay", "gulf"), "sea"),
    **dict.fromkeys(("cropland", "farmland", "meadow", "pasture", "paddock", "grassland"), "field"),
    **dict.fromkeys(("soil", "fallow"), "bare field"),
}


@dataclass(frozen=True)
class Vocabulary:
    categories: dict[str, dict]  # category -> {"nouns": [...], "prompt": str | None}

    def category_of(self, head: str | None) -> str | None:
        """The category a head noun names, or None when the model never learnt it."""
        if not head:
            return None
        noun = normalise_noun(head)
        for cat, entry in self.categories.items():
            if noun == normalise_noun(cat) or noun in entry["nouns"]:
                return cat
        return None

    def suggest(self, head: str | None) -> str | None:
        """A known word to try for an unknown head noun ("reservoir" -> "lake"), or None."""
        near = NEAR_WORDS.get(normalise_noun(head)) if head else None
        return near if near and self.category_of(near) else None

    def prompt(self, category: str | None) -> str | None:
        return self.categories.get(category, {}).get("prompt") if category else None

    def describe(self, limit: int = 12) -> str:
        words = []
        for cat, entry in self.categories.items():
            others = [n for n in entry["nouns"] if n != cat]
            words.append(cat + (f" ({', '.join(others[:3])})" if others else ""))
        return ", ".join(words[:limit]) + (" ..." if len(words) > limit else "")

    def as_dict(self, source: str = "") -> dict:
        return {"categories": self.categories, "source": source}


def from_metadata(value) -> Vocabulary | None:
    """The vocabulary a checkpoint stores, validated (its shape and size as a checkpoint's are:
    :func:`rrsis_geo.checkpoint_header.vocabulary_nouns`); None when it has none."""
    if value is None:
        return None
    owner = "the checkpoint's vocabulary metadata"
    n = vocabulary_nouns(value, owner)
    if n > MAX_VOCABULARY_NOUNS:
        raise ModelError(f"{owner} holds {n} nouns, more than the {MAX_VOCABULARY_NOUNS} allowed")
    try:
        out = {normalise_noun(str(cat)): {"nouns": [normalise_noun(str(x)) for x in entry.get("nouns", [])],
                                          "prompt": None if entry.get("prompt") is None else str(entry["prompt"])}
               for cat, entry in value["categories"].items()}
    except (TypeError, AttributeError, ValueError):
        raise ModelError(f"{owner} is malformed") from None
    if not out:
        raise ModelError(f"{owner} has no categories")
    return Vocabulary(out)


def _prompt(wordings: Counter, noun: str) -> str:
    """The plainest "all" wording: "all the <its commonest noun, plural>" when training used it,
    else the most frequent one (the shortest among equals)."""
    plain = [w for w in wordings if w.startswith("all the ") and normalise_noun(w[8:]) == noun]
    if plain:
        return min(plain, key=lambda w: (-wordings[w], len(w)))
    return min(wordings, key=lambda w: (-wordings[w], len(w), w))


def from_training(pairs: Iterable[tuple[str, str]]) -> Vocabulary:
    """Build a vocabulary from ``(expression, category)`` pairs of a training set.

    A category's nouns are the head nouns its expressions used; its prompt is its most frequent
    "all the ..." expression, when the training set asked for whole categories.
    """
    nouns: dict[str, Counter] = {}
    prompts: dict[str, Counter] = {}
    for text, category in pairs:
        if not text or not str(text).strip() or not category:
            continue
        cat = normalise_noun(str(category))
        q: Query = parse(str(text))
        if q.head:
            nouns.setdefault(cat, Counter())[normalise_noun(q.head)] += 1
        if q.number == "all" and not q.operators:
            prompts.setdefault(cat, Counter())[" ".join(str(text).lower().split())] += 1
    cats = {}
    for cat in sorted(nouns):
        names = [n for n, _ in nouns[cat].most_common()]
        prompt = _prompt(prompts[cat], names[0]) if cat in prompts else None
        cats[cat] = {"nouns": names, "prompt": prompt}
    return Vocabulary(cats)
