"""Options shared by several subcommands, declared once and stacked as decorators."""

from __future__ import annotations

import click


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
