"""What ``rrsis model info`` prints: parameters per component, input size, FLOPs per tile, and
how a checkpoint stores its tensors."""

from __future__ import annotations

import torch

COMPONENTS = ("vision", "index_stem", "text", "bsc", "mci", "decoder", "refine", "fgbg", "seg_head", "dmols")


def count_parameters(model) -> dict[str, int]:
    """Parameters per top-level component (``dmols`` is training-only) and the total."""
    out = {}
    for name in COMPONENTS:
        mod = getattr(model, name, None)
        out[name] = sum(p.numel() for p in mod.parameters()) if mod is not None else 0
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


def meta_model(cfg):
    """A BTDNet with the config's shapes on the meta device: no memory, no weights, instant-ish."""
    from rrsis_geo.models.btdnet import BTDNet

    with torch.device("meta"):
        return BTDNet(cfg).eval()


def estimate_flops(model, size: int | None = None, tokens: int | None = None) -> int:
    """Forward FLOPs (2 x multiply-adds of matmuls/convs, as counted by
    ``torch.utils.flop_counter``) for one tile at inference, computed on the meta device (no
    real compute). Elementwise ops and softmax are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.cfg
    size = size or cfg.input_size
    tokens = tokens or cfg.max_tokens
    m = model if next(model.parameters()).is_meta else meta_model(cfg)
    x = torch.zeros(1, cfg.vision.in_chans, size, size, device="meta")
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    text = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "masked_input_ids": ids, "masked_attention_mask": torch.ones_like(ids)}
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m(x, text)
    return int(counter.get_total_flops())


def summarize(model, meta: dict | None = None) -> dict:
    cfg = model.cfg
    info = {
        "preset": cfg.name,
        "input_size": cfg.input_size,
        "bands": cfg.vision.in_chans,
        "max_tokens": cfg.max_tokens,
        "vision": cfg.vision.kind,
        "text_layers": f"{cfg.text.num_layers} (stages {'-'.join(map(str, cfg.text.stage_layers))})",
        "mci_iters": cfg.mci.iters,
        "logit_stride": cfg.decoder.fine_stride,  # 4: the paper's 1/4 head; 2 or 1: the detail refinement
        "spectral_indices": [list(p) for p in cfg.spectral_indices],  # band pairs (a - b) / (a + b) the model computes
        "parameters": count_parameters(model),
    }
    try:
        info["gflops_per_tile"] = round(estimate_flops(model) / 1e9, 1)
    except Exception as exc:  # the estimate is informative only
        info["gflops_per_tile"] = f"unavailable ({type(exc).__name__})"
    if meta:
        for k in ("gsd_m", "threshold", "calibration", "provenance", "training", "metrics"):
            if meta.get(k) is not None:
                info[k] = meta[k]
    return info


def storage(meta: dict) -> dict:
    """How a checkpoint stores its tensors: ``stored_dtype`` (float32 unless exported in half
    precision), ``format_version``, and ``base`` (encoders rebuilt from their pretrained source)."""
    out = {"stored_dtype": meta.get("stored_dtype", "float32"), "format_version": meta.get("format_version")}
    if meta.get("base"):
        out["base"] = meta["base"]
    return out
