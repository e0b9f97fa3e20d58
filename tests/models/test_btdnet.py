"""The BTDNet forward pass: shapes, gradients, D-MOLS switching, determinism, the BSC identity."""

from __future__ import annotations

import pytest
import torch

from rrsis_geo.models import create_model, param_groups
from tests.models.conftest import LEGACY


@pytest.mark.parametrize("hw", [(64, 64), (320, 448), (100, 130)])
def test_output_shapes_any_size(tiny, text_batch, hw, images):
    with torch.no_grad():
        out = tiny(images(2, *hw), text_batch)
    assert out.logits.shape == (2, 2, *hw)
    assert out.fgbg_logits.shape == (2, 2, *hw)
    assert out.loss is None and out.losses == {}
    assert torch.isfinite(out.logits).all()


@pytest.mark.slow
def test_output_shape_at_512(tiny, text_proc, images):
    with torch.no_grad():
        out = tiny(images(1, 512, 512), text_proc(["the bridge over the river"]))
    assert out.logits.shape == (1, 2, 512, 512)


def test_every_parameter_gets_a_gradient_at_step_0(text_batch, images):
    """The paper variants, fresh: every parameter (every BSC weight included) gets gradient."""
    model = create_model("btdnet-tiny").train()
    target = (torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5).long()
    out = model(images(2, 64, 64), text_batch, targets=target)
    assert set(out.losses) == {"ce", "rec"}  # the final logits are the twin stream's: one term
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []
    assert any(n.startswith("bsc.0.affinity.") for n, _ in model.named_parameters())


def test_legacy_every_parameter_gets_a_gradient_in_training(text_batch, images):
    model = create_model("btdnet-tiny", **LEGACY).train()
    # legacy BSC residual scales start at 0, which zeroes the gradient of their branches at step 0;
    # open them so an unused parameter cannot hide behind a zero scale
    with torch.no_grad():
        for blk in model.bsc:
            blk.alpha_v.fill_(0.5)
            blk.alpha_l.fill_(0.5)
    target = (torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5).long()
    out = model(images(2, 64, 64), text_batch, targets=target)
    assert set(out.losses) == {"ce", "fgbg", "rec"}
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []


def test_legacy_zero_init_alpha_still_receives_gradient(text_batch, images):
    model = create_model("btdnet-tiny", **LEGACY).train()
    target = torch.ones(2, 64, 64, dtype=torch.long)
    model(images(2, 64, 64), text_batch, targets=target).loss.backward()
    for blk in model.bsc:
        assert blk.alpha_v.grad.abs().item() > 0 and blk.alpha_l.grad.abs().item() > 0


def test_dmols_inactive_in_eval(tiny, text_batch, images):
    calls = []
    tiny.dmols.register_forward_hook(lambda *a: calls.append(1))
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    with torch.no_grad():
        out = tiny(images(2, 64, 64), text_batch, targets=target)
    assert calls == [] and "rec" not in out.losses and set(out.losses) == {"ce"}
    tiny.train()
    out = tiny(images(2, 64, 64), text_batch, targets=target)
    assert calls == [1] and "rec" in out.losses


def test_loss_is_the_configured_weighted_sum(text_batch, images):
    weights = {"fgbg_weight": 0.6, "rec_weight": 0.1, "dice_weight": 0.1}
    target = (torch.rand(2, 64, 64) > 0.7).long()
    paper = create_model("btdnet-tiny", loss=weights).train()
    out = paper(images(2, 64, 64), text_batch, targets=target)
    L = out.losses  # the paper's Fg-Bg: the final logits are the twin stream's, counted once
    torch.testing.assert_close(out.loss, L["ce"] + 0.1 * L["rec"] + 0.1 * L["dice"])
    assert torch.equal(out.logits, out.fgbg_logits)
    model = create_model("btdnet-tiny", loss=weights, **LEGACY).train()
    out = model(images(2, 64, 64), text_batch, targets=target)
    L = out.losses
    expected = L["ce"] + 0.6 * L["fgbg"] + 0.1 * L["rec"] + 0.1 * L["dice"]
    torch.testing.assert_close(out.loss, expected)
    # the class weights [0.9, 1.1] change the CE value
    plain = create_model("btdnet-tiny", loss={"class_weights": None}, **LEGACY).train()
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(0)
    a = model(images(2, 64, 64), text_batch, targets=target).losses["ce"]
    torch.manual_seed(0)
    b = plain(images(2, 64, 64), text_batch, targets=target).losses["ce"]
    assert not torch.allclose(a, b)


def test_gce_option(text_batch, images):
    model = create_model("btdnet-tiny", loss={"ce_type": "gce"}).eval()
    out = model(images(2, 64, 64), text_batch, targets=torch.ones(2, 64, 64, dtype=torch.long))
    assert 0 < out.losses["ce"].item() < 1 / 0.7 + 1e-6  # GCE is bounded by 1/q


