"""The registry keyed by architecture: every preset resolves, checkpoints name their architecture,
and files written before the header named one load as BTDNet."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from rrsis_geo.errors import CheckpointError, ModelError
from rrsis_geo.models import ARCHITECTURES, create_model, get_config, list_presets, load_checkpoint, save_checkpoint
from rrsis_geo.models.registry import architecture_of, preset_architecture
from rrsis_geo.weights import shipped_path


def rewrite_meta(src, dst, edit):
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["rrsis_geo"])
    edit(meta)
    header["__metadata__"] = {"rrsis_geo": json.dumps(meta)}
    b = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(b)) + b + raw[8 + n:])
    return dst


def test_every_preset_resolves_to_its_architecture():
    assert {"btdnet", "rsrefseg"} <= set(ARCHITECTURES)
    assert {"btdnet-b", "btdnet-lite", "btdnet-tiny", "rsrefseg-b", "rsrefseg-tiny"} <= set(list_presets())
    for name in list_presets():
        cfg = get_config(name)
        assert architecture_of(cfg) is preset_architecture(name)
        assert cfg.name == name
    assert list_presets("rsrefseg") == ["rsrefseg-b", "rsrefseg-tiny"]


def test_overrides_reach_any_architecture():
    cfg = get_config("rsrefseg-tiny", max_tokens=12, prompter__down_spatial=2, lora={"rank": 2})
    assert (cfg.max_tokens, cfg.prompter.down_spatial, cfg.lora.rank) == (12, 2, 2)
    with pytest.raises(Exception, match="unknown config key"):
        get_config("rsrefseg-tiny", lora__ranks=2)


def test_unknown_names_are_one_line_errors():
    with pytest.raises(ModelError, match="unknown model 'rsrefseg-xl'.*rsrefseg-tiny"):
        create_model("rsrefseg-xl")


def test_checkpoint_names_its_architecture(tmp_path):
    from rrsis_geo.models import read_metadata

    for preset in ("btdnet-tiny", "rsrefseg-tiny"):
        p = save_checkpoint(create_model(preset, pretrained=False), tmp_path / f"{preset}.safetensors")
        meta = read_metadata(p)
        assert meta["architecture"] == ARCHITECTURES[meta["architecture"]].name == preset.split("-")[0]
        model, _ = load_checkpoint(p)
        assert architecture_of(model).name == meta["architecture"]


def test_unknown_architecture_is_refused_naming_the_known_ones(tmp_path):
    src = save_checkpoint(create_model("rsrefseg-tiny", pretrained=False), tmp_path / "m.safetensors")
    p = rewrite_meta(src, tmp_path / "x.safetensors", lambda m: m.update(architecture="crobim"))
    with pytest.raises(CheckpointError, match="architecture 'crobim' is not one this rrsis-geo knows.*btdnet, rsrefseg"):
        load_checkpoint(p)


def test_a_config_of_another_architecture_is_refused(tmp_path):
    """An rsrefseg header over BTDNet's config does not silently build something."""
    src = save_checkpoint(create_model("btdnet-tiny", pretrained=False, input_size=64), tmp_path / "m.safetensors")
    p = rewrite_meta(src, tmp_path / "x.safetensors", lambda m: m.update(architecture="rsrefseg"))
    with pytest.raises(CheckpointError, match="cannot rebuild the model from its config"):
        load_checkpoint(p)


def test_the_shipped_model_without_an_architecture_key_loads_and_predicts_bit_identically(tmp_path):
    """Files written before the header named its architecture are BTDNet."""
    from rrsis_geo.models import load_predictor

    shipped = shipped_path("btdnet-lite-demo")
    legacy = rewrite_meta(shipped, tmp_path / "btdnet-lite-demo.safetensors", lambda m: m.pop("architecture"))
    assert "architecture" not in json.loads(json.loads(legacy.read_bytes()[8:8 + struct.unpack("<Q", legacy.read_bytes()[:8])[0]])
                                            ["__metadata__"]["rrsis_geo"])
    a, b = load_predictor(str(shipped), device="cpu"), load_predictor(str(legacy), device="cpu")
    assert a.info.extra["architecture"] == b.info.extra["architecture"] == "btdnet"
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    tiles = np.random.default_rng(0).normal(size=(2, a.info.bands, 96, 96)).astype(np.float32)
    pa = a.predict(tiles, a.encode_expression("the largest lake"))
    pb = b.predict(tiles, b.encode_expression("the largest lake"))
    assert pa.shape == (2, 96, 96) and np.array_equal(pa, pb)


def test_the_qgis_model_list_offers_every_preset_and_shipped_model():
    """The plugin lists model names without importing torch; they must be the registry's. Its
    enum indices are API (scripts pass them): the BTDNet ones keep their places."""
    import ast
    from pathlib import Path

    from rrsis_geo.weights import AUTO, SHIPPED

    source = Path(__file__).resolve().parents[2] / "qgis_plugin" / "algorithms" / "segment.py"
    tree = ast.parse(source.read_text())
    models = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "MODELS")
    assert sorted(models) == sorted(list_presets() + list(SHIPPED) + [AUTO])
    assert models[:4] == ["btdnet-lite", "btdnet-b", "btdnet-tiny", "btdnet-lite-demo"]
