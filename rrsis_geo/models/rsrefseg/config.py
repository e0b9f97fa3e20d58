"""RSRefSeg configuration: one tree of dataclasses, the single source of every choice.

RSRefSeg: Chen et al. 2025, "RSRefSeg: Referring Remote Sensing Image Segmentation with
Foundation Models". Each field says where its default comes from: **[paper]** (the paper or its
released RSRefSeg-b config), **[ours]** (a choice this implementation makes; change it freely).

The encoders are Hugging Face ``transformers`` models built from the config dicts below
(``SiglipTextConfig``, ``SiglipVisionConfig``, ``SamVisionConfig``, ``SamPromptEncoderConfig``,
``SamMaskDecoderConfig`` keyword arguments), so a checkpoint rebuilds them offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rrsis_geo.predictor import IMAGENET_MEAN, IMAGENET_STD

# google/siglip-so400m-patch14-384 shapes [paper: RSRefSeg-b's SigLIP]
SO400M_TEXT = {"vocab_size": 32000, "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
               "num_attention_heads": 16, "max_position_embeddings": 64, "projection_size": 1152,
               "pad_token_id": 1, "bos_token_id": None, "eos_token_id": 1}
SO400M_VISION = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
                 "image_size": 384, "patch_size": 14, "vision_use_head": False}
# SAM ViT-B shapes [paper: RSRefSeg-b's SAM]
SAM_VIT_B_VISION = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "output_channels": 256,
                    "image_size": 1024, "patch_size": 16, "window_size": 14, "global_attn_indexes": [2, 5, 8, 11],
                    "mlp_dim": 3072}
SAM_PROMPT = {"hidden_size": 256, "image_size": 1024, "patch_size": 16, "mask_input_channels": 16}
SAM_DECODER = {"hidden_size": 256, "mlp_dim": 2048, "num_hidden_layers": 2, "num_attention_heads": 8,
               "iou_head_hidden_dim": 256}


@dataclass
class SiglipSection:
    """SigLIP image and text towers (one release: a ``SiglipModel``) [paper]. The vision tower's
    attention-pooling head is not built (``vision_use_head: False``): RSRefSeg uses its patch
    features only."""

    text: dict[str, Any] = field(default_factory=lambda: dict(SO400M_TEXT))
    vision: dict[str, Any] = field(default_factory=lambda: dict(SO400M_VISION))
    # SigLIP's own pixel normalisation, applied inside the model to the [0, 1] pixels [paper]
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    # a local Hugging Face SigLIP folder (config.json + model.safetensors); None = random
    weights: str | None = None


@dataclass
class SamSection:
    """SAM's image encoder, the dense (mask) path of its prompt encoder and its mask decoder [paper]."""

    vision: dict[str, Any] = field(default_factory=lambda: dict(SAM_VIT_B_VISION))
    prompt_encoder: dict[str, Any] = field(default_factory=lambda: dict(SAM_PROMPT))
    mask_decoder: dict[str, Any] = field(default_factory=lambda: dict(SAM_DECODER))
    # a local Hugging Face SAM folder (config.json + model.safetensors); None = random
    weights: str | None = None


@dataclass
class PrompterConfig:
    """Activation maps + SigLIP features -> SAM prompts: a 1x1 conv to SAM's prompt width, then
    ``down_spatial`` stride-2 3x3 convs and a 1x1 conv; every position is one sparse prompt
    token [paper: 27x27 -> 7x7 = 49 tokens]. The sentence-level activation logits, resized to
    SAM's mask-prompt size, are the dense prompt [paper]."""

    down_spatial: int = 2  # [paper]
    # "group" (GroupNorm, 32 groups or fewer) [ours: works at any batch size] or "batch" [paper: SyncBN]
    norm: str = "group"
    # the token-level activation averages over the expression's real tokens (attention mask) [ours];
    # False: over every position, padding included, as the released code does with padded batches
    mask_padding: bool = True


@dataclass
class LoRASection:
    """LoRA (``peft``) on SAM's image encoder and both SigLIP towers; their own weights stay frozen
    [paper: r 16, alpha 16, dropout 0.1; the released target modules]."""

    rank: int = 16
    alpha: int = 16
    dropout: float = 0.1
    sam_targets: tuple[str, ...] = ("qkv", "proj", "lin1", "lin2", "neck.conv1", "neck.conv2")
    siglip_vision_targets: str = r"encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)"
    siglip_text_targets: str = r"(encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj))|head"


@dataclass
class LossConfig:
    """Binary cross-entropy on the mask logits at the input size [paper: weight 5]."""

    bce_weight: float = 5.0


@dataclass
class RSRefSegConfig:
    name: str = "rsrefseg-b"
    # training tile side; the model resizes to SAM's and SigLIP's own input sizes inside [paper: 1024]
    input_size: int = 1024
    in_chans: int = 3  # SAM and SigLIP are RGB models
    # the engine's normalisation of [0, 1] pixels: SAM's (ImageNet) [paper]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    threshold: float = 0.5  # sigmoid(mask logit) > threshold [paper]
    gsd_m: float | None = None
    # SigLIP's text length: expressions are padded to it, as SigLIP was trained [paper: 64 positions]
    max_tokens: int = 64
    # tokenizer folder or "package:<pip name>"; None: the SigLIP weights folder's own tokenizer
    tokenizer: str | None = None
    siglip: SiglipSection = field(default_factory=SiglipSection)
    sam: SamSection = field(default_factory=SamSection)
    prompter: PrompterConfig = field(default_factory=PrompterConfig)
    lora: LoRASection = field(default_factory=LoRASection)
    loss: LossConfig = field(default_factory=LossConfig)
