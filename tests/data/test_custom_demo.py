"""The committed demo dataset (data/demo) through the custom reader with the options its
config uses: splits from the GPKG, whole chips as frames, per-chip ground resolution."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"

pytestmark = pytest.mark.skipif(not (DEMO / "demo.gpkg").exists(), reason="data/demo not built")


def test_demo_reads_as_built():
    import geopandas as gpd
    import rasterio

    from rrsis_geo.data.custom import CustomGeoDataset

    gdf = gpd.read_file(DEMO / "demo.gpkg")
    ds = CustomGeoDataset(DEMO, splits=("train", "val", "test"), split_column="split", raster_column="chip",
                          category_column="category")
    assert len(gdf) == len(ds) == 839 and not ds.problems
    shapes, res = {}, {}
    for chip in set(gdf["chip"]):
        with rasterio.open(DEMO / chip) as src:
            shapes[chip], res[chip] = (src.height, src.width), src.res[0]
    seen_chips = set()
    for rec in ds.records:
        k = int(rec.sample_id.removeprefix("row"))
        row = gdf.iloc[k]
        assert (rec.split, rec.category, rec.expression, rec.image_path.name) == (row["split"], row["category"], row["expression"].strip(), row["chip"])
        mask = ds.load_mask(rec)
        assert mask.shape == shapes[row["chip"]]
        assert mask.sum() > 0 and int(mask.sum()) == int(row["area_px"])  # the labelled object, pixel for pixel
        if row["chip"] not in seen_chips:  # decode each chip once: the image is the whole chip
            seen_chips.add(row["chip"])
            s = ds[ds.records.index(rec)]
            assert tuple(s["image"].shape) == (3, *shapes[row["chip"]]) and s["gsd_m"] == res[row["chip"]]
    assert len(seen_chips) == 36
    assert ds.gsd_values() == [{"gsd_m": 5.0, "rasters": 6, "samples": int((gdf["scene"] == "naip").sum())},
                               {"gsd_m": 10.0, "rasters": 30, "samples": int((gdf["scene"] != "naip").sum())}]


def test_demo_config_builds_the_splits(monkeypatch):
    """configs/demo_lite.yaml's data section reaches the reader: 520 train / 136 val samples,
    256 px frames resized to the input size, gsd metadata honest for the mixed scenes; the data
    root is recorded as the config gives it, not as this machine's absolute folder."""
    from rrsis_geo.training.config import load_config
    from rrsis_geo.training.run import build_datasets

    monkeypatch.chdir(ROOT)
    given = DEMO.relative_to(ROOT).as_posix()
    cfg = load_config(ROOT / "configs" / "demo_lite.yaml", [f"data.root={given}"])
    m = cfg["model"]["overrides"]
    assert m["vision"]["in_chans"] == len(m["mean"]) == len(m["std"]) == len(cfg["data"]["custom"]["bands"]) == 4
    bundle = SimpleNamespace(mean=tuple(m["mean"]), std=tuple(m["std"]))
    train, val, info = build_datasets(cfg, bundle)
    assert (len(train), len(val)) == (520, 136)
    assert {r.split for r in train.records} == {"train"} and {r.split for r in val.records} == {"val"}
    assert info["gsd_m"] == 10.0 and [v["gsd_m"] for v in info["gsd_m_values"]] == [5.0, 10.0]
    assert info["root"] == given == "data/demo"
    s = train[0]
    size = cfg["data"]["input_size"]
    assert tuple(s["image"].shape) == (4, size, size) and s["mask"].sum() > 0  # red, green, blue, NIR
    assert np.isfinite(s["image"].numpy()).all()
