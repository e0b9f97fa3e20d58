"""The paper variants of BSC, MCI and Fg-Bg: shapes, window sizes, step-0 gradients, and that each
ablation switch changes exactly the part it names (btdnet-tiny, small inputs)."""

from __future__ import annotations

import pytest
import torch

from rrsis_geo.models import create_model
from rrsis_geo.models.btdnet.bsc import BSCBlock, LegacyBSCBlock, NoExchange
from rrsis_geo.models.btdnet.config import BSCConfig
from tests.models.conftest import LEGACY

V_DIM, L_DIM, T = 8, 16, 9


def block_inputs(seed=0, h=11, w=13):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(1, V_DIM, h, w, generator=g)
    l = torch.randn(1, T, L_DIM, generator=g)
    mask = torch.ones(1, T, dtype=torch.long)
    mask[0, 7:] = 0  # two padding tokens
    return v, l, mask


def block(ks=(1, 3), seed=0, **kw):
    torch.manual_seed(seed)
    return BSCBlock(V_DIM, L_DIM, BSCConfig(kernel_sizes=ks, key_dim=8), ks, **kw).eval()


def test_bsc_block_shapes_and_padding():
    v, l, mask = block_inputs()
    v2, l2 = block()(v, l, mask)
    assert v2.shape == v.shape and l2.shape == l.shape
    pad = mask == 0
    assert torch.equal(l2[pad], l[pad]) and not torch.equal(l2[~pad], l[~pad]) and not torch.equal(v2, v)


@pytest.mark.parametrize("ks", [(1,), (1, 3), (1, 3, 5)])
def test_pixel_update_reads_only_its_windows(ks):
    """Language-to-vision: a pixel's update changes when a neighbour within the largest window
    changes (every ring up to k // 2) and never from a pixel outside it."""
    blk = block(ks)
    v, l, mask = block_inputs()
    r, c = 5, 6
    v_b = v.clone()
    v_b[0, :, r, c] += 3.0
    with torch.no_grad():
        changed = (blk.updates(v, l, mask)[0] - blk.updates(v_b, l, mask)[0]).abs().amax(1)[0] > 1e-6
    ys, xs = torch.meshgrid(torch.arange(v.shape[2]), torch.arange(v.shape[3]), indexing="ij")
    dist = torch.maximum((ys - r).abs(), (xs - c).abs())
    radius = max(ks) // 2
    assert not changed[dist > radius].any()
    for ring in range(radius + 1):
        assert changed[dist == ring].any(), ring


@pytest.mark.parametrize("ks", [(1,), (1, 3), (1, 5)])
def test_word_update_reads_only_its_windows(ks):
    """Vision-to-language: word t's update changes with word j iff |t - j| <= k // 2; padding
    words change nothing."""
    blk = block(ks)
    v, l, mask = block_inputs()
    j = 3
    l_b = l.clone()
    l_b[0, j] += 3.0
    with torch.no_grad():
        changed = (blk.updates(v, l, mask)[1] - blk.updates(v, l_b, mask)[1]).abs().amax(-1)[0] > 1e-6
        l_pad = l.clone()
        l_pad[0, 8] += 3.0
        assert torch.equal(blk.updates(v, l, mask)[1][0, :7], blk.updates(v, l_pad, mask)[1][0, :7])
    expect = (torch.arange(T) - j).abs() <= max(ks) // 2
    assert torch.equal(changed, expect)


