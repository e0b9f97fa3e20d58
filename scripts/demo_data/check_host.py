"""Say, before `make demo-model` trains, whether this machine computes as the one that built the
shipped file did.

    python scripts/demo_data/check_host.py rrsis_geo/weights/btdnet-lite-demo.safetensors

On the CPU the trained weights differ in the last bits with PyTorch's instruction set (AVX2,
AVX512, ...), thread count and package releases; those bits grow over the recipe's 2326 steps into another model of
the same quality. The configs pin the threads (``run.threads``); this names the rest. It reads the
file's ``training.compute`` and never fails: the rebuild runs either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEYS = ("device", "cpu_capability", "torch")


def here_record() -> dict:
    import torch

    from rrsis_geo.training.trainer import compute_record

    return compute_record(torch.device("cpu"), 1)


def verdict(built: dict | None, here: dict) -> str:
    if not built:
        return "the shipped file does not record the machine that built it: the rebuild may differ in its bits"
    differ = [f"{k} {built.get(k)} there, {here.get(k)} here" for k in KEYS if built.get(k) != here.get(k)]
    theirs, ours = built.get("packages", {}), here.get("packages", {})
    differ += [f"{k} {theirs[k]} there, {ours.get(k)} here" for k in sorted(theirs) if theirs[k] != ours.get(k)]
    if differ:
        return ("this machine computes otherwise than the one that built the shipped file (" + "; ".join(differ)
                + "): expect a model of the same quality, not the same bits")
    return (f"this machine computes as the one that built the shipped file did ({built.get('cpu_capability')}, "
            f"torch {built.get('torch')}): expect the same bits")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    args = ap.parse_args(argv)
    from rrsis_geo.models.checkpoint import read_metadata

    try:
        built = read_metadata(args.model).get("training", {}).get("compute")
    except Exception as exc:  # a missing or unreadable file: say so, the rebuild goes on
        print(f"check_host: {args.model}: {exc}")
        return 0
    print("check_host:", verdict(built, here_record()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
