import pytest

from tests.data.custom import data as custom_data
from tests.data.refsegrs import data as refsegrs_data
from tests.data.rrsisd import data as rrsisd_data


@pytest.fixture
def rrsisd_root(tmp_path):
    truth = rrsisd_data.write(tmp_path / "rrsisd_root")
    return tmp_path / "rrsisd_root", truth


@pytest.fixture
def refsegrs_root(tmp_path):
    truth = refsegrs_data.write(tmp_path / "refsegrs_root")
    return tmp_path / "refsegrs_root", truth


@pytest.fixture
def custom_root(tmp_path):
    truth = custom_data.write(tmp_path / "custom_root")
    return tmp_path / "custom_root", truth
