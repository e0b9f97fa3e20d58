"""Trained models that ship inside the package, by name (``rrsis segment --model btdnet-lite-demo``).

A shipped model is an ordinary rrsis-geo checkpoint in this folder with its model card
beside it (``<name>.md``). Names resolve before presets and paths in every command that takes a
model (:func:`rrsis_geo.models.registry.checkpoint_for`). The demo model stores only what training changed (``rrsis model export``), so
loading it also needs the pretrained text-encoder package it was trained from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rrsis_geo.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ShippedModel:
    name: str
    bands: int  # how many bands it reads
    recipe: str  # the make target that rebuilds it
    summary: str  # one line for `rrsis model list`

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def card(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.md"


SHIPPED = {m.name: m for m in (
    ShippedModel("btdnet-lite-demo", 4, "demo-model",
                 "btdnet-lite trained on the demo data: lakes, rivers, sea, green and bare fields in 5-10 m "
                 "4-band scenes (red, green, blue, NIR), named by size, position and relation (see its model card)"),
    ShippedModel("btdnet-lite-demo-rgb", 3, "demo-model-rgb",
                 "btdnet-lite-demo's recipe on red, green and blue only, for orthophotos and other 3-band "
                 "scenes (see its model card)"),
)}

AUTO = "auto"
DEFAULT_MODEL = AUTO  # the shipped model that fits the scene's bands: see :func:`choose_model`


def choose_model(name: str, scene_bands: int) -> str:
    """``name``, or for :data:`AUTO` the shipped model that reads the most of a scene's
    ``scene_bands`` bands (as ``--bands`` selects them, in the model's order): 4 or more
    (red, green, blue, NIR first) get ``btdnet-lite-demo``, 3 ``btdnet-lite-demo-rgb``; a
    single band is read as grey by the model with the fewest."""
    if name != AUTO:
        return name
    fits = [m for m in SHIPPED.values() if m.bands <= scene_bands] or [min(SHIPPED.values(), key=lambda m: m.bands)]
    return max(fits, key=lambda m: m.bands).name


def shipped_path(name: str) -> Path:
    """The checkpoint file of a shipped model; a clear error if this installation lacks it."""
    model = SHIPPED[name]
    if not model.path.is_file():
        raise ModelError(f"the shipped model {name} is missing from this installation (expected {model.path}); "
                         f"reinstall rrsis-geo or rebuild it with `make {model.recipe}`")
    return model.path

