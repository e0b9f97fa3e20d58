"""Shapefile outputs: short distinct field names from a documented table, full values, no warnings."""

import warnings

import pyogrio
import shapely

from rrsis_geo.engine.output import CANDIDATE_SCHEMA, features_frame
from rrsis_geo.engine.shapefile import SHAPEFILE_FIELDS, quiet_writer, shapefile_frame, shapefile_name


def test_every_attribute_has_a_distinct_short_name():
    names = [shapefile_name(c) for c in CANDIDATE_SCHEMA]
    assert all(len(n) <= 10 for n in names) and len(set(names)) == len(names)
    assert SHAPEFILE_FIELDS["model_sha256"] == "model_sha"


def test_written_without_warnings_and_with_full_values(tmp_path):
    sha = "ab" * 32
    record = {k: (0 if t != "object" else "x") for k, t in CANDIDATE_SCHEMA.items()}
    record.update(model_sha256=sha, expression="é" * 200, geometry=shapely.box(0, 0, 1, 1))
    frame = features_frame([record], "EPSG:32633", CANDIDATE_SCHEMA)
    path = tmp_path / "out.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with quiet_writer():
            shapefile_frame(frame).to_file(path, engine="pyogrio")
    back = pyogrio.read_dataframe(path)
    assert back["model_sha"][0] == sha
    assert back["expression"][0] == "é" * 127  # cut at 254 bytes, on a character boundary
