"""End to end on a synthetic 528 x 528 scene (2 x 2 chips): files, columns, georeferencing, splits."""

import json

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from scripts.demo_data import build as build_mod
from scripts.demo_data.labels import SceneRules
from scripts.demo_data.layout import split_by_cells
from scripts.demo_data.scenes import Scene
from tests.demo_data.synth import FIELD, WATER, bands, canvas, disc, paint, rect

N = 528
ORIGIN = Affine(5.0, 0.0, 600_000.0, 0.0, -5.0, 4_500_000.0)


def synthetic_scene():
    a = canvas(N, N)
    for r0, c0 in ((0, 0), (0, 272), (272, 0), (272, 272)):  # chip origins of the 2 x 2 grid
        paint(a, disc(N, N, r0 + 60, c0 + 60, 40), WATER)  # large lake, north-west
        paint(a, disc(N, N, r0 + 200, c0 + 200, 12), WATER)  # small pond, south-east
        paint(a, rect(N, N, r0 + 180, c0 + 20, r0 + 230, c0 + 90), FIELD)  # a field, south-west
    rgbn8 = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    rules = SceneRules(name="syn", ndwi_min=0.2, nir_max=0.1, land_nir_min=0.2, sea_name=None, min_area_px=30,
                       distractor_min_area_px=60)
    return Scene("syn", bands(a), np.ones((N, N), bool), rgbn8, ORIGIN, CRS.from_epsg(32618), 5.0, rules,
                 split_by_cells({(0, 1): "val", (1, 1): "test"}), "synthetic", "none")


_BUILDS = {}


def _build(tmp_path_factory, windows_per_chip, category_sets=False):
    key = (windows_per_chip, category_sets)
    if key not in _BUILDS:
        out = tmp_path_factory.mktemp("demo")
        mp = pytest.MonkeyPatch()
        mp.setattr(build_mod, "SCENES", {"syn": synthetic_scene})
        try:
            res = build_mod.build(out, out / "previews", log=lambda *a: None, windows_per_chip=windows_per_chip,
                                  category_sets=category_sets)
        finally:
            mp.undo()
        _BUILDS[key] = (out, res)
    return _BUILDS[key]


@pytest.fixture(scope="module", params=[0, 3], ids=["grid", "train-windows"])
def built(request, tmp_path_factory):
    """The published layout (grid chips) and the demo model's training build (train windows)."""
    return _build(tmp_path_factory, request.param)


def test_layout_files_and_columns(built):
    import geopandas as gpd

    out, res = built
    gdf = gpd.read_file(res["vector"])
    for col in ("expression", "category", "split", "chip", "rule", "kind", "needs_language", "target"):
        assert col in gdf.columns
    assert gdf.crs.to_epsg() == 4326
    assert sorted(p.name for p in out.glob("*.tif")) == sorted(set(gdf["chip"]))
    assert set(gdf["split"]) == {"train", "val", "test"}
    assert set(gdf["category"]) == {"lake", "field"}
    assert (out / "README.md").exists() and (out / "meta" / "contact_sheet.png").exists()
    # the root holds the chips and ONE vector file, as the custom reader's discover() demands
    vector_like = [p.name for p in out.iterdir() if p.suffix.lower() in (".gpkg", ".geojson", ".json", ".shp")]
    assert vector_like == ["demo.gpkg"]
    assert len(list((out / "previews").glob("*.png"))) == len(res["records"])
    b = json.loads((out / "meta" / "baseline.json").read_text())
    assert b["splits"]["test"]["all"]["class_raw"]["n"] > 0


def test_polygons_are_georeferenced_rasterising_on_the_chip_reproduces_the_label_mask(built):
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize

    out, res = built
    gdf = gpd.read_file(res["vector"])
    masks = {f"{r['chip'].name[:-4]}#{i}": t.mask for r in res["records"] for i, t in enumerate(r["targets"])}
    checked = 0
    for chip, rows in gdf.groupby("chip"):
        with rasterio.open(out / chip) as src:
            assert (src.width, src.height, src.count) == (256, 256, 4)
            geoms = rows.geometry.to_crs(src.crs)
            for tid, geom in zip(rows["target"], geoms):
                got = rasterize([(geom, 1)], out_shape=(256, 256), transform=src.transform, dtype="uint8").astype(bool)
                assert (got == masks[tid]).all(), tid
                checked += 1
    assert checked == len(gdf)


def test_chip_transform_is_the_scene_window(built):
    import rasterio

    out, res = built
    for rec in res["records"]:
        ch = rec["chip"]
        with rasterio.open(out / ch.name) as src:
            x, y = ORIGIN.c + ch.col_off * ORIGIN.a, ORIGIN.f + ch.row_off * ORIGIN.e
            assert src.transform.c == pytest.approx(x) and src.transform.f == pytest.approx(y)
            # the pixels are the scene's pixels of that window (JPEG: close, not exact)
            data = src.read()
            sc = synthetic_scene()
            ref = build_mod.layout.dihedral(sc.rgbn8[:, ch.row_off : ch.row_off + 256, ch.col_off : ch.col_off + 256], ch.op)
            assert np.abs(data.astype(int) - ref).mean() < 3


def test_splits_are_whole_chips_that_never_overlap_across_splits(built):
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    out, res = built
    gdf = gpd.read_file(res["vector"])
    assert gdf.groupby("chip")["split"].nunique().max() == 1
    fp = {}
    for chip in set(gdf["chip"]):
        with rasterio.open(out / chip) as src:
            fp[chip] = (box(*src.bounds), gdf.loc[gdf["chip"] == chip, "split"].iloc[0])
    for a, (ga, sa) in fp.items():
        for b, (gb, sb) in fp.items():
            if a != b and sa != sb:
                assert ga.intersection(gb).area == 0


