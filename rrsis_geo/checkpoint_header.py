"""Reading and validating a ``.safetensors`` header without torch and without reading tensors.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON
(``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}``)
and the tensor bytes. Every bound below is checked before anything the header describes is
allocated, so a small hostile file cannot make a reader allocate much more than its own size:

* the file is at most ``MAX_FILE_BYTES``; the header at most ``MAX_HEADER_BYTES`` and inside it;
* at most ``MAX_TENSORS`` tensors, each of a known dtype with a shape of non-negative integers
  whose byte size equals its ``data_offsets`` span, which lies inside the data section.

:func:`read_checkpoint_metadata` adds the rrsis-geo checks on the ``"rrsis_geo"`` metadata
(format, version, architecture name, value ranges; whether this installation knows the
architecture is the model registry's check); ``rrsis info`` uses it to learn a model's settings
without importing torch.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import struct
from pathlib import Path

from rrsis_geo.errors import CheckpointError

MAX_FILE_BYTES = 8 << 30  # 8 GiB: btdnet-b in fp32 is under 1 GiB
MAX_HEADER_BYTES = 16 << 20
MAX_TENSORS = 20_000
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
               "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}

FORMAT = "rrsis-geo-checkpoint"
FORMAT_VERSION = 2  # the newest checkpoint format this package reads
DEFAULT_ARCHITECTURE = "btdnet"  # files written before the header named its architecture
ARCHITECTURE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
META_KEY = "rrsis_geo"

# Ranges of the metadata values a checkpoint may hold.
INPUT_SIZE_RANGE = (32, 4096)
MAX_VOCABULARY_NOUNS = 10_000


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict], dict[str, str]]:
    """``(tensors, metadata)`` of safetensors file ``path``: ``tensors`` maps each name to
    ``{"dtype", "shape", "data_offsets"}`` (all checked against the file's size), ``metadata`` is
    the string map. Raises a one-line :class:`CheckpointError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path} is {size / 2**30:.1f} GiB, more than the {MAX_FILE_BYTES >> 30} GiB "
                              "a checkpoint may be")
    not_st = f"{path} is not a safetensors file"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{not_st} (only {len(head)} bytes)")
        n = struct.unpack("<Q", head)[0]
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise CheckpointError(f"{not_st} (header length {n} does not fit the file's {size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{not_st} (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{not_st} (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{not_st} (its __metadata__ is not a map of strings)")
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{path} lists {len(header)} tensors, more than the {MAX_TENSORS} allowed")
    data_bytes = size - 8 - n
    for name, t in header.items():
        _check_tensor(path, name, t, data_bytes)
    return header, metadata


def _check_tensor(path: Path, name: str, t, data_bytes: int) -> None:
    bad = f"{path}: tensor {name[:80]!r}"
    if not isinstance(t, dict) or t.get("dtype") not in DTYPE_BYTES:
        raise CheckpointError(f"{bad} has no known dtype")
    shape, offsets = t.get("shape"), t.get("data_offsets")
    if not isinstance(shape, list) or len(shape) > 8 or not all(_whole(d) and d >= 0 for d in shape):
        raise CheckpointError(f"{bad} has an invalid shape {str(shape)[:80]}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes):
        raise CheckpointError(f"{bad} has data offsets {str(offsets)[:80]} outside the file's {data_bytes} data bytes")
    if math.prod(shape) * DTYPE_BYTES[t["dtype"]] != offsets[1] - offsets[0]:
        raise CheckpointError(f"{bad}: shape {shape} of {t['dtype']} does not match its {offsets[1] - offsets[0]} bytes")


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_checkpoint_metadata(path: str | os.PathLike) -> dict:
    """The ``"rrsis_geo"`` metadata of checkpoint ``path``, checked (see :func:`check_metadata`)."""
    _, metadata = read_header(path)
    raw = metadata.get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not an rrsis-geo checkpoint "
                              f"(no '{META_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt '{META_KEY}' metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not an rrsis-geo checkpoint (format={fmt!r})")
    version = meta.get("format_version", 0)
    if not _whole(version):
        raise CheckpointError(f"{path}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this "
                              f"rrsis-geo reads ({FORMAT_VERSION}); upgrade rrsis-geo")
    architecture = meta.setdefault("architecture", DEFAULT_ARCHITECTURE)
    if not isinstance(architecture, str) or not ARCHITECTURE_NAME.match(architecture):
        raise CheckpointError(f"{path}: architecture {str(architecture)[:40]!r} is not an architecture name")
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path}: the metadata has no model config")
    check_metadata(meta, str(path))
    return meta


def _number(meta: dict, key: str):
    v = meta.get(key)
    if v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)):
        return v
    raise CheckpointError(f"{meta.get('_owner', 'checkpoint')}: {key} must be a finite number, got {str(v)[:40]}")


def check_metadata(meta: dict, owner: str) -> None:
    """Check the ranges of the metadata (and of the config's copies) that inference uses:
    ``threshold`` in [0, 1), every ``std`` > 0, ``input_size`` in ``INPUT_SIZE_RANGE``,
    the training pixels' description (:func:`rrsis_geo.predictor.check_input_metadata`),
    ``presence`` in [0, 1] and a ``vocabulary`` of at most ``MAX_VOCABULARY_NOUNS`` nouns.
    Raises a one-line :class:`CheckpointError` naming ``owner``."""
    for where in (meta, meta.get("config") or {}):
        where = {**where, "_owner": owner}
        threshold = _number(where, "threshold")
        if threshold is not None and not 0 <= threshold < 1:
            raise CheckpointError(f"{owner}: threshold must lie in [0, 1), got {threshold}")
        size = where.get("input_size")
        lo, hi = INPUT_SIZE_RANGE
        if size is not None and (not _whole(size) or not lo <= size <= hi):
            raise CheckpointError(f"{owner}: input_size must be a whole number of pixels in {lo}..{hi}, "
                                  f"got {str(size)[:40]}")
        std = where.get("std")
        if std is not None:
            if (not isinstance(std, list) or not 1 <= len(std) <= 64
                    or not all(isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) and s > 0
                               for s in std)):
                raise CheckpointError(f"{owner}: std must be finite numbers > 0 (one per band), got {str(std)[:60]}")
    bands = meta.get("bands")
    if not _whole(bands):  # files that predate the top-level "bands" (BTDNet's config holds it)
        bands = ((meta.get("config") or {}).get("vision") or {}).get("in_chans")
    if _whole(bands):  # what the training pixels were (radiometry, ground resolution, window size)
        from rrsis_geo.predictor import check_input_metadata

        check_input_metadata(meta, bands, owner)
    presence = _number({**meta, "_owner": owner}, "presence")
    if presence is not None and not 0 <= presence <= 1:
        raise CheckpointError(f"{owner}: presence must lie in [0, 1], got {presence}")
    vocabulary = meta.get("vocabulary")
    if vocabulary is not None:
        nouns = vocabulary_nouns(vocabulary, owner)
        if nouns > MAX_VOCABULARY_NOUNS:
            raise CheckpointError(f"{owner}: the vocabulary holds {nouns} nouns, more than the "
                                  f"{MAX_VOCABULARY_NOUNS} allowed")


def vocabulary_nouns(vocabulary, owner: str) -> int:
    """How many nouns a ``vocabulary`` entry (``{"categories": {name: {"nouns": [...]}}}``) holds,
    each category's name counted as one."""
    categories = vocabulary.get("categories") if isinstance(vocabulary, dict) else None
    if not isinstance(categories, dict):
        raise CheckpointError(f"{owner}: vocabulary must be {{'categories': {{name: {{'nouns': [...]}}}}}}")
    total = 0
    for entry in categories.values():
        nouns = entry.get("nouns", []) if isinstance(entry, dict) else None
        if not isinstance(nouns, list):
            raise CheckpointError(f"{owner}: every vocabulary category needs a list of nouns")
        total += len(nouns) + 1
    return total


def model_settings(name_or_path: str) -> dict | None:
    """The checked metadata of a shipped model or an existing checkpoint file, without torch;
    None for anything else (a preset name, or a name the model loader will refuse)."""
    from rrsis_geo.weights import SHIPPED, shipped_path

    if name_or_path in SHIPPED:
        return read_checkpoint_metadata(shipped_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return read_checkpoint_metadata(path)
    return None
