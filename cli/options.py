"""Options shared by several subcommands, declared once and stacked as decorators."""

from __future__ import annotations

import click

from rrsis_geo.engine.blending import DEFAULT_WINDOW, WINDOWS  # numpy only: help stays fast
from rrsis_geo.weights import DEFAULT_MODEL  # no torch: help stays fast


def refuse_existing(path, force: bool) -> None:
    """The one-line error for an output file that exists without --force."""
    from pathlib import Path

    from rrsis_geo.errors import OutputError

    if Path(path).exists() and not force:
        raise OutputError(f"{path} exists: pass --force to overwrite")


class _OneLine:
    """A click range type whose refusals are one-line input errors (exit 2, no usage text) that
    name the option; floats must also be finite (click's ranges let ``nan`` through)."""

    def __init__(self, *args, hint: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.hint = hint

    def convert(self, value, param, ctx):
        import math

        from rrsis_geo.errors import InputError

        name = param.opts[0] if param is not None and param.opts else "value"
        try:
            number = super().convert(value, param, ctx)
        except click.BadParameter as exc:
            raise InputError(f"{name}: {exc.message.rstrip('.')}{self.hint}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise InputError(f"{name}: {value!r} is not a finite number")
        return number


class FiniteRange(_OneLine, click.FloatRange):
    """``click.FloatRange`` that refuses ``nan`` and infinities, in one line."""


class BoundedInt(_OneLine, click.IntRange):
    """``click.IntRange`` whose refusal is one line with an optional ``hint``."""


MAX_TILE = 8192  # px: a larger tile's buffers (probabilities, blending weights) exceed a few GB
MAX_BATCH = 1024  # tiles per model call

overwrite_opt = click.option("--overwrite", is_flag=True, help="Replace existing output files.")

bands_opt = click.option(
    "--bands", metavar="B1,B2,...", default=None,
    help="Which bands (1-based), in the model's order, feed the model (btdnet-lite-demo: red, green, blue, "
    "NIR; the RGB presets: red, green, blue). Default: the first non-alpha bands (a single band is used as grey).",
)

assume_crs_opt = click.option(
    "--assume-crs", metavar="CRS", default=None,
    help="CRS to assume when the raster has none (e.g. EPSG:32633).",
)

tile_opt = click.option("--tile", type=BoundedInt(16, MAX_TILE, hint=" (larger tiles need more memory than they save)"),
                        default=None,
                        help="Tile side in pixels (16 to 8192). Default: the side that covers the ground of one of "
                             "the model's training windows (from its file), else the model's input size.")
overlap_opt = click.option("--overlap", type=BoundedInt(0, MAX_TILE), default=None,
                           help="Minimum overlap between neighbouring tiles in pixels. Default: tile/8.")

progress_opt = click.option(
    "--progress", type=click.Choice(["bar", "json", "none"]), default="bar", show_default=True,
    help="Progress display: a bar on stderr, JSON lines on stdout (for programs), or nothing.",
)


def verbosity_opts(f):
    f = click.option("-q", "--quiet", count=True, help="Less output.")(f)
    f = click.option("-v", "--verbose", count=True, help="More output.")(f)
    return f


def setup_logging(verbose: int, quiet: int) -> None:
    import logging

    level = logging.WARNING + 10 * (quiet - verbose)
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s: %(message)s")
    logging.captureWarnings(True)


def run_opts(f):
    """Every option of a segmentation run that is not an output path: ``rrsis segment`` and
    ``rrsis batch`` (which applies them to each scene) share them. :func:`segment_options` turns
    them into :class:`~rrsis_geo.engine.segment.SegmentOptions`."""
    for opt in reversed(_RUN_OPTS):
        f = opt(f)
    return f


def segment_options(opts: dict, **paths):
    """Pop :func:`run_opts`' engine options from ``opts`` (and the segment-only ones present) into a
    :class:`~rrsis_geo.engine.segment.SegmentOptions`; ``paths`` adds or overrides fields."""
    from rrsis_geo.engine.raster import parse_bands
    from rrsis_geo.engine.segment import SegmentOptions

    fields = {name: opts.pop(name) for name in _ENGINE_KEYS + _SEGMENT_ONLY_KEYS if name in opts}
    return SegmentOptions(bands=parse_bands(fields.pop("bands")), min_area_m2=fields.pop("min_area"),
                          simplify_m=fields.pop("simplify"), resume=not fields.pop("no_resume"),
                          **fields, **paths)


# The keys of run_opts that become SegmentOptions fields (model, device, progress and verbosity do not),
# and segment's output-path options.
_ENGINE_KEYS = ("bands", "tile", "overlap", "batch_size", "threshold", "min_area", "simplify", "dst_crs", "aoi",
                "window", "per_tile", "whole_scene", "presence", "force", "no_resume", "assume_crs", "overwrite")
_SEGMENT_ONLY_KEYS = ("prob_path", "preview_path", "candidates_path", "source_label")

_RUN_OPTS = [
    click.option("-m", "--model", default=DEFAULT_MODEL, show_default=True, metavar="NAME_OR_PATH",
                 help="auto (the trained model for the scene's bands: btdnet-lite-demo for 4+ bands, red, green, "
                 "blue, NIR first; btdnet-lite-demo-rgb for 3), a shipped model, a preset of any architecture "
                 "(`rrsis model list`: btdnet-*, rsrefseg-*; untrained heads) or a .safetensors checkpoint."),
    bands_opt,
    tile_opt,
    overlap_opt,
    click.option("--batch-size", type=BoundedInt(1, MAX_BATCH), default=4, show_default=True,
                 help="Tiles per model call (at most 1024)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--threshold", type=FiniteRange(0, 1, max_open=True), default=None,
                 help="Probability above which a pixel is the target. Default: the model's (0.5, or the one "
                 "`rrsis model calibrate` stored; btdnet-lite-demo: 0.15)."),
    click.option("--min-area", type=FiniteRange(min=0), default=0.0, show_default=True,
                 help="Drop objects smaller than this many square metres (any CRS)."),
    click.option("--simplify", type=FiniteRange(min=0), default=0.0, show_default=True,
                 help="Simplify outlines with this tolerance in metres (any CRS)."),
    click.option("--dst-crs", default=None, metavar="CRS", help="Reproject the polygons (default: the raster's CRS)."),
    click.option("--aoi", default=None, type=click.Path(dir_okay=False),
                 help="Only look inside these polygons (any vector file)."),
    click.option("--window", type=click.Choice(list(WINDOWS)), default=DEFAULT_WINDOW,
                 show_default=True, help="Blending window in tile overlaps."),
    click.option("--per-tile", is_flag=True,
                 help="Every object any tile finds, with no scene-level choice (category mapping: "
                 "\"all the fields\" as a map)."),
    click.option("--whole-scene", is_flag=True,
                 help="Resample the whole scene to the model's input and predict once (for scenes of "
                 "about one tile)."),
    click.option("--presence", type=FiniteRange(0, 1), default=None,
                 help="Lowest peak probability of a candidate that counts as present (default: the model's)."),
    click.option("--force", is_flag=True,
                 help="Answer even when the sentence names something the model was not trained to find."),
    click.option("--no-resume", is_flag=True, help="Start afresh even if an interrupted run of the same job exists."),
    assume_crs_opt,
    overwrite_opt,
    progress_opt,
    verbosity_opts,
]
