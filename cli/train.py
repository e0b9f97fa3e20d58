"""``rrsis train``: train a model of any architecture from a YAML config (``torchrun`` for several processes)."""

from __future__ import annotations

import click


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True, help="YAML config (see configs/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set optim.epochs=10 (repeatable).")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
def train(config_path, overrides, print_config):
    """Train (or resume) a run. The resolved config, CSV/TensorBoard scalars, curves.png and the
    last/best checkpoints go to run.out_dir; run the same command again to resume.

    Several processes: torchrun --nproc_per_node=N -m cli.main train --config FILE.yaml"""
    import logging

    from rrsis_geo.training.config import load_config

    cfg = load_config(config_path, overrides)
    if print_config:
        import yaml

        click.echo(yaml.safe_dump(cfg, sort_keys=False), nl=False)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rrsis_geo.training.run import run_training

    result = run_training(cfg)
    best = result["best_oIoU"]
    click.echo(f"done: {result['out_dir']} (best val oIoU {best:.2f})" if best >= 0 else f"done: {result['out_dir']}")