def test_expressions_are_in_the_chip_frame(tmp_path_factory):
    import geopandas as gpd

    _out, res = _build(tmp_path_factory, 0)
    gdf = gpd.read_file(res["vector"])
    # every chip holds the same layout, so each chip's own frame gives each one the same facts:
    # the large lake is the largest and in the north-west corner of *its* chip, not of the scene
    nw = gdf[gdf["fact"] == "cell=north-west"]
    assert set(nw["chip"]) == set(gdf["chip"])
    assert set(nw["target"].str.split("#").str[1]) == {"0"}
    largest = gdf[(gdf["fact"].str.startswith("rank=1/")) & (gdf["category"] == "lake")]
    assert set(largest["chip"]) == set(gdf["chip"])


def test_training_windows_replace_train_chips_only(tmp_path_factory):
    """The training build: train rows come from turned windows whose facts follow the turn; the
    val and test rows are exactly the published ones (same chips, same expressions)."""
    import geopandas as gpd

    grid = gpd.read_file(_build(tmp_path_factory, 0)[1]["vector"])
    out, res = _build(tmp_path_factory, 3)
    win = gpd.read_file(res["vector"])
    cols = ["expression", "chip", "target", "fact", "split"]
    held = lambda g: g[g["split"] != "train"][cols].sort_values(cols).reset_index(drop=True)  # noqa: E731
    assert held(win).equals(held(grid))
    train = win[win["split"] == "train"]
    assert len(train) and train["chip"].str.contains("_w").all()
    ops = {r["chip"].op for r in res["records"] if r["chip"].window}
    assert len(ops) > 1  # several orientations, not one
    # a position fact states where the target lies in the *turned* frame
    for rec in res["records"]:
        for e in rec["exprs"]:
            if e.fact.startswith("cell="):
                t = rec["targets"][e.target]
                cx, cy = t.mask.nonzero()[1].mean(), t.mask.nonzero()[0].mean()
                name = build_mod.expressions.CELL_NAMES[build_mod.expressions.cell_of(cx / 256, cy / 256)]
                assert e.fact == f"cell={name}", (rec["chip"].name, e.text)


def test_category_sets_answer_every_object_of_the_category_in_train_chips_only(tmp_path_factory):
    """--category-sets: "all the lakes" rows in train windows only, each answered by the union of
    every object of that category in the chip (here the lake and the pond); the rows a plain
    training build has are unchanged, and so are the held-out rows."""
    import geopandas as gpd
    import rasterio
    from rasterio.features import rasterize

    plain = gpd.read_file(_build(tmp_path_factory, 3)[1]["vector"])
    out, res = _build(tmp_path_factory, 3, category_sets=True)
    gdf = gpd.read_file(res["vector"])
    sets = gdf[gdf["kind"] == "set"]
    assert len(sets) and set(sets["split"]) == {"train"}
    assert not sets["needs_language"].any()
    cols = ["expression", "chip", "target", "fact", "split"]
    rest = lambda g: g[g["kind"] != "set"][cols].sort_values(cols).reset_index(drop=True)  # noqa: E731
    assert rest(gdf).equals(rest(plain))
    records = {r["chip"].name: r for r in res["records"]}
    lakes_in = {name for name, r in records.items()
                if r["chip"].split == "train" and sum(t.category == "lake" for t in r["targets"] + r["distractors"]) >= 2}
    assert lakes_in and lakes_in <= set(sets.loc[sets["category"] == "lake", "chip"])
    for _, row in sets.iterrows():
        rec = records[row["chip"]]
        want = np.zeros((256, 256), bool)
        for t in rec["targets"] + rec["distractors"]:
            if t.category == row["category"]:
                want |= t.mask
        assert want.sum() > max(t.area for t in rec["targets"] if t.category == row["category"])  # more than one
        with rasterio.open(out / row["chip"]) as src:
            geom = gpd.GeoSeries([row.geometry], crs=gdf.crs).to_crs(src.crs)[0]
            got = rasterize([(geom, 1)], out_shape=(256, 256), transform=src.transform, dtype="uint8").astype(bool)
        assert (got == want).all(), row["expression"]
        nouns = build_mod.expressions.NOUNS[row["category"]]
        assert any(n in row["expression"] or build_mod.expressions.plural(n) in row["expression"] for n in nouns), row


def test_category_sets_wordings():
    from scripts.demo_data.expressions import category_sets
    from tests.demo_data.test_expressions import blob

    lakes = [blob(0, 0, 10, 10), blob(100, 100, 120, 120)]
    field = [blob(200, 200, 230, 230, "field")]
    got = category_sets(lakes + field, [], seed=1, per_fact=3)
    ids = lambda objs: [id(o) for o in objs]  # noqa: E731  (Targets hold arrays: compare by identity)
    assert [(cat, ids(objs)) for _, cat, objs in got] == [("lake", ids(lakes))] * 3  # the lone field gets none
    assert len({text for text, _, _ in got}) == 3
    # a distractor of a category counts: it makes a second object and belongs to the answer
    fields = field + [blob(240, 0, 250, 20, "field")]
    got = category_sets(lakes, fields, seed=1, per_fact=1)
    assert sorted((cat, ids(objs)) for _, cat, objs in got) == [("field", ids(fields)), ("lake", ids(lakes))]
    assert {text for text, _, _ in got} <= {"all the lakes", "every lake in the image", "all lakes",
                                            "all the green fields", "every green field in the image", "all green fields"}
