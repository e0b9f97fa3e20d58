"""``rrsis model``: inspect presets and checkpoints of every architecture."""

from __future__ import annotations

import click

from cli.data_options import custom_data_options, custom_options, format_opt
from cli.options import refuse_existing


@click.group("model")
def model():
    """Inspect models (presets and checkpoints) and export compact checkpoints."""


@model.command("list")
def list_cmd():
    """List the shipped (trained) models and the presets (architectures, untrained heads)."""
    from rrsis_geo.models import list_presets
    from rrsis_geo.models.registry import preset_architecture, preset_settings
    from rrsis_geo.weights import SHIPPED

    for m in SHIPPED.values():
        state = "" if m.path.is_file() else "  [missing from this installation]"
        click.echo(f"{m.name:21s} trained  {m.summary}{state}")
    for name in list_presets():
        bands = preset_settings(name)["bands"]
        what = "3 bands (red, green, blue)" if bands == 3 else f"{bands} bands"
        click.echo(f"{name:21s} preset   {preset_architecture(name).name} architecture only, {what}: random or "
                   "generic pretrained weights, untrained heads")


@model.command("info")
@click.argument("name_or_path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--no-flops", is_flag=True, help="Skip the FLOPs estimate.")
def info(name_or_path, as_json, no_flops):
    """Parameters per component, input size and FLOPs per tile of a preset or checkpoint."""
    import json

    from rrsis_geo.models import get_config, read_metadata
    from rrsis_geo.models.checkpoint import sha256_file, stored_config
    from rrsis_geo.models.registry import architecture_of, checkpoint_for
    from rrsis_geo.models.summary import count_parameters, meta_model, storage, summarize
    from rrsis_geo.weights import SHIPPED

    # shapes only: the model is built on the meta device (no weights are read or allocated)
    meta = None
    path = checkpoint_for(name_or_path)
    if path is None:
        cfg = get_config(name_or_path)
    else:
        meta = read_metadata(path)
        cfg = stored_config(meta, path)
    arch = architecture_of(cfg)
    m = meta_model(cfg)
    if no_flops:
        s = arch.settings(cfg)
        data = {"architecture": arch.name, "preset": cfg.name, "input_size": s["input_size"], "bands": s["bands"],
                "threshold": s["threshold"], "parameters": count_parameters(m)}
    else:
        data = summarize(m, meta)
    if meta is not None:
        data.update(storage(meta))
        data["sha256"] = sha256_file(path)
        if name_or_path in SHIPPED:
            data["model_card"] = str(SHIPPED[name_or_path].card)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    params = data.pop("parameters")
    for k, v in data.items():
        if k == "base":
            v = "; ".join(f"{p}* from {e['weights']} ({e['keys']} tensors, sha256 {e['sha256'][:12]})"
                          for p, e in v.items())
        elif isinstance(v, (dict, list)):
            v = json.dumps(v, default=str)
        click.echo(f"{k:16s} {v}")
    click.echo("parameters")
    for k, v in params.items():
        note = "  (training only)" if k in arch.training_only else ""
        click.echo(f"  {k:14s} {v / 1e6:9.2f} M{note}")


@model.command("export")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--no-half", is_flag=True, help="Keep float32 tensors (default: store float16).")
@click.option("--keep-pretrained", is_flag=True,
              help="Store unchanged pretrained encoders too (default: rebuild them from their package/path on load).")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
def export(src, dst, no_half, keep_pretrained, force):
    """Write a compact copy of checkpoint SRC to DST: float16 tensors, and pretrained encoders
    that training left unchanged stored by reference (rebuilt and hash-checked when loading)."""
    from rrsis_geo.models.export import export_checkpoint
    from rrsis_geo.models.sources import list_keys as _list

    refuse_existing(dst, force)
    r = export_checkpoint(src, dst, half=not no_half, drop_pretrained=not keep_pretrained)
    for prefix, n in r["dropped"].items():
        click.echo(f"{prefix:8s} not stored: {n} tensors unchanged from {r['base'][prefix]['weights']}")
    for prefix, why in r["kept"].items():
        click.echo(f"{prefix:8s} stored: {why}")
    if not no_half:
        click.echo(f"tensors  float16 (kept float32: {_list(r['fp32']) or 'none'})")
    click.echo(f"size     {r['src_bytes'] / 1e6:.1f} MB -> {r['dst_bytes'] / 1e6:.1f} MB")
    click.echo(f"wrote {dst}")


@model.command("select-bands")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--bands", required=True, metavar="B1,B2,...",
              help="The input bands to keep (1-based, in the order the new model takes them), e.g. 1,2,3.")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
