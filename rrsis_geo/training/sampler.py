"""Batch order for training and evaluation. Samplers decide indices only; they never open files.

Training order depends on (seed, epoch) only: each epoch is one permutation of the dataset cut
into *global* batches of ``batch_size`` samples (the last incomplete one is dropped). A global
batch is shared out to ``world`` processes (contiguous slices, by rank) and each share is cut
into ``accumulation`` micro-batches. So 1 process, N processes, or N accumulation steps all see
the same samples per optimizer step, and a run can resume at any step of an epoch.

With per-sample ``weights`` (:func:`category_weights`, ``data.category_balance``) an epoch is
instead ``n`` draws with replacement in proportion to the weights, from the same (seed, epoch)
generator: rare categories come round more often, and the order is still a function of
(seed, epoch) only.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils.data import Sampler

from rrsis_geo.errors import ConfigError


def epoch_permutation(n: int, seed: int, epoch: int, weights: torch.Tensor | None = None) -> list[int]:
    """The epoch's order: a permutation, or ``n`` weighted draws with replacement."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    if weights is None:
        return torch.randperm(n, generator=g).tolist()
    return torch.multinomial(weights, n, replacement=True, generator=g).tolist()


def category_weights(categories: list[str], power: float) -> torch.Tensor:
    """Per-sample weight ``count(category) ** -power``: 0 draws samples uniformly, 0.5 is
    square-root balancing, 1 draws every category equally often."""
    if power < 0:
        raise ConfigError(f"data.category_balance={power}: use a value >= 0 (0 = off, 1 = every category equally often)")
    counts = Counter(categories)
    return torch.tensor([counts[c] ** -float(power) for c in categories], dtype=torch.float64)


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int, *, accumulation: int = 1, rank: int = 0, world: int = 1,
                 seed: int = 0, epoch: int = 0, start_step: int = 0, shuffle: bool = True,
                 weights: torch.Tensor | None = None):
        if batch_size % (world * accumulation):
            raise ConfigError(f"optim.batch_size ({batch_size}) must be a multiple of processes x accumulation ({world} x {accumulation})")
        if n < batch_size:
            raise ConfigError(f"the training set has {n} samples, fewer than one batch (optim.batch_size={batch_size})")
        self.n, self.batch_size, self.acc, self.rank, self.world = n, batch_size, accumulation, rank, world
        self.seed, self.epoch, self.start_step, self.shuffle = seed, epoch, start_step, shuffle
        self.micro = batch_size // (world * accumulation)
        if weights is not None and len(weights) != n:
            raise ValueError(f"{len(weights)} weights for {n} samples")
        self.weights = weights

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.acc

    def __iter__(self):
        order = epoch_permutation(self.n, self.seed, self.epoch, self.weights) if self.shuffle else list(range(self.n))
        share = self.batch_size // self.world
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            mine = batch[self.rank * share : (self.rank + 1) * share]
            for k in range(self.acc):
                yield mine[k * self.micro : (k + 1) * self.micro]


def shard_batches(n: int, batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Evaluation: indices rank, rank + world, ... in batches (every sample exactly once overall)."""
    mine = list(range(rank, n, world))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
