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


# -- split_column, whole-raster mode (raster_column), per-raster ground resolution ------------


def _rewrite_vector(root, **columns):
    """Add columns to the fixture's vector file (one value per row)."""
    import geopandas as gpd

    gdf = gpd.read_file(root / "targets.geojson")
    for name, values in columns.items():
        gdf[name] = values
    gdf.to_file(root / "targets.geojson", driver="GeoJSON")
    return gdf


def test_split_from_column(custom_root):
    """Each row's split is its column value (val_fraction plays no part); chips are centred on
    the target, not clamped to a block, and their masks are still the rasterised polygons."""
    root, truth = custom_root
    parts = ["val", "train", "test", "val", "train"]  # last row lies outside the raster
    _rewrite_vector(root, part=parts)
    ds = _open(root, splits=("train", "val", "test"), split_column="part", val_fraction=0.0)
    assert len(ds) == 4
    for i, rec in enumerate(ds.records):
        k = int(rec.sample_id.removeprefix("row"))
        assert rec.split == parts[k]
        s = ds[i]
        whole = rasterize([(truth["geoms_utm"][k], 1)], out_shape=truth["shape"], transform=truth["transform"], dtype="uint8")
        np.testing.assert_array_equal(s["mask"].numpy(), _cut(whole, rec.extra["window"]))
        c = truth["geoms_utm"][k].centroid
        col, row = apply_affine(~truth["transform"], c.x, c.y)
        w = rec.extra["window"]
        assert abs(w.col_off + w.size / 2 - col) <= 1 and abs(w.row_off + w.size / 2 - row) <= 1
    only_val = _open(root, splits=("val",), split_column="part", val_fraction=0.0)
    assert sorted(r.sample_id for r in only_val.records) == ["row0", "row3"]


@pytest.mark.parametrize("bad", ["validation", None])
def test_bad_split_value_refused(custom_root, bad):
    root, _ = custom_root
    _rewrite_vector(root, part=["train", "val", bad, "test", "train"])
    shown = repr(bad) if bad else "no value"
    with pytest.raises(DatasetError, match=rf"column 'part' \(split_column=\) has {shown} in row 2; use one of train, val, test"):
        _open(root, split_column="part")
    with pytest.raises(DatasetError, match="no column 'nope' \\(split_column=\\)"):
        _open(root, split_column="nope")


def _write_zone34(path):
    """A 40 x 30 px raster at 4 m in UTM zone 34N (EPSG:32634), values distinct from scene.tif."""
    from rasterio.transform import from_origin

    t = from_origin(350000.0, 5100000.0, 4.0, 4.0)
    data = (np.arange(3 * 30 * 40).reshape(3, 30, 40) % 251).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=3, dtype="uint8", crs="EPSG:32634", transform=t) as dst:
        dst.write(data)
    return t, data


