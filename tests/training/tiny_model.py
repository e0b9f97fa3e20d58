"""TEST DOUBLE: a tiny stand-in for BTDNet with the same call convention.

It is not BTDNet. It lets the trainer be tested in seconds: a two-layer conv net whose features
scored against a 1x1 kernel written by a bag of hashed words, with dropout so the RNG matters.
"""

from __future__ import annotations

import json
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from rrsis_geo.training.bundle import ModelBundle

VOCAB = 251


class TinyTextProcessor:
    def __init__(self, max_tokens: int = 6):
        self.max_tokens = max_tokens

    def __call__(self, expressions):
        if isinstance(expressions, str):
            expressions = [expressions]
        ids = torch.zeros(len(expressions), self.max_tokens, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(expressions):
            words = e.lower().split()[: self.max_tokens]
            for j, w in enumerate(words):
                ids[i, j] = zlib.crc32(w.encode()) % (VOCAB - 1) + 1
                mask[i, j] = 1
        return {"input_ids": ids, "attention_mask": mask}


class TinyRefSeg(nn.Module):
    def __init__(self, width: int = 8, dropout: float = 0.1):
        super().__init__()
        self.vision = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU())
        self.text = nn.Embedding(VOCAB, width)
        self.kernel = nn.Linear(width, width + 1)  # the expression writes the foreground 1x1 kernel
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(width, 1, 1)  # background score

    def forward(self, images, text, targets=None):
        v = self.vision(images)
        m = text["attention_mask"].unsqueeze(-1).float()
        t = (self.text(text["input_ids"]) * m).sum(1) / m.sum(1).clamp(min=1)
        k = self.kernel(t)
        v = self.drop(v)
        fg = torch.einsum("bchw,bc->bhw", v, k[:, :-1]) + k[:, -1, None, None]
        logits = torch.stack([self.head(v)[:, 0], fg], 1)
        out = {"logits": logits}
        if targets is not None:
            ce = F.cross_entropy(logits, targets.long())
            out["loss"], out["losses"] = ce, {"ce": ce.detach()}
        return out


def tiny_param_groups(model, encoder_lr=1e-3, head_lr=1e-2, weight_decay=0.01):
    groups = {}
    for name, p in model.named_parameters():
        enc = name.startswith(("vision.", "text."))
        nd = p.ndim <= 1
        key = ("encoder" if enc else "head") + ("_no_decay" if nd else "")
        g = groups.setdefault(key, {"name": key, "params": [], "lr": encoder_lr if enc else head_lr, "weight_decay": 0.0 if nd else weight_decay})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def tiny_save(model, path, **meta):
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(path),
              metadata={"rrsis_meta": json.dumps(meta, default=str)})


def tiny_bundle(seed: int = 0, **kw) -> ModelBundle:
    torch.manual_seed(seed)
    return ModelBundle(model=TinyRefSeg(**kw), text_processor=TinyTextProcessor(), param_groups=tiny_param_groups,
                       save=tiny_save, name="tiny-test-double", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
