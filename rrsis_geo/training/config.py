"""Training configuration: a YAML file over documented defaults, plus ``--set key=value``.

Every key has a default here (``DEFAULTS``); a YAML file or ``--set`` may only change known
keys (an unknown one is refused with the closest valid key), and values are checked against
the default's type. ``--set`` values are parsed as YAML scalars (``--set optim.head_lr=2e-4``,
``--set data.custom.bands=[1,2,3]``). The resolved config is saved with the run.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from rrsis_geo.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "run": {
        "out_dir": "runs/btdnet",
        "seed": 0,
        "deterministic": False,
        "device": "auto",  # auto | cpu | cuda
        # CPU compute threads (0: PyTorch's default, one per core, MKL choosing per call). Any other
        # value also fixes MKL's threads, which changes the bits even at the core count
        # (training.compute in the checkpoint records what computed it)
        "threads": 0,
        "resume": "auto",  # auto: resume from out_dir/last.state.safetensors if present | never | a path
        "save_every_iters": 0,  # also save `last` every N optimizer steps (0: end of epoch only)
        "find_unused_parameters": False,  # DDP
    },
    "model": {
        "name": "btdnet-b",  # a preset of rrsis_geo.models
        "init": None,  # a starting .safetensors checkpoint (e.g. from `rrsis init-weights`)
        "overrides": {},  # architecture overrides passed to create_model
    },
    "data": {
        "format": "rrsisd",  # rrsisd | refsegrs | custom
        "root": None,
        "train_split": "train",
        "val_split": "val",
        "input_size": 512,
        # antialiased bilinear downscaling to input_size (what PIL's resize in the parents' loaders
        # does; RRSIS-D's 800 px images); false: plain bilinear, as runs before this key
        "antialias": False,
        "occlusion_p": 0.0,  # RMSIN's occlusion augmentation: share of samples with black boxes
        "occlusion_box": 32,
        "occlusion_boxes": 1,
        "num_workers": 2,
        "on_error": "raise",  # raise | skip (corrupt images/masks)
        "verify": False,  # decode every sample before training and drop unreadable ones
        "limit_train": 0,  # use only the first N training samples (0: all)
        "limit_val": 0,
        # 0: each epoch is one pass over the training samples; p > 0: n draws with replacement, a
        # sample weighted count(its category) ** -p (0.5 square-root balancing, 1 equal categories)
        "category_balance": 0.0,
        "custom": {
            "expression_column": "expression",
            "category_column": None,  # per-category metrics in val.csv / checkpoints
            "split_column": None,  # a column with train/val/test per row: replaces the hashed blocks
            "raster_column": None,  # a column naming each row's raster (relative to root): whole-raster frames, no chips
            "chip_size": 512,
            "block_chips": 4,
            "val_fraction": 0.2,
            "test_fraction": 0.0,
            "negative_fraction": 0.0,
            "bands": [1, 2, 3],
            "value_scale": None,
            "split_seed": 0,  # which blocks go to validation (independent of run.seed)
        },
    },
    "optim": {
        "epochs": 50,
        "batch_size": 8,  # global: summed over processes and accumulation steps (see batch_size_scope)
        # "global": batch_size is the whole step's batch; "per_process": it is each process's share,
        # so the global batch is batch_size x processes (the parents' code: 8 per GPU x 4 GPUs = 32)
        "batch_size_scope": "global",
        "accumulation": 1,
        "encoder_lr": 1.0e-5,
        "head_lr": 1.0e-4,
        "weight_decay": 0.01,
        "betas": [0.9, 0.999],
        "poly_power": 0.9,
        "warmup_iters": 0,
        "warmup_factor": 0.001,
        "clip_grad_norm": 0.0,  # 0: off
        "amp": "off",  # off | bf16 | fp16 (fp16 on CUDA only)
        # parameter-name prefixes kept at their starting values, e.g. ["text."]: the pretrained text
        # encoder stays bit-identical, so `rrsis model export` can store the model without it
        "freeze": [],
    },
    "eval": {
        "every_epochs": 1,
        "strict": False,
        "empty": "zero",  # zero | one | exclude
        "batch_size": 8,
    },
    "log": {
        "every_iters": 10,
        "tensorboard": True,
        "progress": True,
    },
}

CHOICES = {
    "run.device": ("auto", "cpu", "cuda"),
    "data.format": ("rrsisd", "refsegrs", "custom"),
    "data.on_error": ("raise", "skip"),
    "optim.amp": ("off", "bf16", "fp16"),
    "optim.batch_size_scope": ("global", "per_process"),
    "eval.empty": ("zero", "one", "exclude"),
}
FREE_FORM = {"model.overrides"}  # dicts whose keys are checked by their owner (create_model)

# Keys that may change between an interrupted run and its resumption.
RESUME_MAY_CHANGE = ("run.out_dir", "run.resume", "run.device", "run.threads", "data.num_workers", "data.root", "log.", "eval.batch_size")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in FREE_FORM:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _closest(key: str) -> str:
    keys = list(flatten(DEFAULTS))
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
    if not match:
        return ""
    return f" (did you mean {match[0]!r}?)"


def _check_value(key: str, value: Any, default: Any) -> Any:
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key} must be one of {', '.join(CHOICES[key])}, not {value!r}")
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, not {value!r}")
    elif isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, not {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            value = str(value)
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, not {value!r}")
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, not {value!r}")
    return value


def set_key(cfg: dict, key: str, value: Any) -> None:
    """Set a dotted key, refusing unknown keys (with the closest valid one) and wrong types."""
    parts = key.split(".")
    node, default = cfg, DEFAULTS
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        if here in FREE_FORM and i < len(parts) - 1:
            node = node.setdefault(part, {})
            for sub in parts[i + 1 : -1]:
                node = node.setdefault(sub, {})
            node[parts[-1]] = value
            return
        if not isinstance(default, dict) or part not in default:
            raise ConfigError(f"unknown config key {key!r}{_closest(key)}")
        if i == len(parts) - 1:
            if isinstance(default[part], dict) and here not in FREE_FORM:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} is a section; set one of its keys, e.g. {key}.{next(iter(default[part]))}")
                for k, v in value.items():
                    set_key(cfg, f"{key}.{k}", v)
                return
            node[part] = _check_value(key, value, default[part])
            return
        node, default = node[part], default[part]


MAX_CONFIG_BYTES = 1 << 20


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``): a config never needs them, and a few
    nested aliases expand to more nodes than memory holds. Without aliases a document has at
    most as many nodes as it has characters."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a config",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


def safe_load(text: str):
    """Parse YAML ``text`` with :class:`BoundedLoader`."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 (a SafeLoader subclass)


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, _, raw = text.partition("=")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path=None, overrides=()) -> dict:
    """Defaults, then the YAML file, then ``key=value`` overrides; returns a validated dict."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB; is it a config?")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text (a binary file?)") from None
        try:
            data = safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must be a mapping of sections (run, model, data, optim, eval, log)")
        for key, value in flatten(data).items():
            set_key(cfg, key, value)
    for item in overrides:
        key, value = (item if isinstance(item, tuple) else parse_override(item))
        set_key(cfg, key, value)
    validate(cfg)
    return cfg


def global_batch_size(optim: dict, world: int) -> int:
    """Samples per optimizer step over all ``world`` processes: ``optim.batch_size``, or that many
    per process with ``optim.batch_size_scope: per_process``."""
    return optim["batch_size"] * (world if optim["batch_size_scope"] == "per_process" else 1)


def validate(cfg: dict) -> None:
    o = cfg["optim"]
    if o["epochs"] < 1:
        raise ConfigError("optim.epochs must be >= 1")
    if o["batch_size"] < 1 or o["accumulation"] < 1:
        raise ConfigError("optim.batch_size and optim.accumulation must be >= 1")
    if o["batch_size"] % o["accumulation"]:
        raise ConfigError(f"optim.batch_size ({o['batch_size']}) must be a multiple of optim.accumulation ({o['accumulation']})")
    if cfg["data"]["root"] is None:
        raise ConfigError("data.root is not set: put it in the config or pass --set data.root=PATH")
    if cfg["run"]["threads"] < 0:
        raise ConfigError("run.threads must be >= 0 (0: one per core)")
    if cfg["data"]["input_size"] < 8:
        raise ConfigError("data.input_size must be >= 8")


def dump_config(cfg: dict, path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


# Keys added after runs were already being saved, with the value that does what runs did before
# the key existed: at that value they are left out of the fingerprint, so those runs still resume.
ADDED_LATER = {"data.category_balance": 0.0, "data.antialias": False, "optim.batch_size_scope": "global"}


def _resume_keys(cfg: dict) -> dict:
    return {k: v for k, v in flatten(cfg).items()
            if not k.startswith(RESUME_MAY_CHANGE) and not (k in ADDED_LATER and v == ADDED_LATER[k])}


def fingerprint(cfg: dict) -> str:
    """Hash of what a resumed run must share with the original."""
    return hashlib.sha256(json.dumps(_resume_keys(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


def diff_keys(a: dict, b: dict) -> list[str]:
    fa, fb = _resume_keys(a), _resume_keys(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
