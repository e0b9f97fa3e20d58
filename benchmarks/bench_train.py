"""Training throughput (samples/s) of BTDNet presets: forward + loss + backward + AdamW step.

    python benchmarks/bench_train.py                                   # CPU: btdnet-tiny, btdnet-lite
    python benchmarks/bench_train.py --presets btdnet-lite --size 512 --batch 2 --threads 4
    python benchmarks/bench_train.py --gpu                             # CUDA: btdnet-b 512, fp32 vs bf16
    python benchmarks/bench_train.py --config configs/demo_lite.yaml  # a training config's own model, data and steps
    python benchmarks/bench_train.py --config configs/demo_lite.yaml --workers 0 1  # + loader worker counts side by side

Random weights and random images (speed does not depend on them), real expressions through the
real TextProcessor, the trainer's parameter groups and optimizer. Steps after ``--warmup`` are
timed; peak GPU memory is reported on CUDA. Prints figures; it is not a test.

``--config`` measures what a training config's run will cost: the seconds to decode and augment one
training sample as the trainer's data loader does (the part a GPU does not speed up, spread over
``data.num_workers`` processes), the FLOPs of one training step (forward + backward at the config's
batch and input size, ``torch.utils.flop_counter``: matmuls and convolutions), and the config's
number of steps; then it times ``--steps`` training steps of the config's model (its initial
weights, the trainer's freeze, parameter groups, clipping and ``optim.amp``) on CUDA when there is
one, else on the CPU. From them it prints the run's total FLOPs, the floor the data loading puts
under its wall time on any device, and an estimate of the training steps' wall time: on a GPU the
loader's workers decode while the GPU computes (the slower of the two sets the pace); on the CPU
they share the cores (the two add up). On the CPU the estimate can be checked against a real run's
``train.csv``. ``--workers 0 1`` also times real steps fed by a DataLoader with each worker count,
interleaved in rounds, and prints their ratio (on 2 CPU cores a worker process competes with the
model's threads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's rrsis_geo

EXPRESSIONS = ["the white storage tank on the left", "a long bridge across the river", "the airplane parked near the top",
               "the baseball field in the middle", "two vehicles on the road", "the ship at the bottom right",
               "the windmill next to the field", "the round building in the centre"]


def step_times(model, opt, images, masks, text: dict, device: torch.device, amp: str, steps: int, warmup: int,
               clip: float = 0.0) -> list[float]:
    """Seconds of each of ``steps`` training steps (forward with loss, backward, optional gradient
    clipping, AdamW) after ``warmup`` untimed ones; the batch is already on ``device``."""
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(model, opt, images, masks, text, device, amp, clip)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def train_step(model, opt, images, masks, text: dict, device: torch.device, amp: str, clip: float) -> None:
    """One training step as the trainer takes it: forward with loss, backward, clipping, AdamW."""
    from rrsis_geo.training.evaluate import autocast_context

    with autocast_context(device, amp):
        out = model(images, text, targets=masks)
    out.loss.float().backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_step_times(model, opt, train, text_processor, batch: int, workers: int, steps: int, warmup: int,
                      device: torch.device, amp: str, clip: float) -> list[float]:
    """Seconds per training step with the batches coming from a DataLoader with ``workers`` processes
    (0: decoded in this process), as in the trainer: the wait for the batch, its transfer, the text
    processing and the step. The first ``warmup`` steps (the workers' start) are not timed."""
    from torch.utils.data import DataLoader

    from rrsis_geo.data.transforms import collate

    g = torch.Generator().manual_seed(0)
    loader = DataLoader(train, batch_size=batch, shuffle=True, generator=g, drop_last=True, num_workers=workers,
                        collate_fn=collate, pin_memory=device.type == "cuda")
    times, it = [], iter(loader)
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        b = next(it)
        images, masks = b["image"].to(device, non_blocking=True), b["mask"].to(device, non_blocking=True).long()
        text = {k: v.to(device) for k, v in text_processor(b["expression"]).items()}
        train_step(model, opt, images, masks, text, device, amp, clip)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    del it  # shuts the workers down
    return times


def bench(preset: str, size: int, batch: int, steps: int, warmup: int, device: torch.device, amp: str) -> dict:
    from rrsis_geo.models import TextProcessor, create_model, param_groups

    model = create_model(preset, pretrained=False, input_size=size).to(device).train()
    text_proc = TextProcessor.from_config(model.cfg)
    opt = torch.optim.AdamW(param_groups(model, encoder_lr=1e-5, head_lr=1e-4, weight_decay=0.01))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=g).to(device)
    masks = (torch.rand(batch, size, size, generator=g) > 0.8).long().to(device)
    text = {k: v.to(device) for k, v in text_proc([EXPRESSIONS[i % len(EXPRESSIONS)] for i in range(batch)]).items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    med = statistics.median(step_times(model, opt, images, masks, text, device, amp, steps, warmup))
    res = {"preset": preset, "size": size, "batch": batch, "amp": amp, "s_per_step": med, "samples_per_s": batch / med}
    if device.type == "cuda":
        res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return res


def bench_config(path: str, sets: list[str], samples: int, n_steps: int, workers_list: list[int] | None = None,
                 rounds: int = 2) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from rrsis_geo.data.transforms import collate
    from rrsis_geo.training.bundle import build_bundle
    from rrsis_geo.training.config import load_config
    from rrsis_geo.training.run import build_datasets
    from rrsis_geo.training.trainer import freeze_parameters

    cfg = load_config(path, sets)
    m, d, o = cfg["model"], cfg["data"], cfg["optim"]
    bundle = build_bundle(m["name"], m["overrides"], m["init"], seed=0, input_size=d["input_size"])  # as run_training
    train, _, _ = build_datasets(cfg, bundle)
    batch = o["batch_size"]  # the global batch of one step
    picks = torch.linspace(0, len(train) - 1, max(samples, batch) + 2).long().tolist()  # the timed step needs a whole batch
    times = []
    for n, i in enumerate(picks):
        t0 = time.perf_counter()
        train[i]
        if n >= 2:  # the first two open the rasters' caches
            times.append(time.perf_counter() - t0)
    per_sample = statistics.mean(times)
    workers = max(1, d["num_workers"])
    overlap = d["num_workers"] > 0  # with no worker process the batches are decoded between the steps
    steps = o["epochs"] * (len(train) // batch)

    # one whole step's batch (the accumulation's micro-batches add up to it), the trainer's freeze,
    # parameter groups, clipping and optim.amp, on CUDA when there is one
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = bundle.model.to(device).train()
    if o["freeze"]:
        freeze_parameters(model, o["freeze"])
    opt = torch.optim.AdamW(bundle.param_groups(model, encoder_lr=o["encoder_lr"], head_lr=o["head_lr"],
                                                weight_decay=o["weight_decay"]))
    b = collate([train[i] for i in picks[:batch]])
    images, masks = b["image"].to(device), b["mask"].to(device).long()
    text = {k: v.to(device) for k, v in bundle.text_processor(b["expression"]).items()}
    run = dict(device=device, amp=o["amp"], clip=o["clip_grad_norm"])
    with FlopCounterMode(display=False) as fc:  # the counted step is also the warm-up
        step_times(model, opt, images, masks, text, steps=0, warmup=1, **run)
    flops = fc.get_total_flops()
    step = statistics.median(step_times(model, opt, images, masks, text, steps=n_steps, warmup=0, **run))
    data_step = batch * per_sample / workers
    print(f"## {path}: {len(train)} training samples, batch {batch}, {o['epochs']} epoch(s): {steps} steps, "
          f"{d['input_size']} px, {d['num_workers']} loader worker(s)")
    print(f"data: {per_sample * 1000:.1f} ms per sample (mean of {len(times)}, one process; "
          f"median {statistics.median(times) * 1000:.1f}), {data_step:.3f} s per step "
          f"{f'over {workers} worker(s)' if overlap else 'in the training process'}: "
          f"at least {steps * data_step / 60:.1f} min for the run on any device")
    print(f"compute: {flops / 1e9:.1f} GFLOPs per step (forward + backward), {steps * flops / 1e12:.1f} TFLOPs for the run")
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"step on {where}: {step:.3f} s (median of {n_steps}, forward + backward + AdamW, batch in memory)")
    # on a GPU the loader's workers decode the next batches while it computes; on the CPU they take its cores
    per_step = max(step, data_step) if device.type == "cuda" and overlap else step + data_step
    print(f"estimate: {steps * per_step / 60:.1f} min of training steps (validation passes not included)")
    if workers_list:
        compare_workers(model, opt, train, bundle.text_processor, batch, workers_list, n_steps, rounds, run)


def compare_workers(model, opt, train, text_processor, batch: int, workers_list: list[int], n_steps: int, rounds: int,
                    run: dict) -> None:
    """Real loader-fed steps for each worker count, side by side: ``rounds`` rounds, each timing
    ``n_steps`` steps per worker count in turn, so a drift in the host's speed hits them all alike."""
    times = {w: [] for w in workers_list}
    for _ in range(rounds):
        for w in workers_list:
            times[w] += loader_step_times(model, opt, train, text_processor, batch, w, n_steps, warmup=2, **run)
    base = statistics.median(times[workers_list[0]])
    print(f"loader-fed steps ({rounds} rounds of {n_steps} per worker count, medians):")
    for w in workers_list:
        med = statistics.median(times[w])
        ratio = f", {med / base:.2f}x the time of {workers_list[0]} worker(s)" if w != workers_list[0] else ""
        print(f"  {w} worker(s): {med:.3f} s per step, {batch / med:.2f} samples/s{ratio}")


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
    ap.add_argument("--config", help="a training config: its data loading cost, FLOPs per step and steps")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="config override (with --config)")
    ap.add_argument("--samples", type=int, default=40, help="training samples to decode, at least one batch (with --config)")
    ap.add_argument("--workers", type=int, nargs="+", metavar="N",
                    help="with --config: also time real loader-fed steps with each of these loader worker counts, side by side")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the --workers comparison")
    a = ap.parse_args(argv)
    if (a.workers or a.sets) and not a.config:
        ap.error("--workers and --set need --config")
    if a.workers and min(a.workers) < 0:
        ap.error("--workers: worker counts are 0 or more")
    torch.set_num_threads(a.threads)
    if a.config:
        return bench_config(a.config, a.sets, a.samples, a.steps, a.workers, a.rounds)
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
