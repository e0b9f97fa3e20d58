"""Choose a checkpoint's decision threshold on held-out data (``rrsis model calibrate``).

The paper's decision is fg > bg, a softmax foreground probability above 0.5. A model trained on
small targets is often under-confident: its probability on the target peaks below 0.5, so the
0.5 decision leaves targets empty that a lower threshold finds. :func:`calibrate_checkpoint`
scores one pass over a split at every threshold of a grid, picks the one with the best mIoU
(or oIoU), and writes a copy of the checkpoint that carries it (``threshold`` in its metadata and
config, ``calibration`` with the evidence). ``rrsis segment`` and ``rrsis eval`` use a
checkpoint's threshold unless ``--threshold`` is given. Choose it on validation data: a threshold
chosen on the split you report makes those scores optimistic.

Training from a calibrated checkpoint (``model.init``) starts again from 0.5: the calibration
belongs to the weights it was measured on.
"""

from __future__ import annotations

from rrsis_geo.training.evaluate import open_split, sweep_thresholds

DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95
METRICS = ("mIoU", "oIoU")


def calibrate_checkpoint(checkpoint, fmt: str, root, out, split: str = "val", *, thresholds=DEFAULT_GRID,
                         metric: str = "mIoU", native: bool = False, strict: bool = False, empty: str = "zero",
                         batch_size: int = 8, device: str = "auto", amp: str = "off", limit: int = 0,
                         num_workers: int = 0, on_error: str = "raise", progress=None, **data_options) -> dict:
    """Sweep ``thresholds`` (plus the checkpoint's current one) on ``split``, write the checkpoint
    with the best to ``out``. Returns ``rows`` (one per threshold: n, mIoU, oIoU, Pr@X),
    ``calibration`` (what was stored) and ``path``."""
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models.checkpoint import check_output_folder, update_metadata

    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    bad = [t for t in thresholds if not 0.0 < float(t) < 1.0]
    if bad or not thresholds:
        raise ConfigError(f"thresholds must lie strictly between 0 and 1 (got {', '.join(map(str, bad)) or 'none'})")
    check_output_folder(out)  # before the sweep, not after it
    model, _size, ds, text, dev = open_split(checkpoint, fmt, root, split, native=native, device=device,
                                                     limit=limit, on_error=on_error, data_options=data_options)
    current = float(model.cfg.threshold)
    grid = sorted({float(t) for t in thresholds} | {current})
    table = sweep_thresholds(model, text, ds, grid, device=dev, batch_size=batch_size, native=native, strict=strict,
                             empty=empty, amp=amp, num_workers=num_workers, progress=progress)
    rows = []
    for t, m in table.items():
        result = m.compute()
        rows.append({"threshold": t, **{k: v for k, v in result.items() if k != "per_category"}})
    # the best score; among equals, the threshold nearest the current one (no change without a gain)
    best = max(rows, key=lambda r: (round(r[metric], 9), -abs(r["threshold"] - current)))
    before = next(r for r in rows if r["threshold"] == current)
    calibration = {
        "threshold": best["threshold"], "metric": metric, "score": round(best[metric], 4),
        "previous_threshold": current, "previous_score": round(before[metric], 4),
        "format": fmt, "root": str(root), "split": split, "n": best["n"], "native_resolution": native,
        "grid": grid,
    }
    path = update_metadata(checkpoint, out, threshold=best["threshold"], calibration=calibration)
    return {"rows": rows, "calibration": calibration, "path": str(path)}
