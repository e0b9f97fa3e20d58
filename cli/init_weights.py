"""``rrsis init-weights``: assemble a preset's starting checkpoint from the user's pretrained files."""

from __future__ import annotations

import click

from cli.options import refuse_existing


def _sources(ctx, param, values):
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=PATH, got {v!r}", ctx=ctx, param=param)
        out[name] = path
    return out


@click.command("init-weights")
@click.option("--source", "sources", multiple=True, callback=_sources, metavar="NAME=PATH",
              help="A pretrained release the preset is built from: btdnet presets swin=FILE (Microsoft's "
                   "swin_base_patch4_window12_384_22k.pth) and bert=DIR; rsrefseg presets siglip=DIR and sam=DIR "
                   "(local Hugging Face folders).")
@click.option("--swin", type=click.Path(dir_okay=False), default=None, help="Same as --source swin=PATH.")
@click.option("--bert", type=click.Path(file_okay=False), default=None, help="Same as --source bert=PATH.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="Output .safetensors.")
@click.option("--preset", default="btdnet-b", show_default=True, help="Model preset the weights are for.")
@click.option("--input-size", type=click.IntRange(32), default=None, help="Network input size [the preset's].")
@click.option("--max-tokens", type=click.IntRange(2), default=None, help="Expression length in tokens [the preset's].")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def init_weights(sources, swin, bert, out, preset, input_size, max_tokens, force):
    """Build PRESET from the pretrained releases it names (the paper's initialisation) and save it
    as a self-describing checkpoint; start training from it with --set model.init=OUT."""
    from rrsis_geo.training.init_weights import build_initial_checkpoint

    sources = dict(sources)
    for name, path in (("swin", swin), ("bert", bert)):
        if path is not None:
            sources[name] = path
    refuse_existing(out, force)
    report = build_initial_checkpoint(sources, out, preset=preset, input_size=input_size, max_tokens=max_tokens)
    prov = report["provenance"].get("pretrained", {})
    for part, p in prov.items():
        click.echo(f"{part}: loaded {p.get('loaded')} tensors from {p.get('source')} (dropped {p.get('dropped')})")
    click.echo(f"wrote {out}")
