"""Click options shared by the dataset-side subcommands (data check, eval), declared once."""

from __future__ import annotations

import click

FORMATS = ("rrsisd", "refsegrs", "custom")

format_opt = click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Dataset layout.")


def custom_data_options(f):
    """Options of the custom GeoTIFF + vector reader (ignored by the official layouts)."""
    for opt in reversed([
        click.option("--expression-column", default=None, help="Custom data: column with the expressions [expression]."),
        click.option("--category-column", default=None, help="Custom data: column with category names."),
        click.option("--split-column", default=None, help="Custom data: column with train/val/test per row (instead of hashed blocks)."),
        click.option("--raster-column", default=None, help="Custom data: column naming each row's raster; the whole raster is the frame."),
        click.option("--chip-size", type=click.IntRange(8), default=None, help="Custom data: chip side in pixels [512]."),
        click.option("--block-chips", type=click.IntRange(1), default=None, help="Custom data: split block side in chips [4]."),
        click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None, help="Custom data: share of blocks for validation [0.2]."),
    ]):
        f = opt(f)
    return f


def custom_options(fmt: str, expression_column, category_column, chip_size, block_chips, val_fraction,
                   split_column=None, raster_column=None) -> dict:
    """The custom-data options the user gave (the reader's defaults, or a checkpoint's, fill the rest)."""
    if fmt != "custom":
        return {}
    given = {"expression_column": expression_column, "category_column": category_column,
             "chip_size": chip_size, "block_chips": block_chips, "val_fraction": val_fraction,
             "split_column": split_column, "raster_column": raster_column}
    return {k: v for k, v in given.items() if v is not None}
