"""Loading SigLIP and SAM releases (local Hugging Face folders) into RSRefSeg, with asserted key sets.

A folder is what ``save_pretrained`` writes: ``config.json`` (its ``model_type`` must be
``siglip`` / ``sam``) and ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``); only safetensors files are read. Release keys map onto ours by
prefix (``vision_model.`` -> ``siglip_vision.``; ``vision_encoder.`` -> ``sam_vision.``, ...);
a LoRA-wrapped layer's own weight sits under ``.base_layer`` here and the adapters (``.lora_``)
keep their initialisation (B = 0: the adapted model starts as the release). The parts RSRefSeg
does not use are dropped by name (SigLIP's image pooling head; SAM's point/box prompt
embeddings); any other missing, unexpected or mis-shaped key is refused with the keys listed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch.nn as nn

from rrsis_geo.errors import CheckpointError, ModelError
from rrsis_geo.models.sources import list_keys, load_filtered

# part -> (model_type, {our prefix: release prefix}, release keys dropped by design)
RELEASES = {
    "siglip": ("siglip", {"siglip_vision.": "vision_model.", "siglip_text.": "text_model.",
                          "logit_scale": "logit_scale", "logit_bias": "logit_bias"},
               re.compile(r"^vision_model\.head\.|position_ids$")),
    "sam": ("sam", {"sam_vision.": "vision_encoder.", "sam_positions.": "shared_image_embedding.",
                    "mask_embed.": "prompt_encoder.mask_embed.", "mask_decoder.": "mask_decoder."},
            re.compile(r"^prompt_encoder\.(point_embed|not_a_point_embed|no_mask_embed|shared_embedding)\.")),
}


def read_folder(folder: str | Path, model_type: str) -> dict:
    """The tensors of a Hugging Face folder whose ``config.json`` says ``model_type``."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder (give the local Hugging Face {model_type} folder)")
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{folder} has no config.json: not a Hugging Face model folder")
    try:
        found = json.loads(config.read_text()).get("model_type")
    except (ValueError, AttributeError):
        raise CheckpointError(f"{config} is not a JSON object") from None
    if found != model_type:
        raise CheckpointError(f"{folder} holds a {found!r} model, not {model_type!r}")
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single), device="cpu")
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        state = {}
        for shard in shards:
            path = folder / shard
            if Path(shard).name != shard or not path.is_file():
                raise CheckpointError(f"{index} lists {shard!r}, which is not a file in {folder}")
            state.update(load_file(str(path), device="cpu"))
        return state
    raise CheckpointError(f"{folder} has no model.safetensors (only safetensors weights are read; convert "
                          "other formats with save_pretrained(safe_serialization=True))")


def release_key(own: str, prefixes: dict[str, str]) -> str | None:
    """Our key -> the release's name for it (None: not this release's, or a LoRA adapter)."""
    if ".lora_" in own:
        return None
    for ours, theirs in prefixes.items():
        if own == ours or own.startswith(ours):
            return theirs + own[len(ours):].replace(".base_layer.", ".")
    return None


def load_release(model: nn.Module, part: str) -> dict:
    """Load the release the config names for ``part`` (``"siglip"`` / ``"sam"``); returns provenance."""
    spec = getattr(model.cfg, part).weights
    model_type, prefixes, dropped_ok = RELEASES[part]
    release = read_folder(spec, model_type)
    own = model.state_dict()
    wanted = {k: release_key(k, prefixes) for k in own}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    missing = sorted(v for v in wanted.values() if v not in release)
    used = set(wanted.values())
    dropped = sorted(k for k in release if k not in used and dropped_ok.search(k))
    unexpected = sorted(k for k in release if k not in used and not dropped_ok.search(k))
    if missing or unexpected:
        raise CheckpointError(f"{part} weights {spec} do not match the model: missing keys [{list_keys(missing)}]; "
                              f"unexpected keys [{list_keys(unexpected)}]")
    state = {k: release[v] for k, v in wanted.items()}
    load_filtered(model, state, f"{part} weights {spec}", expected_missing=set(own) - set(state))
    return {"source": spec, "loaded": len(state), "dropped": len(dropped)}


def load_pretrained(model: nn.Module) -> dict:
    """Load every release the config names; returns provenance by part."""
    return {part: load_release(model, part) for part in RELEASES if getattr(model.cfg, part).weights}
