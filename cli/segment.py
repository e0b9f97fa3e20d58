"""``rrsis segment``: find the object a sentence describes and write it as polygons."""

from __future__ import annotations

import os
import signal

import click

from rrsis_geo.engine.blending import DEFAULT_WINDOW, WINDOWS  # numpy only: help stays fast
from rrsis_geo.weights import DEFAULT_MODEL  # no torch: help stays fast

from cli.options import (
    MAX_BATCH,
    BoundedInt,
    FiniteRange,
    assume_crs_opt,
    bands_opt,
    overlap_opt,
    overwrite_opt,
    progress_opt,
    setup_logging,
    tile_opt,
    verbosity_opts,
)


@click.command(short_help="Segment the object an expression refers to.")
@click.argument("scene", type=click.Path(dir_okay=False))
@click.argument("expression")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output vector file; the format follows the extension "
              "(.gpkg, .geojson, .fgb, .parquet, .shp).")
@click.option("-m", "--model", default=DEFAULT_MODEL, show_default=True, metavar="NAME_OR_PATH",
              help="A shipped model (btdnet-lite-demo, trained), a preset of any architecture "
              "(`rrsis model list`: btdnet-*, rsrefseg-*; untrained heads) or a .safetensors checkpoint.")
@bands_opt
@tile_opt
@overlap_opt
@click.option("--batch-size", type=BoundedInt(1, MAX_BATCH), default=4, show_default=True,
              help="Tiles per model call (at most 1024).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threshold", type=FiniteRange(0, 1, max_open=True), default=None,
              help="Probability above which a pixel is the target. Default: the model's (0.5, or the one "
              "`rrsis model calibrate` stored; btdnet-lite-demo: 0.15).")
@click.option("--min-area", type=FiniteRange(min=0), default=0.0, show_default=True,
              help="Drop objects smaller than this many square metres (any CRS).")
@click.option("--simplify", type=FiniteRange(min=0), default=0.0, show_default=True,
              help="Simplify outlines with this tolerance in metres (any CRS).")
@click.option("--dst-crs", default=None, metavar="CRS", help="Reproject the polygons (default: the raster's CRS).")
@click.option("--prob", "prob_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the probability raster (Cloud-Optimized GeoTIFF).")
@click.option("--preview", "preview_path", default=None, type=click.Path(dir_okay=False),
              help="Also write a PNG of the polygons drawn over the scene.")
@click.option("--aoi", default=None, type=click.Path(dir_okay=False),
              help="Only look inside these polygons (any vector file).")
@click.option("--window", type=click.Choice(list(WINDOWS)), default=DEFAULT_WINDOW,
              show_default=True, help="Blending window in tile overlaps.")
@click.option("--per-tile", is_flag=True,
              help="Every object any tile finds, with no scene-level choice (category mapping: "
              "\"all the fields\" as a map).")
@click.option("--whole-scene", is_flag=True,
              help="Resample the whole scene to the model's input and predict once (for scenes of "
              "about one tile).")
@click.option("--candidates", "candidates_path", default=None, type=click.Path(dir_okay=False),
              help="Also write every candidate the answer was chosen from (a .gpkg output holds them "
              "as its 'candidates' layer anyway).")
@click.option("--presence", type=FiniteRange(0, 1), default=None,
              help="Lowest peak probability of a candidate that counts as present (default: the model's).")
@click.option("--force", is_flag=True,
              help="Answer even when the sentence names something the model was not trained to find.")
@click.option("--source-label", default=None, metavar="TEXT",
              help="What the features' `source` attribute records instead of the scene path "
              "(e.g. the original layer when SCENE is a temporary export).")