def test_eval_is_deterministic(tiny, text_batch, images):
    x = images(2, 96, 96)
    with torch.no_grad():
        a = tiny(x, text_batch).logits
        b = tiny(x, text_batch).logits
    assert torch.equal(a, b)


def test_seeded_construction_is_reproducible():
    a, b = create_model("btdnet-tiny"), create_model("btdnet-tiny")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = create_model("btdnet-tiny", seed=1)
    assert not torch.equal(a.fgbg.bg_tokens, c.fgbg.bg_tokens)


def test_cached_text_prior_equals_uncached(tiny, text_proc, images):
    t1 = text_proc(["the bridge over the river"])
    x = images(3, 64, 64)
    t3 = {k: v.expand(3, -1) for k, v in t1.items()}
    with torch.no_grad():
        cache = tiny.encode_text(t1)
        cached = tiny(x, t3, text_cache=cache).logits
        uncached = tiny(x, t3).logits
    torch.testing.assert_close(cached, uncached, rtol=0, atol=1e-6)


def test_masked_prior_matters(tiny, text_proc, images):
    """The background stream really reads the masked text: another masked sentence, other logits."""
    t = text_proc(["the bridge over the river"])
    other = dict(t, masked_input_ids=t["input_ids"].clone())
    x = images(1, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(tiny(x, t).fgbg_logits, tiny(x, other).fgbg_logits)


def test_legacy_bsc_identity_at_init(legacy_tiny, text_batch, images):
    """Legacy, step 0: the fused encoders give exactly the pretrained encoders' features [ours: zero init]."""
    tiny = legacy_tiny
    x = images(2, 64, 64)
    ids, mask = text_batch["input_ids"], text_batch["attention_mask"]
    with torch.no_grad():
        feats, l_fused = tiny.encode(x, ids, mask)
        v = tiny.vision.stem(x)
        ref = []
        for i in range(tiny.vision.num_stages):
            v = tiny.vision.run_stage(i, v)
            ref.append(v)
        l_ref = tiny.text(ids, mask)
        # and the whole timm Swin (without BSC) agrees with the staged run
        swin_nhwc = tiny.vision.layers(tiny.vision.patch_embed(x))
    for f, r in zip(feats, ref):
        assert torch.equal(f, r)
    assert torch.equal(l_fused, l_ref)
    torch.testing.assert_close(swin_nhwc.permute(0, 3, 1, 2), ref[-1])
    # and it is no longer an identity once the scales move
    with torch.no_grad():
        tiny.bsc[0].alpha_v.fill_(1.0)
        feats2, _ = tiny.encode(x, ids, mask)
    assert not torch.equal(feats2[0], ref[0])


@pytest.mark.parametrize("variant", ["paper", "legacy"])
def test_padding_tokens_get_no_bsc_update(variant, text_batch, images):
    tiny = create_model("btdnet-tiny", **(LEGACY if variant == "legacy" else {})).eval()
    ids, mask = text_batch["input_ids"], text_batch["attention_mask"]
    with torch.no_grad():
        if variant == "legacy":
            for blk in tiny.bsc:
                blk.alpha_l.fill_(1.0)
        l0 = tiny.text.embed(ids)
        l = tiny.text.run_stage(0, l0, tiny.text.additive_mask(mask, l0.dtype))
        v = tiny.vision.run_stage(0, tiny.vision.stem(images(2, 64, 64)))
        _, l2 = tiny.bsc[0](v, l, mask)
    pad = mask == 0
    assert torch.equal(l2[pad], l[pad]) and not torch.equal(l2[~pad], l[~pad])


def test_param_groups_cover_everything_once():
    model = create_model("btdnet-tiny")
    groups = param_groups(model, encoder_lr=1e-5, head_lr=1e-4, weight_decay=0.01)
    names = [n for g in groups for n in g["param_names"]]
    assert sorted(names) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    by = {g["name"]: g for g in groups}
    assert set(by) == {"encoder", "encoder_no_decay", "head", "head_no_decay"}
    assert by["encoder"]["lr"] == 1e-5 and by["head"]["lr"] == 1e-4
    assert by["encoder_no_decay"]["weight_decay"] == 0 and by["head"]["weight_decay"] == 0.01
    nd = set(by["encoder_no_decay"]["param_names"]) | set(by["head_no_decay"]["param_names"])
    assert "vision.layers.0.blocks.0.attn.relative_position_bias_table" in nd
    assert "text.bert.embeddings.position_embeddings.weight" in nd
    assert "bsc.0.v_gate_bias" in nd and "vision.layers.0.blocks.0.norm1.weight" in nd
    assert "vision.layers.0.blocks.0.attn.qkv.weight" in by["encoder"]["param_names"]
    assert "mci.text_layers.0.ffn.0.weight" in by["head"]["param_names"]
    torch.optim.AdamW(groups)  # accepted as is
    # a DDP-style wrapper changes nothing (names would otherwise start with "module.")
    wrapped = torch.nn.Module()
    wrapped.module = model
    assert [g["param_names"] for g in param_groups(wrapped)] == [g["param_names"] for g in groups]


def test_mci_iterations_configurable():
    a = create_model("btdnet-tiny", mci={"iters": 1})
    b = create_model("btdnet-tiny", mci__iters=3)
    assert len(a.mci.text_layers) == 1 and len(b.mci.vis_layers) == 3


def test_unknown_override_is_refused():
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="iterations"):
        create_model("btdnet-tiny", mci={"iterations": 2})


