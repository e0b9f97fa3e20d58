"""RSRefSeg (Chen et al. 2025): SigLIP image and text towers whose patch-text activation maps
prompt SAM's mask decoder; LoRA on SAM's image encoder and both SigLIP towers. Modules:
``config``, ``model`` (the network, its loss and parameter groups), ``text`` (SigLIP text input),
``pretrained`` (local Hugging Face SigLIP / SAM folders) and ``architecture`` (presets and
registry entry)."""

from rrsis_geo.models.rsrefseg import architecture  # noqa: F401 (registers rsrefseg and its presets)
from rrsis_geo.models.rsrefseg.model import RSRefSeg, RSRefSegOutput, TextFeatures, param_groups

__all__ = ["RSRefSeg", "RSRefSegOutput", "TextFeatures", "param_groups"]
