"""RSRefSeg: the whole model, read top-down against the paper's overview figure.

"RSRefSeg: Referring Remote Sensing Image Segmentation with Foundation Models" (Chen et al. 2025;
reference code KyanChen/RSRefSeg). Pipeline [paper]::

    image ─► SigLIP image tower ─► patch features V (C x h x w) ───────────────┐
    text  ─► SigLIP text tower  ─► token states T_i, pooled sentence s          │
             local map   A_i = sigmoid(scale * <V^, T_i^> + bias)   (per token)  │
             global map  G   = sigmoid(scale * <V^, s^> + bias)     (sentence)   │
             [ (V + mean_i A_i V) / 2 ,  G V ,  V ] ─► 1x1 conv (+ SAM positions) ─► stride-2 convs
                                                          ─► one sparse prompt token per position
    image ─► SAM image encoder (LoRA) ─► image embedding ─┐                       │
    G's logits, resized ─► SAM mask-prompt embedding ─────┼─► SAM mask decoder ◄──┘
                                                          ▼
                                         one mask logit map (1/4 of SAM's input) ─► input size

``^`` is L2 normalisation; ``scale``/``bias`` are SigLIP's own logit scale and bias, so the maps
are SigLIP's image-text match probabilities per patch. LoRA adapts SAM's image encoder and both
SigLIP towers (their own weights stay frozen); the prompter, SAM's mask-prompt embedding and
mask decoder train fully; the loss is binary cross-entropy on the mask logits [paper].

Conventions shared with every architecture here: ``logits`` (B, 2, H, W) = [bg, fg] at the input
size, built as [0, z] from the mask logit z, so softmax fg = sigmoid(z) and fg > bg iff z > 0;
``encode_text`` does the expression-only work once (the text tower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.errors import ConfigError
from rrsis_geo.models.rsrefseg.config import RSRefSegConfig


@dataclass
class RSRefSegOutput:
    """``logits``: (B, 2, H, W) = [0, z] at the input size; ``mask_logits`` z (B, H, W);
    ``loss``/``losses``: only when targets were given."""

    logits: torch.Tensor
    mask_logits: torch.Tensor
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TextFeatures:
    """Expression-only work, reusable for every tile: the SigLIP text tower's outputs."""

    tokens: torch.Tensor  # (B or 1, T, C) last hidden states
    pooled: torch.Tensor  # (B or 1, C) the sentence embedding (SigLIP's head on the last position)
    mask: torch.Tensor  # (B or 1, T) 1 on real tokens


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ConfigError(f"prompter.norm must be 'group' or 'batch', got {kind!r}")


def conv_norm_act(cin: int, cout: int, kernel: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), _norm(norm, cout), nn.GELU())


class Prompter(nn.Module):
    """[local, global, plain] SigLIP features (3C channels) -> SAM sparse prompt tokens [paper]."""

    def __init__(self, in_dim: int, dim: int, down_spatial: int, norm: str):
        super().__init__()
        self.down_channel = conv_norm_act(3 * in_dim, dim, 1, 1, norm)
        self.down_spatial = nn.Sequential(*[conv_norm_act(dim, dim, 3, 2, norm) for _ in range(down_spatial)],
                                          nn.Conv2d(dim, dim, 1))

    def forward(self, feats: torch.Tensor, positions) -> torch.Tensor:
        x = self.down_channel(feats)
        x = x + positions(x.shape[-1])  # SAM's image positions at this grid [paper]
        x = self.down_spatial(x)
        return x.flatten(2).transpose(1, 2)  # (B, n, dim): one token per position


