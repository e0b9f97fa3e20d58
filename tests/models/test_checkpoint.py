"""Self-describing safetensors checkpoints and the Predictor built from them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from rrsis_geo.errors import CheckpointError, ExpressionError, ModelError
from rrsis_geo.models import create_model, load_checkpoint, load_predictor, read_metadata, save_checkpoint
from rrsis_geo.predictor import Predictor

SMALL = {"input_size": 64}  # a small tile side keeps the predictor tests fast


@pytest.fixture(scope="module")
def small_model():
    return create_model("btdnet-tiny", **SMALL).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, small_model):
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    return save_checkpoint(small_model, path, gsd_m=0.5, metrics={"oIoU": 1.0})


@pytest.fixture(scope="module")
def pred(ckpt):
    """The predictor loaded from the checkpoint path alone (read-only: shared by the module)."""
    return load_predictor(str(ckpt), device="cpu")


def rewrite(src, dst, tensors=None, meta=None):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        m = dict(f.metadata())
    save_file(tensors(t) if tensors else t, str(dst), metadata=meta(m) if meta else m)
    return dst


def test_save_load_identical_outputs(ckpt, small_model, text_proc, images):
    model, meta = load_checkpoint(ckpt)
    t = text_proc(["the bridge over the river", "vehicle"])
    x = images(2, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, t).logits, small_model(x, t).logits)
    assert not model.training


def test_metadata_is_complete(ckpt, small_model):
    meta = read_metadata(ckpt)
    assert meta["format_version"] == 1 and meta["architecture"] == "btdnet" and meta["preset"] == "btdnet-tiny"
    assert meta["max_tokens"] == 20 and meta["input_size"] == 64 and meta["bands"] == 3
    assert meta["gsd_m"] == 0.5 and meta["config"]["gsd_m"] == 0.5 and meta["threshold"] == 0.5
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["tokenizer"]["vocab"] == "bert-base-uncased"
    assert meta["masker"] in ("nltk", "lexicon") and meta["config"]["masker"] == meta["masker"]
    assert meta["metrics"] == {"oIoU": 1.0} and meta["provenance"]["preset"] == "btdnet-tiny"
    # the stored config rebuilds the same architecture
    assert meta["config"]["mci"] == {"variant": "paper", "dim": 32, "iters": 1, "heads": 2, "ffn_ratio": 2.0,
                                     "dropout": 0.0, "kv_pool": 16, "attn_levels": None, "position": "none",
                                     "position_freqs": 8}


def test_wrapped_model_saves_bare_keys(tmp_path, small_model):
    import torch.nn as nn

    class Wrapper(nn.Module):  # stands in for DistributedDataParallel (same .module attribute)
        def __init__(self, m):
            super().__init__()
            self.module = m

    path = save_checkpoint(Wrapper(small_model), tmp_path / "ddp.safetensors")
    model, _ = load_checkpoint(path)  # strict: "module." prefixes would be unexpected keys
    assert torch.equal(model.fgbg.bg_tokens, small_model.fgbg.bg_tokens)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, small_model):
    path = tmp_path / "a.safetensors"
    path.write_bytes(b"old")
    save_checkpoint(small_model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]
    read_metadata(path)


def test_save_failure_keeps_the_old_file(tmp_path, small_model, monkeypatch):
    import safetensors.torch

    path = tmp_path / "a.safetensors"
    path.write_bytes(b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(small_model, path)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_not_a_safetensors_file(tmp_path):
    p = tmp_path / "x.safetensors"
    torch.save({"a": torch.zeros(1)}, p)  # a pickle
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(p)


def test_safetensors_without_our_metadata(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "foreign.safetensors"
    save_file({"a": torch.zeros(1)}, str(p))
    with pytest.raises(CheckpointError, match="not an rrsis-geo checkpoint"):
        load_checkpoint(p)


def test_other_architecture_refused(tmp_path, ckpt):
    def meta(m):
        d = json.loads(m["rrsis_geo"])
        d["architecture"] = "lavt"
        return {"rrsis_geo": json.dumps(d)}

    p = rewrite(ckpt, tmp_path / "lavt.safetensors", meta=meta)
    with pytest.raises(CheckpointError, match="architecture 'lavt'"):
        load_checkpoint(p)


def test_missing_and_unexpected_keys_listed(tmp_path, ckpt):
    def edit(t):
        t.pop("fgbg.bg_tokens")
        t["head.extra"] = torch.zeros(2)
        return t

    p = rewrite(ckpt, tmp_path / "edited.safetensors", tensors=edit)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert "fgbg.bg_tokens" in str(e.value) and "head.extra" in str(e.value)


def test_config_disagreeing_with_tensors_refused(tmp_path, ckpt):
    def meta(m):
        d = json.loads(m["rrsis_geo"])
        d["config"]["mci"]["dim"] = 64
        return {"rrsis_geo": json.dumps(d)}

    p = rewrite(ckpt, tmp_path / "wide.safetensors", meta=meta)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(p)


# -- Predictor ---------------------------------------------------------------------------------

def test_load_predictor_from_path_alone(ckpt, pred):
    assert isinstance(pred, Predictor)
    info = pred.info
    assert info.checksum == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info.input_size == 64 and info.bands == 3 and info.gsd_m == 0.5 and info.max_tokens == 20
    assert info.model_id == "m"


def test_predict_shapes_resize_and_probabilities(pred, small_model, text_proc):
    enc = pred.encode_expression("the bridge over the river")
    tiles = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    p = pred.predict(tiles, enc)
    assert p.shape == (3, 64, 64) and p.dtype == np.float32 and (p >= 0).all() and (p <= 1).all()
    # equals the model's own softmax fg probability
    t = {k: v.expand(3, -1) for k, v in text_proc(["the bridge over the river"]).items()}
    with torch.no_grad():
        ref = small_model(torch.from_numpy(tiles), t).logits.softmax(1)[:, 1].numpy()
    np.testing.assert_allclose(p, ref, atol=1e-5)
    # other tile sizes are resized to the input size and back
    odd = pred.predict(np.zeros((2, 3, 40, 72), np.float32), enc)
    assert odd.shape == (2, 40, 72)


def test_predict_cached_expression_equals_string(pred):
    tiles = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    enc = pred.encode_expression("vehicle")
    np.testing.assert_allclose(pred.predict(tiles, enc), pred.predict(tiles, "vehicle"), atol=1e-6)
    np.testing.assert_allclose(pred.predict(tiles[:1], enc), pred.predict(tiles, enc)[:1], atol=1e-5)


def test_wrong_band_count(ckpt, pred):
    with pytest.raises(ModelError, match="expects 3 bands"):
        load_predictor(str(ckpt), device="cpu", bands=4)
    with pytest.raises(ModelError, match="expects 3 bands, got 4"):
        pred.predict(np.zeros((1, 4, 64, 64), np.float32), "vehicle")


def test_empty_and_long_expressions(pred):
    with pytest.raises(ExpressionError):
        pred.encode_expression("  ")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = pred.encode_expression("the ship " + "which is very very big " * 10)
    assert enc.truncated and [str(w.message).count("truncated") for w in caught] == [1]  # warned once
    assert enc.batch["input_ids"].shape == (1, 20)


def test_unknown_model_name():
    with pytest.raises(ModelError, match="neither a shipped model"):
        load_predictor("btdnet-huge")


def test_preset_predictor_info():
    pred = load_predictor("btdnet-tiny", device="cpu")
    assert pred.info.model_id == "btdnet-tiny" and pred.info.checksum.startswith("preset:btdnet-tiny:random-init")
    assert pred.info.input_size == 512


def test_cuda_request_without_cuda(ckpt):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ModelError, match="CUDA is not available"):
        load_predictor(str(ckpt), device="cuda")


def test_nltk_trained_checkpoint_loads_without_nltk_data(tmp_path, small_model, monkeypatch):
    from rrsis_geo.models import text as text_mod

    path = save_checkpoint(small_model, tmp_path / "n.safetensors", masker="nltk")
    monkeypatch.setattr(text_mod, "nltk_available", lambda: False)
    with pytest.warns(UserWarning, match="lexicon masker instead"):
        pred = load_predictor(str(path), device="cpu")
    assert pred.text_processor.masker.name == "lexicon"


def test_update_metadata_sets_threshold_and_keeps_tensors(tmp_path, ckpt):
    """A calibrated copy: the threshold reaches the config (so the predictor and segment use it),
    the tensors are byte-identical and the source is untouched."""
    from safetensors.torch import load_file

    from rrsis_geo.models.checkpoint import update_metadata

    out = update_metadata(ckpt, tmp_path / "cal.safetensors", threshold=0.2, calibration={"metric": "mIoU"})
    meta = read_metadata(out)
    assert meta["threshold"] == 0.2 and meta["config"]["threshold"] == 0.2 and meta["calibration"] == {"metric": "mIoU"}
    assert meta["gsd_m"] == 0.5 and meta["metrics"] == {"oIoU": 1.0}  # everything else carried over
    assert read_metadata(ckpt)["threshold"] == 0.5
    a, b = load_file(str(ckpt)), load_file(str(out))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(out)[0].cfg.threshold == 0.2
    assert load_predictor(str(out), device="cpu").info.threshold == 0.2
    update_metadata(out, out, threshold=0.3)  # in place, atomically
    assert read_metadata(out)["threshold"] == 0.3 and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


# -- what the training pixels were (radiometry, ground resolution, window size) ----------------

INPUTS = {"radiometry": {"uint8": {"lo": [0.0], "hi": [255.0], "note": "8-bit as stored"},
                         "uint16": {"lo": [0.0] * 3, "hi": [2000.0, 2000.0, 5000.0], "note": "reflectance x 10000"}},
          "gsd_m_range": [0.5, 2.0], "chip_px": 96}


def test_training_inputs_round_trip_to_the_engine(tmp_path, small_model, ckpt, pred):
    path = save_checkpoint(small_model, tmp_path / "r.safetensors", gsd_m=0.5, **INPUTS)
    meta = read_metadata(path)
    assert {k: meta[k] for k in INPUTS} == INPUTS
    info = load_predictor(str(path), device="cpu").info
    assert {k: info.extra[k] for k in INPUTS} == INPUTS and info.gsd_m == 0.5
    assert not set(INPUTS) & set(pred.info.extra)  # a file without them loads as before
    from rrsis_geo.models.checkpoint import update_metadata

    added = update_metadata(ckpt, tmp_path / "added.safetensors", **INPUTS)  # recorded afterwards
    assert {k: read_metadata(added)[k] for k in INPUTS} == INPUTS
    with pytest.raises(ModelError, match="chip_px must be"):
        update_metadata(ckpt, tmp_path / "worse.safetensors", chip_px=-1)


@pytest.mark.parametrize("bad,match", [
    ({"radiometry": {"uint16": {"lo": [0.0], "hi": [1.0] * 4}}}, r"radiometry\['uint16'\]\.hi has 4 values for 3 bands"),
    ({"radiometry": {"uint16": {"lo": [5.0], "hi": [5.0]}}}, r"radiometry\['uint16'\] needs lo < hi"),
    ({"radiometry": {"uint16": {"lo": [0.0], "hi": [float("inf")]}}}, "must be finite numbers"),
    ({"gsd_m_range": [1.0, 0.5]}, r"gsd_m_range must be \[min, max\] metres with 0 < min <= max"),
    ({"gsd_m_range": [1.0, 2.0]}, r"gsd_m 0.5 lies outside gsd_m_range \[1.0, 2.0\]"),
    ({"chip_px": 0}, "chip_px must be a whole number of pixels >= 1"),
])
def test_bad_training_inputs_refused_in_one_line(tmp_path, small_model, ckpt, bad, match):
    """Refused when written (no file appears) and, in a file written by other means, when loaded."""
    with pytest.raises(ModelError, match=match) as err:
        save_checkpoint(small_model, tmp_path / "bad.safetensors", gsd_m=0.5, **bad)
    assert "\n" not in str(err.value) and not (tmp_path / "bad.safetensors").exists()

    def edit(m):
        header = json.loads(m["rrsis_geo"])
        header.update(bad)
        return {**m, "rrsis_geo": json.dumps(header)}

    edited = rewrite(ckpt, tmp_path / "edited.safetensors", meta=edit)
    for load in (load_checkpoint, lambda p: load_predictor(str(p), device="cpu")):
        with pytest.raises(ModelError, match=match) as err:
            load(edited)
        assert "\n" not in str(err.value) and str(edited) in str(err.value)
