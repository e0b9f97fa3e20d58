"""2 processes under torchrun (gloo, CPU) == 1 process with the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rrsis_geo.training.state import load_state, model_state_from

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, cfg: dict):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, *args, str(REPO / "tests/training/ddp_script.py"), yaml.safe_dump(cfg)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(shapes_root, tmp_path):
    base = {"data.root": str(shapes_root), "data.format": "refsegrs", "data.input_size": 24, "data.num_workers": 0,
            "run.device": "cpu", "run.deterministic": True, "optim.batch_size": 4, "optim.epochs": 2,
            "optim.encoder_lr": 1e-2, "optim.head_lr": 3e-2, "optim.clip_grad_norm": 1.0, "data.occlusion_p": 0.5,
            "data.occlusion_box": 6, "eval.batch_size": 3, "log.progress": False, "log.tensorboard": False}
    _run([], {**base, "run.out_dir": str(tmp_path / "one")})
    _run(["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}"],
         {**base, "run.out_dir": str(tmp_path / "two")})
    a_t, a_h = load_state(tmp_path / "one" / "last.state.safetensors")
    b_t, b_h = load_state(tmp_path / "two" / "last.state.safetensors")
    a, b = model_state_from(a_t), model_state_from(b_t)
    assert a.keys() == b.keys()
    moved = max(float((a[k] - b[k]).abs().max()) for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    assert a_h["position"] == b_h["position"] == {"epoch": 2, "step_in_epoch": 0, "global_step": 8}
    # validation was sharded over the two processes and gathered: same count, same figures
    va, vb = a_h["history"][-1], b_h["history"][-1]
    assert va["n"] == vb["n"] == 4
    assert va["oIoU"] == pytest.approx(vb["oIoU"], abs=1e-3)
    assert moved < 1e-5


@pytest.mark.slow
def test_two_process_gloo_with_frozen_parameters(shapes_root, tmp_path):
    """optim.freeze under DDP: freezing must come before the wrap (DDP would wait for gradients
    of the frozen parameters and fail); the frozen part stays as it started, the rest trains."""
    from tests.training.tiny_model import tiny_bundle

    base = {"data.root": str(shapes_root), "data.format": "refsegrs", "data.input_size": 24, "data.num_workers": 0,
            "run.device": "cpu", "optim.batch_size": 4, "optim.epochs": 2, "optim.freeze": ["text."],
            "eval.batch_size": 3, "log.progress": False, "log.tensorboard": False, "run.out_dir": str(tmp_path / "two")}
    _run(["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}"],
         base)
    start = tiny_bundle().model.state_dict()  # the script's model, seed 0
    end = model_state_from(load_state(tmp_path / "two" / "last.state.safetensors")[0])
    assert all(torch.equal(end[k], start[k]) for k in start if k.startswith("text."))
    assert any(not torch.equal(end[k], start[k]) for k in start if k.startswith("vision."))
