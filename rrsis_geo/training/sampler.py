"""Batch order for training and evaluation. Samplers decide indices only; they never open files.

Training order depends on (seed, epoch) only: each epoch is one permutation of the dataset cut
into *global* batches of ``batch_size`` samples (the last incomplete one is dropped). A global
batch is shared out to ``world`` processes (contiguous slices, by rank) and each share is cut
into ``accumulation`` micro-batches. So 1 process, N processes, or N accumulation steps all see
the same samples per optimizer step, and a run can resume at any step of an epoch.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from rrsis_geo.errors import ConfigError


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int, *, accumulation: int = 1, rank: int = 0, world: int = 1,
                 seed: int = 0, epoch: int = 0, start_step: int = 0, shuffle: bool = True):
        if batch_size % (world * accumulation):
            raise ConfigError(f"optim.batch_size ({batch_size}) must be a multiple of processes x accumulation ({world} x {accumulation})")
        if n < batch_size:
            raise ConfigError(f"the training set has {n} samples, fewer than one batch (optim.batch_size={batch_size})")
        self.n, self.batch_size, self.acc, self.rank, self.world = n, batch_size, accumulation, rank, world
        self.seed, self.epoch, self.start_step, self.shuffle = seed, epoch, start_step, shuffle
        self.micro = batch_size // (world * accumulation)

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.acc

    def __iter__(self):
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else list(range(self.n))
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
