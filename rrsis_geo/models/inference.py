"""Any registered model behind the engine's :class:`~rrsis_geo.predictor.Predictor` protocol.

``encode_expression`` does the expression-only work once (the architecture's text processor,
then ``model.encode_text``: BTDNet's masked-text prior through BERT, RSRefSeg's SigLIP text
tower); ``predict`` runs tile batches on the model's device under ``torch.inference_mode`` (bf16
autocast on CUDA), resizing to the model's input size and back when the tiles differ.
Probability = softmax(logits)[fg], so p > 0.5 <=> fg > bg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rrsis_geo.errors import ModelError
from rrsis_geo.predictor import ModelInfo


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


@dataclass
class EncodedExpression:
    """What ``encode_expression`` returns: the text batch (1 row) and the cached prior."""

    text: str
    batch: dict
    cache: object  # what model.encode_text returned
    truncated: bool


class ReferringPredictor:
    def __init__(self, model, info: ModelInfo, device: str = "auto", text_processor=None):
        from rrsis_geo.models.registry import text_processor as processor_of

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.info = info
        self.text_processor = text_processor if text_processor is not None else processor_of(model)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def encode_expression(self, expression: str) -> EncodedExpression:
        item = self.text_processor.process_one(expression)  # ExpressionError if empty
        batch = {k: v.to(self.device) for k, v in self.text_processor.collate([item]).items()}
        with torch.inference_mode(), self._autocast():
            cache = self.model.encode_text(batch)
        return EncodedExpression(item.text, batch, cache, item.truncated)

    def predict(self, tiles: np.ndarray, expression) -> np.ndarray:
        if isinstance(expression, str):
            expression = self.encode_expression(expression)
        tiles = np.asarray(tiles)
        if tiles.ndim != 4:
            raise ModelError(f"tiles must be (B, bands, H, W), got shape {tiles.shape}")
        b, c, h, w = tiles.shape
        if c != self.info.bands:
            raise ModelError(f"model {self.info.model_id} expects {self.info.bands} bands, got {c}; "
                             "choose the bands with --bands")
        if b == 0:
            return np.zeros((0, h, w), np.float32)
        size = self.info.input_size
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), self._autocast():
            if (h, w) != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            text = {k: v.expand(b, -1) for k, v in expression.batch.items()}
            logits = self.model(x, text, text_cache=expression.cache).logits.float()
            if (h, w) != (size, size):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            prob = logits.softmax(1)[:, 1]
        return prob.cpu().numpy().astype(np.float32)


BTDNetPredictor = ReferringPredictor  # the name it had while BTDNet was the only architecture


def info_from_model(model, model_id: str, checksum: str, meta: dict | None = None) -> ModelInfo:
    from rrsis_geo.models.registry import architecture_of

    cfg = model.cfg
    arch = architecture_of(cfg)
    s = arch.settings(cfg)
    meta = meta or {}
    extra = {"preset": cfg.name, "architecture": arch.name}
    for k in ("provenance", "training", "metrics", "radiometry", "gsd_m_range", "chip_px", "vocabulary",
              "presence"):
        if k in meta:
            extra[k] = meta[k]
    return ModelInfo(
        model_id=model_id, checksum=checksum, input_size=s["input_size"], bands=s["bands"],
        mean=tuple(s["mean"]), std=tuple(s["std"]), threshold=s["threshold"], gsd_m=s["gsd_m"],
        max_tokens=s["max_tokens"], extra=extra,
    )


def load_predictor(name_or_path: str, device: str = "auto", bands: int | None = None) -> ReferringPredictor:
    """A shipped model (``btdnet-lite-demo``), a preset name of any architecture (``btdnet-lite``,
    ``rsrefseg-tiny``...; random heads) or a checkpoint path -> a ready :class:`ReferringPredictor`.

    ``bands``: the number of bands the caller will feed; refused when the model expects another.
    """
    from rrsis_geo.models.checkpoint import load_checkpoint, read_metadata, sha256_file, stored_config
    from rrsis_geo.models.registry import checkpoint_for, create_model, get_config, text_processor

    name_or_path = str(name_or_path)
    path = checkpoint_for(name_or_path)
    # the text processor first: a tokenizer that is not there is refused before a model is built
    tp = text_processor(get_config(name_or_path) if path is None else stored_config(read_metadata(path), path))
    if path is None:  # a preset
        model = create_model(name_or_path)
        prov = model.provenance
        checksum = f"preset:{name_or_path}:random-init:seed={prov['init_seed']}"
        if prov.get("pretrained"):
            checksum += ":pretrained=" + ",".join(v["source"] for v in prov["pretrained"].values())
        info = info_from_model(model, name_or_path, checksum, {"provenance": prov})
    else:  # a shipped model's file is named after it, so the stem is its id too
        model, meta = load_checkpoint(path)
        info = info_from_model(model, path.stem, sha256_file(path), meta)
    if bands is not None and bands != info.bands:
        raise ModelError(f"model {info.model_id} expects {info.bands} bands but {bands} were selected; "
                         f"choose {info.bands} bands with --bands")
    return ReferringPredictor(model, info, device, text_processor=tp)
