#!/usr/bin/env python3
"""TEST DOUBLE: a fake ``rrsis`` command that speaks the real CLI's protocol.

It exists to test the plugin's subprocess handling (progress lines, cancellation, error
mapping, leftovers) deterministically and fast. It does no segmentation: it writes squares as
GeoJSON or GeoPackage. End-to-end tests use the real command, never this one.

Modes, like the real command: scene-level by default (the answer, one square, and three
candidates; a ``.gpkg`` gets the layers ``answer`` and ``candidates``, ``--candidates PATH``
writes the candidates there too; the ``done`` event adds ``mode``, ``rule``, ``abstained``,
``answer_features``, ``candidates``, ``candidates_output``); ``--per-tile`` and
``--whole-scene`` write one square to one layer named after the file. A sentence naming an
unknown noun (``volcano``) abstains (empty answer and candidates, a warning, exit 0) unless
``--force``.

Behaviour is chosen by environment variables:
- ``FAKE_RRSIS_MODE``: ``ok`` (default); ``slow`` (many slow tiles; on SIGINT it deletes its
  temporary file and exits 130, like the real CLI); ``stubborn`` (ignores SIGINT and leaves
  its temporary file: only SIGKILL stops it); ``crash`` (an internal error, exit 1);
  ``nodone`` (exits 0 without a ``done`` event); ``noise`` (prints non-JSON lines too).
- ``FAKE_RRSIS_ARGV``: a file to which the received arguments are written as JSON.
- ``FAKE_RRSIS_PIDFILE``: a file to which the process id is written at start.
- ``FAKE_RRSIS_COPY_SCENE``: a path to which the scene it was given is copied.
- ``FAKE_RRSIS_COPY_AOI``: a path to which the ``--aoi`` file it was given is copied.
"""

import argparse
import json
import re
import os
import shutil
import signal
import sys
import time
import uuid


#: The nouns this fake "model" was not trained on.
UNKNOWN_NOUNS = ("volcano",)
KNOWN = "lake, road, river"

#: Attribute types of a scene-level run's layers (the real command's candidate schema).
SCHEMA = {
    "expression": "object", "score": "float64", "score_max": "float64", "area_m2": "float64",
    "pixels": "int64", "model_id": "object", "model_sha256": "object", "source": "object",
    "run_id": "object", "rank": "int64", "selected": "int64", "glance": "float64",
    "length_m": "float64", "width_m": "float64", "elongation": "float64", "u": "float64",
    "v": "float64", "rule": "object",
}


def square(x, side):
    return [[[x, 0], [x + side, 0], [x + side, side], [x, side], [x, 0]]]


def write_geojson(path, features):
    collection = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": props,
                      "geometry": {"type": "Polygon", "coordinates": coords}}
                     for props, coords in features],
    }
    with open(path, "w") as fh:
        json.dump(collection, fh)


def write_gpkg(path, layers):
    """``layers``: {name: [(properties, coordinates)]}, written in order (empty ones keep the schema)."""
    import warnings

    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Polygon

    # GDAL warns about the temporary file's extension; the real command writes the same way.
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    for name, features in layers.items():
        keys = list(SCHEMA) if not features else list(features[0][0])
        columns = {k: pd.Series([props[k] for props, _ in features], dtype=SCHEMA.get(k, "object"))
                   for k in keys}
        geoms = gpd.GeoSeries([Polygon(coords[0]) for _, coords in features], crs="EPSG:4326")
        gpd.GeoDataFrame(columns, geometry=geoms, crs="EPSG:4326").to_file(
            path, driver="GPKG", layer=name, engine="pyogrio", geometry_type="Polygon")


