"""Model configs as trees of dataclasses, for every architecture.

A config is a dataclass whose fields are plain values or *sections* (fields whose default is a
dataclass). It round-trips through plain JSON (:func:`to_dict` / :func:`from_dict`); that JSON is
what a checkpoint stores, so a checkpoint rebuilds its own architecture.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rrsis_geo.errors import ConfigError


def to_dict(cfg) -> dict[str, Any]:
    """Plain-JSON dict of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def sections(cls) -> dict[str, type]:
    """The section fields of config class ``cls``: name -> its dataclass."""
    out = {}
    for f in dataclasses.fields(cls):
        factory = f.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            out[f.name] = factory
    return out


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key(s) in {where}: {', '.join(unknown)}; known: {', '.join(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def from_dict(cls, d: dict[str, Any]):
    """Inverse of :func:`to_dict` for config class ``cls``; unknown keys raise :class:`ConfigError`."""
    d = dict(d)
    parts = {name: _build(sub, dict(d.pop(name, {}) or {}), name) for name, sub in sections(cls).items()}
    return dataclasses.replace(_build(cls, d, "the model config"), **parts)


def apply_overrides(cfg, overrides: dict[str, Any]):
    """A copy of ``cfg`` with overrides applied: top-level fields (``max_tokens=50``), a section
    with a dict of its fields (``mci={"iters": 1}``), or ``section__field`` (``mci__iters=1``)."""
    names = sections(type(cfg))
    d = to_dict(cfg)
    for key, value in overrides.items():
        if key in names and isinstance(value, dict):
            d[key].update(value)
        elif "__" in key:
            section, sub = key.split("__", 1)
            if section not in names:
                raise ConfigError(f"unknown config section {section!r} in override {key!r}")
            d[section][sub] = value
        else:
            d[key] = value
    return from_dict(type(cfg), d)
