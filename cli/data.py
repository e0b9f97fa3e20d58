"""``rrsis data``: dataset tools (``rrsis data check``)."""

from __future__ import annotations

import json
import sys

import click

from cli.data_options import custom_data_options, custom_options, format_opt


@click.group()
def data():
    """Dataset tools."""


@data.command()
@format_opt
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report (with every sample) instead.")
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "val", "test"]), help="Splits to check (default: all).")
@click.option("--strict", is_flag=True, help="Exit with code 2 when any integrity problem is found.")
@custom_data_options
def check(fmt, root, as_json, splits, strict, expression_column, category_column, split_column, raster_column, chip_size, block_chips, val_fraction):
    """Count samples per split and category, summarise mask areas and report integrity
    problems (missing or unreadable images, refs without masks, empty masks)."""
    from rrsis_geo.data.check import check_dataset, format_report

    progress = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        def progress(it):
            return tqdm(it, desc="checking", unit="sample", leave=False)

    report = check_dataset(fmt, root, splits=splits or ("train", "val", "test"), progress=progress,
                           **custom_options(fmt, expression_column, category_column, chip_size, block_chips, val_fraction,
                                                 split_column, raster_column))
    click.echo(json.dumps(report, indent=1) if as_json else format_report(report))
    if strict and report["problems"]:
        raise SystemExit(2)
