"""The model zoo of rrsis-geo: referring segmentation architectures behind one registry.

Architectures (one subpackage each; each registers itself with :mod:`.registry`)
--------------------------------------------------------------------------------
``btdnet/``     BTDNet (arXiv 2502.08486), the first public implementation; its modules read
                top-down against the paper's figure and mark each choice [paper] / [parent] / [ours]
``rsrefseg/``   RSRefSeg (Chen et al. 2025): SigLIP image and text towers prompting SAM

BTDNet's BSC, MCI and Fg-Bg each have a ``variant``: ``"paper"`` (what the presets build) or
``"legacy"`` (the earlier modules, which checkpoints saved before the paper variants rebuild);
docs/model.md lists the switches.

Shared machinery (generic over architectures)
---------------------------------------------
``registry``    :class:`Architecture`, presets of every architecture and :func:`create_model`
``config_tree`` configs as dataclass trees that round-trip through JSON
``checkpoint``  self-describing ``.safetensors`` checkpoints naming their architecture
``export``      compact checkpoints (float16; unchanged pretrained encoders by reference)
``sources``     loading released weights with asserted key sets
``text``        tokenizers, weight packages, BTDNet's noun-phrase maskers and :class:`TextProcessor`
``inference``   :class:`ReferringPredictor` (the engine's Predictor) and :func:`load_predictor`
``summary``     what ``rrsis model info`` prints

Inference (the engine)
----------------------
>>> predictor = load_predictor("best.safetensors")       # or a preset name
>>> enc = predictor.encode_expression("the bridge over the river")   # once per expression
>>> probs = predictor.predict(tiles, enc)                 # (B, bands, H, W) -> (B, H, W)

Training interface (stable; used by the trainer)
------------------------------------------------
>>> model = create_model("btdnet-b", vision__weights="swin_base_patch4_window12_384_22k.pth",
...                      text__weights="bert-base-uncased/")    # or "btdnet-lite" (offline)
>>> text_proc = text_processor(model)                    # picklable: fine in DataLoader workers
>>> text = text_proc(["the white storage tank on the left of the road", ...])
    # BTDNet: dict of (B, max_tokens) tensors: input_ids, attention_mask (long), masked_input_ids,
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

Everything runs offline: weights only from local files or pip packages.
"""

from rrsis_geo.models import btdnet, rsrefseg  # noqa: F401 (each registers its architecture and presets)
from rrsis_geo.models.btdnet import BTDNet, BTDNetOutput, TextCache
from rrsis_geo.models.btdnet.config import BTDNetConfig, config_from_dict, config_to_dict
from rrsis_geo.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from rrsis_geo.models.inference import BTDNetPredictor, ReferringPredictor, load_predictor
from rrsis_geo.models.registry import (
    ARCHITECTURES, architecture_of, create_model, get_architecture, get_config, list_presets, param_groups,
    text_processor, unwrap_model,
)
from rrsis_geo.models.text import TextProcessor

__all__ = [
    "ARCHITECTURES", "BTDNet", "BTDNetConfig", "BTDNetOutput", "BTDNetPredictor", "ReferringPredictor", "TextCache",
    "TextProcessor", "architecture_of", "config_from_dict", "config_to_dict", "create_model", "get_architecture",
    "get_config", "list_presets", "load_checkpoint", "load_predictor", "param_groups", "read_metadata",
    "save_checkpoint", "text_processor", "unwrap_model",
]
