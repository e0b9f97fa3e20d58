"""The batch's own layers: ``index.gpkg`` (one row per scene) and ``answers.gpkg`` (every scene's
answer features), in one CRS, renamed into place together.

The CRS: ``--dst-crs`` when given; else the scenes' CRS when all finished scenes share one; else
EPSG:4326. It is recorded in the layers and reported by the run.
"""

from __future__ import annotations

import os

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from rrsis_geo.engine import output as out

from rrsis_geo.batch.tasks import STATE_DIR

FALLBACK_CRS = "EPSG:4326"
INDEX_SCHEMA = {
    "scene": "object", "path": "object", "expression": "object", "status": "object", "reused": "bool",
    "answer_features": "Int64", "candidates": "Int64", "features": "Int64", "rule": "object",
    "seconds": "float64", "attempts": "Int64", "worker": "object", "error": "object", "output": "object",
}
INDEX_FILE, ANSWERS_FILE = "index.gpkg", "answers.gpkg"


def commit_marker(outdir: str) -> str:
    return os.path.join(outdir, STATE_DIR, "commit.json")


def batch_crs(records: list[dict], dst_crs: str | None) -> CRS:
    if dst_crs:
        return CRS.from_user_input(dst_crs)
    crss = {CRS.from_wkt(r["crs"]) for r in records if r["status"] == "done" and r.get("crs")}
    return crss.pop() if len(crss) == 1 else CRS.from_user_input(FALLBACK_CRS)


def index_frame(records: list[dict], crs: CRS) -> gpd.GeoDataFrame:
    """One row per scene, its footprint reprojected to ``crs`` (empty when the scene had none)."""
    parts = []
    for r in records:
        geom = None
        if r.get("footprint_wkb"):
            # densified so that it bends where the CRS bends it; straight runs are cut back to their ends
            footprint = gpd.GeoSeries([shapely.from_wkb(r["footprint_wkb"])], crs=CRS.from_wkt(r["crs"]))
            geom = footprint.to_crs(crs).simplify(0)[0]
        parts.append(geom)
    columns = {name: pd.Series([r.get(name) for r in records], dtype=dtype) for name, dtype in INDEX_SCHEMA.items()}
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(parts, crs=crs), crs=crs)


def answers_frame(records: list[dict], crs: CRS, scene_mode: bool) -> gpd.GeoDataFrame:
    """Every finished scene's answer features (a scene-level ``.gpkg``'s ``answer`` layer, else its
    only layer) with a ``scene`` column, in ``crs``."""
    frames = []
    for r in records:
        if r["status"] != "done":
            continue
        path = r["output"]
        layers = [name for name, _ in pyogrio.list_layers(path)]
        layer = out.ANSWER_LAYER if out.ANSWER_LAYER in layers else layers[0]
        frame = gpd.read_file(path, layer=layer, engine="pyogrio")
        if len(frame):
            frame = frame.to_crs(crs)
            frame.insert(0, "scene", r["scene"])
            frames.append(frame)
    if frames:
        return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)
    empty = out.features_frame([], crs, out.CANDIDATE_SCHEMA if scene_mode else out.SCHEMA)
    empty.insert(0, "scene", pd.Series([], dtype="object"))
    return empty


def write_collection(outdir: str, records: list[dict], dst_crs: str | None, scene_mode: bool
                     ) -> tuple[str, str, CRS, int]:
    """Write ``index.gpkg`` and ``answers.gpkg`` as one commit; returns their paths, the CRS and
    the number of answer features."""
    crs = batch_crs(records, dst_crs)
    index, answers = index_frame(records, crs), answers_frame(records, crs, scene_mode)
    targets = os.path.join(outdir, INDEX_FILE), os.path.join(outdir, ANSWERS_FILE)
    pending = []
    try:
        pending.append(out.write_vector(index, targets[0]))
        pending.append(out.write_vector(answers, targets[1]))
    except BaseException:
        for p in pending:
            p.discard()
        raise
    out.commit_set(pending, commit_marker(outdir))
    return targets[0], targets[1], crs, len(answers)
