"""Say, before `make demo-model` trains, whether this machine computes as the one that built the
shipped file did; after it, whether the rebuilt file holds the shipped tensors.

    python scripts/demo_data/check_host.py rrsis_geo/weights/btdnet-lite-demo.safetensors --keep build/shipped.safetensors
    ... (the recipe rewrites the file) ...
    python scripts/demo_data/check_host.py rrsis_geo/weights/btdnet-lite-demo.safetensors --against build/shipped.safetensors

On the CPU the trained weights differ in the last bits with PyTorch's instruction set (AVX2,
AVX512, ...), thread count and package releases; those bits grow over the recipe's 2326 steps into
another model. It reads the file's ``training.compute`` and never fails: the rebuild runs either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEYS = ("device", "cpu", "cpu_capability", "threads", "torch")


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
                + "): expect another model, not the same bits")
    return (f"this machine computes as the one that built the shipped file did ({built.get('cpu_capability')}, "
            f"torch {built.get('torch')}): expect the same bits")


def equal_tensors(a, b) -> tuple[int, int]:
    """(tensors of ``a`` stored byte for byte in ``b`` under the same name, dtype and shape, tensors in ``a``)."""
    import torch
    from safetensors import safe_open

    def same(x, y) -> bool:
        return (x.dtype == y.dtype and x.shape == y.shape
                and torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8)))

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        theirs = set(fb.keys())
        keys = list(fa.keys())
        return sum(k in theirs and same(fa.get_tensor(k), fb.get_tensor(k)) for k in keys), len(keys)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--keep", metavar="COPY", help="also copy the file here, for --against after the rebuild")
    ap.add_argument("--against", metavar="COPY", help="after the rebuild: count the tensors equal to the kept copy's")
    args = ap.parse_args(argv)
    if args.against:
        if not Path(args.against).is_file():
            print(f"check_host: no copy of the shipped file at {args.against}: nothing to compare")
            return 0
        same, n = equal_tensors(args.model, args.against)
        print(f"check_host: {same} of {n} tensors of the rebuilt {args.model} equal the shipped file's"
              + (": rebuilt bit for bit" if same == n else ""))
        return 0
    if args.keep and Path(args.model).is_file():
        import shutil

        Path(args.keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.model, args.keep)
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
