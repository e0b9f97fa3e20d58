"""Referring in the frame of a whole scene: per-tile vs whole-scene vs scene-level answers.

    python benchmarks/bench_scene_referring.py --out /tmp/bench_scene [--limit 12 | --all]
        [--model auto] [--rgb] [--modes scene,per-tile,whole-scene] [--scenes s2,naip,s2-mosaic1,... | val]
        [--report RUNS_JSONL]

Prints figures; not a test. Scenes larger than one model input are cut from the demo data's
held-out *test* regions (``scripts/demo_data/scenes.py``) and written as GeoTIFFs into ``--out``:

- ``s2``: the Sentinel-2 south-west test block, 768 x 768 px from the top-left of grid chip
  (col 0, row 4) (the block with its gaps is 800 px a side; 768 keeps it inside the block and at
  the whole-scene limit, 4 x the 192 px model input), uint16 with the original L1C values
  (reflectance x 10000) so the engine's ``checkpoint:uint16`` radiometry path is exercised;
  bands red, green, blue, NIR (``--rgb``: red, green, blue only); 10 m.
- ``s2-nw``, ``s2-ne``, ``s2-sw``, ``s2-se``: 512 x 512 px windows at the corners of that 768 px
  window (they overlap): the same ground in other frames, so other facts ("the lake in the
  north-west" names another object in each).
- ``naip``: the NAIP southern test cells, 512 x 256 px from the top-left of grid chip (1, 1)
  (the two test chips with their 16 px gap span 528 px), uint8 red, green, blue, NIR (``--rgb``:
  red, green, blue); 5 m.
- ``s2-mosaic1``, ``s2-mosaic2`` (768 x 768 px, 10 m, uint16) and ``naip-mosaic`` (512 x 512 px,
  5 m, uint8): mosaics of test chips, the source's held-out 256 px test chips (Sentinel-2: its 9,
  each once; NAIP: its 2, each twice) in a seeded order, each turned by a seeded dihedral op, chip
  against chip. The same held-out ground in arrangements no training chip had, so other facts;
  labels are the whole-scene class masks cut and turned with the chips, and objects are found on
  the mosaic (water meeting across a seam is one object, as the model sees it).

``--scenes val`` runs the same kinds of scene cut from the *validation* regions instead, to choose
the resolver's settings without looking at test: ``val-s2-fields`` (768 x 512 px, the Sentinel-2
north-west validation block), ``val-s2-coast`` (1024 x 512 px, the south-east validation coast),
``val-s2-mosaic`` (9 of the 14 Sentinel-2 validation chips) and ``val-naip-mosaic`` (the NAIP
validation chip four times, turned).

``--model auto`` (the default) runs the shipped model ``rrsis segment`` would choose for the
scenes' bands: ``btdnet-lite-demo``, or with ``--rgb`` its RGB twin ``btdnet-lite-demo-rgb``.

Labels: the demo build's band rules (``labels.class_masks`` on the whole scene, then
``labels.chip_targets`` on the scene window, exactly as ``build.py`` labels one chip, but the
window is the benchmark scene). Expressions: ``expressions.generate`` in the scene's frame (seed
fixed, three wordings per fact), so each has exactly one target in the scene; plus five
out-of-vocabulary sentences (OOV) per scene.

Modes (``segment_scene`` per expression and mode, a fresh output path and ``resume=False`` for
every run, so nothing is cached across modes): ``scene`` (default options; the ``answer`` layer is
the answer, ``candidates`` the category map), ``per-tile`` (``per_tile=True``: every feature is
the answer and the category map), ``whole-scene`` (``whole_scene=True``; only for scenes at most
``MAX_FACTOR`` x the model input a side; every feature is the answer and the category map).

Figures per mode and kind (size / position / relation / category):

- mIoU, oIoU, Pr@0.5: the answer polygons rasterised on the scene grid vs the target's mask.
- ``ref``: correct-referent rate: the answer has exactly one feature and that feature's IoU with
  the target is > 0.5 (a per-feature check: the feature with the largest overlap is the one scored).
- ``ceil``: the candidates' ceiling: the share of expressions for which one candidate (scene: a
  feature of the ``candidates`` layer; other modes: an answer feature) has IoU > 0.5 with the
  target, i.e. the Pr@0.5 of a resolver that always names the best candidate. Pr@0.5 below it is
  the resolver's loss; ``1 - ceil`` is the model's.
- ``n_feat``: mean number of answer features (every generated expression is singular).
- ``catIoU``: category-only IoU, the union of the category map (scene: the ``candidates`` layer;
  other modes: all features) vs the union of every labelled object of the expression's category in
  the scene (targets and shape-rejected distractors). It is what the model alone gives; mIoU
  minus what catIoU would give shows the resolver's share.
- OOV rows: the abstention rate (scene mode: ``SegmentResult.abstained``; the other modes never
  abstain, so OOV sentences are only run in scene mode).

Intervals: 95 % percentile intervals over resampled facts (a cluster bootstrap: the wordings of
one fact are not independent). Scene-level is paired with each other mode on the same size,
position and relation expressions: Pr@0.5 of both, difference and ratio with their intervals.
``--report RUNS_JSONL`` prints the tables of an earlier run without running anything.

``--limit N`` takes N expressions per scene (round-robin over kinds, one wording per fact first,
seeded); ``--all`` takes every generated expression. Every run is logged in ``--out/runs.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.demo_data import expressions, labels, layout  # noqa: E402
from scripts.demo_data.build import CHIP, GAP, PER_FACT, SIZE_RATIO  # noqa: E402
from scripts.demo_data.scenes import SCENES  # noqa: E402

OOV = ["the bridge over the river", "the town", "the clouds", "the largest building", "the road in the north"]
KINDS = ("size", "position", "relation", "category")
SEED = 0


#: 512 x 512 windows at the corners of the Sentinel-2 test block: the same ground in other frames
#: ("the lake in the north-west" names another object in each), so more expressions per kind.
S2_CORNERS = {"s2-nw": (0, 0), "s2-ne": (0, 256), "s2-sw": (256, 0), "s2-se": (256, 256)}
#: Mosaics of test chips: name -> (source, chips a side). The source's held-out test chips (Sentinel-2:
#: 9, each once; NAIP: 2, each twice), in a seeded order, each turned by a seeded dihedral op,
#: chip against chip: held-out ground in arrangements no training chip had, so other facts.
MOSAICS = {"s2-mosaic1": ("s2", 3), "s2-mosaic2": ("s2", 3), "naip-mosaic": ("naip", 2)}
SCENE_NAMES = ("s2", "naip", *S2_CORNERS, *MOSAICS)
#: The same kinds of scene cut from the *validation* regions, for choosing the resolver's settings
#: without looking at test: name -> (source, top-left grid chip, height, width) for windows, and
#: mosaics of the validation chips (Sentinel-2: 9 of its 14; NAIP: its one chip, four times).
VAL_WINDOWS = {"val-s2-fields": ("s2", (0, 0), 512, 768), "val-s2-coast": ("s2", (3, 5), 512, 1024)}
VAL_MOSAICS = {"val-s2-mosaic": ("s2", 3), "val-naip-mosaic": ("naip", 2)}
MOSAICS.update(VAL_MOSAICS)
VAL_SCENE_NAMES = (*VAL_WINDOWS, *VAL_MOSAICS)


def _chips(source: str, scene):
    H, W = scene.valid.shape
    return {(c.col, c.row): c for c in layout.grid(source, W, H, CHIP, GAP, scene.split_of)}


def _source(name: str) -> str:
    return name.removeprefix("val-").split("-")[0]


def _split(name: str) -> str:
    return "val" if name.startswith("val-") else "test"


def window_chips(chips: dict, r0: int, c0: int, h: int, w: int) -> list:
    """The grid chips an ``h`` x ``w`` window at row ``r0``, column ``c0`` touches."""
    return [k for k in chips.values()
            if k.col_off < c0 + w and c0 < k.col_off + k.size and k.row_off < r0 + h and r0 < k.row_off + k.size]


def _window_of(name: str, scene):
    source = _source(name)
    chips = _chips(source, scene)
    if name in VAL_WINDOWS:
        _, (col, row), h, w = VAL_WINDOWS[name]
        c = chips[(col, row)]
        assert all(k.split == "val" for k in window_chips(chips, c.row_off, c.col_off, h, w))
        return c.row_off, c.col_off, h, w
    if source == "s2":
        c = chips[(0, 4)]
        assert all(chips[(i, j)].split == "test" for i in (0, 1, 2) for j in (4, 5, 6))
        if name in S2_CORNERS:
            dr, dc = S2_CORNERS[name]
            return c.row_off + dr, c.col_off + dc, 512, 512
        return c.row_off, c.col_off, 768, 768
    c = chips[(1, 1)]
    assert chips[(1, 1)].split == "test" and chips[(2, 1)].split == "test"
    return c.row_off, c.col_off, 256, 512


def _pixels(source: str, scene, win, op: int = 0) -> np.ndarray:
    """The scene's bands red, green, blue, NIR in ``win``, turned by dihedral ``op``: Sentinel-2 as the
    original L1C values (reflectance x 10000, uint16), NAIP as its uint8 file values."""
    if source == "s2":
        data = np.stack([np.round(scene.bands[k][win] * 10000.0) for k in ("red", "green", "blue", "nir")]).astype(np.uint16)
    else:
        data = scene.rgbn8[(slice(None), *win)]
    return layout.dihedral(data, op)


def mosaic_layout(name: str, scene) -> list:
    """The chips of mosaic ``name`` in row-major order, each with its seeded dihedral op."""
    source, n = MOSAICS[name]
    tests = [c for c in _chips(source, scene).values() if c.split == _split(name)]
    picks = (tests * -(-n * n // len(tests)))[:n * n]
    rng = random.Random(zlib.crc32(f"{SEED}:mosaic:{name}".encode()))
    rng.shuffle(picks)
    return [replace(c, op=rng.randrange(8)) for c in picks]


def make_scene(name: str, out: Path, log=print, rgb: bool = False):
    """Write the scene GeoTIFF; return (path, targets, distractors, expression list, transform, shape)."""
    import rasterio
    from affine import Affine

    source = _source(name)
    scene = SCENES[source]()
    if scene is None:
        log(f"scene {name}: source not installed, skipped")
        return None
    ix = labels.indices(scene.bands["red"], scene.bands["green"], scene.bands["nir"], scene.bands["blue"])
    masks = labels.class_masks(ix, scene.rules, scene.valid)
    t = scene.transform
    if name in MOSAICS:
        chips = mosaic_layout(name, scene)
        n = MOSAICS[name][1]
        h = w = n * CHIP
        data = np.zeros((4, h, w), scene.rgbn8.dtype if source == "naip" else np.uint16)
        cm = {k: np.zeros((h, w), bool) for k in masks}
        for i, c in enumerate(chips):
            win = (slice(c.row_off, c.row_off + CHIP), slice(c.col_off, c.col_off + CHIP))
            assert scene.valid[win].all(), f"{name}: invalid pixels in chip {c.name}"
            cell = (slice(i // n * CHIP, (i // n + 1) * CHIP), slice(i % n * CHIP, (i % n + 1) * CHIP))
            data[(slice(None), *cell)] = _pixels(source, scene, win, c.op)
            for k, v in masks.items():
                cm[k][cell] = layout.dihedral(v[win], c.op)
        r0, c0 = min(c.row_off for c in chips), min(c.col_off for c in chips)  # placed over the test region
    else:
        r0, c0, h, w = _window_of(name, scene)
        win = (slice(r0, r0 + h), slice(c0, c0 + w))
        assert scene.valid[win].all(), f"{name}: invalid pixels in the benchmark window"
        data = _pixels(source, scene, win)
        cm = {k: v[win] for k, v in masks.items()}
    targets, distractors = labels.chip_targets(cm, scene.rules)
    exprs = expressions.generate(targets, w, h, gsd=scene.gsd, seed=zlib.crc32(f"{SEED}:bench:{name}".encode()),
                                 per_fact=PER_FACT, size_ratio=SIZE_RATIO, distractors=distractors)
    transform = Affine(t.a, t.b, t.c + c0 * t.a + r0 * t.b, t.d, t.e, t.f + c0 * t.d + r0 * t.e)
    if rgb:
        data = data[:3]
    path = out / f"bench_{name}{'_rgb' if rgb else ''}.tif"
    profile = dict(driver="GTiff", width=w, height=h, count=len(data), dtype=data.dtype.name, crs=scene.crs, transform=transform,
                   photometric="minisblack", tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue", "nir")[:len(data)]
    log(f"scene {name}: {w} x {h} px at {scene.gsd:g} m, {data.dtype.name}; {len(targets)} targets, "
        f"{len(distractors)} distractors, {len(exprs)} expressions -> {path}")
    return path, targets, distractors, exprs, transform, (h, w)


def pick(exprs, limit: int | None, seed: int):
    """Round-robin over kinds; within a kind, one wording per fact first (seeded order)."""
    if limit is None:
        return list(exprs)
    rng = random.Random(seed)
    by_kind = {}
    for e in exprs:
        by_kind.setdefault(e.kind, []).append(e)
    queues = {}
    for k, es in by_kind.items():
        rng.shuffle(es)
        seen, first, rest = set(), [], []
        for e in es:
            key = (e.target, e.fact)
            (rest if key in seen else first).append(e)
            seen.add(key)
        queues[k] = first + rest
    out = []
    while len(out) < limit and any(queues.values()):
        for k in KINDS:
            if queues.get(k) and len(out) < limit:
                out.append(queues[k].pop(0))
    return out


def rasterise(gdf, shape, transform) -> np.ndarray:
    from rasterio.features import rasterize

    geoms = [g for g in gdf.geometry if g is not None and not g.is_empty] if gdf is not None else []
    if not geoms:
        return np.zeros(shape, bool)
    return rasterize([(g, 1) for g in geoms], out_shape=shape, transform=transform, fill=0, dtype="uint8").astype(bool)


def read_layer(path: Path, layer: str | None):
    import geopandas as gpd
    import pyogrio

    if not path.exists():
        return None
    if layer is not None and layer not in [l[0] for l in pyogrio.list_layers(path)]:
        return None
    return gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)


def run_one(scene_path, text, mode, predictor, out_path):
    from rrsis_geo.engine.segment import SegmentOptions, segment_scene

    opts = SegmentOptions(overwrite=True, resume=False, per_tile=(mode == "per-tile"), whole_scene=(mode == "whole-scene"))
    t0 = time.perf_counter()
    res = segment_scene(str(scene_path), text, str(out_path), predictor, opts)
    return res, time.perf_counter() - t0


def evaluate(mode, out_path, target_mask, cat_mask, shape, transform):
    ans = read_layer(out_path, "answer" if mode == "scene" else None)
    cat = read_layer(out_path, "candidates") if mode == "scene" else ans
    a = rasterise(ans, shape, transform)
    inter, union = int((a & target_mask).sum()), int((a | target_mask).sum())
    n_feat = 0 if ans is None else int(len(ans))
    best = 0.0
    if n_feat:
        for g in ans.geometry:  # the feature with the largest overlap with the target
            m = rasterise(type(ans)(geometry=[g], crs=ans.crs), shape, transform)
            i = int((m & target_mask).sum())
            if i and i / int((m | target_mask).sum()) > best:
                best = i / int((m | target_mask).sum())
    c = rasterise(cat, shape, transform)
    cat_iou = float((c & cat_mask).sum() / max(1, (c | cat_mask).sum()))
    best_cand = best_candidate_iou(cat, target_mask, shape, transform) if mode == "scene" else best
    return dict(inter=inter, union=union, iou=inter / max(1, union), n_feat=n_feat, best_feat_iou=best,
                correct_ref=int(n_feat == 1 and best > 0.5), cat_iou=cat_iou, best_cand_iou=best_cand)


def best_candidate_iou(cands, target_mask, shape, transform) -> float:
    """The highest IoU any single candidate has with the target: the best a resolver that names one
    candidate could score. Candidates are the disjoint components of one probability map, so one
    label raster holds them all."""
    from rasterio.features import rasterize

    shapes = [(g, i + 1) for i, g in enumerate(cands.geometry) if g is not None and not g.is_empty] if cands is not None else []
    if not shapes or not target_mask.any():
        return 0.0
    labels = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32")
    size = np.bincount(labels.ravel(), minlength=len(shapes) + 1)[1:]
    inter = np.bincount(labels[target_mask], minlength=len(shapes) + 1)[1:]
    return float((inter / np.maximum(1, size + int(target_mask.sum()) - inter)).max())


def _clusters(rows):
    """Rows grouped by the fact they word (scene, target, fact): the wordings of one fact are not
    independent draws, so intervals resample facts, not expressions."""
    groups = {}
    for r in rows:
        groups.setdefault((r["scene"], r["target"], r["fact"]), []).append(r)
    return list(groups.values())


def interval(rows, stat, n_boot: int = 2000, seed: int = SEED):
    """95 % percentile interval of ``stat(rows)`` over resampled facts (cluster bootstrap)."""
    groups = _clusters(rows)
    if len(groups) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = [stat([r for j in rng.integers(0, len(groups), len(groups)) for r in groups[j]]) for _ in range(n_boot)]
    return tuple(float(v) for v in np.percentile(vals, [2.5, 97.5]))


def pr(rows) -> float:
    return float(np.mean([r["iou"] > 0.5 for r in rows]))


def ceiling(rows) -> str:
    """Share of expressions with a single candidate of IoU > 0.5 (runs logged before the column
    existed print '-')."""
    if any("best_cand_iou" not in r for r in rows):
        return "-"
    return f"{np.mean([r['best_cand_iou'] > 0.5 for r in rows]):.3f}"


def table(rows, title):
    print(f"\n### {title}\n")
    print("| kind | n | facts | mIoU | oIoU | Pr@0.5 | Pr@0.5 95 % | ref | ceil | n_feat | catIoU | s/run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    groups = [(k, [r for r in rows if r["kind"] == k]) for k in KINDS] + [("all", rows)]
    for k, rs in groups:
        rs = [r for r in rs if "iou" in r]
        if not rs:
            continue
        iou = np.array([r["iou"] for r in rs])
        o = sum(r["inter"] for r in rs) / max(1, sum(r["union"] for r in rs))
        lo, hi = interval(rs, pr)
        print(f"| {k} | {len(rs)} | {len(_clusters(rs))} | {iou.mean():.3f} | {o:.3f} | {pr(rs):.3f} | "
              f"[{lo:.3f}, {hi:.3f}] | {np.mean([r['correct_ref'] for r in rs]):.3f} | {ceiling(rs)} | {np.mean([r['n_feat'] for r in rs]):.2f} | "
              f"{np.mean([r['cat_iou'] for r in rs]):.3f} | {np.mean([r['seconds'] for r in rs]):.1f} |")


def paired(results, base: str = "scene"):
    """Scene-level against each other mode on the expressions both ran: Pr@0.5 of each, their
    difference and ratio, with 95 % intervals over resampled facts."""
    if base not in results:
        return
    key = lambda r: (r["scene"], r["text"])  # noqa: E731
    mine = {key(r): r for r in results[base] if "iou" in r}
    print(f"\n### {base} against the other modes, paired (size, position, relation)\n")
    print("| against | n | facts | Pr@0.5 {0} | Pr@0.5 other | difference | 95 % | ratio | 95 % |".format(base))
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, rows in results.items():
        if mode == base:
            continue
        pairs = [dict(r, other=r2["iou"]) for r2 in rows if "iou" in r2 and r2["kind"] in ("size", "position", "relation")
                 for r in [mine.get(key(r2))] if r is not None]
        if not pairs:
            continue
        other = lambda rs: float(np.mean([r["other"] > 0.5 for r in rs]))  # noqa: E731
        diff = lambda rs: pr(rs) - other(rs)  # noqa: E731
        ratio = lambda rs: pr(rs) / max(other(rs), 1e-9)  # noqa: E731
        (dlo, dhi), (rlo, rhi) = interval(pairs, diff), interval(pairs, ratio)
        r_ = ratio(pairs)
        fmt = lambda v: "inf" if v > 1e6 else f"{v:.2f}"  # noqa: E731
        print(f"| {mode} | {len(pairs)} | {len(_clusters(pairs))} | {pr(pairs):.3f} | {other(pairs):.3f} | {diff(pairs):+.3f} | "
              f"[{dlo:+.3f}, {dhi:+.3f}] | {fmt(r_)}x | [{fmt(rlo)}, {fmt(rhi)}] |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/bench_scene_referring")
    p.add_argument("--limit", type=int, default=12, help="expressions per scene (default 12)")
    p.add_argument("--all", action="store_true", help="every generated expression")
    p.add_argument("--model", default="auto", help="a model name or checkpoint; auto: the shipped model for the scenes' bands")
    p.add_argument("--rgb", action="store_true", help="write the scenes' red, green and blue bands only")
    p.add_argument("--modes", default="scene,per-tile,whole-scene")
    p.add_argument("--scenes", default=",".join(SCENE_NAMES), help=f"any of {', '.join(SCENE_NAMES)} (default: all); "
                   f"'val': the validation scenes {', '.join(VAL_SCENE_NAMES)}, for choosing settings")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", metavar="RUNS_JSONL", help="print the tables of an earlier run's runs.jsonl, run nothing")
    args = p.parse_args(argv)
    names = VAL_SCENE_NAMES if args.scenes == "val" else [s.strip() for s in args.scenes.split(",") if s.strip()]
    unknown = [n for n in names if n not in (*SCENE_NAMES, *VAL_SCENE_NAMES)]
    if unknown:
        p.error(f"unknown scene {', '.join(unknown)}: use any of {', '.join(SCENE_NAMES)}, or 'val'")
    if args.report:
        report(*load_runs(Path(args.report)))
        return

    import torch

    torch.set_num_threads(args.threads)
    from rrsis_geo.engine.whole_scene import MAX_FACTOR
    from rrsis_geo.models import load_predictor

    from rrsis_geo.weights import choose_model

    model = choose_model(args.model, 3 if args.rgb else 4)
    predictor = load_predictor(model)
    input_size = predictor.info.input_size
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    log_path = out / "runs.jsonl"
    log_path.write_text("")
    print(f"model {model} (input {input_size} px); modes {modes}; limit {'all' if args.all else args.limit}")
    results = {m: [] for m in modes}
    oov = []
    for name in names:
        made = make_scene(name, out, rgb=args.rgb)
        if made is None:
            continue
        path, targets, distractors, exprs, transform, shape = made
        chosen = pick(exprs, None if args.all else args.limit, seed=zlib.crc32(f"{SEED}:pick:{name}".encode()))
        print(f"  {len(chosen)} expressions: " + ", ".join(f"{k} {sum(e.kind == k for e in chosen)}" for k in KINDS))
        cat_masks = {}
        for tg in list(targets) + list(distractors):
            cat_masks[tg.category] = cat_masks.get(tg.category, np.zeros(shape, bool)) | tg.mask
        for mode in modes:
            if mode == "whole-scene" and max(shape) > MAX_FACTOR * input_size:
                print(f"  {name}: whole-scene skipped ({shape[1]} x {shape[0]} > {MAX_FACTOR} x {input_size})")
                continue
            for i, e in enumerate(chosen):
                tg = targets[e.target]
                op = out / "runs" / f"{name}_{mode}_{i:03d}.gpkg"
                rec = dict(scene=name, mode=mode, kind=e.kind, text=e.text, target=e.target, fact=e.fact, category=tg.category)
                try:
                    res, sec = run_one(path, e.text, mode, predictor, op)
                    rec.update(seconds=sec, rule=res.rule, abstained=res.abstained)
                    rec.update(evaluate(mode, op, tg.mask, cat_masks[tg.category], shape, transform))
                except Exception as ex:  # noqa: BLE001  (a failed run is a figure too)
                    rec.update(error=f"{type(ex).__name__}: {ex}")
                results[mode].append(rec)
                print(f"  [{name} {mode}] {e.kind:8s} IoU {rec.get('iou', float('nan')):.3f} n={rec.get('n_feat', '-')} "
                      f"{rec.get('seconds', 0):5.1f}s  {e.text!r}  rule: {(rec.get('rule') or rec.get('error', ''))[:160]}", flush=True)
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        if "scene" in modes:
            for j, text in enumerate(OOV):
                op = out / "runs" / f"{name}_scene_oov{j}.gpkg"
                rec = dict(scene=name, mode="scene", kind="oov", text=text)
                try:
                    res, sec = run_one(path, text, "scene", predictor, op)
                    rec.update(seconds=sec, rule=res.rule, abstained=bool(res.abstained),
                               n_feat=int(res.answer_features or 0))
                except Exception as ex:  # noqa: BLE001
                    rec.update(error=f"{type(ex).__name__}: {ex}")
                oov.append(rec)
                print(f"  [{name} scene] oov      abstained={rec.get('abstained')} n={rec.get('n_feat', '-')} "
                      f"{rec.get('seconds', 0):5.1f}s  {text!r}  rule: {(rec.get('rule') or rec.get('error', ''))[:160]}", flush=True)
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")

    report(results, oov)


def report(results: dict, oov: list):
    """The tables: per mode, per scene and over all scenes; scene-level paired with the other modes;
    the out-of-vocabulary abstentions."""
    for mode, rows in results.items():
        errors = [r for r in rows if "error" in r]
        for name in sorted({r["scene"] for r in rows}):
            table([r for r in rows if r["scene"] == name], f"{mode}, {name}")
        table(rows, f"{mode}, all scenes")
        if errors:
            print(f"\n{len(errors)} failed runs: " + "; ".join(f"{r['text']!r}: {r['error']}" for r in errors[:5]))
    paired(results)
    if oov:
        ok = [r for r in oov if "error" not in r]
        print(f"\n### scene mode, out-of-vocabulary sentences\n\nabstained {sum(r['abstained'] for r in ok)} of {len(ok)} "
              f"(per-tile and whole-scene never abstain)\n")
        for r in oov:
            print(f"- {r['scene']}: {r['text']!r}: abstained={r.get('abstained')}, {r.get('n_feat', '-')} features; "
                  f"{(r.get('rule') or r.get('error', ''))[:90]}")


def load_runs(path: Path):
    """``runs.jsonl`` of an earlier run -> (results by mode, OOV rows), for :func:`report`."""
    results, oov = {}, []
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        (oov if r["kind"] == "oov" else results.setdefault(r["mode"], [])).append(r)
    return results, oov

if __name__ == "__main__":
    main()
