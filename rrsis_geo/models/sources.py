"""Loading released weights into a module with asserted key sets, for every architecture.

Each architecture's pretrained loaders turn a release's state dict into their module's key names
and call :func:`load_filtered`, which refuses (listing the keys) any missing, unexpected or
mis-shaped key: never a silent ``strict=False``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rrsis_geo.errors import CheckpointError


def list_keys(keys, n: int = 12) -> str:
    """``keys`` sorted and joined, the first ``n`` and a count of the rest."""
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_filtered(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
                  expected_missing: set[str] = frozenset()) -> None:
    """Load with the missing/unexpected key sets asserted (only ``expected_missing`` allowed)."""
    own = module.state_dict()
    missing = set(own) - set(state_dict) - set(expected_missing)
    unexpected = set(state_dict) - set(own)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the model: missing keys [{list_keys(missing)}]; "
            f"unexpected keys [{list_keys(unexpected)}]"
        )
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{source}: shape mismatch for {list_keys(bad, 6)}")
    result = module.load_state_dict(state_dict, strict=False)
    assert set(result.missing_keys) <= set(expected_missing) and not result.unexpected_keys
