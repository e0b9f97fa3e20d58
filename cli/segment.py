"""``rrsis segment``: find the object a sentence describes and write it as polygons."""

from __future__ import annotations

import os

import click

from rrsis_geo.weights import choose_model  # no torch: help stays fast

from cli.options import run_opts, segment_options, setup_logging


@click.command(short_help="Segment the object an expression refers to.")
@click.argument("scene", type=click.Path(dir_okay=False))
@click.argument("expression")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output vector file; the format follows the extension "
              "(.gpkg, .geojson, .fgb, .parquet, .shp).")
@run_opts
@click.option("--prob", "prob_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the probability raster (Cloud-Optimized GeoTIFF).")
@click.option("--preview", "preview_path", default=None, type=click.Path(dir_okay=False),
              help="Also write a PNG of the polygons drawn over the scene.")
@click.option("--candidates", "candidates_path", default=None, type=click.Path(dir_okay=False),
              help="Also write every candidate the answer was chosen from (a .gpkg output holds them "
              "as its 'candidates' layer anyway).")
@click.option("--source-label", default=None, metavar="TEXT",
              help="What the features' `source` attribute records instead of the scene path "
              "(e.g. the original layer when SCENE is a temporary export).")
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
    from cli.progress import Reporter, run_reported

    reporter = Reporter(progress, quiet)
    result = run_reported(reporter, lambda: _run(scene, expression, output, model, device, reporter, opts))
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


def _run(scene, expression, output, model, device, reporter, opts):
    from rrsis_geo.engine.segment import preflight, segment_scene

    options = segment_options(opts)
    # Bad input fails before a model is built; the band count is checked once the model is known.
    # A checkpoint file is an input: no output may replace it.
    inputs = {"the model checkpoint": model} if os.path.isfile(model) else None
    info = preflight(scene, expression, output, options, needed_bands=None, inputs=inputs)
    n_bands = info.offered_bands(options.bands)
    chosen = choose_model(model, n_bands)

    from rrsis_geo.models import load_predictor

    predictor = load_predictor(chosen, device=device)
    if chosen != model:
        reporter = _after_start(reporter, {
            "event": "log", "level": "info",
            "message": f"model: {chosen}, chosen for {n_bands} input bands (--model names another)"
                       + alpha_note(info, options.bands)})
    if predictor.info.checksum.startswith("preset:"):
        reporter = _after_start(reporter, {
            "event": "log", "level": "warning",
            "message": f"{model} is an untrained preset: its heads are random, so its polygons mean nothing "
                       "(use a trained model for real results)"})
    return segment_scene(scene, expression, output, predictor, options, progress=reporter, inputs=inputs)


def alpha_note(info, bands) -> str:
    """How to read bands marked alpha as data, when they went uncounted."""
    alpha = [str(i + 1) for i, ci in enumerate(info.color_interp) if ci == "alpha"]
    if bands or not alpha:
        return ""
    every = ",".join(str(i) for i in range(1, info.count + 1))
    return (f"; band {','.join(alpha)} is marked alpha and read as the validity mask: "
            f"--bands {every} reads it as data")


def _after_start(reporter, event: dict):
    """``reporter`` that also reports ``event`` right after the run's ``start`` event (once the
    input is validated; ``start`` stays the first JSON line)."""
    pending = [event]

    def report(e: dict) -> None:
        reporter(e)
        if e.get("event") == "start" and pending:
            reporter(pending.pop())

    return report