def test_bf16_autocast_forward_and_backward(text_batch, images):
    """The mixed-precision path (bf16 autocast, as on CUDA) runs, masks included."""
    model = create_model("btdnet-tiny").train()
    target = (torch.rand(2, 64, 64) > 0.5).long()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images(2, 64, 64), text_batch, targets=target)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()
    assert torch.isfinite(model.fgbg.bg_tokens.grad).all()


def test_overfits_one_sample(text_proc, images):
    """Eight AdamW steps on one image/mask drive the loss down and the mask toward the target:
    catches sign/order bugs ([bg, fg]) that shape tests cannot."""
    torch.manual_seed(0)
    model = create_model("btdnet-tiny", text__dropout=0.0).train()
    opt = torch.optim.AdamW(param_groups(model, encoder_lr=1e-3, head_lr=3e-3))
    x = images(1, 64, 64)
    target = torch.zeros(1, 64, 64, dtype=torch.long)
    target[:, 16:40, 24:56] = 1  # a 24 x 32 "storage tank"
    text = text_proc(["the white storage tank on the left of the road"])
    losses = []
    for _ in range(8):
        out = model(x, text, targets=target)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    model.eval()
    with torch.no_grad():
        pred = model(x, text).logits.argmax(1)  # fg > bg
    iou = ((pred == 1) & (target == 1)).sum() / ((pred == 1) | (target == 1)).sum()
    assert losses[-1] < 0.5 * losses[0]
    assert iou > 0.7


def test_tiny_inputs_train_without_a_one_by_one_last_stage():
    # 32 px would give a 1 x 1 map at stride 32, where InstanceNorm fails in training mode.
    import torch

    from rrsis_geo.models import TextProcessor, create_model

    model = create_model("btdnet-tiny").train()
    text = TextProcessor.from_config(model.cfg)(["the small pond", "the road"])
    images = torch.randn(2, 3, 32, 32)
    out = model(images, text, targets=torch.zeros(2, 32, 32, dtype=torch.long))
    assert out.logits.shape == (2, 2, 32, 32)
    out.loss.backward()


def test_fourier_positions_are_normalised_cell_centres():
    from rrsis_geo.models.btdnet.mci import fourier_positions

    f = fourier_positions(4, 8, freqs=3)
    assert f.shape == (32, 12)
    x = (torch.arange(8) + 0.5) / 8
    y = (torch.arange(4) + 0.5) / 4
    # column 0: sin(pi x) of each token's column; column 3: sin(pi y) of its row (row-major tokens)
    assert torch.allclose(f[:8, 0], torch.sin(torch.pi * x), atol=1e-6)
    assert torch.allclose(f[::8, 3], torch.sin(torch.pi * y), atol=1e-6)
    # the centre cell of a 3 x 3 map and of a 5 x 5 map lie at the same place in the frame
    assert torch.allclose(fourier_positions(3, 3, 3)[4], fourier_positions(5, 5, 3)[12], atol=1e-6)


@pytest.mark.parametrize("position", ["none", "fourier"])
def test_mci_positions_tell_identical_tokens_apart(position):
    """A featureless scene: without positions every visual token is the same; with them the MCI
    output varies across the frame, which is what position words need."""
    from rrsis_geo.models.btdnet.config import MCIConfig
    from rrsis_geo.models.btdnet.mci import MCI

    torch.manual_seed(0)
    mci = MCI([8, 16], 12, MCIConfig(dim=32, iters=1, heads=2, position=position)).eval()
    feats = [torch.ones(1, 8, 6, 6), torch.ones(1, 16, 3, 3)]
    with torch.no_grad():
        maps, _, _ = mci(feats, torch.randn(1, 4, 12), torch.ones(1, 4, dtype=torch.long))
    spread = float(maps[0].std(dim=(2, 3)).max())
    if position == "none":
        assert spread < 1e-5
    else:
        assert spread > 1e-2


def test_unknown_position_kind_is_refused():
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.models import create_model

    with pytest.raises(ConfigError, match="mci.position"):
        create_model("btdnet-tiny", mci__position="learned")