def test_whole_raster_frame(custom_root):
    """raster_column: the frame is the named raster; each polygon (stored in zone 33N) is
    reprojected to that raster's CRS only, here zone 34N for two rows, and rasterised on its
    transform. Rows naming a missing raster or lying outside theirs are reported."""
    import geopandas as gpd
    from shapely.geometry import box as sbox

    root, truth = custom_root
    t34, data34 = _write_zone34(root / "sub" / "zone34.tif")
    z34 = [sbox(350000 + 4 * 5, 5100000 - 4 * 12, 350000 + 4 * 15, 5100000 - 4 * 3),
           sbox(350000 + 4 * 22, 5100000 - 4 * 28, 350000 + 4 * 37, 5100000 - 4 * 18)]
    in33 = gpd.GeoSeries(z34, crs="EPSG:32634").to_crs(truth["crs"]).tolist()
    far = sbox(0, 0, 10, 10)  # in zone 33N: nowhere near scene.tif
    gdf = gpd.GeoDataFrame(
        {"text": [*truth["exprs"][:4], "the west box", "the east box", "outside", "lost"],
         "kind": ["field", "pond", "field", "building", "field", "pond", "field", "field"],
         "raster": ["scene.tif"] * 4 + ["sub/zone34.tif"] * 2 + ["scene.tif", "nope.tif"]},
        geometry=[*truth["geoms_utm"], *in33, far, truth["geoms_utm"][0]], crs=truth["crs"])
    (root / "targets.geojson").unlink()
    gdf.to_file(root / "targets.gpkg", driver="GPKG")
    ds = _open(root, splits=("train", "val", "test"), raster_column="raster", category_column="kind", val_fraction=0.0)
    assert len(ds) == 6
    assert sorted(p.kind for p in ds.problems) == ["missing_image", "outside_rasters"]
    with rasterio.open(root / "scene.tif") as src:
        scene = src.read()
    for i, rec in enumerate(ds.records):
        s = ds[i]
        k = int(rec.sample_id.removeprefix("row"))
        on34 = k in (4, 5)
        assert rec.image_path == root / ("sub/zone34.tif" if on34 else "scene.tif")
        geom = z34[k - 4] if on34 else truth["geoms_utm"][k]
        t, shape = (t34, (30, 40)) if on34 else (truth["transform"], truth["shape"])
        expected = rasterize([(geom, 1)], out_shape=shape, transform=t, dtype="uint8")
        assert expected.sum() > 0
        np.testing.assert_array_equal(s["mask"].numpy(), expected)
        img = (s["image"].numpy() * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(img, data34 if on34 else scene)
        assert tuple(s["transform"]) == tuple(t)[:6]
        assert ("32634" in s["crs"] or "zone 34N" in s["crs"]) if on34 else ("32633" in s["crs"] or "zone 33N" in s["crs"])
        assert s["gsd_m"] == (4.0 if on34 else 2.0)
        assert s["category"] == gdf["kind"][k]


def test_whole_raster_split_unit_is_the_raster(custom_root):
    root, _ = custom_root
    _write_zone34(root / "zone34.tif")
    _rewrite_vector(root, raster=["scene.tif"] * 5)
    ds = _open(root, splits=("train", "val", "test"), raster_column="raster", val_fraction=0.4)
    assert len({r.split for r in ds.records}) == 1  # all rows name one raster: one split
    with pytest.raises(DatasetError, match="either rasters= or raster_column="):
        _open(root, raster_column="raster", rasters=[root / "scene.tif"])


def test_each_sample_carries_its_rasters_resolution(custom_root):
    """Chip mode over two rasters (2 m, then 6 m): samples carry their own raster's gsd_m, the
    dataset's gsd_m is the lower median over samples, gsd_values lists both."""
    import geopandas as gpd
    from rasterio.transform import from_origin

    root, truth = custom_root
    t6 = from_origin(501000.0, 4800000.0, 6.0, 6.0)  # east of scene.tif, same zone
    with rasterio.open(root / "z_coarse.tif", "w", driver="GTiff", width=32, height=32, count=3, dtype="uint8",
                       crs=truth["crs"], transform=t6) as dst:
        dst.write(np.full((3, 32, 32), 7, np.uint8))
    gdf = gpd.read_file(root / "targets.geojson")
    extra = gpd.GeoSeries([box(501000 + 30, 4800000 - 90, 501000 + 90, 4800000 - 30)], crs=truth["crs"]).to_crs(gdf.crs)
    gdf = gpd.GeoDataFrame({"text": [*gdf["text"], "the coarse field"], "kind": [*gdf["kind"], "field"]},
                           geometry=[*gdf.geometry, extra.iloc[0]], crs=gdf.crs)
    gdf.to_file(root / "targets.geojson", driver="GeoJSON")
    ds = _open(root, splits=("train", "val", "test"), val_fraction=0.0)
    got = {ds[i]["expression"]: ds[i]["gsd_m"] for i in range(len(ds))}
    assert got == {**{e: 2.0 for e in truth["exprs"][:4]}, "the coarse field": 6.0}
    assert ds.gsd_m == 2.0
    assert ds.gsd_values() == [{"gsd_m": 2.0, "rasters": 1, "samples": 4}, {"gsd_m": 6.0, "rasters": 1, "samples": 1}]
    coarse = [i for i, r in enumerate(ds.records) if r.image_path.name == "z_coarse.tif"]
    assert len(coarse) == 1 and ds[coarse[0]]["mask"].sum() == 100  # 60 m x 60 m at 6 m
    ds.records = [ds.records[i] for i in coarse]  # what limit_train / drop_unreadable do
    assert ds.gsd_m == 6.0 and ds.gsd_values() == [{"gsd_m": 6.0, "rasters": 1, "samples": 1}]


def test_radiometry_record_is_the_map_load_image_applies(custom_root):
    """What a checkpoint records about its training pixels: per data type, the linear map of raw
    values to [0, 1] that the samples went through (to within one 8-bit step), and the window side."""
    from rasterio.windows import Window

    root, truth = custom_root
    with rasterio.open(root / "scene.tif") as src:
        profile, data = src.profile, src.read()
    assert _open(root).radiometry() == {"uint8": {"lo": [0.0] * 3, "hi": [255.0] * 3,
                                                  "note": "training data: 8-bit values as stored"}}
    raw16 = data.astype(np.uint16) * 13 + 7  # up to 3322
    with rasterio.open(root / "a_uint16.tif", "w", **dict(profile, dtype="uint16")) as dst:  # rows land here first
        dst.write(raw16)
    assert _open(root).radiometry()["uint16"]["hi"] == [65535.0] * 3
    ds = _open(root, splits=("train", "val", "test"), val_fraction=0.0, value_scale=3000)
    record = ds.radiometry()
    assert list(record) == ["uint16"] and record["uint16"]["lo"] == [0.0] * 3 and record["uint16"]["hi"] == [3000.0] * 3
    lo, hi = np.array(record["uint16"]["lo"])[:, None, None], np.array(record["uint16"]["hi"])[:, None, None]
    with rasterio.open(root / "a_uint16.tif") as src:
        for i, rec in enumerate(ds.records):
            w = rec.extra["window"]
            raw = src.read(window=Window(w.col_off, w.row_off, w.size, w.size), boundless=True, fill_value=0)
            expected = np.clip((raw - lo) / (hi - lo), 0, 1)
            assert np.abs(ds[i]["image"].numpy() - expected).max() <= 1 / 255 + 1e-6
    assert ds.chip_px == 16
    (root / "a_uint16.tif").unlink()
    _rewrite_vector(root, raster=["scene.tif"] * 5)
    assert _open(root, raster_column="raster").chip_px == 96  # whole-raster frames: the raster's side
