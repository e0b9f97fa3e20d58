"""The no-language baseline of issue 6: predict a whole class for every expression of that class.

For an expression about a lake / river / sea the rule predicts all water of the chip; for a field
all vegetation; for a bare field all bare ground. Three versions of "the class", each with no
language at all:

- ``class_raw``: the thresholded index (NDWI, NDVI, brightness) before cleaning;
- ``class_clean``: the cleaned class mask (opening, min area) the targets were cut from;
- ``category_union``: the union of every labelled target of the expression's category in the
  chip (the best any class rule can do: it is exact whenever the category is unique).

``best`` picks, per category, the version with the highest oIoU on the train split and applies it
to the held-out splits. Metrics: IoU = I / U (0 when U = 0); mIoU = mean per-sample IoU;
oIoU = sum I / sum U; Pr@0.5 = share of samples with IoU >= 0.5.
"""

from __future__ import annotations

import numpy as np

FAMILY = {"lake": "water", "river": "water", "sea": "water", "field": "field", "bare field": "bare"}
RULES = ("class_raw", "class_clean", "category_union")


def iou_parts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    return int((pred & gt).sum()), int((pred | gt).sum())


def metrics(parts) -> dict:
    """mIoU, oIoU, Pr@0.5 and n from a list of (intersection, union)."""
    parts = list(parts)
    if not parts:
        return {"n": 0, "mIoU": None, "oIoU": None, "Pr@0.5": None}
    ious = np.array([i / u if u else 0.0 for i, u in parts])
    si, su = sum(i for i, _ in parts), sum(u for _, u in parts)
    return {"n": len(parts), "mIoU": round(float(ious.mean()), 4), "oIoU": round(si / su if su else 0.0, 4),
            "Pr@0.5": round(float((ious >= 0.5).mean()), 4)}


def predict(rule: str, category: str, masks: dict, targets) -> np.ndarray:
    fam = FAMILY[category]
    if rule == "class_raw":
        return masks[f"raw_{fam}"]
    if rule == "class_clean":
        return masks[fam]
    if rule == "category_union":
        out = np.zeros_like(masks[fam], bool)
        for t in targets:
            if t.category == category:
                out |= t.mask
        return out
    raise ValueError(f"unknown rule {rule!r}")


def samples(chip_records):
    """(split, category, needs_language, {rule: (I, U)}, kind) per expression."""
    for rec in chip_records:
        cache = {}
        for e in rec["exprs"]:
            t = rec["targets"][e.target]
            parts = {}
            for rule in RULES:
                key = (rule, t.category)
                if key not in cache:
                    cache[key] = predict(rule, t.category, rec["masks"], rec["targets"])
                parts[rule] = iou_parts(cache[key], t.mask)
            yield rec["chip"].split, t.category, e.needs_language, parts, e.kind


def evaluate(chip_records) -> dict:
    rows = list(samples(chip_records))
    best = {}
    for cat in sorted({r[1] for r in rows}):
        train = [r for r in rows if r[0] == "train" and r[1] == cat]
        pool = train or [r for r in rows if r[1] == cat]
        best[cat] = max(RULES, key=lambda rule: metrics(r[3][rule] for r in pool)["oIoU"] or 0.0)
    out = {"definition": __doc__.strip().splitlines()[0], "best_rule_per_category": best, "splits": {}}
    for split in ("train", "val", "test"):
        sr = [r for r in rows if r[0] == split]
        if not sr:
            continue
        table = {}
        groups = [("needs_language", lambda r: r[2]), ("category_only", lambda r: not r[2]), ("all", lambda r: True)]
        groups += [(f"kind={k}", lambda r, k=k: r[4] == k) for k in ("size", "position", "relation")]
        for group, keep in groups:
            g = [r for r in sr if keep(r)]
            table[group] = {rule: metrics(r[3][rule] for r in g) for rule in RULES}
            table[group]["best"] = metrics(r[3][best[r[1]]] for r in g)
        out["splits"][split] = table
    return out


def format_table(result: dict, splits=("val", "test")) -> str:
    lines = [f"{'split':<6} {'group':<15} {'rule':<15} {'n':>5} {'mIoU':>7} {'oIoU':>7} {'Pr@0.5':>7}"]
    for split in splits:
        for group, rules in result["splits"].get(split, {}).items():
            for rule, m in rules.items():
                f = lambda x: "   -   " if x is None else f"{x:7.3f}"  # noqa: E731
                lines.append(f"{split:<6} {group:<15} {rule:<15} {m['n']:>5} {f(m['mIoU'])} {f(m['oIoU'])} {f(m['Pr@0.5'])}")
    return "\n".join(lines)
