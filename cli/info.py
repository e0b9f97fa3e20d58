"""``rrsis info``: what the engine sees in a raster, and the tile plan it would use."""

from __future__ import annotations

import json

import click

from rrsis_geo.weights import AUTO, DEFAULT_MODEL, choose_model  # no torch: help stays fast

from cli.options import assume_crs_opt, bands_opt, overlap_opt, tile_opt


@click.command(short_help="Summarise a raster and its tile plan.")
@click.argument("scene", type=click.Path(dir_okay=False))
@click.option("-m", "--model", default=DEFAULT_MODEL, show_default=True, metavar="NAME_OR_PATH",
              help="The model whose bands and tile plan to show, as `rrsis segment --model` takes it "
              "(auto: the one chosen for the scene's bands).")
@bands_opt
@tile_opt
@overlap_opt
@assume_crs_opt
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(scene, model, bands, tile, overlap, assume_crs, as_json):
    """Print SCENE's size, CRS, resolution, bands, validity masks and the tile plan
    `rrsis segment` would use with MODEL (a per-tile pass at the same options)."""
    from rrsis_geo.engine.raster import open_scene, parse_bands
    from rrsis_geo.engine.resolution import training_tile
    from rrsis_geo.engine.summary import scene_summary
    from rrsis_geo.engine.tiling import default_overlap

    bands = parse_bands(bands)
    if model == AUTO:
        first = open_scene(scene, bands, assume_crs, needed_bands=None)
        model = choose_model(model, first.offered_bands(bands))
    minfo = model_info(model)
    scene_info = open_scene(scene, bands, assume_crs, needed_bands=minfo.bands)
    tile, warning = training_tile(scene_info, minfo, tile)
    overlap = default_overlap(tile) if overlap is None else overlap
    summary = {"model": f"{model} ({minfo.bands} bands, input {minfo.input_size} px)",
               **scene_summary(scene_info, tile, overlap)}
    if warning:
        summary["resolution_warning"] = warning
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


def model_info(name_or_path: str):
    """The :class:`~rrsis_geo.predictor.ModelInfo` settings ``segment`` takes from a model: read
    from a checkpoint's header without torch, or from a preset's config."""
    from rrsis_geo.checkpoint_header import model_settings
    from rrsis_geo.predictor import ModelInfo

    meta = model_settings(name_or_path)
    if meta is None:  # a preset, or a name the registry refuses in one line
        from rrsis_geo.models.registry import checkpoint_for, preset_settings

        checkpoint_for(name_or_path)
        meta = preset_settings(name_or_path)
    extra = {k: meta[k] for k in ("radiometry", "gsd_m_range", "chip_px") if meta.get(k) is not None}
    return ModelInfo(model_id=str(name_or_path), checksum="", input_size=int(meta["input_size"]),
                     bands=int(meta["bands"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]),
                     threshold=float(meta["threshold"]), gsd_m=meta.get("gsd_m"), extra=extra)
