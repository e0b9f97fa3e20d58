"""Options shared by several subcommands, declared once and stacked as decorators."""

from __future__ import annotations

import click


def refuse_existing(path, force: bool) -> None:
    """The one-line error for an output file that exists without --force."""
    from pathlib import Path

    from rrsis_geo.errors import OutputError

    if Path(path).exists() and not force:
        raise OutputError(f"{path} exists: pass --force to overwrite")


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

tile_opt = click.option("--tile", type=click.IntRange(min=16), default=None,
                        help="Tile side in pixels. Default: the side that covers the ground of one of the model's "
                             "training windows (from its file), else the model's input size.")
overlap_opt = click.option("--overlap", type=click.IntRange(min=0), default=None,
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