def select_bands_cmd(src, dst, bands, force):
    """Write to DST the model SRC narrowed to some of its input bands (an RGB start from an RGBN
    model): the kept bands' input filters and every other tensor as trained. It computes what SRC
    computes with the dropped bands at their training mean; calibrate it again, or train it further
    from it (model.init)."""
    from rrsis_geo.engine.raster import parse_bands
    from rrsis_geo.models.bands import select_bands

    keep = parse_bands(bands)
    refuse_existing(dst, force)
    r = select_bands(src, dst, keep or ())
    click.echo(f"bands    {', '.join(map(str, r['bands']))} of {r['from_bands']} "
               f"(input filters selected in {', '.join(r['sliced']) or 'no tensor'})")
    click.echo("metadata threshold 0.5, no presence threshold: calibrate it again (rrsis model calibrate)")
    click.echo(f"wrote {dst}")


def calibration_io(f):
    """SRC, ROOT, --format, -o and --split of the calibrate commands."""
    for decorator in reversed([
        click.argument("src", type=click.Path(dir_okay=False)),
        click.argument("root", type=click.Path(file_okay=False)),
        format_opt,
        click.option("-o", "--out", "dst", type=click.Path(dir_okay=False), required=True,
                     help="The calibrated checkpoint (may be SRC itself, with --force)."),
        click.option("--split", type=click.Choice(["train", "val", "test"]), default="val", show_default=True,
                     help="Held-out data to choose on (not the split you report)."),
    ]):
        f = decorator(f)
    return f


@model.command("calibrate")
@calibration_io
@click.option("--metric", type=click.Choice(["mIoU", "oIoU"]), default="mIoU", show_default=True)
@click.option("--thresholds", default=None, metavar="T1,T2,...",
              help="Foreground probabilities to try [0.05, 0.10, ..., 0.95]; the model's current one is always tried.")
@click.option("--native", is_flag=True, help="Score at each image's native resolution (default: the network input size).")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@custom_data_options
def calibrate(src, root, fmt, dst, split, metric, thresholds, native, batch_size, device, force, expression_column,
              category_column, split_column, raster_column, chip_size, block_chips, val_fraction):
    """Choose the decision threshold of checkpoint SRC on held-out data in ROOT and write a copy
    that carries it: `rrsis segment` and `rrsis eval` use it unless given --threshold."""
    from rrsis_geo.errors import ConfigError
    from rrsis_geo.training.calibrate import DEFAULT_GRID, calibrate_checkpoint

    refuse_existing(dst, force)
    grid = DEFAULT_GRID
    if thresholds is not None:
        try:
            grid = tuple(float(t) for t in thresholds.split(","))
        except ValueError:
            raise ConfigError(f"--thresholds: expected numbers separated by commas, got {thresholds!r}") from None
    if split == "test":
        click.echo("note: choosing on the test split makes its test scores optimistic; choose on val", err=True)
    r = calibrate_checkpoint(src, fmt, root, dst, split, thresholds=grid, metric=metric, native=native,
                             batch_size=batch_size, device=device,
                             **custom_options(fmt, expression_column, category_column, chip_size, block_chips,
                                              val_fraction, split_column, raster_column))
    c = r["calibration"]
    click.echo(f"{fmt} {split}, {c['n']} samples ({'native resolution' if native else 'input size'})")
    click.echo(f"{'threshold':>9} {'mIoU':>7} {'oIoU':>7} {'Pr@0.5':>7}")
    for row in r["rows"]:
        mark = "  <- chosen" if row["threshold"] == c["threshold"] else ""
        click.echo(f"{row['threshold']:>9.2f} {row['mIoU']:>7.2f} {row['oIoU']:>7.2f} {row['Pr@0.5']:>7.2f}{mark}")
    click.echo(f"threshold {c['previous_threshold']:g} -> {c['threshold']:g} ({metric} {c['previous_score']:.2f} -> "
               f"{c['score']:.2f}); wrote {r['path']}")


@model.command("calibrate-presence")
@calibration_io
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@custom_data_options
def calibrate_presence(src, root, fmt, dst, split, device, force, expression_column, category_column,
                       split_column, raster_column, chip_size, block_chips, val_fraction):
    """Choose the presence threshold of checkpoint SRC on held-out images in ROOT: a scene-level
    `rrsis segment` answers "no confident match" when no candidate's peak probability reaches it."""
    from rrsis_geo.training.calibrate import calibrate_presence as run

    refuse_existing(dst, force)
    r = run(src, fmt, root, dst, split, device=device,
            **custom_options(fmt, expression_column, category_column, chip_size, block_chips,
                             val_fraction, split_column, raster_column))
    c = r["calibration"]
    click.echo(f"{fmt} {split}: {c['images']} images x {len(c['prompts'])} category prompts "
               f"({c['positives']} named, {c['negatives']} not)")
    click.echo(f"{'presence':>8} {'TPR':>6} {'TNR':>6} {'bal.acc':>7}")
    for row in r["rows"]:
        mark = "  <- chosen" if row["presence"] == c["presence"] else ""
        click.echo(f"{row['presence']:>8.2f} {row['tpr']:>6.2f} {row['tnr']:>6.2f} {row['balanced_accuracy']:>7.2f}{mark}")
    click.echo(f"presence {c['presence']:g}; wrote {r['path']}")
