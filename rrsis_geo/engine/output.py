"""Writing results without losing or half-writing anything.

Every output is first written to a temporary name in the destination folder, then renamed into
place once everything is written (``os.replace`` is atomic on one filesystem). An existing file is
replaced only when the caller says so. An empty result is still a valid layer with the CRS and
the attribute schema.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from rrsis_geo.engine.shapefile import quiet_writer, shapefile_frame
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
    "at_edge": "int64",
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

    def pairs(self) -> list[tuple[str, str]]:
        """(temporary, target) renames that put this file in place."""
        if not self.sidecars:
            return [(self.temp, self.target)]
        t_stem, g_stem = os.path.splitext(self.temp)[0], os.path.splitext(self.target)[0]
        return [(t_stem + side, g_stem + side) for side in self.sidecars]

    def stale(self) -> list[str]:
        """Parts of an old shapefile at the target that this one does not replace."""
        g_stem = os.path.splitext(self.target)[0]
        return [g_stem + s for s in SHAPEFILE_SIDECARS if s not in self.sidecars and os.path.exists(g_stem + s)]

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
            if ext == ".shp":  # 10-character field names, no writer warnings (engine/shapefile.py)
                with quiet_writer():
                    shapefile_frame(part).to_file(temp, driver=driver, engine="pyogrio", geometry_type=gtype,
                                                  layer=name)
            else:
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


# ------------------------------------------------------------------------------ the output set
def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_set(pending: list[PendingFile], marker: str, extra: dict | None = None) -> None:
    """Rename every pending file onto its target as one commit.

    The (temporary, target) pairs are first recorded in ``marker`` (a JSON file, with ``extra``),
    then renamed in order, then the marker is removed: a run killed in between leaves the marker,
    and :func:`recover_set` finishes the renames (or rolls them back) when the next run starts.
    """
    pairs = [pair for p in pending for pair in p.pairs()]
    for p in pending:
        for path in p.stale():
            os.remove(path)
    for temp, _ in pairs:
        _fsync_file(temp)
    tmp = marker + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"pairs": pairs, **(extra or {})}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)
    for temp, target in pairs:
        os.replace(temp, target)
    os.remove(marker)


def recover_set(marker: str) -> tuple[str, dict] | None:
    """Finish the commit a killed run left in ``marker``: ``("finished", marker data)`` when every
    rename could be done, ``("rolled back", data)`` when temporaries were missing (the targets the
    killed run had already renamed are removed, so no partial set remains), ``None`` when there
    was no marker. A marker that cannot be read is removed and counts as none."""
    try:
        with open(marker, encoding="utf-8") as f:
            data = json.load(f)
        pairs = [(str(t), str(g)) for t, g in data["pairs"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        os.remove(marker)
        return None
    # Renames ran in order: pairs before the first remaining temporary are done.
    first = next((i for i, (t, _) in enumerate(pairs) if os.path.exists(t)), len(pairs))
    done, todo = pairs[:first], pairs[first:]
    if all(os.path.exists(g) for _, g in done) and all(os.path.exists(t) for t, _ in todo):
        for temp, target in todo:
            os.replace(temp, target)
        outcome = "finished"
    else:
        for temp, target in pairs:
            for path in (temp, target) if (temp, target) in done else (temp,):
                if os.path.exists(path):
                    os.remove(path)
        outcome = "rolled back"
    os.remove(marker)
    return outcome, data


def remove_stale_temps(target: str) -> list[str]:
    """Remove the temporaries (``.<stem>.tmp-<hex>.*``) a killed write left beside ``target``."""
    folder, name = os.path.split(os.path.abspath(target))
    stem = os.path.splitext(name)[0]
    pattern = re.compile(rf"\.{re.escape(stem)}\.tmp-[0-9a-f]{{8}}(\..*)?")
    removed = []
    for entry in os.listdir(folder):
        if pattern.fullmatch(entry):
            os.remove(os.path.join(folder, entry))
            removed.append(entry)
    return removed


def lock_path(target: str) -> str:
    folder, name = os.path.split(os.path.abspath(target))
    return os.path.join(folder, f".{name}.rrsis-lock")


_held: dict[str, list] = {}  # lock path -> [fd, owning thread id, depth]
_held_guard = threading.Lock()


class OutputLock:
    """Exclusive, non-blocking locks (``fcntl.flock``) on the lock files beside ``targets``.

    A second run that wants any of them refuses with :class:`OutputError`; the locks die with
    the process that holds them, so a killed run never blocks the next one. The same thread may
    take a lock it already holds (the CLI's early checks, then the run). Use as a context manager.
    """

    def __init__(self, targets: list[str]):
        self.targets = sorted({os.path.abspath(t) for t in targets})
        self.taken: list[str] = []

    def __enter__(self) -> "OutputLock":
        try:
            for target in self.targets:
                self._take(target)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self.taken:
            path = self.taken.pop()
            with _held_guard:
                entry = _held[path]
                entry[2] -= 1
                if entry[2]:
                    continue
                del _held[path]
            os.remove(path)  # while still locked: a run waiting on the old file re-opens the path
            os.close(entry[0])

    def _take(self, target: str) -> None:
        path = lock_path(target)
        with _held_guard:
            entry = _held.get(path)
            if entry is not None:
                if entry[1] != threading.get_ident():
                    raise OutputError(f"another rrsis run is writing {target} (pid {os.getpid()})")
                entry[2] += 1
                self.taken.append(path)
                return
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(f"another rrsis run is writing {target} (pid {pid})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed this file as we opened it: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        with _held_guard:
            _held[path] = [fd, threading.get_ident(), 1]
        self.taken.append(path)
