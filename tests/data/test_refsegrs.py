import numpy as np
import pytest

from rrsis_geo.data.refsegrs import RefSegRS, category_from_expression
from rrsis_geo.errors import DatasetError


def test_reads_splits_and_threshold(refsegrs_root):
    root, truth = refsegrs_root
    ds = RefSegRS(root, splits=("train", "val", "test"))
    assert {r.sample_id for r in ds.records} == set(truth)
    for i, rec in enumerate(ds.records):
        s = ds[i]
        expr, mask = truth[rec.sample_id]
        assert s["expression"] == expr
        np.testing.assert_array_equal(s["mask"].numpy(), mask)
        assert s["mask"][0, 0] == 0 and s["mask"][15, 15] == 1  # 40 is background, 60 foreground


def test_problems(refsegrs_root):
    root, _ = refsegrs_root
    ds = RefSegRS(root, splits=("train", "val"))
    assert sorted(p.kind for p in ds.problems) == ["missing_image", "ref_without_mask"]


@pytest.mark.parametrize(
    "expr,cat",
    [("the road in the middle", "road"), ("a road marking", "road marking"), ("white cars", "car"),
     ("low vegetation next to the buildings", "low vegetation"), ("something else", "unknown")],
)
def test_category_from_expression(expr, cat):
    assert category_from_expression(expr) == cat


def test_missing_phrase_file(refsegrs_root):
    root, _ = refsegrs_root
    (root / "output_phrase_test.txt").unlink()
    with pytest.raises(DatasetError, match="output_phrase_test.txt"):
        RefSegRS(root, splits="test")
