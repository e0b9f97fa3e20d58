"""Record in a demo model's file the vocabulary of its training data, leaving its tensors as they are.

    python scripts/demo_data/record_vocabulary.py rrsis_geo/weights/btdnet-lite-demo.safetensors \
        build/demo_train_sets

For a model trained before the trainer recorded ``vocabulary`` itself (``rrsis train`` now does):
the categories of the training split of ROOT's ``demo.gpkg`` (the stage-2 build, which holds every
training expression, "all the lakes" included), the head nouns that named them and each one's
"all the ..." prompt (rrsis_geo/referring/vocabulary.py). Prints them and the tensor count checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def record_vocabulary(path: Path, data_root: Path) -> tuple[dict, int]:
    import geopandas as gpd
    import torch
    from safetensors.torch import load_file

    from rrsis_geo.models.checkpoint import update_metadata
    from rrsis_geo.referring.vocabulary import from_training

    rows = gpd.read_file(data_root / "demo.gpkg", layer="targets")
    train = rows[rows["split"] == "train"]
    vocab = from_training(zip(train["expression"], train["category"]))
    record = vocab.as_dict(f"head nouns of the {len(train)} training expressions ({data_root.name})")
    before = load_file(str(path))
    update_metadata(path, path, vocabulary=record)
    after = load_file(str(path))
    if before.keys() != after.keys() or not all(torch.equal(before[k], after[k]) for k in before):
        raise SystemExit(f"{path}: the tensors changed while writing the metadata")
    return record, len(after)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("data_root", type=Path)
    args = p.parse_args(argv)
    record, n = record_vocabulary(args.model, args.data_root)
    for cat, entry in record["categories"].items():
        print(f"{cat}: {', '.join(entry['nouns'])} (prompt: {entry['prompt']!r})")
    print(f"recorded the vocabulary; {n} tensors unchanged")


if __name__ == "__main__":
    main()
