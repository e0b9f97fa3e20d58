#!/usr/bin/env python3
"""TEST DOUBLE: a fake ``rrsis`` command that speaks the real CLI's protocol.

It exists to test the plugin's subprocess handling (progress lines, cancellation, error
mapping, leftovers) deterministically and fast. It does no segmentation: it writes one
square polygon as GeoJSON. End-to-end tests use the real command, never this one.

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
import os
import shutil
import signal
import sys
import time
import uuid


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
    if not args.output.endswith(".geojson"):
        fail("the fake rrsis only writes .geojson")
    if os.path.exists(args.output) and not args.overwrite:
        fail(f"the output exists: {args.output} (use --overwrite)")
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
    square = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]
    collection = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": props,
                      "geometry": {"type": "Polygon", "coordinates": square}}],
    }
    with open(tmp, "w") as fh:
        json.dump(collection, fh)
    os.replace(tmp, args.output)
    manifest = args.output + ".manifest.json"
    with open(manifest, "w") as fh:
        json.dump({"run_id": run_id, "output": args.output, "argv": argv}, fh)
    emit(event="progress", stage="write", done=1, total=1, percent=100.0)
    if mode == "nodone":
        return 0
    emit(event="done", output=args.output, prob=args.prob, manifest=manifest, features=1,
         seconds=0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
