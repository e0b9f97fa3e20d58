"""BTDNet benchmark: parameters, FLOPs and latency per 512 tile for each preset.

    python benchmarks/bench_model.py                 # CPU: every preset
    python benchmarks/bench_model.py --presets btdnet-lite --reps 5 --threads 4
    python benchmarks/bench_model.py --variants paper legacy   # the paper's BSC/MCI/Fg-Bg vs the earlier ones
    python benchmarks/bench_model.py --gpu-only      # CUDA: btdnet-b fp32 vs bf16, batch 1/8/32

Prints figures; it is not a test. Latency covers ``predict`` on normalised tiles with the
expression encoded once beforehand (as the engine does); random weights (speed does not depend on
them). The GPU section runs only when CUDA is available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's rrsis_geo


LEGACY = {"bsc": {"variant": "legacy"}, "mci": {"variant": "legacy"}, "fgbg": {"variant": "legacy"}}


def cpu_section(presets, size, reps, threads, variants=("paper",)):
    from rrsis_geo.models import create_model
    from rrsis_geo.models.inference import BTDNetPredictor, info_from_model
    from rrsis_geo.models.summary import count_parameters, estimate_flops

    torch.set_num_threads(threads)
    print(f"\n## CPU ({threads} threads, torch {torch.__version__}), one {size}x{size} tile, batch 1")
    print(f"{'preset':12s} {'variant':8s} {'params (M)':>10s} {'infer (M)':>10s} {'GFLOPs':>8s} {'median s/tile':>14s} {'min':>7s}")
    for name, variant in [(p, v) for p in presets for v in variants]:
        model = create_model(name, pretrained=False, **(LEGACY if variant == "legacy" else {}))
        params = count_parameters(model)
        infer = params["total"] - params["dmols"]
        gflops = estimate_flops(model, size) / 1e9
        pred = BTDNetPredictor(model, info_from_model(model, name, "bench"), device="cpu")
        enc = pred.encode_expression("the white storage tank on the left of the road")
        tiles = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        pred.predict(tiles, enc)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            pred.predict(tiles, enc)
            times.append(time.perf_counter() - t0)
        print(f"{name:12s} {variant:8s} {params['total'] / 1e6:10.1f} {infer / 1e6:10.1f} {gflops:8.1f} "
              f"{statistics.median(times):14.2f} {min(times):7.2f}")


def gpu_section(preset, size, batches, compile_too):
    from rrsis_geo.models import TextProcessor, create_model

    dev = torch.device("cuda")
    print(f"\n## GPU: {torch.cuda.get_device_name(0)}, {preset}, {size}x{size} tiles")
    print(f"{'mode':14s} {'batch':>5s} {'tiles/s':>9s} {'ms/batch':>9s} {'peak GiB':>9s}")
    model = create_model(preset, pretrained=False).to(dev).eval()
    tp = TextProcessor.from_config(model.cfg)
    text1 = {k: v.to(dev) for k, v in tp(["the white storage tank on the left of the road"]).items()}
    modes = [("fp32", torch.float32, model), ("bf16-autocast", torch.bfloat16, model)]
    if compile_too:
        modes.append(("bf16+compile", torch.bfloat16, torch.compile(model)))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for label, dtype, m in modes:
        for b in batches:
            x = torch.randn(b, 3, size, size, device=dev)
            text = {k: v.expand(b, -1) for k, v in text1.items()}
            try:
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["btdnet-tiny", "btdnet-lite", "btdnet-b"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=["paper", "legacy"], default=["paper"],
                    help="BSC/MCI/Fg-Bg variants to time on the CPU (docs/model.md)")
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    ap.add_argument("--gpu-preset", default="btdnet-b")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the GPU")
    ap.add_argument("--gpu-only", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if not args.gpu_only:
        cpu_section(args.presets, args.size, args.reps, args.threads, args.variants)
    if torch.cuda.is_available():
        gpu_section(args.gpu_preset, args.size, args.batches, args.compile)
    else:
        print("\n(no CUDA: GPU section skipped)")


if __name__ == "__main__":
    main()
