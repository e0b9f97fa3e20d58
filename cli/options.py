"""Click options shared by the training-side subcommands (declared once, stacked as decorators)."""

from __future__ import annotations

import click

FORMATS = ("rrsisd", "refsegrs", "custom")

format_opt = click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Dataset layout.")


def custom_data_options(f):
    """Options of the custom GeoTIFF + vector reader (ignored by the official layouts)."""
    for opt in reversed([
        click.option("--expression-column", default="expression", show_default=True, help="Custom data: column with the expressions."),
        click.option("--category-column", default=None, help="Custom data: column with category names."),
        click.option("--chip-size", type=click.IntRange(8), default=512, show_default=True, help="Custom data: chip side in pixels."),
        click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True, help="Custom data: share of blocks for validation."),
    ]):
        f = opt(f)
    return f


def custom_options(fmt: str, expression_column, category_column, chip_size, val_fraction) -> dict:
    if fmt != "custom":
        return {}
    return {"expression_column": expression_column, "category_column": category_column,
            "chip_size": chip_size, "val_fraction": val_fraction}