@click.option("--no-resume", is_flag=True, help="Start afresh even if an interrupted run of the same job exists.")
@assume_crs_opt
@overwrite_opt
@progress_opt
@verbosity_opts
def segment(scene, expression, output, model, device, progress, verbose, quiet, **opts):
    """Find the object EXPRESSION describes in SCENE (a GeoTIFF) and write its polygons.

    By default the sentence is answered in the frame of the whole scene: the model maps the
    objects of the kind it names, and size, position and relation words ("the largest",
    "in the north-west", "east of the river") choose among them. A .gpkg output holds the
    layers 'answer' and 'candidates'.

    \b
    Example:
      rrsis segment scene.tif "the largest lake in the north-west" -o lake.gpkg
    """
    setup_logging(verbose, quiet)
    from cli.progress import Reporter
    from rrsis_geo.errors import RrsisError

    reporter = Reporter(progress, quiet)
    # A terminate from a parent process (the QGIS plugin) cancels like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = _run(scene, expression, output, model, device, reporter, opts)
    except RrsisError as exc:
        reporter.error(str(exc), exc.exit_code)
        raise
    except KeyboardInterrupt:
        reporter.error("cancelled", 130)
        raise
    except Exception as exc:  # a full disk is reported like bad input (see cli.main)
        from cli.main import disk_full_message
        from rrsis_geo.errors import OutputError

        message = disk_full_message(exc)
        if message is None:
            raise
        reporter.error(message, OutputError.exit_code)
        raise OutputError(message) from exc
    reporter.close()
    done = {"event": "done", "output": result.output, "prob": result.prob,
            "manifest": result.manifest, "features": result.features, "seconds": result.seconds,
            "mode": result.mode}
    if result.mode == "scene":
        done.update(answer_features=result.answer_features, candidates=result.candidates,
                    candidates_output=result.candidates_output, rule=result.rule, abstained=result.abstained)
    if progress == "json":
        reporter(done)
    elif not quiet:
        tiles = f"{result.tiles_predicted} tile{'s' if result.tiles_predicted != 1 else ''}"
        if result.mode == "scene":
            what = "no answer" if result.abstained else f"answer: {_n(result.answer_features, 'feature')}"
            click.echo(f"{what} ({result.rule}); {_n(result.candidates, 'candidate')} -> {result.output} "
                       f"({tiles}, {result.seconds:.1f} s)", err=True)
        else:
            click.echo(f"{_n(result.features, 'feature')} -> {result.output} ({tiles}, {result.seconds:.1f} s)",
                       err=True)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run(scene, expression, output, model, device, reporter, opts):
    from rrsis_geo.engine.raster import parse_bands
    from rrsis_geo.engine.segment import SegmentOptions, preflight, segment_scene
    from rrsis_geo.errors import ExpressionError

    try:
        expression.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
        raise ExpressionError("the expression is not valid UTF-8 text; check the terminal's or the "
                              "script's encoding") from None

    options = SegmentOptions(
        bands=parse_bands(opts.pop("bands")), min_area_m2=opts.pop("min_area"),
        simplify_m=opts.pop("simplify"), resume=not opts.pop("no_resume"), **opts,
    )
    # Bad input fails before a model is built; the band count is checked once the model is known.
    # A checkpoint file is an input: no output may replace it.
    inputs = {"the model checkpoint": model} if os.path.isfile(model) else None
    preflight(scene, expression, output, options, needed_bands=None, inputs=inputs)

    from rrsis_geo.models import load_predictor

    predictor = load_predictor(model, device=device)
    if predictor.info.checksum.startswith("preset:"):
        reporter = _after_start(reporter, {
            "event": "log", "level": "warning",
            "message": f"{model} is an untrained preset: its heads are random, so its polygons mean nothing "
                       "(use a trained model for real results)"})
    return segment_scene(scene, expression, output, predictor, options, progress=reporter, inputs=inputs)


def _after_start(reporter, event: dict):
    """``reporter`` that also reports ``event`` right after the run's ``start`` event (once the
    input is validated; ``start`` stays the first JSON line)."""
    pending = [event]

    def report(e: dict) -> None:
        reporter(e)
        if e.get("event") == "start" and pending:
            reporter(pending.pop())

    return report
