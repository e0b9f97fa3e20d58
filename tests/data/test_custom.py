import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from shapely.geometry import box

from rrsis_geo.data.custom import CustomGeoDataset, apply_affine
from rrsis_geo.errors import DatasetError


def _open(root, **kw):
    kw.setdefault("chip_size", 16)
    kw.setdefault("block_chips", 2)
    kw.setdefault("expression_column", "text")
    return CustomGeoDataset(root, **kw)


def _cut(whole: np.ndarray, w) -> np.ndarray:
    """The window ``w`` of a full-raster array, zero outside the raster."""
    out = np.zeros((w.size, w.size), whole.dtype)
    r0, c0 = max(w.row_off, 0), max(w.col_off, 0)
    r1, c1 = min(w.row_off + w.size, whole.shape[0]), min(w.col_off + w.size, whole.shape[1])
    out[r0 - w.row_off : r1 - w.row_off, c0 - w.col_off : c1 - w.col_off] = whole[r0:r1, c0:c1]
    return out


def test_chip_masks_match_rasterised_polygons(custom_root):
    """Polygons come in WGS84; chip masks must equal the UTM polygons rasterised on the full
    raster grid and cut at the chip's window, and the chip image must be the raster window."""
    root, truth = custom_root
    ds = _open(root, splits=("train", "val", "test"), val_fraction=0.3)
    assert len(ds) == 4
    with rasterio.open(root / "scene.tif") as src:
        full = src.read()
    for i, rec in enumerate(ds.records):
        s = ds[i]
        k = truth["exprs"].index(s["expression"])
        whole = rasterize([(truth["geoms_utm"][k], 1)], out_shape=truth["shape"], transform=truth["transform"], dtype="uint8")
        w = rec.extra["window"]
        np.testing.assert_array_equal(s["mask"].numpy(), _cut(whole, w))
        r0, c0 = max(w.row_off, 0), max(w.col_off, 0)
        r1, c1 = min(w.row_off + w.size, truth["shape"][0]), min(w.col_off + w.size, truth["shape"][1])
        assert s["mask"].sum() > 0
        img = (s["image"].numpy() * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(img[:, r0 - w.row_off : r1 - w.row_off, c0 - w.col_off : c1 - w.col_off], full[:, r0:r1, c0:c1])
        # georeferencing: the chip's bounds hold the target's centroid, in the raster CRS
        assert box(*s["bounds"]).intersects(truth["geoms_utm"][k])
        assert "32633" in s["crs"] or "UTM zone 33N" in s["crs"]
        t = s["transform"]
        assert t[0] == 2.0 and t[4] == -2.0 and (t[2], t[5]) == apply_affine(truth["transform"], w.col_off, w.row_off)


def test_outside_row_reported(custom_root):
    root, _ = custom_root
    ds = _open(root, splits=("train", "val", "test"))
    assert [p.kind for p in ds.problems] == ["outside_rasters"]


def test_val_split_spatially_disjoint(custom_root):
    root, _ = custom_root
    ds = _open(root, splits=("train", "val"), val_fraction=0.5, negative_fraction=1.0, seed=1)
    by_split = {"train": [], "val": []}
    for i, rec in enumerate(ds.records):
        by_split[rec.split].append(box(*ds[i]["bounds"]))
    assert by_split["train"] and by_split["val"]
    for a in by_split["train"]:
        for b in by_split["val"]:
            assert a.intersection(b).area == 0


def test_negative_chips_have_empty_masks(custom_root):
    root, truth = custom_root
    ds = _open(root, splits=("train", "val", "test"), negative_fraction=1.0, val_fraction=0.0)
    negs = [i for i, r in enumerate(ds.records) if r.extra["negative"]]
    assert negs
    for i in negs:
        s = ds[i]
        assert s["negative"] and s["mask"].sum() == 0
        k = truth["exprs"].index(s["expression"])
        assert not box(*s["bounds"]).intersects(truth["geoms_utm"][k])


def test_bad_column_names_the_option(custom_root):
    root, _ = custom_root
    with pytest.raises(DatasetError, match=r"expression_column.*columns: text, kind"):
        CustomGeoDataset(root, chip_size=16)


def test_needs_one_vector(custom_root):
    root, _ = custom_root
    (root / "targets.geojson").rename(root / "other.txt")
    with pytest.raises(DatasetError, match="exactly one vector file"):
        _open(root)


def test_second_raster_in_another_crs(custom_root):
    """Rows land on the first raster (by name) that holds them, reprojected to its CRS (Web
    Mercator here); chip masks still equal the polygons rasterised on that raster's grid."""
    import geopandas as gpd
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    root, truth = custom_root
    with rasterio.open(root / "scene.tif") as src:
        t, w, h = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height, *src.bounds)
        profile = dict(src.profile, crs="EPSG:3857", transform=t, width=w, height=h)
        with rasterio.open(root / "a_mercator.tif", "w", **profile) as dst:
            for b in range(1, 4):
                reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=Resampling.nearest)
    ds = _open(root, splits=("train", "val", "test"), val_fraction=0.0)
    geoms = gpd.GeoSeries(truth["geoms_utm"], crs=truth["crs"]).to_crs("EPSG:3857")
    for i, rec in enumerate(ds.records):
        assert rec.image_path.name == "a_mercator.tif"
        s = ds[i]
        k = truth["exprs"].index(s["expression"])
        whole = rasterize([(geoms.iloc[k], 1)], out_shape=(h, w), transform=t, dtype="uint8")
        np.testing.assert_array_equal(s["mask"].numpy(), _cut(whole, rec.extra["window"]))
        assert s["mask"].sum() > 0 and ("3857" in s["crs"] or "Pseudo-Mercator" in s["crs"])
