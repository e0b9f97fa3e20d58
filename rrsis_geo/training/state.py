"""Trainer state on disk: safetensors tensors + a JSON header, written atomically.

Never pickle: tensors (model, optimizer moments, RNG byte states) go in the safetensors body,
everything else (step counters, hyper-parameters, Python/NumPy RNG, data position, history,
config) in one JSON string under the header key ``rrsis_state``.

:func:`atomic_write` writes to a temporary file in the same folder, flushes it to disk and
renames it over the target, so a crash or a full disk while saving leaves the previous file
intact.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rrsis_geo.errors import CheckpointError, OutputError

STATE_KEY = "rrsis_state"
STATE_FORMAT = "rrsis-geo/trainer-state/1"


def atomic_write(path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, then rename ``tmp_path`` to ``path`` (same folder)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc} (the previous file, if any, is intact)") from None
        raise


# -- RNG ------------------------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s.clone()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": _jsonable(random.getstate())}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_tuplify(meta["python"]))


def _jsonable(x):
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    return x


def _tuplify(x):
    if isinstance(x, list):
        return tuple(_tuplify(v) for v in x)
    return x


# -- optimizer ------------------------------------------------------------------------------


def optimizer_to_flat(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta["scalars"].items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# -- whole state ----------------------------------------------------------------------------


def save_state(path, *, model_state: dict, optimizer_state: dict, rng: tuple[dict, dict], meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model_state.items()}
    opt_tensors, opt_meta = optimizer_to_flat(optimizer_state)
    tensors.update(opt_tensors)
    tensors.update(rng[0])
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {"format": STATE_FORMAT, "optimizer": opt_meta, "rng": rng[1], **meta}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={STATE_KEY: json.dumps(header)}))


def load_state(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (tensors, header). Raises CheckpointError for anything else."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"trainer state {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        header = json.loads(meta[STATE_KEY])
    except (KeyError, ValueError, OSError, Exception) as exc:  # safetensors raises its own types
        raise CheckpointError(f"{path} is not an rrsis-geo trainer state ({type(exc).__name__}: {exc})") from None
    if header.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is a {header.get('format')!r} file, not {STATE_FORMAT}")
    return tensors, header


def model_state_from(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
