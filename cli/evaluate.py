"""``rrsis eval``: evaluate a checkpoint on a dataset split with the papers' metrics."""

from __future__ import annotations

import click

from cli.data_options import custom_data_options, custom_options, format_opt
from cli.options import FiniteRange


@click.command()
@click.option("--model", "--weights", "checkpoint", type=click.Path(dir_okay=False), required=True, help="A .safetensors checkpoint (from rrsis train).")
@format_opt
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Folder for metrics.json/csv, per_sample.csv and grid.png.")
@click.option("--native", is_flag=True, help="Score at each image's native resolution (default: the network input size).")
@click.option("--strict", is_flag=True, help="Pr@X counts IoU > X (RSRefSeg) instead of >= X.")
@click.option("--threshold", type=FiniteRange(0, 1, min_open=True, max_open=True), default=None,
              help="Foreground probability a pixel must exceed (default: the model's, 0.5 = fg > bg [paper] "
              "unless `rrsis model calibrate` chose one); the value `rrsis segment --threshold` would use.")
@click.option("--empty", type=click.Choice(["zero", "one", "exclude"]), default="zero", show_default=True, help="Score of empty-target samples (see the metrics docs).")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True)
@click.option("--grid", type=click.IntRange(0), default=8, show_default=True, help="Examples in grid.png (0: none).")
@click.option("--limit", type=click.IntRange(0), default=0, help="Evaluate only the first N samples.")
@click.option("--skip-corrupt", is_flag=True, help="Skip (and count) unreadable images instead of stopping.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of the table.")
@custom_data_options
def evaluate(checkpoint, fmt, root, split, out_dir, native, strict, threshold, empty, batch_size, device, amp, grid, limit,
             skip_corrupt, as_json, expression_column, category_column, split_column, raster_column, chip_size, block_chips, val_fraction):
    """Print the paper-style table (mIoU, oIoU, Pr@0.5-0.9, per category, sample count)."""
    import json
    import sys

    from rrsis_geo.training.evaluate import evaluate_checkpoint
    from rrsis_geo.training.metrics import format_table

    progress = None
    if sys.stderr.isatty() and not as_json:
        from tqdm import tqdm

        def progress(it):
            return tqdm(it, desc="evaluating", unit="batch", leave=False)

    report = evaluate_checkpoint(checkpoint, fmt, root, split, out_dir=out_dir, native=native, strict=strict, empty=empty,
                                 threshold=threshold,
                                 batch_size=batch_size, device=device, amp=amp, grid=grid if out_dir else 0, limit=limit,
                                 on_error="skip" if skip_corrupt else "raise", progress=progress,
                                 **custom_options(fmt, expression_column, category_column, chip_size, block_chips, val_fraction,
                                                 split_column, raster_column))
    if as_json:
        click.echo(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
        return
    opts = report["options"]
    where = "native resolution" if opts["native_resolution"] else f"{opts['input_size']} px"
    if threshold is not None or opts["threshold"] != 0.5:
        where += f", threshold {opts['threshold']:g}"
    click.echo(format_table(report["metrics"], f"{fmt} {split} ({where}, Pr {'>' if opts['strict'] else '>='} X)"))
    if report["skipped_unreadable"]:
        click.echo(f"skipped {report['skipped_unreadable']} unreadable samples")
    if out_dir:
        click.echo(f"wrote {out_dir}/metrics.json, metrics.csv, per_sample.csv" + (", grid.png" if grid else ""))
