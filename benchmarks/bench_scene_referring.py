"""Referring in the frame of a whole scene: per-tile vs whole-scene vs scene-level answers.

    python benchmarks/bench_scene_referring.py --out /tmp/bench_scene [--limit 12 | --all]
        [--model auto] [--rgb] [--modes scene,per-tile,whole-scene] [--scenes s2,naip,s2-nw,...]

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
- ``n_feat``: mean number of answer features (every generated expression is singular).
- ``catIoU``: category-only IoU, the union of the category map (scene: the ``candidates`` layer;
  other modes: all features) vs the union of every labelled object of the expression's category in
  the scene (targets and shape-rejected distractors). It is what the model alone gives; mIoU
  minus what catIoU would give shows the resolver's share.
- OOV rows: the abstention rate (scene mode: ``SegmentResult.abstained``; the other modes never
  abstain, so OOV sentences are only run in scene mode).

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
SCENE_NAMES = ("s2", "naip", *S2_CORNERS)


def _window_of(name: str, scene):
    H, W = scene.valid.shape
    source = name.split("-")[0]
    chips = {(c.col, c.row): c for c in layout.grid(source, W, H, CHIP, GAP, scene.split_of)}
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


def make_scene(name: str, out: Path, log=print, rgb: bool = False):
    """Write the scene GeoTIFF; return (path, targets, distractors, expression list, gsd)."""
    import rasterio
    from affine import Affine

    scene = SCENES[name.split("-")[0]]()
    if scene is None:
        log(f"scene {name}: source not installed, skipped")
        return None
    r0, c0, h, w = _window_of(name, scene)
    win = (slice(r0, r0 + h), slice(c0, c0 + w))
    assert scene.valid[win].all(), f"{name}: invalid pixels in the benchmark window"
    ix = labels.indices(scene.bands["red"], scene.bands["green"], scene.bands["nir"], scene.bands["blue"])
    masks = labels.class_masks(ix, scene.rules, scene.valid)
    cm = {k: v[win] for k, v in masks.items()}
    targets, distractors = labels.chip_targets(cm, scene.rules)
    exprs = expressions.generate(targets, w, h, gsd=scene.gsd, seed=zlib.crc32(f"{SEED}:bench:{name}".encode()),
                                 per_fact=PER_FACT, size_ratio=SIZE_RATIO, distractors=distractors)
    t = scene.transform
    transform = Affine(t.a, t.b, t.c + c0 * t.a + r0 * t.b, t.d, t.e, t.f + c0 * t.d + r0 * t.e)
    if name.startswith("s2"):  # the original L1C values (reflectance x 10000), uint16
        data = np.stack([np.round(scene.bands[k][win] * 10000.0) for k in ("red", "green", "blue", "nir")]).astype(np.uint16)
    else:
        data = scene.rgbn8[(slice(None), *win)]
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
    return dict(inter=inter, union=union, iou=inter / max(1, union), n_feat=n_feat, best_feat_iou=best,
                correct_ref=int(n_feat == 1 and best > 0.5), cat_iou=cat_iou)


def table(rows, title):
    print(f"\n### {title}\n")
    print("| kind | n | mIoU | oIoU | Pr@0.5 | ref | n_feat | catIoU | s/run |")
    print("|---|---|---|---|---|---|---|---|---|")
    groups = [(k, [r for r in rows if r["kind"] == k]) for k in KINDS] + [("all", rows)]
    for k, rs in groups:
        rs = [r for r in rs if "iou" in r]
        if not rs:
            continue
        iou = np.array([r["iou"] for r in rs])
        o = sum(r["inter"] for r in rs) / max(1, sum(r["union"] for r in rs))
        print(f"| {k} | {len(rs)} | {iou.mean():.3f} | {o:.3f} | {(iou > 0.5).mean():.3f} | "
              f"{np.mean([r['correct_ref'] for r in rs]):.3f} | {np.mean([r['n_feat'] for r in rs]):.2f} | "
              f"{np.mean([r['cat_iou'] for r in rs]):.3f} | {np.mean([r['seconds'] for r in rs]):.1f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/bench_scene_referring")
    p.add_argument("--limit", type=int, default=12, help="expressions per scene (default 12)")
    p.add_argument("--all", action="store_true", help="every generated expression")
    p.add_argument("--model", default="auto", help="a model name or checkpoint; auto: the shipped model for the scenes' bands")
    p.add_argument("--rgb", action="store_true", help="write the scenes' red, green and blue bands only")
    p.add_argument("--modes", default="scene,per-tile,whole-scene")
    p.add_argument("--scenes", default=",".join(SCENE_NAMES), help=f"any of {', '.join(SCENE_NAMES)} (default: all)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

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
    for name in [s.strip() for s in args.scenes.split(",") if s.strip()]:
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
                rec = dict(scene=name, mode=mode, kind=e.kind, text=e.text, fact=e.fact, category=tg.category)
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

    for mode in modes:
        rows = results[mode]
        errors = [r for r in rows if "error" in r]
        for name in sorted({r["scene"] for r in rows}):
            table([r for r in rows if r["scene"] == name], f"{mode}, {name}")
        table(rows, f"{mode}, all scenes")
        if errors:
            print(f"\n{len(errors)} failed runs: " + "; ".join(f"{r['text']!r}: {r['error']}" for r in errors[:5]))
    if oov:
        ok = [r for r in oov if "error" not in r]
        print(f"\n### scene mode, out-of-vocabulary sentences\n\nabstained {sum(r['abstained'] for r in ok)} of {len(ok)} "
              f"(per-tile and whole-scene never abstain)\n")
        for r in oov:
            print(f"- {r['scene']}: {r['text']!r}: abstained={r.get('abstained')}, {r.get('n_feat', '-')} features; "
                  f"{(r.get('rule') or r.get('error', ''))[:90]}")


if __name__ == "__main__":
    main()
