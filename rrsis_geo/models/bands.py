"""A trained model narrowed to some of its input bands: an RGB start from an RGBN model.

:func:`select_bands` keeps the input bands named (1-based, in the order given) and writes a full
checkpoint that takes only those. Every tensor whose shape depends on the band count (BTDNet's
input convolution) keeps the filters of the kept bands; every other tensor is copied. The result
computes exactly what the source computes when the dropped bands sit at their training mean (a
normalised value of 0): the dropped bands' filters are what is lost, nothing else. So it answers
without them at once, and is a start for training on the kept bands (``model.init``).

The file says so in its ``provenance`` (``bands_from``). Of the source's metadata it keeps what
stays true of the narrowed model: the config, the training data's vocabulary, ground resolution and
window size, and the radiometry of the kept bands. Whatever was measured on the source's outputs
(the decision threshold, back to 0.5; presence; validation metrics) is not carried over: calibrate
the narrowed model again (``rrsis model calibrate`` / ``calibrate-presence``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

#: metadata that describes the training data, not the model's outputs: kept (radiometry: sliced)
KEPT_META = ("vocabulary", "gsd_m", "gsd_m_range", "chip_px", "radiometry", "training")


def _band_indices(bands, n_in: int, owner) -> list[int]:
    from rrsis_geo.errors import ConfigError

    idx = [int(b) - 1 for b in bands]
    if not idx:
        raise ConfigError(f"{owner}: name at least one band to keep")
    if any(not 0 <= i < n_in for i in idx):
        raise ConfigError(f"{owner}: takes bands 1..{n_in}; cannot keep {', '.join(str(b) for b in bands)}")
    if len(set(idx)) != len(idx):
        raise ConfigError(f"{owner}: a band is named twice in {', '.join(str(b) for b in bands)}")
    return idx


def _slice_radiometry(radiometry: dict, idx: list[int], n_in: int) -> dict:
    out = {}
    for dtype, entry in radiometry.items():
        entry = dict(entry)
        for key in ("lo", "hi"):
            v = entry.get(key)
            if isinstance(v, list) and len(v) == n_in:
                entry[key] = [v[i] for i in idx]
        if entry.get("note"):
            entry["note"] = f"{entry['note']} (bands {', '.join(str(i + 1) for i in idx)} of them)"
        out[dtype] = entry
    return out


def select_bands(src: str | os.PathLike, dst: str | os.PathLike, bands) -> dict:
    """Write to ``dst`` the checkpoint ``src`` narrowed to input ``bands`` (1-based; see the module).

    Returns a report: ``bands`` (1-based, kept), ``from_bands`` (the source's count), ``sliced``
    (the tensors whose input filters were selected), ``path``. A model whose band-dependent tensors
    are not plain per-band input filters (spectral indices computed from the bands) is refused
    with a :class:`~rrsis_geo.errors.ConfigError`, as is a band it does not take.
    """
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models.checkpoint import (
        check_output_folder, load_checkpoint, read_metadata, save_checkpoint, sha256_file,
    )
    from rrsis_geo.models.registry import architecture_of, build_model

    owner = Path(src).name
    header = read_metadata(src)  # the refusals below come before the model loads
    n_in = len(header.get("mean") or ())
    idx = _band_indices(bands, n_in, owner)
    check_output_folder(dst)
    model, _ = load_checkpoint(src)  # its metadata is `header`, read above
    arch = architecture_of(model)

    def built(n: int, mean, std, refusal: str):
        overrides = {"mean": list(mean), "std": list(std)}
        if hasattr(model.cfg, "vision") and hasattr(model.cfg.vision, "in_chans"):
            overrides["vision"] = {"in_chans": n}
        try:
            return build_model(arch.apply_overrides(model.cfg, overrides), pretrained=False, seed=0)
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"{owner}: {refusal}: {exc}") from None

    old = model.state_dict()
    # the band-dependent tensors: those whose shape follows the band count (a probe with one more band)
    probe = built(n_in + 1, [*model.cfg.mean, 0.0], [*model.cfg.std, 1.0], "its input bands are fixed").state_dict()
    narrow = built(len(idx), [model.cfg.mean[i] for i in idx], [model.cfg.std[i] for i in idx],
                   f"cannot take {len(idx)} bands")
    new = narrow.state_dict()
    if not set(old) == set(new) == set(probe):
        raise ConfigError(f"{owner}: its tensors change with the band count beyond the input filters; "
                          "bands cannot be selected from it")
    state, sliced = {}, []
    for k, v in old.items():
        if v.shape == probe[k].shape:
            state[k] = v
        elif (v.dim() >= 2 and v.shape[1] == n_in and probe[k].shape == v.shape[:1] + (n_in + 1,) + v.shape[2:]
              and new[k].shape == v.shape[:1] + (len(idx),) + v.shape[2:]):
            state[k] = v[:, idx].clone()
            sliced.append(k)
        else:
            raise ConfigError(f"{owner}: {k} {tuple(v.shape)} depends on the bands other than as per-band input "
                              "filters (spectral indices?); bands cannot be selected from it")
    narrow.load_state_dict(state)
    narrow.cfg.threshold = 0.5  # a calibrated threshold belongs to the outputs it was chosen on
    narrow.provenance = dict(getattr(model, "provenance", {}) or {}, bands_from={
        "source": owner, "sha256": sha256_file(src), "bands": [i + 1 for i in idx], "of": n_in,
        "sliced": sliced})
    extra = {k: header[k] for k in KEPT_META if header.get(k) is not None}
    if "radiometry" in extra:
        extra["radiometry"] = _slice_radiometry(extra["radiometry"], idx, n_in)
    path = save_checkpoint(narrow, dst, **extra)
    return {"bands": [i + 1 for i in idx], "from_bands": n_in, "sliced": sliced, "path": path}
