"""Spectral indices computed inside the model (``spectral_indices``): NDWI/NDVI-style band ratios
for the encoder stem and the detail refinement."""

from __future__ import annotations

import pytest
import torch

from rrsis_geo.errors import ConfigError
from rrsis_geo.models import create_model
from rrsis_geo.models.btdnet.indices import NormalizedDifferences

MEAN, STD = (0.45, 0.42, 0.40, 0.30), (0.22, 0.21, 0.20, 0.25)
RGBN = dict(vision__in_chans=4, mean=MEAN, std=STD)


def normalise(raw: torch.Tensor) -> torch.Tensor:
    return (raw - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1)


def test_indices_are_the_band_ratios_of_the_unnormalised_input():
    """The model sees normalised bands; the indices must undo that with the model's own mean/std
    (a ratio of normalised values is a different, unbounded number)."""
    raw = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    red, green, nir = raw[:, 0], raw[:, 1], raw[:, 3]
    got = NormalizedDifferences([[1, 3], [3, 0]], MEAN, STD)(normalise(raw))
    assert got.shape == (2, 2, 16, 16)
    torch.testing.assert_close(got[:, 0], (green - nir) / (green + nir))  # NDWI
    torch.testing.assert_close(got[:, 1], (nir - red) / (nir + red))  # NDVI


def test_pixels_whose_bands_sum_to_zero_get_zero_not_nan():
    raw = torch.full((1, 4, 4, 4), 0.3)
    raw[..., 0, 0] = 0.0  # nodata
    got = NormalizedDifferences([[1, 3]], MEAN, STD)(normalise(raw))
    assert torch.isfinite(got).all() and got[0, 0, 0, 0] == 0 and got.abs().max() <= 1


@pytest.mark.parametrize("pairs, words", [([[1, 4]], "among 0..3"), ([[2, 2]], "two different bands"),
                                          ([[1, 2, 3]], "pair"), ([1], "pair"), ([[0.5, 1]], "pair")])
def test_index_pairs_are_validated(pairs, words):
    with pytest.raises(ConfigError, match=words) as err:
        create_model("btdnet-tiny", pretrained=False, spectral_indices=pairs, **RGBN)
    assert "\n" not in str(err.value)


def test_indices_reach_the_stem_and_the_refinement(text_batch):
    """Both entry points start at zero (so the predictions equal the model without indices) and
    both are wired into the output: a change in either moves the logits."""
    plain = create_model("btdnet-tiny", seed=1, pretrained=False, decoder__fine_stride=2, **RGBN).eval()
    model = create_model("btdnet-tiny", seed=1, pretrained=False, decoder__fine_stride=2,
                         spectral_indices=[[1, 3], [3, 0]], **RGBN).eval()
    first = "refine.detail.0.weight"  # gains the index channels: copy the bands', start the indices' at zero
    missing, unexpected = model.load_state_dict({k: v for k, v in plain.state_dict().items() if k != first}, strict=False)
    assert not unexpected and sorted(missing) == ["index_stem.conv.bias", "index_stem.conv.weight", first]
    with torch.no_grad():
        w = model.refine.detail[0].weight
        w[:, :4] = plain.refine.detail[0].weight
        w[:, 4:] = 0
        torch.nn.init.normal_(model.refine.out.weight, std=0.5)
        plain.refine.out.weight.copy_(model.refine.out.weight)
    x = normalise(torch.rand(2, 4, 64, 64, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        base = plain(x, text_batch).logits
        assert torch.equal(model(x, text_batch).logits, base)
        model.index_stem.conv.bias.fill_(0.5)
        assert not torch.allclose(model(x, text_batch).logits, base)
        model.index_stem.conv.bias.zero_()
        model.refine.detail[0].weight[:, 4:].normal_(std=0.5)
        assert not torch.allclose(model(x, text_batch).logits, base)


def test_model_info_names_the_indices():
    from rrsis_geo.models.summary import count_parameters, summarize

    model = create_model("btdnet-tiny", pretrained=False, spectral_indices=[[1, 3]], **RGBN)
    assert summarize(model)["spectral_indices"] == [[1, 3]]
    assert count_parameters(model)["index_stem"] > 0
    assert count_parameters(create_model("btdnet-tiny", pretrained=False))["index_stem"] == 0


def test_indices_grow_onto_a_trained_checkpoint(tmp_path, text_batch):
    """The demo recipe's path: ``model.init`` + ``overrides.spectral_indices`` (with the refinement)
    starts at the checkpoint's predictions; adding indices to a checkpoint that already has the
    refinement would reshape its first convolution and is refused in one line."""
    from rrsis_geo.models import save_checkpoint
    from rrsis_geo.training.bundle import build_bundle

    src = create_model("btdnet-tiny", seed=4, pretrained=False, **RGBN).eval()
    save_checkpoint(src, tmp_path / "src.safetensors")
    grown = build_bundle("btdnet-tiny", {"spectral_indices": [[1, 3], [3, 0]], "decoder": {"fine_stride": 2}},
                         tmp_path / "src.safetensors").model.eval()
    x = normalise(torch.rand(2, 4, 64, 64, generator=torch.Generator().manual_seed(5)))
    with torch.no_grad():
        assert torch.equal(grown(x, text_batch).logits, src(x, text_batch).logits)
    fine = create_model("btdnet-tiny", seed=4, pretrained=False, decoder__fine_stride=2, **RGBN)
    save_checkpoint(fine, tmp_path / "fine.safetensors")
    with pytest.raises(ConfigError, match="reshape trained weights") as err:
        build_bundle("btdnet-tiny", {"spectral_indices": [[1, 3]]}, tmp_path / "fine.safetensors")
    assert "\n" not in str(err.value)
