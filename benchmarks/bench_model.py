"""Model benchmark: parameters, FLOPs and latency per tile for each preset of every architecture.

    python benchmarks/bench_model.py                 # CPU: every preset, each at its own input size
    python benchmarks/bench_model.py --presets btdnet-lite rsrefseg-tiny --reps 5 --threads 4
    python benchmarks/bench_model.py --size 512      # every preset on 512-pixel tiles
    python benchmarks/bench_model.py --variants paper legacy   # BTDNet: the paper's BSC/MCI/Fg-Bg vs the earlier ones
    python benchmarks/bench_model.py --gpu-only      # CUDA: btdnet-b and rsrefseg-b, fp32 vs bf16, batch 1/8/32

Prints figures; it is not a test. Latency covers one model call on a normalised tile with the
expression encoded once beforehand (as the engine does), and the model's own resizing (RSRefSeg
resizes any tile to SAM's and SigLIP's input sizes); random weights (speed does not depend on
them) and placeholder token ids of the model's full expression length. ``infer (M)`` leaves out
training-only parts (BTDNet's D-MOLS head). The GPU section runs only when CUDA is available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's rrsis_geo


def bench_inputs(model, size: int, batch: int, device):
    """A normalised tile batch and a one-row text batch of the model's expression length."""
    from rrsis_geo.models.registry import architecture_of

    arch = architecture_of(model)
    s = arch.settings(model.cfg)
    _, text = arch.example_inputs(model.cfg, size, s["max_tokens"], device)
    x = torch.randn(batch, s["bands"], size, size, device=device)
    return x, text


#: BTDNet's earlier BSC, MCI and Fg-Bg (what checkpoints saved before the paper variants rebuild)
LEGACY = {"bsc": {"variant": "legacy"}, "mci": {"variant": "legacy"}, "fgbg": {"variant": "legacy"}}


def cpu_section(presets, size, reps, threads, variants=("paper",)):
    from rrsis_geo.models import create_model
    from rrsis_geo.models.registry import architecture_of
    from rrsis_geo.models.summary import count_parameters, estimate_flops

    torch.set_num_threads(threads)
    print(f"\n## CPU ({threads} threads, torch {torch.__version__}), one tile, batch 1")
    print(f"{'preset':14s} {'variant':8s} {'tile':>5s} {'params (M)':>10s} {'infer (M)':>10s} {'GFLOPs':>9s} {'median s/tile':>14s} {'min':>7s}")
    runs = [(p, v) for p in presets for v in (variants if p.startswith("btdnet") else ("-",))]
    for name, variant in runs:
        model = create_model(name, pretrained=False, **(LEGACY if variant == "legacy" else {})).eval()
        arch = architecture_of(model)
        tile = size or arch.settings(model.cfg)["input_size"]
        params = count_parameters(model)
        infer = params["total"] - sum(params[k] for k in arch.training_only)
        gflops = estimate_flops(model, tile) / 1e9
        torch.manual_seed(0)
        x, text = bench_inputs(model, tile, 1, "cpu")
        with torch.inference_mode():
            cache = model.encode_text(text)
            model(x, text, text_cache=cache)  # warm-up
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                model(x, text, text_cache=cache)
                times.append(time.perf_counter() - t0)
        print(f"{name:14s} {variant:8s} {tile:5d} {params['total'] / 1e6:10.1f} {infer / 1e6:10.1f} {gflops:9.2f} "
              f"{statistics.median(times):14.3f} {min(times):7.3f}")
        del model


def gpu_section(preset, size, batches, compile_too):
    from rrsis_geo.models import create_model
    from rrsis_geo.models.registry import architecture_of

    dev = torch.device("cuda")
    model = create_model(preset, pretrained=False).to(dev).eval()
    tile = size or architecture_of(model).settings(model.cfg)["input_size"]
    print(f"\n## GPU: {torch.cuda.get_device_name(0)}, {preset}, {tile}x{tile} tiles")
    print(f"{'mode':14s} {'batch':>5s} {'tiles/s':>9s} {'ms/batch':>9s} {'peak GiB':>9s}")
    modes = [("fp32", torch.float32, model), ("bf16-autocast", torch.bfloat16, model)]
    if compile_too:
        modes.append(("bf16+compile", torch.bfloat16, torch.compile(model)))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for label, dtype, m in modes:
        for b in batches:
            try:
                x, text1 = bench_inputs(model, tile, b, dev)
                text = {k: v.expand(b, -1) for k, v in text1.items()}
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                    cache = model.encode_text(text1)
                    for _ in range(3):
                        m(x, text, text_cache=cache)
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    n, t0 = 10, time.perf_counter()
                    for _ in range(n):
                        m(x, text, text_cache=cache)
                    torch.cuda.synchronize()
                    dt = (time.perf_counter() - t0) / n
                peak = torch.cuda.max_memory_allocated() / 2 ** 30
                print(f"{label:14s} {b:5d} {b / dt:9.1f} {dt * 1e3:9.1f} {peak:9.2f}")
            except torch.cuda.OutOfMemoryError:
                print(f"{label:14s} {b:5d}  out of memory")
            torch.cuda.empty_cache()
    del model
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+",
                    default=["btdnet-tiny", "btdnet-lite", "btdnet-b", "rsrefseg-tiny", "rsrefseg-b"])
    ap.add_argument("--size", type=int, default=None, help="tile side for every preset (default: each one's input size)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=["paper", "legacy"], default=["paper"],
                    help="BSC/MCI/Fg-Bg variants to time on the CPU (docs/model.md)")
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    ap.add_argument("--gpu-presets", nargs="+", default=["btdnet-b", "rsrefseg-b"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the GPU")
    ap.add_argument("--gpu-only", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if not args.gpu_only:
        cpu_section(args.presets, args.size, args.reps, args.threads, args.variants)
    if torch.cuda.is_available():
        for preset in args.gpu_presets:
            gpu_section(preset, args.size, args.batches, args.compile)
    else:
        print("\n(no CUDA: GPU section skipped)")


if __name__ == "__main__":
    main()
