"""Build everything a training run needs from a resolved config, and run it."""

from __future__ import annotations

import logging

from rrsis_geo.data import open_dataset
from rrsis_geo.data.transforms import build_transforms
from rrsis_geo.errors import DatasetError
from rrsis_geo.training.bundle import ModelBundle, build_bundle
from rrsis_geo.training.trainer import DistInfo, Trainer, init_distributed

log = logging.getLogger(__name__)


def _limit(ds, n: int):
    if n and n < len(ds):
        ds.records = ds.records[:n]
    return ds


def build_datasets(cfg: dict, bundle: ModelBundle):
    d, seed = cfg["data"], int(cfg["run"]["seed"])
    options, wanted, source = {}, 3, f"{d['format']} images have 3 (RGB)"
    if d["format"] == "custom":
        options = dict(d["custom"])
        options["seed"] = options.pop("split_seed")
        wanted = len(options["bands"])
        source = f"data.custom.bands names {wanted}"
    if len(bundle.mean) != wanted:
        from rrsis_geo.errors import ConfigError

        raise ConfigError(f"the model takes {len(bundle.mean)} bands (vision.in_chans) but {source}")
    size = d["input_size"]
    train_t = build_transforms(size, True, bundle.mean, bundle.std, d["occlusion_p"], d["occlusion_box"], d["occlusion_boxes"], seed,
                               antialias=d["antialias"])
    val_t = build_transforms(size, False, bundle.mean, bundle.std, antialias=d["antialias"])
    train = _limit(open_dataset(d["format"], d["root"], d["train_split"], train_t, d["on_error"], **options), d["limit_train"])
    val = None
    if d["val_split"]:
        val = _limit(open_dataset(d["format"], d["root"], d["val_split"], val_t, d["on_error"], **options), d["limit_val"])
    dropped = []
    if d["verify"]:
        dropped = train.drop_unreadable() + (val.drop_unreadable() if val is not None else [])
        for p in dropped:
            log.warning("dropped: %s", p.detail)
    if len(train) == 0:
        raise DatasetError(f"no training samples in {d['root']} (split {d['train_split']!r}); run `rrsis data check`")
    info = {
        "format": d["format"], "root": str(d["root"]),  # as the config gives it: no build machine folders in the checkpoint
        "train_split": d["train_split"], "train_samples": len(train),
        "val_split": d["val_split"], "val_samples": len(val) if val is not None else 0,
        "input_size": size, "gsd_m": getattr(train, "gsd_m", None), "dropped_unreadable": len(dropped),
        # every resolution the training samples have (custom data): gsd_m above is their lower median
        "gsd_m_values": train.gsd_values() if hasattr(train, "gsd_values") else None,
        # how the training pixels were made (custom data): the window side and the value gains
        "chip_px": getattr(train, "chip_px", None),
        "radiometry": train.radiometry() if hasattr(train, "radiometry") else None,
        # what the model learnt to find: the categories and the head nouns that named them
        "vocabulary": training_vocabulary(train),
        "index_problems": len(train.problems) + (len(val.problems) if val is not None else 0),
    }
    return train, val, info


def training_vocabulary(train) -> dict | None:
    """The vocabulary (rrsis_geo.referring.vocabulary) of a training set's records, or None when
    it has no categories."""
    from rrsis_geo.referring.vocabulary import from_training

    pairs = [(r.expression, r.category) for r in getattr(train, "records", []) if r.category]
    if not pairs:
        return None
    vocab = from_training(pairs)
    return vocab.as_dict(f"head nouns of {len(pairs)} training expressions") if vocab.categories else None


def run_training(cfg: dict, bundle: ModelBundle | None = None, hooks=(), dist: DistInfo | None = None) -> dict:
    dist = dist or init_distributed(cfg["run"]["device"])
    if bundle is None:
        m = cfg["model"]
        bundle = build_bundle(m["name"], m["overrides"], m["init"], seed=int(cfg["run"]["seed"]),
                              input_size=cfg["data"]["input_size"])
    train, val, info = build_datasets(cfg, bundle)
    trainer = Trainer(cfg, bundle, train, val, dist=dist, hooks=hooks, data_info=info)
    return trainer.fit()