def test_every_bsc_parameter_gets_gradient_at_step_0():
    """The paper block's gates start at sigmoid(-2), not behind a zero scalar: every weight
    learns from the first step. The legacy block's zero residual scalars block its inner weights."""
    v, l, mask = block_inputs()
    blk = block((1, 3, 5)).train()
    v2, l2 = blk(v, l, mask)
    (v2.square().sum() + l2.square().sum()).backward()
    names = [n for n, _ in blk.named_parameters()]
    assert {"affinity.field_weights.l2v", "affinity.field_weights.v2l", "v_gate_bias", "l_gate_bias"} <= set(names)
    assert [n for n, p in blk.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    legacy = LegacyBSCBlock(V_DIM, L_DIM, BSCConfig(kernel_sizes=(1, 3), key_dim=8, variant="legacy"), (1, 3)).train()
    v2, l2 = legacy(v, l, mask)
    (v2.square().sum() + l2.square().sum()).backward()
    assert legacy.l2v.query[0].weight.grad is None or legacy.l2v.query[0].weight.grad.abs().sum() == 0


@pytest.mark.parametrize("off", ["l2v", "v2l"])
def test_one_direction_off_changes_only_that_direction(off):
    """L2V-only / V2L-only: the switched-off direction's weights are gone, its stream passes
    through, and the other stream is exactly what the two-way block gives it."""
    v, l, mask = block_inputs()
    full = block((1, 3))
    one = block((1, 3), **{off: False})
    missing, unexpected = one.load_state_dict(full.state_dict(), strict=False)
    own = {"l2v": ("affinity.field_weights.l2v", "l_value.", "v_out.", "v_gate.", "v_gate_bias"),
           "v2l": ("affinity.field_weights.v2l", "v_value.", "l_out.", "l_gate.", "l_gate_bias")}[off]
    assert missing == [] and unexpected and all(k.startswith(own) for k in unexpected)
    with torch.no_grad():
        vf, lf = full(v, l, mask)
        vo, lo = one(v, l, mask)
    if off == "l2v":
        assert torch.equal(vo, v) and torch.equal(lo, lf)
    else:
        assert torch.equal(lo, l) and torch.equal(vo, vf)


def keys(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def without(d, *prefixes):
    return {k: v for k, v in d.items() if not k.startswith(prefixes)}


def test_bsc_stage_switch_changes_only_that_stage():
    full, ablated = create_model("btdnet-tiny", pretrained=False), create_model(
        "btdnet-tiny", pretrained=False, bsc={"l2v_stages": [0, 1, 2], "v2l_stages": [0, 1, 2]})
    assert isinstance(ablated.bsc[3], NoExchange) and not isinstance(full.bsc[3], NoExchange)
    assert without(keys(full), "bsc.3.") == keys(ablated)
    v2l_only = create_model("btdnet-tiny", pretrained=False, bsc={"l2v_stages": []})
    assert all(b.v2l and not b.l2v for b in v2l_only.bsc)
    assert set(keys(v2l_only)) < set(keys(full))
    assert {k.split(".")[0] for k in set(keys(full)) - set(keys(v2l_only))} == {"bsc"}


def test_window_sizes_change_only_the_field_weights():
    a = create_model("btdnet-tiny", pretrained=False, bsc={"kernel_sizes": [1, 3]})
    b = create_model("btdnet-tiny", pretrained=False, bsc={"kernel_sizes": [1, 3, 5]})
    ka, kb = keys(a), keys(b)
    assert ka.keys() == kb.keys()
    assert {k for k in ka if ka[k] != kb[k]} == {f"bsc.{i}.affinity.field_weights.{d}" for i in range(4) for d in ("l2v", "v2l")}
    assert b.bsc[0].affinity.kernel_sizes == (1, 3, 5)  # every stage, the 1/4 one included


def test_bad_switches_are_config_errors():
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="odd"):
        create_model("btdnet-tiny", pretrained=False, bsc={"kernel_sizes": [2]})
    with pytest.raises(ConfigError, match="stage"):
        create_model("btdnet-tiny", pretrained=False, bsc={"l2v_stages": [4]})
    with pytest.raises(ConfigError, match="paper variant only"):
        create_model("btdnet-tiny", pretrained=False, bsc={"variant": "legacy", "v2l_stages": []})
    with pytest.raises(ConfigError, match="variant"):
        create_model("btdnet-tiny", pretrained=False, mci={"variant": "new"})
    with pytest.raises(ConfigError, match="bg_reduce"):
        create_model("btdnet-tiny", pretrained=False, fgbg={"bg_reduce": "min"})


def test_mci_multiscale_attention_is_the_paper_variants_only_difference(text_batch, images):
    paper, legacy = create_model("btdnet-tiny", pretrained=False), create_model("btdnet-tiny", pretrained=False,
                                                                                   mci={"variant": "legacy"})
    assert without(keys(paper), "mci.self_layers.") == keys(legacy)
    assert len(paper.mci.self_layers) == paper.cfg.mci.iters and legacy.mci.self_layers is None
    # keys are pooled to at most kv_pool^2 per scale
    levels = [torch.randn(1, s * s, 32) for s in (20, 10, 5)]
    assert paper.mci.pooled_scales(levels, [(20, 20), (10, 10), (5, 5)]).shape == (1, 16 * 16 + 100 + 25, 32)


def test_mci_attention_levels():
    """attn_levels (1, 2, 3): the 1/4 tokens neither ask nor answer in the multi-scale attention
    and pass it unchanged; the other levels are updated."""
    model = create_model("btdnet-tiny", pretrained=False, mci={"attn_levels": [1, 2, 3], "kv_pool": 2})
    shapes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    vis = torch.randn(1, 64 + 16 + 4 + 1, 32)
    seen = []
    layer = model.mci.self_layers[0]
    layer.register_forward_hook(lambda m, args, out: seen.append((args[0].shape[1], args[1].shape[1])))
    with torch.no_grad():
        out = model.mci.multiscale_attention(layer, vis, shapes)
    assert seen == [(16 + 4 + 1, 4 + 4 + 1)]
    assert torch.equal(out[:, :64], vis[:, :64]) and not torch.allclose(out[:, 64:], vis[:, 64:])
    assert create_model("btdnet-lite", pretrained=False).cfg.mci.attn_levels == (1, 2, 3)
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="attn_levels"):
        create_model("btdnet-tiny", pretrained=False, mci={"attn_levels": [4]})


