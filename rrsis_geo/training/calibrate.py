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

from pathlib import Path

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


def choose_presence(peaks: list[tuple[float, bool]], grid=DEFAULT_GRID, floor: float = 0.0) -> dict:
    """The presence threshold with the best balanced accuracy on ``(peak probability, category
    present)`` pairs; among equals the lowest (an abstention costs an answer). Thresholds below
    ``floor`` (the decision threshold: no candidate exists below it) are not tried."""
    pos = [p for p, present in peaks if present]
    neg = [p for p, present in peaks if not present]
    rows = []
    for t in sorted({float(t) for t in grid if t >= floor} | {float(floor)}):
        tpr = sum(p >= t for p in pos) / len(pos) if pos else 1.0
        tnr = sum(p < t for p in neg) / len(neg) if neg else 1.0
        rows.append({"presence": t, "tpr": round(tpr, 4), "tnr": round(tnr, 4),
                     "balanced_accuracy": round((tpr + tnr) / 2, 4)})
    best = max(rows, key=lambda r: (r["balanced_accuracy"], -r["presence"]))
    return {"best": best, "rows": rows, "positives": len(pos), "negatives": len(neg)}


def calibrate_presence(checkpoint, fmt: str, root, out, split: str = "val", *, grid=DEFAULT_GRID,
                       device: str = "auto", limit: int = 0, on_error: str = "raise", progress=None,
                       **data_options) -> dict:
    """Choose the checkpoint's presence threshold on held-out images and write a copy carrying it.

    Every image of ``split`` is asked each category prompt of the checkpoint's vocabulary ("all the
    lakes"); the peak foreground probability is a positive when one of the image's expressions
    names that category, else a negative. A scene-level run then abstains ("no confident match")
    when no candidate's peak reaches the threshold. Categories an image holds but no expression
    names count as negatives, so the threshold leans low (it keeps answers)."""
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models.checkpoint import check_output_folder, read_metadata, sha256_file, update_metadata
    from rrsis_geo.models.inference import ReferringPredictor, info_from_model
    from rrsis_geo.referring.expression import normalise_noun
    from rrsis_geo.referring.vocabulary import from_metadata

    meta = read_metadata(checkpoint)
    vocab = from_metadata(meta.get("vocabulary"))
    if vocab is None:
        raise ConfigError(f"{checkpoint} records no vocabulary (the categories it was trained on); "
                          "train it with a category column, or record one first")
    check_output_folder(out)
    model, _size, ds, text, dev = open_split(checkpoint, fmt, root, split, native=False, device=device,
                                             limit=limit, on_error=on_error, data_options=data_options)
    info = info_from_model(model, Path(checkpoint).stem, sha256_file(checkpoint), meta)
    predictor = ReferringPredictor(model, info, str(dev), text_processor=text)
    prompts = {cat: vocab.prompt(cat) or f"all the {cat}" for cat in vocab.categories}
    encoded = {cat: predictor.encode_expression(p) for cat, p in prompts.items()}
    named: dict[str, set] = {}
    first: dict[str, int] = {}
    for i, r in enumerate(ds.records):
        named.setdefault(r.image_id, set()).add(normalise_noun(str(r.category)))
        first.setdefault(r.image_id, i)
    peaks = []
    for k, (image_id, i) in enumerate(first.items()):
        image = ds[i]["image"][None].numpy()
        for cat, enc in encoded.items():
            peaks.append((float(predictor.predict(image, enc).max()), cat in named[image_id]))
        if progress is not None:
            progress(k + 1, len(first))
    if not any(present for _, present in peaks) or all(present for _, present in peaks):
        raise ConfigError(f"{split} of {root} gives no contrast (every category present or none): "
                          "cannot choose a presence threshold")
    chosen = choose_presence(peaks, grid, floor=float(predictor.info.threshold))
    calibration = {**chosen["best"], "positives": chosen["positives"], "negatives": chosen["negatives"],
                   "images": len(first), "prompts": prompts, "format": fmt, "root": str(root), "split": split}
    path = update_metadata(checkpoint, out, presence=chosen["best"]["presence"], presence_calibration=calibration)
    return {"rows": chosen["rows"], "calibration": calibration, "path": str(path)}
