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
def run_evaluation(model, text_processor, dataset, *, device, batch_size: int = 8, native: bool = False,
                   strict: bool = False, empty: str = "zero", amp: str = "off", rank: int = 0, world: int = 1,
                   num_workers: int = 0, keep_examples: int = 0, progress=None) -> tuple[RefSegMetrics, list[dict]]:
    """Returns this process's metrics (gather them across processes yourself) and up to
    ``keep_examples`` examples (image, gt, pred at input size) for a picture."""
    was_training = model.training
    model.eval()
    metrics = RefSegMetrics(strict=strict, empty=empty)
    examples: list[dict] = []
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
                for k, gt in enumerate(batch["mask_native"]):
                    up = F.interpolate(logits[k : k + 1], size=tuple(gt.shape), mode="bilinear", align_corners=False)
                    metrics.update(foreground(up)[0].cpu(), gt, [batch["category"][k]], [batch["sample_id"][k]])
            else:
                pred = foreground(logits).cpu()
                metrics.update(pred, batch["mask"], batch["category"], batch["sample_id"])
            if len(examples) < keep_examples:
                pred = foreground(logits).cpu()
                for k in range(min(len(pred), keep_examples - len(examples))):
                    examples.append({"image": batch["image"][k], "gt": batch["mask"][k], "pred": pred[k],
                                     "expression": batch["expression"][k], "sample_id": batch["sample_id"][k]})
    finally:
        model.train(was_training)
    return metrics, examples
