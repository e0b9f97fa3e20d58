"""A starting checkpoint from the user's own pretrained releases (the paper's initialisation), for
any architecture: its ``init_sources`` name the files or folders it takes (BTDNet: ``swin``,
``bert``; RSRefSeg: ``siglip``, ``sam``). The loading and its asserted key sets are the
architecture package's; this checks the names and paths, builds and saves."""

from __future__ import annotations

from pathlib import Path


def build_initial_checkpoint(sources: dict[str, str], out, preset: str = "btdnet-b", input_size: int | None = None,
                             max_tokens: int | None = None) -> dict:
    """Build ``preset`` with the weights in ``sources`` (source name -> path) and save it to ``out``.
    Every input is checked (one-line errors) before any model is built."""
    import rrsis_geo.models as models
    from rrsis_geo.errors import ConfigError, OutputError
    from rrsis_geo.models.registry import preset_architecture

    out = Path(out)
    if not out.parent.is_dir():
        raise OutputError(f"folder {out.parent} does not exist (for --out {out})")
    arch = preset_architecture(preset)
    wanted = arch.init_sources
    if not wanted:
        raise ConfigError(f"preset {preset} ({arch.name}) takes no pretrained releases")
    unknown, missing = sorted(set(sources) - set(wanted)), sorted(set(wanted) - set(sources))
    if unknown or missing:
        need = ", ".join(f"--source {n}=PATH ({wanted[n][1]})" for n in wanted)
        raise ConfigError(f"{preset} ({arch.name}) is built from {need}"
                          + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                          + (f"; missing: {', '.join(missing)}" if missing else ""))
    overrides = {}
    for name, path in sources.items():
        path = Path(path).expanduser()
        if not path.exists():
            raise ConfigError(f"--source {name}: {path} does not exist")
        overrides[wanted[name][0]] = str(path)
    if input_size is not None:
        overrides["input_size"] = int(input_size)
    if max_tokens is not None:
        overrides["max_tokens"] = int(max_tokens)
    model = models.create_model(preset, **overrides)
    models.save_checkpoint(model, out, init={name: str(path) for name, path in sources.items()})
    return {"path": str(out), "provenance": model.provenance}
