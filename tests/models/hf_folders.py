"""Tiny random SigLIP and SAM models saved as Hugging Face folders (``save_pretrained``), with
rsrefseg-tiny's shapes: what a user's local siglip-so400m / sam-vit-base folders look like."""

from __future__ import annotations

from pathlib import Path

import torch


def hf_configs(cfg, **text_changes):
    from transformers import SamConfig, SiglipConfig

    siglip = SiglipConfig(text_config={**cfg.siglip.text, **text_changes},
                          vision_config={**cfg.siglip.vision, "vision_use_head": True})  # releases have the head
    sam = SamConfig(vision_config=cfg.sam.vision, prompt_encoder_config=cfg.sam.prompt_encoder,
                    mask_decoder_config=cfg.sam.mask_decoder)
    return siglip, sam


def write(root: Path, seed: int = 123, **text_changes):
    """``(siglip_dir, sam_dir, siglip_state, sam_state)`` under ``root``."""
    from transformers import SamModel, SiglipModel

    from rrsis_geo.models import get_config

    siglip_cfg, sam_cfg = hf_configs(get_config("rsrefseg-tiny"), **text_changes)
    torch.manual_seed(seed)
    siglip, sam = SiglipModel(siglip_cfg), SamModel(sam_cfg)
    siglip.save_pretrained(root / "siglip")
    sam.save_pretrained(root / "sam")
    return root / "siglip", root / "sam", siglip.state_dict(), sam.state_dict()
