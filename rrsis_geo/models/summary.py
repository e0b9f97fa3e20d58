"""What ``rrsis model info`` prints: parameters per component, input size, FLOPs per tile, and
how a checkpoint stores its tensors, for any registered architecture."""

from __future__ import annotations

import torch

from rrsis_geo.models.registry import architecture_of


def count_parameters(model) -> dict[str, int]:
    """Parameters per top-level component of the model's architecture (some are training-only:
    ``Architecture.training_only``) and the total."""
    out = {}
    for name in architecture_of(model).components:
        part = getattr(model, name, None)
        if isinstance(part, torch.nn.Parameter):
            out[name] = part.numel()
        else:
            out[name] = sum(p.numel() for p in part.parameters()) if part is not None else 0
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


def meta_model(cfg):
    """The model a config describes, on the meta device: no memory, no weights, instant-ish."""
    with torch.device("meta"):
        return architecture_of(cfg).build(cfg).eval()


def estimate_flops(model, size: int | None = None, tokens: int | None = None) -> int:
    """Forward FLOPs (2 x multiply-adds of matmuls/convs, as counted by
    ``torch.utils.flop_counter``) for one tile at inference, computed on the meta device (no
    real compute). Elementwise ops and softmax are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.cfg
    arch = architecture_of(cfg)
    settings = arch.settings(cfg)
    size = size or settings["input_size"]
    tokens = tokens or settings["max_tokens"]
    m = model if next(model.parameters()).is_meta else meta_model(cfg)
    x, text = arch.example_inputs(cfg, size, tokens, "meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m(x, text)
    return int(counter.get_total_flops())


def summarize(model, meta: dict | None = None) -> dict:
    cfg = model.cfg
    arch = architecture_of(cfg)
    settings = arch.settings(cfg)
    info = {
        "architecture": arch.name,
        "preset": cfg.name,
        "input_size": settings["input_size"],
        "bands": settings["bands"],
        "max_tokens": settings["max_tokens"],
        **arch.describe(cfg),
        "parameters": count_parameters(model),
    }
    try:
        info["gflops_per_tile"] = float(f"{estimate_flops(model) / 1e9:.3g}")  # 3 significant digits
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
