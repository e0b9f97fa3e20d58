"""Hostile checkpoints and weight files are refused in one line before anything large is allocated."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from rrsis_geo import checkpoint_header
from rrsis_geo.errors import CheckpointError
from rrsis_geo.models import create_model, load_checkpoint, save_checkpoint
from rrsis_geo.weights import shipped_path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    return save_checkpoint(create_model("btdnet-tiny", pretrained=False, input_size=64), path)


def split(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(path, header, data):
    b = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(b)) + b + data)
    return path


def with_meta(src, dst, edit):
    header, data = split(src)
    meta = json.loads(header["__metadata__"]["rrsis_geo"])
    edit(meta)
    header["__metadata__"] = {"rrsis_geo": json.dumps(meta)}
    return join(dst, header, data)


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Fail the test if the loader builds the model or reads the tensors."""
    import safetensors.torch

    from rrsis_geo.models import registry

    def boom(*a, **k):
        raise AssertionError("allocated before the checks")

    monkeypatch.setattr(registry, "build_model", boom)
    monkeypatch.setattr(safetensors.torch, "load_file", boom)


def test_header_length_beyond_the_file(tmp_path, nothing_allocated):
    p = tmp_path / "h.safetensors"
    p.write_bytes(struct.pack("<Q", 10 << 30) + b"{}")
    with pytest.raises(CheckpointError, match="header length"):
        load_checkpoint(p)


def test_tensor_larger_than_the_file(tmp_path, ckpt, nothing_allocated):
    header, data = split(ckpt)
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [100_000, 100_000]
    with pytest.raises(CheckpointError, match="does not match its"):
        load_checkpoint(join(tmp_path / "big.safetensors", header, data))
    header[name]["data_offsets"] = [0, 10 << 30]
    with pytest.raises(CheckpointError, match="outside the file"):
        load_checkpoint(join(tmp_path / "far.safetensors", header, data))


def test_file_size_and_tensor_count_limits(tmp_path, ckpt, monkeypatch, nothing_allocated):
    monkeypatch.setattr(checkpoint_header, "MAX_TENSORS", 5)
    with pytest.raises(CheckpointError, match="more than the 5 allowed"):
        load_checkpoint(ckpt)
    monkeypatch.setattr(checkpoint_header, "MAX_FILE_BYTES", 1000)
    with pytest.raises(CheckpointError, match="a checkpoint may be"):
        load_checkpoint(ckpt)


def test_config_of_a_huge_model_refused_unbuilt(tmp_path, ckpt, nothing_allocated):
    def edit(m):
        m["config"]["text"]["vocab_size"] = 30522 * 1000

    with pytest.raises(CheckpointError, match="shape mismatch|values, more than"):
        load_checkpoint(with_meta(ckpt, tmp_path / "vocab.safetensors", edit))


def test_huge_encoder_taken_from_base_refused_unbuilt(tmp_path, nothing_allocated):
    """The shipped model stores its text encoder by reference: its size is bounded by the source's."""
    def edit(m):
        m["config"]["text"]["vocab_size"] = 30522 * 100

    p = with_meta(shipped_path("btdnet-lite-demo"), tmp_path / "demo.safetensors", edit)
    with pytest.raises(CheckpointError, match="text encoder of .* values, more than"):
        load_checkpoint(p)


@pytest.mark.parametrize("key,value,match", [
    ("threshold", 1.0, "threshold must lie in"),
    ("threshold", float("nan"), "finite number"),
    ("std", [0.2, 0.0, 0.2], "std must be"),
    ("input_size", 100_000, "input_size must be"),
    ("presence", 1.5, "presence must lie in"),
    ("vocabulary", {"categories": {"lake": {"nouns": ["lake"] * 10_000}}}, "more than the 10000"),
])
def test_metadata_ranges(tmp_path, ckpt, nothing_allocated, key, value, match):
    def edit(m):
        m[key] = value
        if key in m["config"]:
            m["config"][key] = value

    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(with_meta(ckpt, tmp_path / "m.safetensors", edit))


def test_metadata_read_without_torch():
    import subprocess
    import sys

    code = ("import sys; from rrsis_geo.checkpoint_header import model_settings; "
            "m = model_settings('btdnet-lite-demo'); assert m['bands'] == 4, m['bands']; "
            "assert 'torch' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_pickled_objects_refused_without_torch_advice(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "evil.pth"
    torch.save({"model": Payload()}, path)
    with pytest.raises(CheckpointError) as e:
        create_model("btdnet-tiny", vision__weights=str(path))
    msg = str(e.value)
    assert "objects other than tensors" in msg and "refused" in msg
    assert "weights_only" not in msg and "succeed" not in msg and "\n" not in msg
