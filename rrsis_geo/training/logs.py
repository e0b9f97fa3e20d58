"""Run logs: CSV scalars, TensorBoard scalars, a PNG of the curves, a PNG grid of predictions."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


class ScalarLog:
    """Appends rows to ``<out>/<name>.csv`` (columns fixed by the first row) and, optionally,
    TensorBoard scalars under ``<out>/tb``."""

    def __init__(self, out_dir, tensorboard: bool = True):
        self.out_dir = Path(out_dir)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out_dir / "tb"))
            except Exception:  # tensorboard missing or unusable: CSV is enough
                self.tb = None

    def write(self, name: str, step: int, values: dict) -> None:
        path = self.out_dir / f"{name}.csv"
        row = {"step": step, **values}
        new = not path.exists()
        if not new:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            fields = header or list(row)
        else:
            fields = list(row)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{name}/{k}", v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_csv(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(out_dir) -> Path:
    """``curves.png``: training loss per step and validation mIoU/oIoU per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    train, val = read_csv(out_dir / "train.csv"), read_csv(out_dir / "val.csv")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        axes[0].plot([int(r["step"]) for r in train], [float(r["loss"]) for r in train], lw=1)
    axes[0].set(title="training loss", xlabel="optimizer step", ylabel="loss")
    for key in ("mIoU", "oIoU"):
        if val and key in val[0]:
            axes[1].plot([int(r["epoch"]) for r in val], [float(r[key]) for r in val], marker="o", label=key)
    axes[1].set(title="validation", xlabel="epoch", ylabel="%")
    axes[1].xaxis.get_major_locator().set_params(integer=True)
    if val:
        axes[1].legend()
    fig.tight_layout()
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def prediction_grid(examples: list[dict], path, mean, std, cols: int = 4) -> Path:
    """A PNG grid: per example, the image with ground truth (green) and prediction (red) outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(examples), 1)
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    m = np.asarray(mean, dtype=np.float32)[:3, None, None]  # the first three bands, shown as RGB (of R, G, B, NIR...)
    s = np.asarray(std, dtype=np.float32)[:3, None, None]
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples):
        img = np.clip(ex["image"].numpy()[:3] * s + m, 0, 1).transpose(1, 2, 0)
        ax.imshow(img)
        gt, pred = ex["gt"].numpy().astype(float), ex["pred"].numpy().astype(float)
        if gt.any():
            ax.contour(gt, levels=[0.5], colors="lime", linewidths=1.2)
        if pred.any():
            ax.contour(pred, levels=[0.5], colors="red", linewidths=1.2)
        inter = np.logical_and(gt > 0, pred > 0).sum()
        union = np.logical_or(gt > 0, pred > 0).sum()
        iou = inter / union if union else 0.0
        text = ex["expression"] if len(ex["expression"]) < 40 else ex["expression"][:37] + "..."
        ax.set_title(f"{text}\nIoU {100 * iou:.1f}", fontsize=8)
    fig.suptitle("green: ground truth, red: prediction", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
