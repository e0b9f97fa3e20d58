"""A resolution as feature records: the ``answer`` layer and the ``candidates`` layer."""

from __future__ import annotations

from rrsis_geo.referring.candidates import Candidate
from rrsis_geo.referring.resolve import Resolution


def candidate_records(candidates: list[Candidate], res: Resolution) -> list[dict]:
    """Every candidate with its rank under the rule (0 = not ranked), whether it was selected, its
    measured properties and the rule; ordered by rank, unranked last."""
    chosen = set(res.selected)
    rows = []
    for i, c in enumerate(candidates):
        rows.append({
            **c.record,
            "rank": res.rank.get(i, 0), "selected": int(i in chosen),
            "glance": None if c.glance is None else round(c.glance, 6),
            "length_m": round(c.length_m, 3), "width_m": round(c.width_m, 3),
            "elongation": round(c.elongation, 3), "u": round(c.u, 5), "v": round(c.v, 5),
            "at_edge": int(c.at_edge),
            "rule": res.rule,
        })
    rows.sort(key=lambda r: (r["rank"] == 0, r["rank"], -r["area_m2"]))
    return rows


def answer_records(rows: list[dict]) -> list[dict]:
    """The selected candidates (of :func:`candidate_records`), in rank order."""
    return [r for r in rows if r["selected"]]
