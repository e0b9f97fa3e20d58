"""``rrsis batch``: one expression over many scenes, serially or on a Dask cluster."""

from __future__ import annotations

import click

from cli.options import BoundedInt, run_opts, segment_options, setup_logging


def _scheduler_handler(ctx, param, value: str) -> str:
    from rrsis_geo.errors import InputError

    value = value.strip()
    if value in ("local", "none") or "://" in value:
        return value
    if value.count(":") == 1 and value.rsplit(":", 1)[1].isdigit():  # host:port
        return "tcp://" + value
    raise InputError(f"--scheduler: {value!r} is not 'local', 'none' or a scheduler address (tcp://HOST:PORT)")


@click.command(short_help="Segment what one expression describes in many scenes.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUTS...")
@click.argument("expression")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Output folder: <scene stem>.gpkg per scene, index.gpkg and answers.gpkg.")
@run_opts
@click.option("--prob", is_flag=True, help="Also write each scene's probability raster (<stem>.prob.tif, COG).")
@click.option("--preview", is_flag=True, help="Also write each scene's preview PNG (<stem>.preview.png).")
@click.option("--scheduler", default="local", show_default=True, callback=_scheduler_handler,
              metavar="local|none|tcp://HOST:PORT",
              help="Where scenes run: a local Dask cluster, serially in this process, or an existing Dask "
              "cluster's scheduler.")
@click.option("--workers", type=BoundedInt(1, 1024), default=None,
              help="Local cluster workers (default: one per GPU, else one per 4 CPU cores).")
@click.option("--threads", type=BoundedInt(1, 1024), default=None,
              help="Model threads per worker (default: the machine's cores divided among its workers).")
@click.option("--retries", type=BoundedInt(0, 100), default=2, show_default=True,
              help="Times a scene runs again when the worker running it is lost.")
def batch(inputs, expression, outdir, model, device, progress, verbose, quiet, prob, preview, scheduler, workers,
          threads, retries, **opts):
    """Find what EXPRESSION describes in every scene INPUTS names, one task per scene.

    INPUTS are raster files, globs ('tiles/**/*.tif'), folders (their rasters) or lists: a .txt
    with one scene per line, or a .csv with a 'scene' column and an optional 'expression' column
    (EXPRESSION is then the default for rows that give none). Each scene is segmented exactly as
    `rrsis segment` would into OUTDIR/<stem>.gpkg (with its manifest); OUTDIR/index.gpkg has one
    row per scene (footprint, status, counts, seconds, error) and OUTDIR/answers.gpkg every
    answer feature. Rerunning the same command skips finished scenes and resumes interrupted ones.

    Exit code 0 when every scene succeeded, 3 when some failed (see index.gpkg), 2 for bad input.

    \b
    Examples:
      rrsis batch ortho/ "the largest lake" -o lakes/
      rrsis batch scenes.csv "the lake" -o out/ --scheduler tcp://10.0.0.5:8786
    """
    setup_logging(verbose, quiet)
    from cli.progress import BatchReporter, run_reported

    reporter = BatchReporter(progress, quiet)
    result = run_reported(reporter, lambda: _run(inputs, expression, outdir, model, device, prob, preview, scheduler,
                                                 workers, threads, retries, opts, reporter, verbose))
    reporter.finish(result)
    if result.failed:
        from rrsis_geo.errors import BatchIncomplete

        raise BatchIncomplete(f"{result.failed} of {len(result.records)} scenes failed; their messages are in "
                              f"{result.index}")


def _run(inputs, expression, outdir, model, device, prob, preview, scheduler, workers, threads, retries, opts,
         reporter, verbose):
    import logging
    import os

    from rrsis_geo.batch.inputs import list_scenes
    from rrsis_geo.batch.run import run_batch
    from rrsis_geo.batch.tasks import BatchJob

    options = segment_options(opts)
    scenes = list_scenes(list(inputs), expression)
    if scheduler != "none":
        import distributed  # noqa: F401 - configures its loggers on import; quieten them after

        logging.getLogger("distributed").setLevel(logging.INFO if verbose else logging.ERROR)
    job = BatchJob(outdir=os.path.abspath(outdir), model=model, device=device, options=options, prob=prob,
                   preview=preview, threads=threads)
    return run_batch(scenes, job, scheduler=scheduler, workers=workers, retries=retries, progress=reporter)