def test_mci_refined_text_drives_the_target_prototype(text_batch, images):
    """Paper Fg-Bg: the target prototype reads MCI's words: changing them changes fg only."""
    model = create_model("btdnet-tiny", pretrained=False).eval()
    p = torch.randn(2, 32, 8, 8)
    mask = text_batch["attention_mask"]
    txt = torch.randn(2, mask.shape[1], 32)
    m_feat = torch.randn(2, mask.shape[1], 64)
    with torch.no_grad():
        a = model.fgbg(p, txt, mask, m_feat, mask)
        b = model.fgbg(p, txt + 1.0, mask, m_feat, mask)
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 1], b[:, 1])


def test_background_prior_switch(text_proc, images):
    """bg_prior off: the masked-text projection and the tokens' attention to it are gone (nothing
    else), and the masked sentence no longer changes the prediction; on, it does."""
    on = create_model("btdnet-tiny", pretrained=False).eval()
    off = create_model("btdnet-tiny", pretrained=False, fgbg={"bg_prior": False}).eval()
    assert without(keys(on), "fgbg.bg_text.", "fgbg.bg_attn.") == keys(off)
    t = text_proc(["the bridge over the river"])
    other = dict(t, masked_input_ids=t["input_ids"].clone())
    x = images(1, 64, 64)
    with torch.no_grad():
        assert torch.equal(off(x, t).logits, off(x, other).logits)
        assert not torch.allclose(on(x, t).logits, on(x, other).logits)


def test_bg_reduce_changes_only_the_background_score(text_batch, images):
    a = create_model("btdnet-tiny", pretrained=False, fgbg={"bg_reduce": "max"}).eval()
    b = create_model("btdnet-tiny", pretrained=False, fgbg={"bg_reduce": "logsumexp"}).eval()
    b.load_state_dict(a.state_dict())
    x = images(2, 64, 64)
    with torch.no_grad():
        la, lb = a(x, text_batch).logits, b(x, text_batch).logits
    torch.testing.assert_close(la[:, 1], lb[:, 1], rtol=0, atol=0)
    assert (lb[:, 0] >= la[:, 0] - 1e-5).all() and not torch.allclose(la[:, 0], lb[:, 0])


def test_dmols_switch(text_batch, images):
    on = create_model("btdnet-tiny", pretrained=False).train()
    off = create_model("btdnet-tiny", pretrained=False, dmols={"enabled": False}).train()
    assert without(keys(on), "dmols.") == keys(off)
    target = torch.ones(2, 64, 64, dtype=torch.long)
    assert "rec" in on(images(2, 64, 64), text_batch, targets=target).losses
    assert "rec" not in off(images(2, 64, 64), text_batch, targets=target).losses


def test_loss_type_switch_changes_the_loss_only(text_batch, images):
    ce = create_model("btdnet-tiny", pretrained=False, dmols={"enabled": False}).eval()
    gce = create_model("btdnet-tiny", pretrained=False, dmols={"enabled": False}, loss={"ce_type": "gce"}).eval()
    assert all(torch.equal(x, y) for x, y in zip(ce.state_dict().values(), gce.state_dict().values()))
    target = (torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(2)) > 0.5).long()
    with torch.no_grad():
        a = ce(images(2, 64, 64), text_batch, targets=target)
        b = gce(images(2, 64, 64), text_batch, targets=target)
    assert torch.equal(a.logits, b.logits) and not torch.allclose(a.loss, b.loss)


def test_generalized_ce_against_its_formula():
    """GCE = (1 - p_y^q) / q per pixel, class-weighted mean: checked on two pixels by hand."""
    import math

    from rrsis_geo.models.btdnet.losses import generalized_ce

    logits = torch.tensor([[[[2.0, -1.0]], [[0.5, 1.0]]]])  # (1, 2 classes, 1, 2 pixels)
    target = torch.tensor([[[0, 1]]])
    q = 0.7
    p0 = math.exp(2.0) / (math.exp(2.0) + math.exp(0.5))  # pixel 0, class 0 (bg)
    p1 = math.exp(1.0) / (math.exp(-1.0) + math.exp(1.0))  # pixel 1, class 1 (fg)
    l0, l1 = (1 - p0 ** q) / q, (1 - p1 ** q) / q
    assert generalized_ce(logits, target, q, None).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    w = torch.tensor([0.9, 1.1])
    assert generalized_ce(logits, target, q, w).item() == pytest.approx((0.9 * l0 + 1.1 * l1) / 2.0, rel=1e-6)


def test_presets_build_the_paper_variants():
    from rrsis_geo.models import get_config

    for name in ("btdnet-b", "btdnet-lite", "btdnet-tiny"):
        cfg = get_config(name)
        assert (cfg.bsc.variant, cfg.mci.variant, cfg.fgbg.variant) == ("paper", "paper", "paper")
    assert get_config("btdnet-b").loss.ce_type == "gce"
    assert create_model("btdnet-tiny", pretrained=False, **LEGACY).seg_head is not None
