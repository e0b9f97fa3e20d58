"""Tokenising and object noun-phrase masking."""

from __future__ import annotations

import pytest
import torch

from rrsis_geo.errors import ExpressionError, ModelError
from rrsis_geo.models.text import LexiconMasker, NLTKMasker, TextProcessor, make_masker, nltk_available

needs_nltk = pytest.mark.skipif(not nltk_available(), reason="NLTK punkt/tagger data not installed")


def masked(masker, text):
    words, idx = masker(text)
    return [words[i] for i in idx]


# -- the lexicon fallback (always runs) --------------------------------------------------------

def test_lexicon_storage_tank_keeps_colour_drops_location():
    assert masked(LexiconMasker(), "the white storage tank on the left of the road") == ["white", "storage", "tank"]


def test_lexicon_single_word():
    assert masked(LexiconMasker(), "vehicle") == ["vehicle"]


def test_lexicon_first_object_is_the_referent():
    assert masked(LexiconMasker(), "the bridge over the river") == ["bridge"]


def test_lexicon_determiner_option_and_plural():
    assert masked(LexiconMasker(mask_determiners=True), "the bridge over the river") == ["the", "bridge"]
    assert masked(LexiconMasker(), "two large Storage Tanks near the dam") == ["large", "Storage", "Tanks"]


def test_lexicon_unknown_object_uses_the_head_before_the_first_preposition():
    # "silo" is not in the lexicon; "field" is, but it is not the referent
    assert masked(LexiconMasker(), "the gray silo beside the field") == ["gray", "silo"]
    assert masked(LexiconMasker(), "the car parked on the road") == ["car"]


def test_lexicon_leading_preposition():
    assert masked(LexiconMasker(), "on the left side, a small ship") == ["small", "ship"]


# -- NLTK (skipped cleanly without its data) -------------------------------------------------------

@needs_nltk
def test_nltk_storage_tank():
    assert masked(NLTKMasker(), "the white storage tank on the left of the road") == ["white", "storage", "tank"]


@needs_nltk
def test_nltk_vehicle():
    assert masked(NLTKMasker(), "vehicle") == ["vehicle"]


@needs_nltk
def test_nltk_bridge():
    assert masked(NLTKMasker(), "the bridge over the river") == ["bridge"]


def test_nltk_masker_without_data_is_a_clear_error():
    if nltk_available():
        pytest.skip("NLTK data is installed")
    with pytest.raises(ModelError, match="lexicon"):
        NLTKMasker()
    assert make_masker("auto").name == "lexicon"


def test_unknown_masker():
    with pytest.raises(ModelError, match="unknown masker"):
        make_masker("spacy")


# -- TextProcessor ------------------------------------------------------------------------------

def test_batch_keys_shapes_and_masking(text_proc):
    t = text_proc(["the white storage tank on the left of the road", "vehicle"])
    assert set(t) == {"input_ids", "attention_mask", "masked_input_ids", "masked_attention_mask", "object_mask"}
    for v in t.values():
        assert v.shape == (2, 20)
    tok = text_proc.tokenizer
    assert tok.convert_ids_to_tokens(t["input_ids"][1, :3].tolist()) == ["[CLS]", "vehicle", "[SEP]"]
    assert t["attention_mask"][1].tolist() == [1, 1, 1] + [0] * 17
    # masked ids differ from the ids exactly at the object positions, and there they are [MASK]
    diff = t["masked_input_ids"] != t["input_ids"]
    assert torch.equal(diff, t["object_mask"])
    assert (t["masked_input_ids"][t["object_mask"]] == tok.mask_token_id).all()
    obj0 = tok.convert_ids_to_tokens(t["input_ids"][0][t["object_mask"][0]].tolist())
    assert obj0 == ["white", "storage", "tank"]


def test_multi_wordpiece_object_is_masked_whole(text_proc):
    # "overpass" is split into several WordPieces: every piece must be masked (word_ids alignment)
    t = text_proc(["the long overpass near the lake"])
    pieces = text_proc.tokenizer.tokenize("long overpass")
    assert len(pieces) > 1
    got = text_proc.tokenizer.convert_ids_to_tokens(t["input_ids"][0][t["object_mask"][0]].tolist())
    assert got == pieces


def test_long_expression_truncated_with_warning(text_proc):
    long = "the " + " ".join(["very"] * 40) + " large ship"
    with pytest.warns(UserWarning, match="truncated to max_tokens=20"):
        t = text_proc([long])
    assert t["input_ids"].shape == (1, 20) and t["attention_mask"].sum() == 20


def test_configurable_max_tokens():
    t = TextProcessor(max_tokens=50, masker="lexicon")(["the bridge over the river"])
    assert t["input_ids"].shape == (1, 50)


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_expression(text_proc, bad):
    with pytest.raises(ExpressionError, match="empty"):
        text_proc([bad])


def test_nltk_chunking_logic_with_a_stub_tagger(monkeypatch):
    """The NP grammar and index bookkeeping, checked without NLTK's data (stubbed tokenizer/tagger)."""
    import nltk

    from rrsis_geo.models import text as text_mod

    tags = {"the": "DT", "white": "JJ", "storage": "NN", "tank": "NN", "on": "IN", "left": "NN",
            "of": "IN", "road": "NN", "vehicle": "NN", "bridge": "NN", "over": "IN", "river": "NN"}
    monkeypatch.setattr(text_mod, "nltk_available", lambda: True)
    monkeypatch.setattr(nltk, "word_tokenize", lambda s: s.split())
    monkeypatch.setattr(nltk, "pos_tag", lambda ws: [(w, tags[w]) for w in ws])
    m = NLTKMasker()
    assert masked(m, "the white storage tank on the left of the road") == ["white", "storage", "tank"]
    assert masked(m, "vehicle") == ["vehicle"]
    assert masked(m, "the bridge over the river") == ["bridge"]
    assert masked(NLTKMasker(mask_determiners=True), "the bridge over the river") == ["the", "bridge"]


def test_text_processor_pickles_for_dataloader_workers(text_proc):
    import pickle

    again = pickle.loads(pickle.dumps(text_proc))
    a, b = text_proc(["the bridge over the river"]), again(["the bridge over the river"])
    assert all(torch.equal(a[k], b[k]) for k in a)
