"""Training / evaluation transforms for dict samples. No flips: they break "left"/"right".

``Resize`` brings ``image`` (bilinear, no aspect keep; with ``antialias`` a downscale averages
every source pixel it covers, as PIL's resize in the parents' loaders does, e.g. RRSIS-D's
800 -> 512) and ``mask`` (nearest) to the model size, keeping the native mask as ``mask_native``
when asked (for native-resolution evaluation).
``Occlude`` paints black boxes on a fixed share of samples (RMSIN's augmentation); its
randomness comes from (seed, epoch, sample index) only, so it is identical across worker counts,
processes and resumed runs. ``Normalize`` applies mean/std to [0, 1] pixels.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from rrsis_geo.predictor import IMAGENET_MEAN, IMAGENET_STD


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def set_epoch(self, epoch: int) -> None:
        for t in self.transforms:
            if hasattr(t, "set_epoch"):
                t.set_epoch(epoch)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample


class Resize:
    def __init__(self, size: int, keep_native: bool = False, antialias: bool = False):
        self.size = int(size)
        self.keep_native = keep_native
        self.antialias = bool(antialias)

    def __call__(self, sample: dict) -> dict:
        sample = dict(sample)
        image, mask = sample["image"], sample["mask"]
        if self.keep_native:
            sample["mask_native"] = mask
        if tuple(image.shape[-2:]) != (self.size, self.size):
            sample["image"] = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                                            antialias=self.antialias)[0]
            sample["mask"] = F.interpolate(mask[None, None].float(), size=(self.size, self.size), mode="nearest")[0, 0].to(torch.uint8)
        return sample


def _sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))


class Occlude:
    """With probability ``p`` per sample, paint ``n_boxes`` black ``box`` x ``box`` squares."""

    def __init__(self, p: float = 0.2, box: int = 32, n_boxes: int = 1, seed: int = 0):
        self.p, self.box, self.n_boxes, self.seed = float(p), int(box), int(n_boxes), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, sample: dict) -> dict:
        if self.p <= 0:
            return sample
        g = _sample_generator(self.seed, self.epoch, int(sample["index"]))
        if torch.rand((), generator=g).item() >= self.p:
            return sample
        sample = dict(sample)
        image = sample["image"].clone()
        h, w = image.shape[-2:]
        b = min(self.box, h, w)
        for _ in range(self.n_boxes):
            y = int(torch.randint(0, h - b + 1, (), generator=g))
            x = int(torch.randint(0, w - b + 1, (), generator=g))
            image[:, y : y + b, x : x + b] = 0
        sample["image"] = image
        return sample


class Normalize:
    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, sample: dict) -> dict:
        sample = dict(sample)
        sample["image"] = (sample["image"] - self.mean) / self.std
        return sample


def build_transforms(size: int, train: bool, mean=IMAGENET_MEAN, std=IMAGENET_STD, occlusion_p: float = 0.0,
                     occlusion_box: int = 32, occlusion_boxes: int = 1, seed: int = 0, keep_native: bool = False,
                     antialias: bool = False) -> Compose:
    ts = [Resize(size, keep_native=keep_native, antialias=antialias)]
    if train and occlusion_p > 0:
        ts.append(Occlude(occlusion_p, occlusion_box, occlusion_boxes, seed))
    ts.append(Normalize(mean, std))
    return Compose(ts)


def collate(samples: list[dict]) -> dict:
    """Stack equal-shape tensors (image, mask); everything else becomes a list."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in ("image", "mask") and all(torch.is_tensor(v) for v in values):
            out[key] = torch.stack(values)
        elif key == "index":
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
