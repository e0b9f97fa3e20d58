"""Writing results without losing or half-writing anything.

Every output is first written to a temporary name in the destination folder, then renamed into
place once everything is written (``os.replace`` is atomic on one filesystem). An existing file is
replaced only when the caller says so. An empty result is still a valid layer with the CRS and
the attribute schema.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from rrsis_geo.errors import OutputError

# extension -> (writer, OGR driver). The CLI lists choices from this table.
VECTOR_FORMATS: dict[str, tuple[str, str | None]] = {
    ".gpkg": ("ogr", "GPKG"),
    ".geojson": ("ogr", "GeoJSON"),
    ".fgb": ("ogr", "FlatGeobuf"),
    ".shp": ("ogr", "ESRI Shapefile"),
    ".parquet": ("parquet", None),
}
SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
RASTER_EXTENSIONS = (".tif", ".tiff")

# The attribute schema of every output feature, in order.
SCHEMA: dict[str, str] = {
    "expression": "object",
    "score": "float64",
    "score_max": "float64",
    "area_m2": "float64",
    "pixels": "int64",
    "model_id": "object",
    "model_sha256": "object",
    "source": "object",
    "run_id": "object",
}


# Scene-level runs: the answer and candidates layers add what the resolver measured and chose.
CANDIDATE_SCHEMA: dict[str, str] = {
    **SCHEMA,
    "rank": "int64",
    "selected": "int64",
    "glance": "float64",
    "length_m": "float64",
    "width_m": "float64",
    "elongation": "float64",
    "u": "float64",
    "v": "float64",
    "rule": "object",
}
# GeoPackage layer names of a scene-level run.
ANSWER_LAYER, CANDIDATES_LAYER = "answer", "candidates"
MULTI_LAYER_EXTENSIONS = (".gpkg",)


def manifest_path(output: str) -> str:
    return output + ".manifest.json"


def check_vector_output(path: str, overwrite: bool) -> str:
    """Validate an output path before any work starts; return its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in VECTOR_FORMATS:
        raise OutputError(
            f"unknown output format {ext or '(no extension)'!r} for {path}; "
            f"use one of {', '.join(VECTOR_FORMATS)}"
        )
    check_target(path, overwrite)
    if ext == ".shp" and not overwrite:
        for side in SHAPEFILE_SIDECARS:
            other = os.path.splitext(path)[0] + side
            if os.path.exists(other):
                raise OutputError(f"{other} already exists; use --overwrite to replace it")
    check_target(manifest_path(path), overwrite)
    return ext


def check_raster_output(path: str, overwrite: bool) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in RASTER_EXTENSIONS:
        raise OutputError(f"the probability raster must be a GeoTIFF (.tif), got {path}")
    check_target(path, overwrite)


def check_target(path: str, overwrite: bool) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if os.path.isdir(path):
        raise OutputError(f"output path is a folder: {path}")
    if os.path.exists(path) and not overwrite:
        raise OutputError(f"{path} already exists; use --overwrite to replace it")


def temp_sibling(path: str, tag: str = "tmp") -> str:
    """A temporary path beside ``path`` keeping its extension (GDAL drivers key on it)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.{tag}-{uuid.uuid4().hex[:8]}{ext}")


@dataclass
class PendingFile:
    """A fully written temporary file waiting to be renamed onto its target."""

    temp: str
    target: str
    sidecars: tuple[str, ...] = ()

    def commit(self) -> None:
        if self.sidecars:  # shapefile: move every part, drop stale parts of an old one
            t_stem, g_stem = os.path.splitext(self.temp)[0], os.path.splitext(self.target)[0]
            for side in SHAPEFILE_SIDECARS:
                if not os.path.exists(t_stem + side) and os.path.exists(g_stem + side):
                    os.remove(g_stem + side)
            for side in self.sidecars:
                os.replace(t_stem + side, g_stem + side)
        else:
            os.replace(self.temp, self.target)

    def discard(self) -> None:
        paths = [os.path.splitext(self.temp)[0] + s for s in self.sidecars] or [self.temp]
        for p in paths:
            try:
                os.remove(p)
            except FileNotFoundError:
                pass


def features_frame(records: list[dict], crs, schema: dict[str, str] = SCHEMA) -> gpd.GeoDataFrame:
    """A GeoDataFrame with a fixed schema, also when ``records`` is empty."""
    columns = {
        name: pd.Series([r[name] for r in records], dtype=dtype) for name, dtype in schema.items()
    }
    geoms = gpd.GeoSeries([r["geometry"] for r in records], crs=crs)
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=crs)


def write_vector(frame: gpd.GeoDataFrame, path: str, layers: dict[str, gpd.GeoDataFrame] | None = None
                 ) -> PendingFile:
    """Write ``frame`` to a temporary sibling of ``path``; return it pending commit.

    ``layers`` (GeoPackage only) writes these named layers instead, in order, into the one file.
    """
    ext = os.path.splitext(path)[1].lower()
    kind, driver = VECTOR_FORMATS[ext]
    temp = temp_sibling(path)
    try:
        if kind == "parquet":
            frame.to_parquet(temp, index=False)
            return PendingFile(temp, path)
        for name, part in (layers or {_layer(path, ext): frame}).items():
            types = set(part.geom_type.dropna()) if len(part) else set()
            gtype = "MultiPolygon" if "MultiPolygon" in types else "Polygon"
            part.to_file(temp, driver=driver, engine="pyogrio", geometry_type=gtype, layer=name)
        if ext == ".shp":
            stem = os.path.splitext(temp)[0]
            parts = tuple(s for s in SHAPEFILE_SIDECARS if os.path.exists(stem + s))
            return PendingFile(temp, path, sidecars=parts)
        return PendingFile(temp, path)
    except BaseException:
        PendingFile(temp, path, sidecars=SHAPEFILE_SIDECARS if ext == ".shp" else ()).discard()
        raise


def _layer(path: str, ext: str) -> str | None:
    """Layer name after the target file (not the temporary one); shapefiles take their file's."""
    if ext == ".shp":
        return None
    return os.path.splitext(os.path.basename(path))[0]


def write_json(data: dict, path: str) -> PendingFile:
    temp = temp_sibling(path)
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
    return PendingFile(temp, path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
