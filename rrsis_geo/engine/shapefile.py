"""What a Shapefile output holds: DBF field names of at most 10 characters, text of at most 254
bytes, and no warnings from the writer.

Field names longer than 10 characters are written as this table says (every other name is
written as is); the names stay distinct:

===============  ============
attribute        .shp field
===============  ============
``model_sha256`` ``model_sha``
===============  ============

Values keep their full text (a sha256 is 64 characters); only text over the DBF limit of 254
bytes (an unusually long expression or source path) is cut, at a character boundary; the
manifest beside the output keeps it whole.
"""

from __future__ import annotations

import contextlib
import warnings

import pandas as pd

SHAPEFILE_FIELDS: dict[str, str] = {"model_sha256": "model_sha"}
MAX_FIELD_NAME = 10
MAX_TEXT_BYTES = 254


def shapefile_name(column: str) -> str:
    """The DBF field name ``column`` is written under."""
    name = SHAPEFILE_FIELDS.get(column, column)
    if len(name) > MAX_FIELD_NAME:
        raise ValueError(f"attribute {column!r} needs an entry in SHAPEFILE_FIELDS (rrsis_geo/engine/shapefile.py)")
    return name


def _cut(value):
    if not isinstance(value, str):
        return value
    raw = value.encode("utf-8")
    return value if len(raw) <= MAX_TEXT_BYTES else raw[:MAX_TEXT_BYTES].decode("utf-8", "ignore")


def shapefile_frame(frame):
    """``frame`` with its attributes renamed by :data:`SHAPEFILE_FIELDS` and text cut to the DBF
    limit, ready for the ESRI Shapefile driver."""
    names = {c: shapefile_name(c) for c in frame.columns if c != frame.geometry.name}
    if len(set(names.values())) != len(names):
        raise ValueError(f"Shapefile field names collide: {names}")
    out = frame.rename(columns=names)
    for column in names.values():
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_cut)
    return out


@contextlib.contextmanager
def quiet_writer():
    """Silence the writer's warnings about field names and text widths, which
    :func:`shapefile_frame` has already dealt with."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(longer than 10 characters|laundered field name|"
                                                  "has been truncated to 254).*")
        yield
