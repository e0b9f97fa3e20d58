"""The detail refinement (``decoder.fine_stride``): logits finer than the decoder's 1/4."""

from __future__ import annotations

import pytest
import torch

from rrsis_geo.models import create_model


@pytest.mark.parametrize("fine_stride", [2, 1])
@pytest.mark.parametrize("hw", [(64, 64), (100, 130)])
def test_fine_logits_have_the_input_size(fine_stride, hw, text_batch, images):
    model = create_model("btdnet-tiny", decoder__fine_stride=fine_stride).eval()
    with torch.no_grad():
        out = model(images(2, *hw), text_batch)
    assert out.logits.shape == out.fgbg_logits.shape == (2, 2, *hw)
    assert model.refine.stride == fine_stride


def test_fine_stride_is_validated():
    from rrsis_geo.errors import ConfigError

    with pytest.raises(ConfigError, match="fine_stride=3"):
        create_model("btdnet-tiny", decoder__fine_stride=3)
    assert create_model("btdnet-tiny").refine is None  # the paper's head by default


def test_refinement_resolves_detail_finer_than_a_decoder_cell(text_proc):
    """Stripes 2 px wide (period 4 px) fit in one 1/4 cell, so logits upsampled from 1/4 cannot
    draw them; training only the stride-2 branch must. Catches a branch that is not wired into the
    output, runs at the wrong stride, or is misaligned with the input."""
    torch.manual_seed(0)
    model = create_model("btdnet-tiny", decoder__fine_stride=2, text__dropout=0.0).train()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("refine."))
    stripes = (torch.arange(64) % 4 < 2).float().expand(64, 64)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.1
    image[:, 0] += 2 * stripes - 1
    target = stripes.long()[None]
    text = text_proc(["the striped field"])
    opt = torch.optim.Adam(model.refine.parameters(), lr=1e-2)

    def iou():
        with torch.no_grad():
            pred = model.eval()(image, text).logits.argmax(1) == 1
        model.train()
        return ((pred & (target == 1)).sum() / (pred | (target == 1)).sum()).item()

    before = iou()
    for _ in range(60):
        opt.zero_grad()
        model(image, text, targets=target).loss.backward()
        opt.step()
    assert before < 0.6 and iou() > 0.9


def test_model_info_shows_the_refinement():
    from rrsis_geo.models.summary import count_parameters, summarize

    plain, fine = create_model("btdnet-tiny", pretrained=False), create_model("btdnet-tiny", pretrained=False, decoder__fine_stride=2)
    info = summarize(fine)
    counts = count_parameters(fine)
    assert info["logit_stride"] == 2 and summarize(plain)["logit_stride"] == 4
    assert counts["refine"] > 0 and count_parameters(plain)["refine"] == 0
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]  # every parameter in one component
