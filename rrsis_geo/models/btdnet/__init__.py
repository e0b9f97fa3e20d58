"""BTDNet (arXiv 2502.08486), one module per component in the order of the paper's figure:
``config``, ``encoders``, ``bsc``, ``mci``, ``decoder``, ``fgbg``, ``dmols``, ``losses``,
``indices``, ``refine``, ``model`` (the whole network and its parameter groups), ``pretrained``
(Swin / BERT / EfficientNet releases) and ``architecture`` (presets and registry entry)."""

from rrsis_geo.models.btdnet import architecture  # noqa: F401 (registers btdnet and its presets)
from rrsis_geo.models.btdnet.model import BTDNet, BTDNetOutput, TextCache, param_groups, unwrap_model

__all__ = ["BTDNet", "BTDNetOutput", "TextCache", "param_groups", "unwrap_model"]
