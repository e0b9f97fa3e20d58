"""Compact checkpoints: store what changed, in half precision.

:func:`export_checkpoint` rewrites a full checkpoint (see :mod:`~rrsis_geo.models.checkpoint`)
for distribution:

* ``drop_pretrained``: an encoder whose config names weights (the architecture's ``encoders``;
  BTDNet's ``vision.weights`` / ``text.weights``: ``"package:..."`` or a path) and that is still
  bit-identical to those weights
  (training kept it frozen) is not stored; the header's ``base`` names its source and the hash
  :func:`~rrsis_geo.models.checkpoint.load_checkpoint` checks when it rebuilds it. All or nothing
  per encoder: one changed tensor (a BatchNorm running mean counts) keeps the whole encoder.
* ``half``: floating tensors are stored as float16, except 0-dim ones (scalar parameters such as
  ``log_scale``: tiny, and sensitive) and those fp16 cannot hold: any value above 60000 in
  magnitude (fp16's max is 65504; inf/NaN count) or a non-zero tensor entirely below fp16's
  smallest normal 2**-14 (it would underflow to a few subnormal steps). Integer buffers are kept.

The source is read with :func:`~rrsis_geo.models.checkpoint.load_checkpoint` (never unpickled),
so an already compact checkpoint can be exported again.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rrsis_geo.models.checkpoint import (
    load_checkpoint, rebuild_encoder, tensor_digest, write_checkpoint_file,
)

HALF_MAX = 60000.0  # keep fp32 above this magnitude (fp16 overflows at 65504)
HALF_TINY = 2.0 ** -14  # fp16's smallest normal: a tensor entirely below it keeps fp32


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical (so NaN == NaN and 0.0 != -0.0, unlike ``torch.equal``)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    raw = lambda t: t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)  # noqa: E731
    return torch.equal(raw(a), raw(b))


def fits_half(t: torch.Tensor) -> bool:
    """Whether a floating tensor can be stored as float16 without overflow or bad underflow."""
    if t.dim() == 0:
        return False
    if t.numel() == 0:
        return True
    amax = float(t.detach().abs().max())
    return amax <= HALF_MAX and (amax == 0.0 or amax >= HALF_TINY)  # NaN fails both


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True,
                      drop_pretrained: bool = True) -> dict:
    """Write a compact copy of checkpoint ``src`` to ``dst`` (atomically; ``dst`` may exist).

    Returns a report: ``dropped`` {prefix: tensor count}, ``kept`` {prefix: why it is stored},
    ``base`` (the header entry),
    ``fp32`` (floating tensors kept in fp32 when ``half``), ``src_bytes``, ``dst_bytes``,
    ``format_version``, ``path``.
    """
    from rrsis_geo.errors import ModelError
    from rrsis_geo.models.registry import architecture_of, build_model

    model, meta = load_checkpoint(src)
    src_bytes = Path(src).stat().st_size  # before writing: dst may be src
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    report = {"dropped": {}, "kept": {}, "fp32": []}
    base = {}
    if drop_pretrained:
        ref = build_model(model.cfg, pretrained=False, seed=0)  # receives the pretrained encoders
        for prefix, spec in architecture_of(model).encoders(model.cfg).items():
            try:
                pre = rebuild_encoder(ref, prefix)
            except ModelError as exc:
                report["kept"][prefix] = f"{spec} is not available here ({exc})"
                continue
            ours = {k: v for k, v in tensors.items() if k.startswith(prefix)}
            changed = sorted(k for k in ours if k not in pre or not _same(ours[k], pre[k]))
            if changed or set(ours) != set(pre):
                report["kept"][prefix] = (f"{len(changed)} of {len(ours)} tensors differ from {spec} "
                                          f"(first: {changed[0] if changed else 'key sets differ'})")
                continue
            base[prefix] = {"weights": spec, "sha256": tensor_digest(pre), "keys": len(pre)}
            report["dropped"][prefix] = len(pre)
            for k in ours:
                del tensors[k]
    if half:
        for k, v in tensors.items():
            if v.is_floating_point() and v.dtype != torch.float16:
                if fits_half(v):
                    tensors[k] = v.half()
                else:
                    report["fp32"].append(k)
    header = {k: v for k, v in meta.items() if k not in ("base", "stored_dtype")}
    header["format_version"] = 2 if base else 1  # 1 still describes a half-only file (see checkpoint)
    if base:
        header["base"] = base
    if half:
        header["stored_dtype"] = "float16"
    path = write_checkpoint_file(tensors, header, dst)
    report.update(base=base, path=path, format_version=header["format_version"],
                  src_bytes=src_bytes, dst_bytes=path.stat().st_size)
    return report
