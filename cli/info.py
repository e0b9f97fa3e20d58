"""``rrsis info``: what the engine sees in a raster, and the tile plan it would use."""

from __future__ import annotations

import json

import click

from cli.options import assume_crs_opt, bands_opt, overlap_opt, tile_opt


@click.command(short_help="Summarise a raster and its tile plan.")
@click.argument("scene", type=click.Path(dir_okay=False))
@bands_opt
@tile_opt
@overlap_opt
@assume_crs_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(scene, bands, tile, overlap, assume_crs, as_json):
    """Print SCENE's size, CRS, resolution, bands, validity masks and the tile plan."""
    from rrsis_geo.engine.raster import open_scene, parse_bands
    from rrsis_geo.engine.summary import scene_summary
    from rrsis_geo.engine.tiling import default_overlap

    tile = tile or 512
    overlap = default_overlap(tile) if overlap is None else overlap
    scene_info = open_scene(scene, parse_bands(bands), assume_crs)
    summary = scene_summary(scene_info, tile, overlap)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")
