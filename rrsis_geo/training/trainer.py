"""The training loop: AdamW groups, poly-per-step schedule with warm-up, AMP, accumulation,
clipping, seeds and a deterministic mode, last/best checkpoints, exact resume, DDP.

Files in ``run.out_dir``::

    config.yaml               the resolved config
    last.safetensors          the model after the latest completed epoch (self-describing:
                              usable by ``rrsis segment --model``)
    best.safetensors          the model with the best validation oIoU so far
    last.state.safetensors    everything needed to resume exactly (model, optimizer, scheduler,
                              scaler, RNG, data position, history, config); no pickle
    train.csv / val.csv       scalars (also TensorBoard under tb/), curves.png

Exact resume: the data order depends only on (seed, epoch) (:mod:`rrsis_geo.training.sampler`)
and augmentation only on (seed, epoch, sample index), so restoring the step counter, the
optimizer/scheduler/scaler and the global RNG states continues the run as if uninterrupted.
Ctrl-C saves ``last.state`` at the last completed optimizer step; a killed run resumes from the
latest save (every epoch, or every ``run.save_every_iters`` steps).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader

from rrsis_geo.data.transforms import collate
from rrsis_geo.errors import Cancelled, CheckpointError, ConfigError
from rrsis_geo.training.bundle import ModelBundle, output_field
from rrsis_geo.training.config import diff_keys, dump_config, fingerprint, global_batch_size
from rrsis_geo.training.evaluate import autocast_context, run_evaluation
from rrsis_geo.training.logs import ScalarLog, plot_curves
from rrsis_geo.training.metrics import RefSegMetrics
from rrsis_geo.training.sampler import GlobalBatchSampler, category_weights
from rrsis_geo.training.state import atomic_write, capture_rng, load_state, model_state_from, optimizer_from_flat, restore_rng, save_state

log = logging.getLogger(__name__)

LAST, BEST, STATE = "last.safetensors", "best.safetensors", "last.state.safetensors"


# -- processes, devices, seeds --------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Join the process group started by ``torchrun`` (gloo on CPU, NCCL on GPU); a plain
    ``python``/``rrsis`` run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not tdist.is_initialized():
        use_cuda = device_pref != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local)
        tdist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local)


def select_device(pref: str, dist: DistInfo) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device is cuda but no CUDA device is available (use --set run.device=cpu)")
    if pref in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


# the packages whose releases can change what a training step computes
NUMERIC_PACKAGES = ("numpy", "torchvision", "timm", "transformers", "rasterio")


def compute_record(device: torch.device, world: int) -> dict:
    """What did the arithmetic: results on the CPU differ in the last bits between instruction sets
    and thread counts, so a rebuild is bit for bit only where these (and the packages) match."""
    from importlib import metadata

    packages = {}
    for name in NUMERIC_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    rec = {"device": device.type, "world": world, "torch": torch.__version__, "packages": packages}
    if device.type == "cuda":
        rec["gpu"] = torch.cuda.get_device_name(device)
    else:
        rec.update(cpu=platform.processor() or platform.machine(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                   threads=torch.get_num_threads())
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                rec["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    return rec


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def poly_lambda(total_steps: int, power: float, warmup_iters: int = 0, warmup_factor: float = 0.001):
    """LR multiplier at optimizer step ``step``: (1 - step/total)^power, times a linear warm-up
    from ``warmup_factor`` to 1 over the first ``warmup_iters`` steps."""
    total = max(int(total_steps), 1)

    def f(step: int) -> float:
        poly = (1.0 - min(step, total) / total) ** power
        if warmup_iters > 0 and step < warmup_iters:
            alpha = step / warmup_iters
            return poly * (warmup_factor * (1 - alpha) + alpha)
        return poly

    return f


def _seed_worker(worker_id: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def freeze_parameters(model: torch.nn.Module, prefixes: list[str]) -> None:
    """Stop gradients for every parameter whose name starts with one of ``prefixes``. A prefix that
    names nothing is a config error (a typo would train it). Call it before any DDP wrapping: DDP
    registers its reduction hooks for the parameters that require gradients when it is built."""
    named = list(model.named_parameters())
    for prefix in prefixes:
        hits = [p for name, p in named if name.startswith(str(prefix))]
        if not hits:
            roots = sorted({name.split(".")[0] + "." for name, _ in named})
            raise ConfigError(f"optim.freeze: no parameter name starts with {prefix!r}; top-level modules: {', '.join(roots)}")
        for p in hits:
            p.requires_grad_(False)


def input_metadata(data_info: dict) -> dict:
    """The checkpoint metadata that says what the training pixels were, from what the data
    reports (``build_datasets``' info): ``gsd_m``; ``gsd_m_range`` when every sample's resolution
    is known; ``chip_px``; ``radiometry``; ``vocabulary`` (the categories and nouns the training
    expressions used). Keys the data cannot tell are left out."""
    meta = {}
    if data_info.get("gsd_m"):
        meta["gsd_m"] = float(data_info["gsd_m"])
    gsds = [v["gsd_m"] for v in data_info.get("gsd_m_values") or []]
    if gsds and None not in gsds:
        meta["gsd_m_range"] = [float(min(gsds)), float(max(gsds))]
    for key in ("chip_px", "radiometry", "vocabulary"):
        if data_info.get(key):
            meta[key] = data_info[key]
    return meta


# -- the trainer ----------------------------------------------------------------------------


class Trainer:
    def __init__(self, cfg: dict, bundle: ModelBundle, train_ds, val_ds=None, dist: DistInfo | None = None,
                 hooks=(), data_info: dict | None = None):
        self.cfg, self.bundle, self.train_ds, self.val_ds = cfg, bundle, train_ds, val_ds
        self.dist = dist or DistInfo()
        self.hooks = list(hooks)
        self.data_info = data_info or {}
        run, o = cfg["run"], cfg["optim"]
        self.out_dir = Path(run["out_dir"])
        if self.dist.main:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"run.out_dir {self.out_dir} cannot be created: {exc.strerror}") from None
        seed_everything(int(run["seed"]), bool(run["deterministic"]))
        if run["threads"]:
            torch.set_num_threads(int(run["threads"]))
        self.device = select_device(run["device"], self.dist)
        self.compute = compute_record(self.device, self.dist.world)
        log.info("computing on %s", ", ".join(f"{k} {v}" for k, v in self.compute.items()))
        if o["amp"] == "fp16" and self.device.type != "cuda":
            raise ConfigError("optim.amp=fp16 needs CUDA; use bf16 on CPU")

        self.module = bundle.model.to(self.device)
        freeze_parameters(self.module, o["freeze"])
        self.model = self.module
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.module, device_ids=ids, find_unused_parameters=bool(run["find_unused_parameters"]))

        groups = bundle.param_groups(self.module, encoder_lr=o["encoder_lr"], head_lr=o["head_lr"], weight_decay=o["weight_decay"])
        self.optimizer = torch.optim.AdamW(groups, betas=tuple(o["betas"]))
        self.sample_weights = self._category_weights(float(cfg["data"].get("category_balance", 0.0)))
        self.batch_size = global_batch_size(o, self.dist.world)
        probe = GlobalBatchSampler(len(train_ds), self.batch_size, accumulation=o["accumulation"], world=self.dist.world)
        self.steps_per_epoch = probe.steps_per_epoch
        self.total_steps = self.steps_per_epoch * o["epochs"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, poly_lambda(self.total_steps, o["poly_power"], o["warmup_iters"], o["warmup_factor"]))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=o["amp"] == "fp16")

        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_oiou, self.history = -1.0, []
        self._last_plot = -1e9
        self._last_loss = None
        self._stop = False
        self._snapshot = None  # RNG at the last optimizer-step boundary (saved on Ctrl-C)
        self.logger = ScalarLog(self.out_dir, cfg["log"]["tensorboard"]) if self.dist.main else None
        self._maybe_resume()
        if self.dist.main:
            dump_config(cfg, self.out_dir / "config.yaml")

    # -- resume -------------------------------------------------------------------------------
    def _resume_path(self) -> Path | None:
        r = self.cfg["run"]["resume"]
        if r == "never":
            return None
        if r == "auto":
            p = self.out_dir / STATE
            return p if p.exists() else None
        p = Path(r)
        if p.is_dir():
            p = p / STATE
        if not p.exists():
            raise CheckpointError(f"run.resume: {p} does not exist")
        return p

    def _maybe_resume(self) -> None:
        path = self._resume_path()
        if path is None:
            return
        tensors, header = load_state(path)
        if header.get("fingerprint") != fingerprint(self.cfg):
            changed = diff_keys(header.get("config", {}), self.cfg)
            raise CheckpointError(
                f"{path} was written by a run with a different config ({', '.join(changed[:5]) or 'model/data'} differ): "
                "resume with the same config, or pass --set run.resume=never to start over")
        missing, unexpected = self.module.load_state_dict(model_state_from(tensors), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path} does not match the model (missing {len(missing)}, unexpected {len(unexpected)} keys)")
        self.optimizer.load_state_dict(optimizer_from_flat(tensors, header["optimizer"]))
        self.scheduler.load_state_dict(header["scheduler"])
        self.scaler.load_state_dict(header["scaler"])
        restore_rng(tensors, header["rng"])
        pos = header["position"]
        self.epoch, self.step_in_epoch, self.global_step = pos["epoch"], pos["step_in_epoch"], pos["global_step"]
        self.best_oiou, self.history = header["best_oIoU"], header["history"]
        if self.dist.main:
            log.info("resumed from %s at epoch %d step %d", path, self.epoch + 1, self.step_in_epoch)

    # -- saving -------------------------------------------------------------------------------
    def _save_state(self, rng=None) -> None:
        if not self.dist.main:
            return
        header = {
            "fingerprint": fingerprint(self.cfg),
            "config": self.cfg,
            "position": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step},
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_oIoU": self.best_oiou,
            "history": self.history,
        }
        save_state(self.out_dir / STATE, model_state=self.module.state_dict(), optimizer_state=self.optimizer.state_dict(),
                   rng=rng or capture_rng(), meta=header)

    def _save_model(self, name: str, metrics: dict | None) -> None:
        if not self.dist.main:
            return
        training = {
            "data": self.data_info,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "metrics": {k: v for k, v in (metrics or {}).items() if k != "per_category"},
            "metrics_per_category": (metrics or {}).get("per_category", {}),
            "config": self.cfg,
            "compute": self.compute,
        }
        meta = {"training": training, "metrics": training["metrics"], **input_metadata(self.data_info)}
        atomic_write(self.out_dir / name, lambda tmp: self.bundle.save(self.module, tmp, **meta))

    def _category_weights(self, power: float):
        """Per-sample draw weights for ``data.category_balance`` (None when it is 0)."""
        if power == 0:
            return None
        cats = [r.category for r in getattr(self.train_ds, "records", [])]
        if len(set(cats)) < 2 or len(cats) != len(self.train_ds):
            raise ConfigError("data.category_balance needs a training set with two or more categories "
                              "(custom data: set data.custom.category_column)")
        return category_weights(cats, power)

    # -- one epoch ----------------------------------------------------------------------------
    def _loader(self, epoch: int, start_step: int) -> DataLoader:
        o, d = self.cfg["optim"], self.cfg["data"]
        sampler = GlobalBatchSampler(len(self.train_ds), self.batch_size, accumulation=o["accumulation"], rank=self.dist.rank,
                                     world=self.dist.world, seed=self.cfg["run"]["seed"], epoch=epoch, start_step=start_step,
                                     weights=self.sample_weights)
        if hasattr(self.train_ds, "transforms") and hasattr(self.train_ds.transforms, "set_epoch"):
            self.train_ds.transforms.set_epoch(epoch)
        g = torch.Generator().manual_seed(int(self.cfg["run"]["seed"]) * 7919 + epoch)  # keeps the global RNG untouched
        return DataLoader(self.train_ds, batch_sampler=sampler, num_workers=d["num_workers"], collate_fn=collate,
                          generator=g, worker_init_fn=_seed_worker, pin_memory=self.device.type == "cuda")

    def _micro_step(self, batch: dict, sync: bool) -> float:
        o = self.cfg["optim"]
        images = batch["image"].to(self.device, non_blocking=True)
        masks = batch["mask"].to(self.device, non_blocking=True).long()
        text = {k: v.to(self.device) for k, v in self.bundle.text_processor(batch["expression"]).items()}
        ctx = self.model.no_sync() if (self.dist.enabled and not sync) else contextlib.nullcontext()
        with ctx:
            with autocast_context(self.device, o["amp"]):
                out = self.model(images, text, targets=masks)
            loss = output_field(out, "loss")
            if loss is None:
                raise RuntimeError("the model returned no loss in training mode with targets")
            self.scaler.scale(loss.float() / o["accumulation"]).backward()
        parts = output_field(out, "losses") or {}
        self._loss_parts.append({k: float(v.detach()) for k, v in parts.items() if torch.is_tensor(v) and v.numel() == 1})
        return float(loss.detach())

    def _optimizer_step(self) -> float | None:
        clip = self.cfg["optim"]["clip_grad_norm"]
        norm = None
        if clip and clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return norm

    @property
    def _comm_device(self) -> torch.device:
        """Where small collective tensors live: NCCL needs CUDA, gloo takes CPU."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _reduce_mean(self, value: float) -> float:
        if not self.dist.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        tdist.all_reduce(t)
        return float(t.item()) / self.dist.world

    def train_epoch(self) -> None:
        o, lg = self.cfg["optim"], self.cfg["log"]
        self.module.train()
        loader = self._loader(self.epoch, self.step_in_epoch)
        bar = None
        if self.dist.main and lg["progress"] and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{o['epochs']}",
                       unit="step", leave=False, dynamic_ncols=True)
        micro, losses, t0 = 0, [], time.perf_counter()
        self._loss_parts = []
        self._snapshot = capture_rng()
        for batch in loader:
            micro += 1
            losses.append(self._micro_step(batch, sync=micro % o["accumulation"] == 0))
            if micro % o["accumulation"]:
                continue
            norm = self._optimizer_step()
            self.step_in_epoch += 1
            self.global_step += 1
            self._snapshot = capture_rng()
            loss = sum(losses) / len(losses)
            parts = {f"loss_{k}": sum(p.get(k, 0.0) for p in self._loss_parts) / len(self._loss_parts)
                     for k in self._loss_parts[0]} if self._loss_parts else {}
            losses, self._loss_parts = [], []
            self._last_loss = loss
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if self.global_step % lg["every_iters"] == 0 or self.step_in_epoch == self.steps_per_epoch:
                loss = self._reduce_mean(loss)
                if self.logger is not None:
                    row = {"epoch": self.epoch, "loss": loss, **parts, "samples_per_s": self.batch_size / max((time.perf_counter() - t0), 1e-9)}
                    for g in self.optimizer.param_groups:
                        row[f"lr_{g.get('name', 'group')}"] = g["lr"]
                    if norm is not None:
                        row["grad_norm"] = norm
                    self.logger.write("train", self.global_step, row)
            t0 = time.perf_counter()
            every = self.cfg["run"]["save_every_iters"]
            if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                self._save_state(self._snapshot)
            for hook in self.hooks:
                hook(self)
            if self._stop_requested():
                raise KeyboardInterrupt
        if bar is not None:
            bar.close()

    # -- Ctrl-C ---------------------------------------------------------------------------------
    def _on_sigint(self, signum, frame) -> None:
        if self._stop:
            raise KeyboardInterrupt  # second Ctrl-C: stop now (the state saved so far stays)
        self._stop = True
        log.warning("Ctrl-C: saving at the end of this step (press again to stop at once)")

    def _stop_requested(self) -> bool:
        """True once Ctrl-C was pressed in any process (all processes stop at the same step)."""
        if not self.dist.enabled:
            return self._stop
        t = torch.tensor([1.0 if self._stop else 0.0], device=self._comm_device)
        tdist.all_reduce(t)
        return bool(t.item() > 0)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> dict | None:
        if self.val_ds is None or len(self.val_ds) == 0:
            return None
        e = self.cfg["eval"]
        metrics, _ = run_evaluation(self.module, self.bundle.text_processor, self.val_ds, device=self.device,
                                    batch_size=e["batch_size"], strict=e["strict"], empty=e["empty"],
                                    amp=self.cfg["optim"]["amp"], rank=self.dist.rank, world=self.dist.world)
        samples = metrics.samples
        if self.dist.enabled:
            gathered = [None] * self.dist.world
            tdist.all_gather_object(gathered, samples)
            samples = [s for part in gathered for s in part]
        merged = RefSegMetrics(strict=e["strict"], empty=e["empty"])
        merged.extend(sorted(samples, key=lambda s: s.sample_id))
        return merged.compute()

    # -- the run ------------------------------------------------------------------------------
    def fit(self) -> dict:
        import signal
        import threading

        epochs = self.cfg["optim"]["epochs"]
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while self.epoch < epochs:
                self.train_epoch()
                result = None
                if (self.epoch + 1) % self.cfg["eval"]["every_epochs"] == 0 or self.epoch + 1 == epochs:
                    result = self.validate()
                self._end_epoch(result)
        except KeyboardInterrupt:
            if self._snapshot is not None:
                self.optimizer.zero_grad(set_to_none=True)
                self._save_state(self._snapshot)
            raise Cancelled(f"interrupted at epoch {self.epoch + 1} step {self.step_in_epoch}; "
                            f"state saved to {self.out_dir / STATE}: run the same command again to resume") from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if self.logger is not None:
                self.logger.close()
        return {"best_oIoU": self.best_oiou, "history": self.history, "out_dir": str(self.out_dir)}

    def _end_epoch(self, result: dict | None) -> None:
        row = {"epoch": self.epoch + 1, "global_step": self.global_step}
        if result is not None:
            row.update({k: v for k, v in result.items() if k != "per_category"})
        self.history.append(row)
        improved = result is not None and result["oIoU"] > self.best_oiou
        if improved:
            self.best_oiou = result["oIoU"]
        self.epoch += 1
        self.step_in_epoch = 0
        if self.dist.main:
            last_loss = self._last_loss if self._last_loss is not None else float("nan")
            msg = f"epoch {self.epoch}/{self.cfg['optim']['epochs']}: loss {last_loss:.4f}"
            if result is not None:
                msg += f", val mIoU {result['mIoU']:.2f} oIoU {result['oIoU']:.2f}" + (" (best)" if improved else "")
            log.info(msg)
            if result is not None and self.logger is not None:
                self.logger.write("val", self.global_step, row)
            self._save_state()
            self._save_model(LAST, result)
            if improved:
                self._save_model(BEST, result)
            final = self.epoch == self.cfg["optim"]["epochs"]
            try:
                if final or time.monotonic() - self._last_plot > 60:  # drawing costs ~0.5 s: not every tiny epoch
                    plot_curves(self.out_dir)
                    self._last_plot = time.monotonic()
            except Exception as exc:  # a picture must never stop a run
                log.warning("could not draw curves.png: %s", exc)
        if self.dist.enabled:
            tdist.barrier()

