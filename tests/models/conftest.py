"""Shared fixtures for the BTDNet tests: everything offline, small inputs, btdnet-tiny."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

EXPRESSIONS = ["the white storage tank on the left of the road", "vehicle"]


@pytest.fixture
def tiny():
    """A fresh btdnet-tiny (random, seed 0), eval mode."""
    from rrsis_geo.models import create_model

    return create_model("btdnet-tiny").eval()


@pytest.fixture(scope="session")
def text_proc():
    from rrsis_geo.models import TextProcessor

    return TextProcessor(max_tokens=20, masker="lexicon")


@pytest.fixture
def text_batch(text_proc):
    return text_proc(EXPRESSIONS)


def make_images(b=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g)


@pytest.fixture
def images():
    """images(b, h, w, seed=0) -> a seeded random normalised image batch."""
    return make_images


# the earlier reconstruction of BSC / MCI / Fg-Bg, which checkpoints saved before the paper
# variants hold (rrsis_geo.models.btdnet.config.VARIANTS)
LEGACY = {"bsc": {"variant": "legacy"}, "mci": {"variant": "legacy"}, "fgbg": {"variant": "legacy"}}


@pytest.fixture
def legacy_tiny():
    """btdnet-tiny with the legacy variants (random, seed 0), eval mode."""
    from rrsis_geo.models import create_model

    return create_model("btdnet-tiny", **LEGACY).eval()
