"""Run by tests/training/test_ddp.py under `torchrun` (or plain python): trains the tiny TEST
DOUBLE on the shapes data with the config given as YAML on the command line."""

import sys

import torch
import yaml

from rrsis_geo.training.config import load_config
from rrsis_geo.training.run import run_training
from tests.training.tiny_model import tiny_bundle

if __name__ == "__main__":
    torch.set_num_threads(1)
    cfg = load_config(None, [(k, v) for k, v in yaml.safe_load(sys.argv[1]).items()])
    run_training(cfg, bundle=tiny_bundle(dropout=0.0))
