"""Starting checkpoint for BTDNet-B from the user's own encoder releases (the paper's init).

The heavy lifting (Microsoft key renames, dropped buffers, asserted key sets) is the model
package's :mod:`rrsis_geo.models.pretrained`; this only names the files and saves the result.
"""

from __future__ import annotations

from pathlib import Path


def build_initial_checkpoint(swin, bert, out, preset: str = "btdnet-b", input_size: int = 512, max_tokens: int = 20) -> dict:
    import rrsis_geo.models as models
    from rrsis_geo.errors import OutputError

    out = Path(out)
    if not out.parent.is_dir():
        raise OutputError(f"folder {out.parent} does not exist (for --out {out})")
    model = models.create_model(preset, vision__weights=str(Path(swin).expanduser()), text__weights=str(Path(bert).expanduser()),
                                input_size=input_size, max_tokens=max_tokens)
    models.save_checkpoint(model, out, init={"swin": str(swin), "bert": str(bert)})
    return {"path": str(out), "provenance": model.provenance}
