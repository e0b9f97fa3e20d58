"""The scenes of a batch: files, globs, folders and text / CSV lists -> :class:`Scene` values.

A folder lists its rasters (not its subfolders; a ``**`` glob recurses). A ``.txt`` / ``.lst``
list holds one scene per line (``#`` starts a comment); a ``.csv`` list has a header with a
``scene`` (or ``path``) column and an optional ``expression`` column. Relative paths in a list
are relative to the list's folder. Scenes keep the order given; a scene listed twice counts once.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass

from rrsis_geo.engine.segment import check_expression
from rrsis_geo.errors import InputError

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
LIST_SUFFIXES = (".txt", ".lst", ".csv")
# Names of the batch's own files in the output folder: no scene may take them.
RESERVED_STEMS = ("index", "answers")


@dataclass(frozen=True)
class Scene:
    path: str  # absolute
    expression: str  # normalised (check_expression)
    stem: str  # the name of its outputs in the output folder


def list_scenes(inputs: list[str], expression: str) -> list[Scene]:
    """Every scene ``inputs`` name, each with ``expression`` unless a CSV list gives its own.

    An :class:`InputError` when an input matches nothing, a list is malformed, an expression is
    empty, or two scenes would write the same output name. A listed file that does not exist or
    is not a readable raster is *not* refused here: the batch records it as a failed scene.
    """
    if not inputs:
        raise InputError("no INPUTS: give scene files, globs, folders or a .txt / .csv list of scenes")
    default = check_expression(expression)
    found: list[tuple[str, str]] = []
    for item in inputs:
        found.extend(_expand(item, default))
    if not found:
        raise InputError(f"no scenes in {', '.join(inputs)}")
    scenes, stems, seen = [], {}, set()
    for path, expr in found:
        path = os.path.abspath(path)
        if (path, expr) in seen:
            continue
        seen.add((path, expr))
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem.lower() in RESERVED_STEMS:
            raise InputError(f"scene {path} would write {stem}.gpkg, a name the batch uses for its own "
                             f"{stem} layer; rename or link the scene under another name")
        if stem in stems:
            raise InputError(f"scenes {stems[stem]} and {path} would both write {stem}.gpkg; "
                             "rename one, or run them as separate batches into different folders")
        stems[stem] = path
        scenes.append(Scene(path, expr, stem))
    return scenes


def _expand(item: str, default: str) -> list[tuple[str, str]]:
    if os.path.isdir(item):
        names = sorted(n for n in os.listdir(item) if n.lower().endswith(RASTER_SUFFIXES))
        if not names:
            raise InputError(f"folder {item} holds no rasters ({', '.join(RASTER_SUFFIXES)})")
        return [(os.path.join(item, n), default) for n in names]
    if os.path.isfile(item) and item.lower().endswith(LIST_SUFFIXES):
        return _read_list(item, default)
    if glob.has_magic(item):
        paths = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        if not paths:
            raise InputError(f"{item} matches no files")
        return [(p, default) for p in paths]
    return [(item, default)]  # a scene, checked when its task runs


def _read_list(path: str, default: str) -> list[tuple[str, str]]:
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the scene list {path}: {exc}") from None
    if path.lower().endswith(".csv"):
        rows = _csv_rows(path, text)
    else:
        rows = [(line.split("#", 1)[0].strip(), "") for line in text.splitlines()]
    found = [(os.path.join(base, os.path.expanduser(scene)), check_expression(expr) if expr.strip() else default)
             for scene, expr in rows if scene]
    if not found:
        raise InputError(f"the scene list {path} names no scenes")
    return found


def _csv_rows(path: str, text: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(text.splitlines())
    fields = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    column = fields.get("scene") or fields.get("path")
    if column is None:
        raise InputError(f"the CSV list {path} needs a 'scene' (or 'path') column in its header line; "
                         f"it has {', '.join(repr(f) for f in fields) or 'none'}")
    expr_col = fields.get("expression")
    return [((row.get(column) or "").strip(), (row.get(expr_col) or "") if expr_col else "") for row in reader]
