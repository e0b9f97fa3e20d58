"""What a scene-level run asks the model: the plan made from the expression before any pixel.

- the **glance** phrase: the whole expression, on the whole scene resampled to the model's input;
- the **zoom** phrase: the referent alone, tile by tile, for the category map the candidates come
  from (the model's own "all the lakes" prompt when its vocabulary has one, else the referent
  phrase), so no tile is asked "the largest";
- one zoom phrase per relation reference ("east of the river" -> the rivers).

A referent noun the model never learnt makes the plan abstain (unless forced), with a message
naming what the model knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rrsis_geo.referring.expression import Query, parse
from rrsis_geo.referring.vocabulary import Vocabulary


@dataclass
class ScenePlan:
    query: Query
    zoom_phrase: str
    references: list[tuple[Query, str]] = field(default_factory=list)  # (reference query, its zoom phrase)
    warnings: list[str] = field(default_factory=list)
    abstain: str | None = None  # the rule when the run answers nothing without looking

    def phrases(self) -> list[str]:
        """Every distinct zoom phrase, the referent's first."""
        return list(dict.fromkeys([self.zoom_phrase, *(p for _, p in self.references)]))


def _zoom(query: Query, vocab: Vocabulary | None) -> tuple[str, str | None]:
    """(zoom phrase, the unknown head noun or None)."""
    if vocab is None:
        return query.referent, None
    category = vocab.category_of(query.head)
    if category is None:
        return query.referent, query.head or query.referent
    return vocab.prompt(category) or query.referent, None


def plan_query(expression: str, vocab: Vocabulary | None, force: bool = False) -> ScenePlan:
    query = parse(expression)
    zoom, unknown = _zoom(query, vocab)
    plan = ScenePlan(query, zoom)
    unknowns = [unknown] if unknown else []
    for ref in (r for rel in query.relation.chain() for r in rel.references) if query.relation else ():
        phrase, ref_unknown = _zoom(ref, vocab)
        plan.references.append((ref, phrase))
        if ref_unknown:
            unknowns.append(ref_unknown)
    if unknowns:
        names = ", ".join(f'"{u}"' + (f' (try "{near}")' if (near := vocab.suggest(u)) else "") for u in unknowns)
        known = vocab.describe()
        if force:
            plan.warnings.append(f"this model was not trained to find {names} (it knows: {known}); "
                                 "answering anyway because of --force")
        else:
            plan.abstain = f"unknown to this model: {names}; it knows: {known}"
            plan.warnings.append(f"this model was not trained to find {names}, so nothing is answered "
                                 f"(it knows: {known}); --force answers anyway")
    return plan
