"""Evaluate a model on a referring-segmentation dataset (used by validation and ``rrsis eval``).

Default (the papers' convention): predictions at the network input size against the
nearest-resized ground truth. ``native=True``: logits are resized (bilinear) to each sample's
native size and compared with the native mask.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from rrsis_geo.data.transforms import collate
from rrsis_geo.training.bundle import foreground, output_field
from rrsis_geo.training.metrics import RefSegMetrics
from rrsis_geo.training.sampler import shard_batches


def autocast_context(device: torch.device, amp: str):
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def _scored(model, text_processor, dataset, *, device, batch_size: int, native: bool, amp: str, rank: int = 0,
            world: int = 1, num_workers: int = 0, progress=None):
    """Yields ``(batch, logits, scored)`` per batch: ``logits`` (B, 2, h, w) at the input size and
    ``scored`` a list of ``(logits, gt, category, sample_id)`` per sample, at the resolution it is
    scored at (``native``: each sample's own size, logits resized bilinearly; else the input size).
    The model is in eval mode while the generator runs and back in its former mode after."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_sampler=shard_batches(len(dataset), batch_size, rank, world),
                        num_workers=num_workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))  # leaves the global RNG untouched
    try:
        for batch in progress(loader) if progress else loader:
            images = batch["image"].to(device)
            text = {k: v.to(device) for k, v in text_processor(batch["expression"]).items()}
            with autocast_context(device, amp):
                out = model(images, text)
            logits = output_field(out, "logits").float()
            if native:
                scored = [(F.interpolate(logits[k : k + 1], size=tuple(gt.shape), mode="bilinear", align_corners=False),
                           gt, batch["category"][k], batch["sample_id"][k]) for k, gt in enumerate(batch["mask_native"])]
            else:
                scored = [(logits[k : k + 1], batch["mask"][k], batch["category"][k], batch["sample_id"][k])
                          for k in range(len(logits))]
            yield batch, logits, scored
    finally:
        model.train(was_training)


def run_evaluation(model, text_processor, dataset, *, device, batch_size: int = 8, native: bool = False,
                   strict: bool = False, empty: str = "zero", amp: str = "off", rank: int = 0, world: int = 1,
                   num_workers: int = 0, keep_examples: int = 0, progress=None,
                   threshold: float | None = None) -> tuple[RefSegMetrics, list[dict]]:
    """Returns this process's metrics (gather them across processes yourself) and up to
    ``keep_examples`` examples (image, gt, pred at input size) for a picture. ``threshold``: the
    foreground probability a pixel must exceed (None: fg > bg, i.e. 0.5)."""
    metrics = RefSegMetrics(strict=strict, empty=empty)
    examples: list[dict] = []
    for batch, logits, scored in _scored(model, text_processor, dataset, device=device, batch_size=batch_size,
                                         native=native, amp=amp, rank=rank, world=world, num_workers=num_workers,
                                         progress=progress):
        for lg, gt, category, sid in scored:
            metrics.update(foreground(lg, threshold)[0].cpu(), gt, [category], [sid])
        if len(examples) < keep_examples:
            pred = foreground(logits, threshold).cpu()
            for k in range(min(len(pred), keep_examples - len(examples))):
                examples.append({"image": batch["image"][k], "gt": batch["mask"][k], "pred": pred[k],
                                 "expression": batch["expression"][k], "sample_id": batch["sample_id"][k]})
    return metrics, examples


def sweep_thresholds(model, text_processor, dataset, thresholds, *, device, batch_size: int = 8, native: bool = False,
                     strict: bool = False, empty: str = "zero", amp: str = "off", num_workers: int = 0,
                     progress=None) -> dict[float, RefSegMetrics]:
    """One pass over ``dataset``, scored at every foreground-probability threshold in ``thresholds``."""
    metrics = {float(t): RefSegMetrics(strict=strict, empty=empty) for t in thresholds}
    for _batch, _logits, scored in _scored(model, text_processor, dataset, device=device, batch_size=batch_size,
                                           native=native, amp=amp, num_workers=num_workers, progress=progress):
        for lg, gt, category, sid in scored:
            prob = lg.softmax(1)[0, 1]
            for t, m in metrics.items():
                m.update((prob > t).cpu(), gt, [category], [sid])
    return metrics


