import pytest
import torch

from rrsis_geo.training.config import load_config
from tests.training import shapes_data


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models on a shared CPU run several times faster on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _restore_torch_flags():
    det = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(det)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    return shapes_data.write(tmp_path_factory.mktemp("shapes") / "shapes", n_train=16)


@pytest.fixture
def make_cfg(shapes_root, tmp_path):
    def make(*overrides, out="run"):
        base = [
            f"data.root={shapes_root}", "data.format=refsegrs", "data.input_size=24", "data.num_workers=0",
            f"run.out_dir={tmp_path / out}", "run.device=cpu", "run.deterministic=true",
            "optim.batch_size=4", "optim.epochs=3", "optim.encoder_lr=1e-2", "optim.head_lr=3e-2",
            "eval.batch_size=4", "log.progress=false", "log.tensorboard=false", "log.every_iters=1",
        ]
        return load_config(None, base + list(overrides))

    return make
