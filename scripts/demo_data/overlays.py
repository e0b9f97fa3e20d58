"""PNG overlays of the labels for a visual check (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np

COLORS = {"lake": (0.1, 0.5, 1.0), "river": (0.0, 1.0, 1.0), "sea": (0.2, 0.2, 0.9), "field": (0.2, 1.0, 0.2),
          "bare field": (1.0, 0.6, 0.1)}


def rgb(image: np.ndarray) -> np.ndarray:
    """(4, H, W) uint8 -> (H, W, 3) float, 2-98 % stretch per chip."""
    a = image[:3].astype(np.float64)
    lo, hi = np.percentile(a, [2, 98])
    return np.clip((np.moveaxis(a, 0, -1) - lo) / max(hi - lo, 1.0), 0, 1)


def _draw(ax, rec, numbers=True, lw=1.2):
    from scipy import ndimage as ndi

    img = rgb(rec["image"])
    over = img.copy()
    for t in rec["targets"]:
        c = np.array(COLORS[t.category])
        edge = t.mask & ~ndi.binary_erosion(t.mask)
        over[t.mask] = 0.65 * over[t.mask] + 0.35 * c
        over[edge] = c
    for t in rec.get("distractors", ()):
        edge = t.mask & ~ndi.binary_erosion(t.mask)
        over[edge] = (0.6, 0.6, 0.6)  # rejected by a shape test: counted, never referred to
    ax.imshow(over, interpolation="nearest")
    if numbers:
        for i, t in enumerate(rec["targets"]):
            ax.text(t.cx, t.cy, str(i), color="white", fontsize=7, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.1", fc=COLORS[t.category], ec="none", alpha=0.8))
    ax.set_xticks([])
    ax.set_yticks([])


def chip_overlay(rec, path, max_lines=14):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9, 5))
    ax = fig.add_axes([0.0, 0.0, 0.5, 0.92])
    _draw(ax, rec)
    ch = rec["chip"]
    ax.set_title(f"{ch.name} ({ch.split})", fontsize=9)
    lines = [f"#{e.target} {rec['targets'][e.target].category:<10} [{e.kind[:3]}] {e.text}" for e in rec["exprs"]]
    if len(lines) > max_lines:
        step = len(lines) / max_lines
        lines = [lines[int(k * step)] for k in range(max_lines)] + [f"... {len(rec['exprs'])} expressions in all"]
    fig.text(0.51, 0.95, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def contact_sheet(records, path, cols=10, thumb_in=1.25):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = len(records)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * thumb_in, rows * (thumb_in + 0.18) + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, rec in zip(axes.ravel(), records):
        _draw(ax, rec, numbers=False)
        ax.set_axis_on()
        ch = rec["chip"]
        ax.set_title(f"{ch.name[:-4]} {ch.split}", fontsize=6, pad=1.5,
                     color={"train": "black", "val": "tab:orange", "test": "tab:red"}[ch.split])
    fig.legend(handles=[Patch(color=c, label=k) for k, c in COLORS.items()], loc="lower center", ncol=len(COLORS),
               fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.4 / (rows * (thumb_in + 0.18) + 0.4), wspace=0.05, hspace=0.2)
    save_small_png(fig, path, dpi=100)
    plt.close(fig)


def save_small_png(fig, path, dpi=100, colors=256):
    """A palette PNG (a few hundred kB instead of MB for a sheet of photos): small enough to commit."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)