def add_lora(module: nn.Module, targets, cfg) -> None:
    """LoRA adapters (``peft``) on ``targets`` of ``module``, in place; the module's own weights
    are frozen, only the adapters train. ``targets``: module-name suffixes or one regex."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = targets if isinstance(targets, str) else list(targets)
    inject_adapter_in_model(LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                       target_modules=targets), module)
    for name, p in module.named_parameters():
        p.requires_grad_(".lora_" in name)


class RSRefSeg(nn.Module):
    def __init__(self, cfg: RSRefSegConfig):
        super().__init__()
        from transformers import SiglipTextConfig, SiglipTextModel, SiglipVisionConfig, SiglipVisionModel
        from transformers.models.sam.configuration_sam import (
            SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig,
        )
        from transformers.models.sam.modeling_sam import (
            SamMaskDecoder, SamMaskEmbedding, SamPositionalEmbedding, SamVisionEncoder,
        )

        self.cfg = cfg
        if cfg.in_chans != 3 or not len(cfg.mean) == len(cfg.std) == len(cfg.siglip.mean) == len(cfg.siglip.std) == 3:
            raise ConfigError("RSRefSeg's SAM and SigLIP towers take 3 bands (red, green, blue): in_chans, mean, std, "
                              "siglip.mean and siglip.std must all describe 3 bands")
        text_cfg, vis_cfg = SiglipTextConfig(**cfg.siglip.text), SiglipVisionConfig(**cfg.siglip.vision)
        sam_vis = SamVisionConfig(**cfg.sam.vision)
        prompt_cfg, dec_cfg = SamPromptEncoderConfig(**cfg.sam.prompt_encoder), SamMaskDecoderConfig(**cfg.sam.mask_decoder)
        width = vis_cfg.hidden_size
        if text_cfg.hidden_size != width or (text_cfg.projection_size or text_cfg.hidden_size) != width:
            raise ConfigError(f"the SigLIP text tower's width ({text_cfg.hidden_size}, projection "
                              f"{text_cfg.projection_size}) must equal its image tower's ({width}) to score patches")
        if cfg.max_tokens > text_cfg.max_position_embeddings:
            raise ConfigError(f"max_tokens={cfg.max_tokens} exceeds the SigLIP text tower's "
                              f"{text_cfg.max_position_embeddings} positions")
        embed = sam_vis.image_size // sam_vis.patch_size
        if not sam_vis.output_channels == prompt_cfg.hidden_size == dec_cfg.hidden_size == 2 * sam_vis.num_pos_feats:
            raise ConfigError("SAM's image-encoder output_channels, prompt-encoder and mask-decoder widths and "
                              "2 x num_pos_feats must agree")
        if prompt_cfg.image_size // prompt_cfg.patch_size != embed:
            raise ConfigError("SAM's prompt-encoder image_size / patch_size must match its image encoder's")
        self.embed_size = embed
        dec_cfg._attn_implementation = "sdpa"  # the decoder is no PreTrainedModel: it reads this itself
        # SigLIP image and text towers [paper]; logit scale/bias as SigLIP initialises them
        self.siglip_vision = SiglipVisionModel(vis_cfg)
        self.siglip_text = SiglipTextModel(text_cfg)
        self.logit_scale = nn.Parameter(torch.tensor([math.log(10.0)]))
        self.logit_bias = nn.Parameter(torch.tensor([-10.0]))
        # SAM [paper]: image encoder, its positional encoding, the mask-prompt embedding, the decoder
        self.sam_vision = SamVisionEncoder(sam_vis)
        self.sam_positions = SamPositionalEmbedding(sam_vis)
        self.mask_embed = SamMaskEmbedding(prompt_cfg)
        self.mask_decoder = SamMaskDecoder(dec_cfg)
        # activation maps -> sparse prompts [paper]
        self.prompter = Prompter(width, prompt_cfg.hidden_size, cfg.prompter.down_spatial, cfg.prompter.norm)
        # LoRA on SAM's image encoder and both SigLIP towers; their weights frozen [paper]
        for p in (self.logit_scale, self.logit_bias, *self.mask_decoder.iou_prediction_head.parameters()):
            p.requires_grad_(False)  # SigLIP's own; SAM's mask-quality head, which RSRefSeg does not use
        add_lora(self.sam_vision, cfg.lora.sam_targets, cfg.lora)
        add_lora(self.siglip_vision, cfg.lora.siglip_vision_targets, cfg.lora)
        add_lora(self.siglip_text, cfg.lora.siglip_text_targets, cfg.lora)
        self.register_buffer("siglip_mean", torch.tensor(cfg.siglip.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("siglip_std", torch.tensor(cfg.siglip.std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    # -- pieces -------------------------------------------------------------------------------

    def encode_text(self, text: dict[str, torch.Tensor]) -> TextFeatures:
        """The SigLIP text tower on ``input_ids`` padded to ``max_tokens``, without an attention
        mask, as SigLIP was trained (its sentence embedding is the last position's) [ours]."""
        out = self.siglip_text(input_ids=text["input_ids"])
        return TextFeatures(out.last_hidden_state, out.pooler_output, text["attention_mask"])

    def positions(self, size: int) -> torch.Tensor:
        """SAM's dense positional encoding of a size x size grid, (1, C, size, size)."""
        pe = self.sam_positions.positional_embedding
        grid = torch.ones(size, size, device=pe.device, dtype=pe.dtype)
        y = (grid.cumsum(0) - 0.5) / size
        x = (grid.cumsum(1) - 0.5) / size
        return self.sam_positions(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)

    def activation_prompts(self, images: torch.Tensor, text: TextFeatures):
        """SigLIP patch features scored by every token and by the sentence -> (sparse prompt
        tokens (B, n, C_sam), sentence-level logits (B, h, w))."""
        size = self.siglip_vision.config.image_size
        pixels = images * self.pixel_std + self.pixel_mean  # the engine's normalisation undone: [0, 1]
        x = F.interpolate((pixels - self.siglip_mean) / self.siglip_std, size=(size, size), mode="bilinear",
                          align_corners=False)
        patches = self.siglip_vision(pixel_values=x).last_hidden_state  # (B, N, C)
        b, n, c = patches.shape
        g = math.isqrt(n)
        v = patches.transpose(1, 2).reshape(b, c, g, g)
        v_hat = F.normalize(v, dim=1)
        scale, bias = self.logit_scale.exp(), self.logit_bias
        # per-token maps, averaged over the expression's tokens [paper]
        local = torch.sigmoid(torch.einsum("bchw,btc->bthw", v_hat, F.normalize(text.tokens, dim=-1)) * scale + bias)
        if self.cfg.prompter.mask_padding:
            weight = text.mask.to(local.dtype)[:, :, None, None].expand_as(local)
            local = (local * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1)
        else:
            local = local.mean(1, keepdim=True)
        # the sentence's map [paper]
        global_logits = torch.einsum("bchw,bc->bhw", v_hat, F.normalize(text.pooled, dim=-1)) * scale + bias
        feats = torch.cat([(v + local * v) / 2, torch.sigmoid(global_logits)[:, None] * v, v], dim=1)
        return self.prompter(feats, self.positions), global_logits

    # -- forward ------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor], targets: torch.Tensor | None = None,
                text_cache: TextFeatures | None = None) -> RSRefSegOutput:
        b, _, h, w = images.shape
        t = text_cache if text_cache is not None else self.encode_text(text)
        if t.tokens.shape[0] != b:  # one expression for every tile
            t = TextFeatures(t.tokens.expand(b, -1, -1), t.pooled.expand(b, -1), t.mask.expand(b, -1))
        sam_size = self.sam_vision.config.image_size
        sam_in = images if (h, w) == (sam_size, sam_size) else F.interpolate(
            images, size=(sam_size, sam_size), mode="bilinear", align_corners=False)
        embedding = self.sam_vision(pixel_values=sam_in).last_hidden_state  # (B, C, e, e)
        sparse, global_logits = self.activation_prompts(images, t)
        # the sentence map as SAM's mask prompt, at 4x the embedding size [paper]
        mask_prompt = F.interpolate(global_logits[:, None], size=(4 * self.embed_size,) * 2, mode="bilinear",
                                    align_corners=False)
        dense = self.mask_embed(mask_prompt)
        masks, _iou = self.mask_decoder(
            image_embeddings=embedding, image_positional_embeddings=self.positions(self.embed_size).expand(b, -1, -1, -1),
            sparse_prompt_embeddings=sparse[:, None], dense_prompt_embeddings=dense, multimask_output=False)
        z = F.interpolate(masks[:, 0], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        out = RSRefSegOutput(logits=torch.stack([torch.zeros_like(z), z], 1), mask_logits=z)
        if targets is not None:
            bce = F.binary_cross_entropy_with_logits(z.float(), targets.float())
            out.losses = {"bce": bce}
            out.loss = self.cfg.loss.bce_weight * bce
        return out


# -- optimisation ---------------------------------------------------------------------------

TOWERS = ("siglip_vision.", "siglip_text.", "sam_vision.")
NO_DECAY_SUFFIXES = ("iou_token.weight", "mask_tokens.weight", "positional_embedding")


def param_groups(model: RSRefSeg, encoder_lr: float = 1e-4, head_lr: float = 1e-4,
                 weight_decay: float = 0.05) -> list[dict]:
    """AdamW parameter groups: the LoRA adapters of the three towers (``encoder``) and the
    prompter, mask-prompt embedding and mask decoder (``head``) [paper: one lr 1e-4, wd 0.05];
    no weight decay on norms, biases and embeddings [ours]. Frozen weights are in no group."""
    from rrsis_geo.models.registry import adamw_groups

    return adamw_groups(model, lambda name: name.startswith(TOWERS),
                        lambda name, p: p.ndim <= 1 or name.endswith(NO_DECAY_SUFFIXES),
                        encoder_lr, head_lr, weight_decay)
