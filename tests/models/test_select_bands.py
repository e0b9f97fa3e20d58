"""``select_bands`` / ``rrsis model select-bands``: a trained model narrowed to some of its bands."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from rrsis_geo.errors import ConfigError
from rrsis_geo.models import create_model, load_checkpoint, read_metadata, save_checkpoint
from rrsis_geo.models.bands import select_bands

RGBN = {"input_size": 64, "vision": {"in_chans": 4}, "mean": [0.4, 0.5, 0.6, 0.3], "std": [0.2, 0.25, 0.3, 0.35]}
RADIOMETRY = {"uint16": {"lo": [0, 0, 0, 0], "hi": [2000, 2100, 2200, 5000], "note": "L1C"},
              "uint8": {"lo": [0], "hi": [255], "note": "DN"}}


@pytest.fixture
def rgbn(tmp_path):
    """A 4-band btdnet-tiny with trained-looking metadata (threshold, presence, radiometry)."""
    model = create_model("btdnet-tiny", seed=3, **RGBN).eval()
    with torch.no_grad():  # every band's input filters differ, so a wrong selection shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = save_checkpoint(model, tmp_path / "rgbn.safetensors", threshold=0.2, presence=0.9, radiometry=RADIOMETRY,
                           vocabulary={"categories": {"lake": {"nouns": ["lake"]}}}, gsd_m=10.0)
    return model, path


# Reordered filters sum in another order: float32 logits (up to about 6) then differ by about 1e-5
# (measured over 12 draws of the weights, 1 and 2 threads); a wrong selection moves them by 3-6.
ATOL = 1e-4


def logits(model, text_proc, x):
    with torch.no_grad():
        return model.eval()(x, text_proc(["the largest lake", "the field in the north"])).logits


def test_the_narrowed_model_is_the_source_with_dropped_bands_at_their_mean(tmp_path, rgbn, text_proc):
    src_model, src = rgbn
    r = select_bands(src, tmp_path / "gbr.safetensors", [2, 3, 1])
    assert r["bands"] == [2, 3, 1] and r["from_bands"] == 4 and r["sliced"]
    narrow, meta = load_checkpoint(r["path"])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    full = torch.zeros(2, 4, 64, 64)
    full[:, [1, 2, 0]] = x  # band 4 at its mean: 0 once normalised
    assert torch.allclose(logits(narrow, text_proc, x), logits(src_model, text_proc, full), atol=ATOL)
    # the kept bands' normalisation and radiometry follow them; what was measured on outputs does not
    assert list(narrow.cfg.mean) == [0.5, 0.6, 0.4] and list(narrow.cfg.std) == [0.25, 0.3, 0.2]
    assert meta["bands"] == 3 and meta["threshold"] == 0.5 and "presence" not in meta
    assert meta["radiometry"]["uint16"]["hi"] == [2100, 2200, 2000] and meta["radiometry"]["uint8"]["hi"] == [255]
    assert meta["vocabulary"] == {"categories": {"lake": {"nouns": ["lake"]}}} and meta["gsd_m"] == 10.0
    assert meta["provenance"]["bands_from"]["bands"] == [2, 3, 1]


def test_the_same_bands_reordered_are_the_source_on_reordered_input(tmp_path, rgbn, text_proc):
    src_model, src = rgbn
    narrow, _ = load_checkpoint(select_bands(src, tmp_path / "grbn.safetensors", [2, 1, 3, 4])["path"])
    x = torch.randn(2, 4, 64, 64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(logits(narrow, text_proc, x[:, [1, 0, 2, 3]]), logits(src_model, text_proc, x), atol=ATOL)
    assert not torch.allclose(logits(narrow, text_proc, x), logits(src_model, text_proc, x), atol=1e-3)


def test_a_nir_value_other_than_its_mean_is_what_the_narrowed_model_lacks(tmp_path, rgbn, text_proc):
    src_model, src = rgbn
    narrow, _ = load_checkpoint(select_bands(src, tmp_path / "rgb.safetensors", [1, 2, 3])["path"])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    full = torch.cat([x, torch.ones(2, 1, 64, 64)], 1)
    assert not torch.allclose(logits(narrow, text_proc, x), logits(src_model, text_proc, full), atol=1e-3)


@pytest.mark.parametrize("bands, message", [([5], "takes bands 1..4"), ([1, 1, 2], "named twice"), ([], "at least one")])
def test_bands_it_does_not_take_are_refused(tmp_path, rgbn, bands, message):
    with pytest.raises(ConfigError, match=message):
        select_bands(rgbn[1], tmp_path / "x.safetensors", bands)
    assert not (tmp_path / "x.safetensors").exists()


def test_spectral_indices_from_the_bands_are_refused(tmp_path):
    model = create_model("btdnet-tiny", spectral_indices=[[1, 3]], decoder={"fine_stride": 2}, **RGBN)
    src = save_checkpoint(model, tmp_path / "idx.safetensors")
    with pytest.raises(ConfigError, match="bands"):
        select_bands(src, tmp_path / "x.safetensors", [1, 2, 3])


def test_cli(tmp_path, rgbn, text_proc):
    from cli.main import cli

    dst = tmp_path / "rgb.safetensors"
    r = CliRunner().invoke(cli, ["model", "select-bands", str(rgbn[1]), str(dst), "--bands", "1,2,3"])
    assert r.exit_code == 0, r.output
    assert read_metadata(dst)["bands"] == 3 and "wrote" in r.output
    again = CliRunner().invoke(cli, ["model", "select-bands", str(rgbn[1]), str(dst), "--bands", "1,2,3"])
    assert again.exit_code != 0 and "exists" in again.output