def write_vector(path, target, layers):
    """Write ``layers`` to ``path`` in the format of ``target`` (the final name); a GeoJSON
    takes the ``answer`` layer (else the only one), a single-layer GeoPackage is named after
    the target file."""
    if os.path.exists(path):  # the partial file written at the start
        os.remove(path)
    if target.endswith(".geojson"):
        write_geojson(path, layers["answer"] if "answer" in layers else next(iter(layers.values())))
    else:
        if len(layers) == 1:
            layers = {os.path.splitext(os.path.basename(target))[0]: next(iter(layers.values()))}
        write_gpkg(path, layers)


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def fail(message, code=2):
    emit(event="error", message=message, exit_code=code)
    sys.stderr.write(f"Error: {message}\n")
    sys.exit(code)


def main(argv):
    if os.environ.get("FAKE_RRSIS_ARGV"):
        with open(os.environ["FAKE_RRSIS_ARGV"], "w") as fh:
            json.dump(argv, fh)
    if os.environ.get("FAKE_RRSIS_PIDFILE"):
        with open(os.environ["FAKE_RRSIS_PIDFILE"], "w") as fh:
            fh.write(str(os.getpid()))
    mode = os.environ.get("FAKE_RRSIS_MODE", "ok")

    parser = argparse.ArgumentParser(prog="rrsis")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment")
    seg.add_argument("scene")
    seg.add_argument("expression")
    seg.add_argument("-o", "--output", required=True)
    seg.add_argument("--model", default="btdnet-lite")
    seg.add_argument("--bands")
    for name in ("--tile", "--overlap", "--batch-size"):
        seg.add_argument(name, type=int)
    for name in ("--threshold", "--min-area", "--simplify"):
        seg.add_argument(name, type=float)
    seg.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    seg.add_argument("--dst-crs")
    seg.add_argument("--prob")
    seg.add_argument("--aoi")
    seg.add_argument("--assume-crs")
    seg.add_argument("--whole-scene", action="store_true")
    seg.add_argument("--per-tile", action="store_true")
    seg.add_argument("--candidates")
    seg.add_argument("--presence", type=float)
    seg.add_argument("--force", action="store_true")
    seg.add_argument("--source-label")
    seg.add_argument("--overwrite", action="store_true")
    seg.add_argument("--progress", choices=["bar", "json", "none"], default="bar")
    seg.add_argument("-v", action="count", default=0)
    seg.add_argument("-q", action="store_true")
    args = parser.parse_args(argv)

    if not os.path.isfile(args.scene):
        fail(f"the scene does not exist: {args.scene}")
    if os.environ.get("FAKE_RRSIS_COPY_SCENE"):
        shutil.copyfile(args.scene, os.environ["FAKE_RRSIS_COPY_SCENE"])
    if args.aoi and os.environ.get("FAKE_RRSIS_COPY_AOI"):
        shutil.copyfile(args.aoi, os.environ["FAKE_RRSIS_COPY_AOI"])
    if not args.expression.strip():
        fail("the expression is empty; describe the object to find, e.g. 'the lake'")
    for path in (args.output, args.candidates):
        if path and not path.endswith((".geojson", ".gpkg")):
            fail("the fake rrsis only writes .geojson and .gpkg")
        if path and os.path.exists(path) and not args.overwrite:
            fail(f"the output exists: {path} (use --overwrite)")
    if args.whole_scene and args.per_tile:
        fail("--whole-scene and --per-tile exclude each other; choose one")
    run_mode = "whole-scene" if args.whole_scene else ("per-tile" if args.per_tile else "scene")
    if args.candidates and run_mode != "scene":
        fail("--candidates is for scene-level runs; drop it with --per-tile or --whole-scene")
    if args.presence is not None and not 0 <= args.presence <= 1:
        fail(f"--presence must be in [0, 1], got {args.presence}")
    if mode == "crash":
        sys.stderr.write("Traceback (most recent call last):\n  ...\n")
        sys.stderr.write("Internal error: ZeroDivisionError: division by zero (set RRSIS_DEBUG=1 for the traceback)\n")
        sys.exit(1)

    run_id = uuid.uuid4().hex[:12]
    tiles = 40 if mode in ("slow", "stubborn") else 4
    emit(event="start", run_id=run_id, scene=args.scene, expression=args.expression,
         tiles=tiles, model=args.model)
    if mode == "noise":
        print("some library printed this", flush=True)
        sys.stderr.write("a warning on stderr\n")
        sys.stderr.flush()
    emit(event="log", level="info", message="normalisation from the checkpoint")
    emit(event="log", level="warning", message="scene is smaller than one tile")
    words = set(re.findall(r"[a-z]+", args.expression.lower()))
    unknown = [noun for noun in UNKNOWN_NOUNS if noun in words]
    abstain = None
    if run_mode == "scene" and unknown:
        names = ", ".join(f'"{u}"' for u in unknown)
        if args.force:
            emit(event="log", level="warning",
                 message=f"this model was not trained to find {names} (it knows: {KNOWN}); "
                 "answering anyway because of --force")
        else:
            abstain = f"unknown to this model: {names}; it knows: {KNOWN}"
            emit(event="log", level="warning",
                 message=f"this model was not trained to find {names}, so nothing is answered "
                 f"(it knows: {KNOWN}); --force answers anyway")

    tmp = args.output + f".tmp-{run_id}"
    with open(tmp, "w") as fh:
        fh.write("{ partial")

    def on_sigint(signum, frame):
        if mode == "stubborn":
            return
        os.remove(tmp)
        sys.stderr.write("Cancelled.\n")
        sys.exit(130)

    signal.signal(signal.SIGINT, signal.SIG_IGN if mode == "stubborn" else on_sigint)

    delay = 0.1 if mode in ("slow", "stubborn") else 0.0
    for i in range(tiles):
        time.sleep(delay)
        emit(event="progress", stage="predict", done=i + 1, total=tiles,
             percent=round(5 + 85 * (i + 1) / tiles, 2))

    props = {
        "expression": args.expression,
        "score": 0.9,
        "area_m2": 100.0,
        "model_id": args.model,
        "model_sha256": "0" * 64,
        "source": os.path.abspath(args.scene),
        "run_id": run_id,
    }
    done = {}
    cand_tmp = None
    if run_mode == "scene":
        candidates, rule = [], abstain
        if not abstain:
            sides = (10, 6, 3)  # the largest is the answer
            rule = f"largest of {len(sides)} lake candidates: {sides[0] ** 2:.0f} m2"
            for rank, (x, side) in enumerate(zip((0, 20, 30), sides), start=1):
                candidates.append(({**props, "score": round(0.9 - 0.1 * rank, 2), "score_max": 0.95,
                                    "area_m2": float(side * side), "pixels": side * side,
                                    "rank": rank, "selected": int(rank == 1), "glance": 0.5,
                                    "length_m": float(side), "width_m": float(side),
                                    "elongation": 1.0, "u": 0.1 * rank, "v": 0.5, "rule": rule},
                                   square(x, side)))
        answer = [c for c in candidates if c[0]["selected"]]
        # The real command writes the answer first; the order is no contract, and the plugin
        # must find each layer by name: write the candidates first.
        write_vector(tmp, args.output, {"candidates": candidates, "answer": answer})
        if args.candidates:
            cand_tmp = args.candidates + f".tmp-{run_id}"
            write_vector(cand_tmp, args.candidates, {"candidates": candidates})
        features = len(answer)
        done = dict(mode="scene", answer_features=len(answer), candidates=len(candidates),
                    candidates_output=os.path.abspath(args.candidates) if args.candidates else None,
                    rule=rule, abstained=bool(abstain))
    else:
        write_vector(tmp, args.output, {"segments": [(props, square(0, 10))]})
        features = 1
        done = dict(mode=run_mode)
    os.replace(tmp, args.output)
    if cand_tmp:
        os.replace(cand_tmp, args.candidates)
    manifest = args.output + ".manifest.json"
    with open(manifest, "w") as fh:
        json.dump({"run_id": run_id, "output": args.output, "argv": argv}, fh)
    emit(event="progress", stage="write", done=1, total=1, percent=100.0)
    if mode == "nodone":
        return 0
    emit(event="done", output=args.output, prob=args.prob, manifest=manifest, features=features,
         seconds=0.01, **done)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
