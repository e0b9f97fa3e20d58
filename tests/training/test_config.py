import pytest

from rrsis_geo.errors import ConfigError
from rrsis_geo.training.config import diff_keys, fingerprint, load_config


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_yaml_and_set(tmp_path):
    p = _yaml(tmp_path, "data:\n  root: /data\n  format: refsegrs\noptim:\n  epochs: 3\n")
    cfg = load_config(p, ["optim.head_lr=2e-4", "data.custom.bands=[1, 2, 4]", "model.overrides.mci_iters=1"])
    assert cfg["data"]["format"] == "refsegrs" and cfg["optim"]["epochs"] == 3
    assert cfg["optim"]["head_lr"] == 2e-4 and cfg["data"]["custom"]["bands"] == [1, 2, 4]
    assert cfg["model"]["overrides"] == {"mci_iters": 1}
    assert cfg["optim"]["encoder_lr"] == 1e-5  # default kept


def test_unknown_key_suggests_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.head_rl'.*'optim.head_lr'"):
        load_config(None, ["data.root=/x", "optim.head_rl=1"])
    p = _yaml(tmp_path, "data:\n  root: /x\n  imput_size: 256\n")
    with pytest.raises(ConfigError, match="data.input_size"):
        load_config(p)


def test_type_and_choice_errors():
    with pytest.raises(ConfigError, match="optim.epochs must be an integer"):
        load_config(None, ["data.root=/x", "optim.epochs=many"])
    with pytest.raises(ConfigError, match="optim.amp must be one of"):
        load_config(None, ["data.root=/x", "optim.amp=fp8"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["data.root"])
    with pytest.raises(ConfigError, match="data.root is not set"):
        load_config(None, [])
    with pytest.raises(ConfigError, match="run.threads must be >= 0"):
        load_config(None, ["data.root=/x", "run.threads=-2"])
    with pytest.raises(ConfigError, match="multiple of optim.accumulation"):
        load_config(None, ["data.root=/x", "optim.batch_size=6", "optim.accumulation=4"])


def test_fingerprint_ignores_allowed_changes():
    a = load_config(None, ["data.root=/x"])
    b = load_config(None, ["data.root=/y", "data.num_workers=0", "log.every_iters=1", "run.threads=1"])
    c = load_config(None, ["data.root=/x", "optim.head_lr=1e-3"])
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c) and diff_keys(a, c) == ["optim.head_lr"]


def test_shipped_configs_load():
    from pathlib import Path

    for p in sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml")):
        load_config(p, ["data.root=/x"])


def test_keys_added_later_keep_older_runs_resumable():
    """A state saved before ``data.category_balance`` existed still resumes at its neutral value;
    any other value is a different run."""
    import copy

    cfg = load_config(None, ["data.root=/x"])
    old = copy.deepcopy(cfg)
    del old["data"]["category_balance"]
    assert fingerprint(old) == fingerprint(cfg) and diff_keys(old, cfg) == []
    on = load_config(None, ["data.root=/x", "data.category_balance=0.5"])
    assert fingerprint(on) != fingerprint(cfg) and diff_keys(old, on) == ["data.category_balance"]
