"""Referring-segmentation metrics, the convention of LAVT/RMSIN's evaluation.

For each (image, expression) sample: I = |pred AND gt|, U = |pred OR gt|, IoU = I / U, and 0 when
U = 0.

- mIoU (gIoU) = mean of per-sample IoU;
- oIoU (cIoU) = sum of I / sum of U over all samples (0 when the sum of U is 0);
- Pr@X = share of samples with IoU >= X, X in {0.5, 0.6, 0.7, 0.8, 0.9}.

All reported in percent, with the sample count ``n``, overall and per category.

Options:

``strict``        Pr@X counts IoU > X instead of >= X (RSRefSeg's convention).
``empty``         what a sample whose ground truth is empty contributes:
                  ``"zero"`` (default, the formula above: IoU = I/U, so an empty prediction on an
                  empty target scores 0 since U = 0), ``"one"`` (a correct empty prediction scores
                  IoU 1; U = 0 still adds nothing to oIoU), ``"exclude"`` (such samples are left
                  out of every figure and counted in ``n_empty_excluded``).

Evaluation at the network input size or at native resolution is the caller's choice of which
masks to pass in (see :mod:`rrsis_geo.training.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PR_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
EMPTY_POLICIES = ("zero", "one", "exclude")


def intersection_union(pred, gt) -> tuple[int, int]:
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


@dataclass
class SampleScore:
    sample_id: str
    category: str
    intersection: int
    union: int
    gt_pixels: int
    pred_pixels: int


@dataclass
class RefSegMetrics:
    """Accumulates per-sample I and U; :meth:`compute` gives the figures."""

    strict: bool = False
    empty: str = "zero"
    thresholds: tuple = PR_THRESHOLDS
    samples: list = field(default_factory=list)

    def __post_init__(self):
        if self.empty not in EMPTY_POLICIES:
            raise ValueError(f"empty must be one of {', '.join(EMPTY_POLICIES)}, not {self.empty!r}")

    def update(self, pred, gt, categories=None, sample_ids=None) -> None:
        """Add one sample ((H, W) arrays) or a batch ((B, H, W)); pred and gt are binary."""
        pred = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred)
        gt = np.asarray(gt.detach().cpu() if hasattr(gt, "detach") else gt)
        if pred.ndim == 2:
            pred, gt = pred[None], gt[None]
            categories = [categories] if isinstance(categories, str) else categories
            sample_ids = [sample_ids] if isinstance(sample_ids, str) else sample_ids
        n = pred.shape[0]
        categories = list(categories) if categories is not None else ["all"] * n
        sample_ids = list(sample_ids) if sample_ids is not None else [str(len(self.samples) + i) for i in range(n)]
        for k in range(n):
            i, u = intersection_union(pred[k], gt[k])
            self.samples.append(SampleScore(str(sample_ids[k]), str(categories[k]), i, u, int(np.count_nonzero(gt[k])), int(np.count_nonzero(pred[k]))))

    def extend(self, scores) -> None:
        """Add scores computed elsewhere (e.g. gathered from other processes)."""
        self.samples.extend(scores)

    def iou(self, s: SampleScore) -> float:
        if s.union == 0:
            return 1.0 if (self.empty == "one" and s.gt_pixels == 0) else 0.0
        return s.intersection / s.union

    def _summary(self, scores) -> dict:
        kept = [s for s in scores if not (self.empty == "exclude" and s.gt_pixels == 0)]
        out = {"n": len(kept)}
        if self.empty == "exclude":
            out["n_empty_excluded"] = len(scores) - len(kept)
        if not kept:
            out.update({"mIoU": 0.0, "oIoU": 0.0, **{f"Pr@{t}": 0.0 for t in self.thresholds}})
            return out
        ious = np.array([self.iou(s) for s in kept])
        total_i = sum(s.intersection for s in kept)
        total_u = sum(s.union for s in kept)
        out["mIoU"] = 100.0 * float(ious.mean())
        out["oIoU"] = 100.0 * (total_i / total_u if total_u else 0.0)
        for t in self.thresholds:
            hit = ious > t if self.strict else ious >= t
            out[f"Pr@{t}"] = 100.0 * float(hit.mean())
        return out

    def compute(self) -> dict:
        """Overall figures plus ``per_category`` (sorted by name)."""
        out = self._summary(self.samples)
        cats = sorted({s.category for s in self.samples})
        out["per_category"] = {c: self._summary([s for s in self.samples if s.category == c]) for c in cats}
        return out

    def per_sample(self) -> list[dict]:
        return [{"sample_id": s.sample_id, "category": s.category, "intersection": s.intersection, "union": s.union,
                 "iou": self.iou(s), "gt_pixels": s.gt_pixels, "pred_pixels": s.pred_pixels} for s in self.samples]


def format_table(result: dict, title: str = "") -> str:
    """The papers' table: one row overall, then one per category."""
    cols = ["n", "mIoU", "oIoU", *[k for k in result if k.startswith("Pr@")]]
    head = f"{'':<26}" + "".join(f"{c:>9}" for c in cols)
    lines = [title] if title else []
    lines.append(head)

    def row(name, r):
        return f"{name[:26]:<26}" + "".join(f"{r[c]:>9d}" if c == "n" else f"{r[c]:>9.2f}" for c in cols)

    lines.append(row("overall", result))
    for name, r in result.get("per_category", {}).items():
        lines.append(row(name, r))
    return "\n".join(lines)
