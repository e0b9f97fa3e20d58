import os
import pickle

import numpy as np
import pytest
import torch

from rrsis_geo.data.rrsisd import RRSISD, decode_segmentation, load_refs_pickle
from rrsis_geo.errors import DatasetError


def test_reads_every_split_with_quirks(rrsisd_root):
    root, truth = rrsisd_root
    ds = RRSISD(root, splits=("train", "val", "test"))
    assert {r.sample_id for r in ds.records} == set(truth)
    for i, rec in enumerate(ds.records):
        s = ds[i]
        raw, cat, mask, split = truth[rec.sample_id]
        assert s["expression"] == raw  # `raw`, not `sent`
        assert s["category"] == cat  # from `categories_id`
        assert s["split"] == split
        assert s["image"].shape == (3, 24, 32) and s["image"].dtype == torch.float32
        assert 0 <= float(s["image"].min()) and float(s["image"].max()) <= 1
        np.testing.assert_array_equal(s["mask"].numpy(), mask)  # union of both RLEs, > 0


def test_split_selection(rrsisd_root):
    root, truth = rrsisd_root
    ds = RRSISD(root, splits="train")
    assert len(ds) == sum(1 for v in truth.values() if v[3] == "train") == 3
    assert {s["split"] for s in (ds[i] for i in range(len(ds)))} == {"train"}


def test_problems_reported(rrsisd_root):
    root, _ = rrsisd_root
    ds = RRSISD(root, splits=("train", "val", "test"))
    kinds = sorted(p.kind for p in ds.problems)
    assert kinds == ["extra_file", "missing_image", "ref_without_mask"]


def test_overlap_united_with_gt_zero():
    from pycocotools import mask as mu

    a = np.zeros((4, 4), np.uint8, order="F")
    a[:2, :2] = 1
    b = np.zeros((4, 4), np.uint8, order="F")
    b[1:3, 1:3] = 1
    m = decode_segmentation([mu.encode(a), mu.encode(b)], 4, 4)
    assert m.sum() == 7 and m[1, 1] == 1  # the overlap pixel (sum == 2) is kept


def test_missing_root_names_path(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        RRSISD(tmp_path / "nope")
    (tmp_path / "rrsisd").mkdir()
    with pytest.raises(DatasetError, match=r"refs\(unc\)\.p"):
        RRSISD(tmp_path)


def test_malicious_pickle_refused(rrsisd_root, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.p"
    path.write_bytes(pickle.dumps([{"x": Evil()}]))
    with pytest.raises(DatasetError, match="refusing"):
        load_refs_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_python2_style_pickle(tmp_path):
    path = tmp_path / "refs.p"
    path.write_bytes(pickle.dumps([{"split": "train", "sentences": [], "ids": {1, 2}, "b": b"x"}], protocol=2))
    assert load_refs_pickle(path)[0]["ids"] == {1, 2}


def test_corrupt_image_skip_or_raise(rrsisd_root):
    root, _ = rrsisd_root
    (root / "images/rrsisd/JPEGImages/00001.jpg").write_bytes(b"not a jpeg")
    ds = RRSISD(root, splits="train")
    bad = next(i for i, r in enumerate(ds.records) if r.image_id == "1")
    with pytest.raises(DatasetError, match="00001.jpg"):
        ds[bad]
    ds = RRSISD(root, splits="train", on_error="skip")
    s = ds[bad]
    assert s["image_id"] != "1" and ds.skipped == [ds.records[bad].sample_id]
    dropped = ds.drop_unreadable()
    assert len(dropped) == 1 and len(ds) == 2
