"""BTDNet for rrsis-geo: the first public implementation of

    "Referring Remote Sensing Image Segmentation via Bidirectional Alignment Guided Joint
    Prediction" (BTDNet, arXiv 2502.08486).

The authors released no code; the project design note ``btdnet.md`` is our reconstruction and every
module marks its choices [paper] / [parent] (LAVT -> RMSIN -> FIANet) / [ours]. BSC, MCI and Fg-Bg
each have a ``variant``: ``"paper"`` (what the presets build) or ``"legacy"`` (the earlier modules,
which checkpoints saved before the paper variants rebuild); docs/model.md lists the switches.

Modules (one per component, in the order of the paper's figure)
----------------------------------------------------------------
``config``      dataclass config tree (every [ours] choice is a value)
``text``        tokenizer, noun-phrase maskers (NLTK / lexicon fallback), :class:`TextProcessor`
``encoders``    Swin (timm) / EfficientNet-Lite0 stages and BERT layers grouped into stages
``bsc``         Bidirectional Spatial Correlation (local-window affinities in both directions)
``mci``         Multi-scale Context Integration (multi-scale attention + V<->L cross-attention)
``decoder``     top-down FPN decoder to 1/4 resolution
``fgbg``        target/background twin-stream predictor (the final logits)
``dmols``       D-MOLS joint reconstruction head (training only)
``losses``      L_ce(final) + 0.6 L_fgbg + 0.1 L_rec (+ Dice / GCE options)
``btdnet``      the model, its output type, :func:`param_groups`
``pretrained``  filters for Microsoft's Swin .pth, HF BERT folders, the EfficientNet package
``registry``    presets ``btdnet-b``, ``btdnet-lite``, ``btdnet-tiny`` and :func:`create_model`
``checkpoint``  self-describing ``.safetensors`` checkpoints
``inference``   :class:`BTDNetPredictor` (the engine's Predictor) and :func:`load_predictor`

Inference (the engine)
----------------------
>>> predictor = load_predictor("best.safetensors")       # or a preset name
>>> enc = predictor.encode_expression("the bridge over the river")   # once per expression
>>> probs = predictor.predict(tiles, enc)                 # (B, bands, H, W) -> (B, H, W)

Training interface (stable; used by the trainer)
------------------------------------------------
>>> model = create_model("btdnet-b", vision__weights="swin_base_patch4_window12_384_22k.pth",
...                      text__weights="bert-base-uncased/")    # or "btdnet-lite" (offline)
>>> text_proc = TextProcessor.from_config(model.cfg)     # picklable: fine in DataLoader workers
>>> text = text_proc(["the white storage tank on the left of the road", ...])
    # dict of (B, max_tokens) tensors: input_ids, attention_mask (long), masked_input_ids,
    # masked_attention_mask (long; object noun phrase -> [MASK]), object_mask (bool, D-MOLS positions)
    # (a DataLoader collate can call text_proc on the batch's sentences, or stack per-sample
    # ``text_proc([s])`` rows with torch.cat)
>>> out = model(images, text, targets=masks)             # images (B,3,H,W) normalised float,
    # masks (B,H,W) in {0,1}; out.logits (B,2,H,W) = [bg, fg] at the input size,
    # out.fgbg_logits (B,2,H,W), out.loss (scalar) and out.losses {"ce","fgbg","rec"[,"dice"]}
    # when targets are given (``rec``, the D-MOLS loss, only in train mode with dmols enabled).
>>> optimizer = torch.optim.AdamW(param_groups(model, encoder_lr=1e-5, head_lr=1e-4, weight_decay=0.01))
>>> save_checkpoint(model, "best.safetensors", gsd_m=0.5, training={...}, metrics={"oIoU": 79.2})
>>> model, meta = load_checkpoint("best.safetensors")
    # prediction: out.logits.argmax(1) (fg > bg) == softmax(out.logits, 1)[:, 1] > 0.5

Everything runs offline: weights only from local files or the two pip packages.
"""

from rrsis_geo.models.btdnet import ENCODER_PREFIXES, BTDNet, BTDNetOutput, TextCache, param_groups, unwrap_model
from rrsis_geo.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from rrsis_geo.models.config import BTDNetConfig, config_from_dict, config_to_dict
from rrsis_geo.models.inference import BTDNetPredictor, load_predictor
from rrsis_geo.models.registry import create_model, get_config, list_presets
from rrsis_geo.models.text import TextProcessor

__all__ = [
    "ENCODER_PREFIXES", "BTDNet", "BTDNetConfig", "BTDNetOutput", "BTDNetPredictor", "TextCache", "TextProcessor",
    "config_from_dict", "config_to_dict", "create_model", "get_config", "list_presets",
    "load_checkpoint", "load_predictor", "param_groups", "read_metadata", "save_checkpoint", "unwrap_model",
]
