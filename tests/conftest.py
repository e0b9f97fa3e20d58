import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_SCENE = os.path.join(ROOT, "data", "samples", "naip_lakes_5m.tif")


@pytest.fixture
def sample_scene():
    return SAMPLE_SCENE
