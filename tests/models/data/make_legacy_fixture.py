"""Writes legacy_outputs.npz: what the model code *before* the paper variants of BSC/MCI/Fg-Bg
predicted, for tests/models/test_legacy.py (old checkpoints must load and predict as before).

Made once with the untouched code of the main branch at commit 3c36739:

    cd /work/main && PYTHONPATH=/work/main python /path/to/tests/models/data/make_legacy_fixture.py OUT.npz

Contents: ``tiny_config`` (the btdnet-tiny config dict of that code, JSON) and ``tiny_logits``
(its random-init model, seed 0, on the inputs below), and ``demo_logits``: the shipped
``btdnet-lite-demo`` model's logits on its inputs. Both use :func:`inputs` (seeded, small).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

EXPRESSIONS = ["the largest lake", "the field in the north-west"]


def inputs(bands: int, size: int = 64):
    g = torch.Generator().manual_seed(19)
    return torch.randn(len(EXPRESSIONS), bands, size, size, generator=g)


def logits(model) -> np.ndarray:
    from rrsis_geo.models import TextProcessor

    text = TextProcessor.from_config(model.cfg)(EXPRESSIONS)
    with torch.no_grad():
        return model.eval()(inputs(model.cfg.vision.in_chans), text).logits.numpy()


def main(out: str) -> None:
    from rrsis_geo.models import config_to_dict, create_model, load_checkpoint
    from rrsis_geo.weights import shipped_path

    torch.set_num_threads(2)
    tiny = create_model("btdnet-tiny", pretrained=False, seed=0)
    demo, _ = load_checkpoint(shipped_path("btdnet-lite-demo"))
    np.savez_compressed(out, tiny_config=np.array(json.dumps(config_to_dict(tiny.cfg))),
                        tiny_logits=logits(tiny), demo_logits=logits(demo))


if __name__ == "__main__":
    main(sys.argv[1])
