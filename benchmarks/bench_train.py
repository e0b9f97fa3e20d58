"""Training throughput (samples/s) of BTDNet presets: forward + loss + backward + AdamW step.

    python benchmarks/bench_train.py                                   # CPU: btdnet-tiny, btdnet-lite
    python benchmarks/bench_train.py --presets btdnet-lite --size 512 --batch 2 --threads 4
    python benchmarks/bench_train.py --gpu                             # CUDA: btdnet-b 512, fp32 vs bf16

Random weights and random images (speed does not depend on them), real expressions through the
real TextProcessor, the trainer's parameter groups and optimizer. Steps after ``--warmup`` are
timed; peak GPU memory is reported on CUDA. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's rrsis_geo

EXPRESSIONS = ["the white storage tank on the left", "a long bridge across the river", "the airplane parked near the top",
               "the baseball field in the middle", "two vehicles on the road", "the ship at the bottom right",
               "the windmill next to the field", "the round building in the centre"]


def bench(preset: str, size: int, batch: int, steps: int, warmup: int, device: torch.device, amp: str) -> dict:
    from rrsis_geo.models import TextProcessor, create_model, param_groups

    model = create_model(preset, pretrained=False, input_size=size).to(device).train()
    text_proc = TextProcessor.from_config(model.cfg)
    opt = torch.optim.AdamW(param_groups(model, encoder_lr=1e-5, head_lr=1e-4, weight_decay=0.01))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=g).to(device)
    masks = (torch.rand(batch, size, size, generator=g) > 0.8).long().to(device)
    text = {k: v.to(device) for k, v in text_proc([EXPRESSIONS[i % len(EXPRESSIONS)] for i in range(batch)]).items()}
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ctx:
            out = model(images, text, targets=masks)
        out.loss.float().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    res = {"preset": preset, "size": size, "batch": batch, "amp": amp, "s_per_step": med, "samples_per_s": batch / med}
    if device.type == "cuda":
        res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["btdnet-tiny", "btdnet-lite"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--amp", choices=["off", "bf16"], default="off")
    ap.add_argument("--gpu", action="store_true", help="btdnet-b at 512 on CUDA, fp32 and bf16, batch 8")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.gpu:
        if not torch.cuda.is_available():
            sys.exit("--gpu: no CUDA device")
        dev = torch.device("cuda")
        print(f"## {torch.cuda.get_device_name()} (torch {torch.__version__}), btdnet-b, 512 px, batch 8")
        runs = [("btdnet-b", 512, 8, amp) for amp in ("off", "bf16")]
    else:
        dev = torch.device("cpu")
        print(f"## CPU, {a.threads} threads (torch {torch.__version__}), {a.size} px, batch {a.batch}, amp {a.amp}")
        runs = [(p, a.size, a.batch, a.amp) for p in a.presets]
    print(f"{'preset':12s} {'size':>5s} {'batch':>5s} {'amp':>5s} {'s/step':>8s} {'samples/s':>10s} {'peak GiB':>9s}")
    for preset, size, batch, amp in runs:
        r = bench(preset, size, batch, a.steps, a.warmup, dev, amp)
        mem = f"{r['peak_mem_gib']:9.2f}" if "peak_mem_gib" in r else f"{'-':>9s}"
        print(f"{preset:12s} {size:5d} {batch:5d} {amp:>5s} {r['s_per_step']:8.3f} {r['samples_per_s']:10.2f} {mem}")


if __name__ == "__main__":
    main()
