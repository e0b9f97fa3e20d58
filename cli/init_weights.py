"""``rrsis init-weights``: assemble the paper's starting checkpoint from the user's files."""

from __future__ import annotations

import click

from cli.options import refuse_existing


@click.command("init-weights")
@click.option("--swin", type=click.Path(dir_okay=False), required=True, help="Microsoft's swin_base_patch4_window12_384_22k.pth.")
@click.option("--bert", type=click.Path(file_okay=False), required=True, help="A bert-base-uncased folder (config.json + weights).")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="Output .safetensors.")
@click.option("--preset", default="btdnet-b", show_default=True, help="Model preset the weights are for.")
@click.option("--input-size", type=click.IntRange(32), default=512, show_default=True)
@click.option("--max-tokens", type=click.IntRange(2), default=20, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def init_weights(swin, bert, out, preset, input_size, max_tokens, force):
    """Build PRESET with ImageNet-22K Swin and BERT weights (the paper's initialisation) and save
    it as a self-describing checkpoint; start training from it with --set model.init=OUT."""
    from rrsis_geo.training.init_weights import build_initial_checkpoint

    refuse_existing(out, force)
    report = build_initial_checkpoint(swin, bert, out, preset=preset, input_size=input_size, max_tokens=max_tokens)
    prov = report["provenance"].get("pretrained", {})
    for part, p in prov.items():
        click.echo(f"{part}: loaded {p.get('loaded')} tensors from {p.get('source')} (dropped {p.get('dropped')})")
    click.echo(f"wrote {out}")