def open_split(checkpoint, fmt: str, root, split: str, *, native: bool, device: str, limit: int, on_error: str,
                data_options: dict):
    """The checkpoint's model (on ``device``), its text processor and the dataset split, read the way
    the model was trained (its input size, normalisation and, for custom data, chip options)."""
    import rrsis_geo.models as models
    from rrsis_geo.data import open_dataset
    from rrsis_geo.data.transforms import build_transforms
    from rrsis_geo.errors import ConfigError, DatasetError

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model, meta = models.load_checkpoint(checkpoint, device=dev)
    cfg = model.cfg
    size = int(meta.get("input_size") or cfg.input_size)
    transforms = build_transforms(size, False, tuple(cfg.mean), tuple(cfg.std), keep_native=native)
    if fmt == "custom":  # cut the chips and blocks the way the training run did, unless told otherwise
        trained = (meta.get("training") or {}).get("config", {}).get("data", {})
        options = dict(trained.get("custom", {})) if trained.get("format") == "custom" else {}
        if "split_seed" in options:
            options["seed"] = options.pop("split_seed")
        data_options = {**options, **data_options}
    ds = open_dataset(fmt, root, split, transforms, on_error, **data_options)
    if limit:
        ds.records = ds.records[:limit]
    if len(ds) == 0:
        raise DatasetError(f"no {split} samples in {root}; run `rrsis data check --format {fmt} {root}`")
    return model, size, ds, models.text_processor(cfg), dev


def evaluate_checkpoint(checkpoint, fmt: str, root, split: str = "test", *, out_dir=None, native: bool = False,
                        strict: bool = False, empty: str = "zero", batch_size: int = 8, device: str = "auto",
                        amp: str = "off", grid: int = 8, limit: int = 0, num_workers: int = 0, on_error: str = "raise",
                        progress=None, threshold: float | None = None, **data_options) -> dict:
    """``rrsis eval``: load a self-describing checkpoint, evaluate it on a dataset split, write
    ``metrics.json`` / ``metrics.csv`` / ``per_sample.csv`` / ``grid.png`` under ``out_dir``.
    ``threshold`` None: the checkpoint's own (0.5, fg > bg, unless ``rrsis model calibrate`` set one)."""
    import csv
    import json
    from pathlib import Path

    from rrsis_geo.models.checkpoint import sha256_file
    from rrsis_geo.training.logs import prediction_grid

    model, size, ds, text, dev = open_split(checkpoint, fmt, root, split, native=native, device=device,
                                                   limit=limit, on_error=on_error, data_options=data_options)
    cfg = model.cfg
    if threshold is None and cfg.threshold != 0.5:
        threshold = float(cfg.threshold)
    metrics, examples = run_evaluation(model, text, ds, device=dev, batch_size=batch_size, native=native, strict=strict,
                                       empty=empty, amp=amp, num_workers=num_workers, keep_examples=grid, progress=progress,
                                       threshold=threshold)
    result = metrics.compute()
    report = {
        "checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint), "format": fmt, "root": str(root), "split": split,
        "options": {"input_size": size, "native_resolution": native, "strict": strict, "empty": empty,
                    "threshold": 0.5 if threshold is None else threshold},
        "skipped_unreadable": len(ds.skipped), "metrics": result, "samples": metrics.per_sample(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, indent=1))
        cols = ["n", "mIoU", "oIoU", *[k for k in result if k.startswith("Pr@")]]
        with open(out / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["category", *cols])
            w.writerow(["overall", *[result[c] for c in cols]])
            for name, r in result["per_category"].items():
                w.writerow([name, *[r[c] for c in cols]])
        with open(out / "per_sample.csv", "w", newline="") as f:
            rows = metrics.per_sample()
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        if examples:
            prediction_grid(examples, out / "grid.png", cfg.mean, cfg.std)
        report["out_dir"] = str(out)
    return report
