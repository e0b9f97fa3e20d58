"""``segment_scene``: a GeoTIFF and an expression in, georeferenced polygons out.

Three phases, each with memory bounded independently of scene height:

1. **Predict**: tiles are read (with their validity masks, in a prefetch thread), normalised
   scene-wide, batched through the :class:`~rrsis_geo.predictor.Predictor`, blended into a strip
   accumulator, and finished rows are written to a probability GeoTIFF in a work folder beside
   the output. After every tile row the work folder records how far it got, so an interrupted
   run (Ctrl-C, a crash) resumes from there and produces the same result.
2. **Vectorise**: the probability raster is read back in strips, thresholded and polygonised;
   objects crossing strip seams are merged into one feature (holes kept).
3. **Write**: features get their attributes in metric units, outputs are written to temporary
   names and renamed into place as one set with a run manifest (:func:`output.commit_set`).

Before any work, the output set is locked against other runs, checked against the run's inputs,
and the disk the run needs is estimated against the free space.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import queue
import shutil
import sys
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import rasterio
import rasterio.shutil
import shapely
from affine import Affine
from rasterio.windows import Window

from rrsis_geo import __version__
from rrsis_geo.engine import output as out
from rrsis_geo.engine.accumulate import PROB_NODATA, StripAccumulator
from rrsis_geo.engine.blending import DEFAULT_WINDOW, WINDOWS, default_margin, tile_weights
from rrsis_geo.engine.disk import disk_estimate, format_bytes, free_bytes, stored_fraction
from rrsis_geo.engine.geometry import MetricContext, pixel_box
from rrsis_geo.engine.raster import (
    SceneInfo,
    TileReader,
    open_scene,
    parse_crs,
    scene_scaling,
)
from rrsis_geo.engine.resolution import training_tile
from rrsis_geo.engine.tiling import (
    Tile,
    axis_plan,
    default_overlap,
    plan_tiles,
    rows_final_after,
    validate_tiling,
)
from rrsis_geo.engine.vectorize import SeamMerger, area_bound, areas_m2, simplify_m
from rrsis_geo.engine.whole_scene import check_whole_scene, glance_scene, predict_whole_scene
from rrsis_geo.errors import Cancelled, ExpressionError, InputError, ModelError, OutputError
from rrsis_geo.predictor import Predictor
from rrsis_geo.referring import vocabulary
from rrsis_geo.referring.answer import answer_records, candidate_records
from rrsis_geo.referring.candidates import Frame, add_glance_support, build_candidates
from rrsis_geo.referring.plan import ScenePlan, plan_query
from rrsis_geo.referring.resolve import Resolution, resolve

Progress = Callable[[dict], None]
# Scene-level runs choose among objects of at least this many pixels *of the model's input* (5 x 5):
# smaller specks of a category map are noise at the scale the model sees.
MIN_CANDIDATE_INPUT_PX = 25
# In the work folder: the record of an output set being renamed into place (see output.commit_set).
COMMIT_MARKER = "commit.json"
UNVERIFIED = "the interrupted run's work could not be verified; starting afresh"


@dataclass(frozen=True)
class SegmentOptions:
    """Everything about a run except the scene, the expression, the output and the model.

    ``None`` means "from the model": ``tile`` defaults to the scene pixels that cover one training
    window's ground (the model's input size when the checkpoint does not say;
    :func:`~rrsis_geo.engine.resolution.training_tile`), ``overlap`` to an eighth of the tile,
    ``threshold`` and ``presence`` to the model's.

    The mode: scene-level by default; ``per_tile`` keeps every object of every tile,
    ``whole_scene`` runs the model once on the resampled scene (see :func:`mode_of`).
    """

    tile: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    threshold: float | None = None
    bands: tuple[int, ...] | None = None
    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    dst_crs: str | None = None
    prob_path: str | None = None
    preview_path: str | None = None
    overwrite: bool = False
    window: str = DEFAULT_WINDOW
    assume_crs: str | None = None
    aoi: str | None = None
    strip_rows: int = 512
    resume: bool = True
    whole_scene: bool = False
    per_tile: bool = False
    force: bool = False
    candidates_path: str | None = None
    presence: float | None = None
    source_label: str | None = None
    prefetch: int = 2
    readers: int = 2


@dataclass
class SegmentResult:
    output: str
    manifest: str
    prob: str | None
    features: int
    run_id: str
    seconds: float
    tiles_total: int
    tiles_predicted: int
    tiles_skipped: int
    resumed_from_row: int = 0
    mode: str = "scene"
    answer_features: int | None = None  # scene mode: features in the answer layer
    candidates: int | None = None  # scene mode: features in the candidates layer
    candidates_output: str | None = None
    rule: str | None = None
    abstained: bool = False


def mode_of(options: SegmentOptions) -> str:
    """``scene`` (the default: one referent resolved in the scene frame), ``per-tile`` (every object
    each tile finds: category mapping) or ``whole-scene`` (one model call on the resampled scene)."""
    if options.whole_scene and options.per_tile:
        raise InputError("--whole-scene and --per-tile exclude each other; choose one")
    return "whole-scene" if options.whole_scene else ("per-tile" if options.per_tile else "scene")


def check_expression(expression: str) -> str:
    """The expression with its whitespace normalised; a one-line error if it is empty or not text."""
    if expression is None or not str(expression).strip():
        raise ExpressionError("the expression is empty; describe the object to find, e.g. \"the lake\"")
    try:
        str(expression).encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
        raise ExpressionError("the expression is not valid UTF-8 text; check the terminal's or the "
                              "script's encoding") from None
    return " ".join(str(expression).split())


def preflight(scene, expression: str, output: str, options: SegmentOptions,
              needed_bands: int | None = 3, inputs: dict[str, str] | None = None) -> SceneInfo:
    """Every check that needs no model, so bad input fails before a model is built.

    ``needed_bands=None`` when the model is not known yet: given bands are only checked to
    exist. ``inputs`` names further files the run reads (e.g. ``{"the model checkpoint": path}``);
    no output may be one of them, nor the scene or the AOI, whatever ``--overwrite`` says.
    Existing outputs are not refused while an interrupted commit of this output set waits to be
    finished (the run finishes it first). Returns the opened scene's :class:`SceneInfo`; raises
    an :class:`InputError` subclass.
    """
    check_expression(expression)
    mode = mode_of(options)
    output = os.fspath(output)
    _check_outputs_are_not_inputs(output, options, {"the scene": os.fspath(scene), "the AOI": options.aoi,
                                                    **(inputs or {})})
    overwrite = options.overwrite or os.path.exists(os.path.join(work_dir_for(output), COMMIT_MARKER))
    out.check_vector_output(output, overwrite)
    if options.candidates_path:
        if mode != "scene":
            raise InputError("--candidates is for scene-level runs; drop it with --per-tile or --whole-scene")
        out.check_vector_output(options.candidates_path, overwrite)
        if os.path.abspath(options.candidates_path) == os.path.abspath(output):
            raise InputError("--candidates must differ from the output path")
    if options.prob_path:
        out.check_raster_output(options.prob_path, overwrite)
        if os.path.abspath(options.prob_path) == os.path.abspath(output):
            raise InputError("--prob must differ from the output path")
    if options.preview_path:
        if os.path.splitext(options.preview_path)[1].lower() != ".png":
            raise OutputError(f"--preview must be a .png file, got {options.preview_path}")
        out.check_target(options.preview_path, overwrite)
    check_options(options)
    return open_scene(scene, options.bands, options.assume_crs, needed_bands=needed_bands)


def check_options(options: SegmentOptions) -> None:
    """The checks of ``options`` that need neither the scene nor the outputs (an
    :class:`InputError` subclass naming the option); :func:`preflight` runs them too."""
    mode_of(options)
    if options.presence is not None and not 0.0 <= options.presence <= 1.0:
        raise InputError(f"--presence must be in [0, 1], got {options.presence}")
    if options.window not in WINDOWS:
        raise InputError(f"unknown blending window {options.window!r}; use one of {', '.join(WINDOWS)}")
    if options.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.min_area_m2 < 0 or options.simplify_m < 0:
        raise InputError("--min-area and --simplify must be >= 0")
    if options.threshold is not None and not 0.0 <= options.threshold < 1.0:
        raise InputError(f"--threshold must be in [0, 1), got {options.threshold}")
    if options.tile is not None:
        validate_tiling(options.tile, options.overlap if options.overlap is not None else 0)
    if options.dst_crs:
        parse_crs(options.dst_crs)
    if options.aoi and not os.path.exists(options.aoi):
        raise InputError(f"--aoi file not found: {options.aoi}")


def output_targets(output: str, options: SegmentOptions) -> dict[str, str]:
    """The output set: option -> path of every file a run writes."""
    targets = {"-o": output, "the manifest": out.manifest_path(output), "--candidates": options.candidates_path,
               "--prob": options.prob_path, "--preview": options.preview_path}
    return {k: os.fspath(v) for k, v in targets.items() if v}


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs_are_not_inputs(output: str, options: SegmentOptions, inputs: dict[str, str | None]) -> None:
    for option, target in output_targets(output, options).items():
        for what, path in inputs.items():
            if path and _same_file(target, os.fspath(path)):
                raise OutputError(f"{option} {target} is {what}, an input of this run; "
                                  "choose another output path (--overwrite never replaces an input)")


def work_dir_for(output: str) -> str:
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.rrsis-work")


def gdal_cache_mb(path: str) -> int:
    """GDAL's block cache defaults to 5% of RAM and fills up as a long run reads and writes. Two
    block rows of the scene (and of the probability raster) are all a strip-by-strip run reuses,
    so the cap follows the scene's width, never its height: at least 16 MB, at most 512 MB."""
    try:
        with rasterio.open(path) as ds:
            block_h = ds.block_shapes[0][0]
            row_bytes = ds.width * min(block_h, 1024) * (ds.count * np.dtype(ds.dtypes[0]).itemsize + 4)
    except Exception:  # preflight reports unreadable scenes properly
        return 64
    return int(min(max(16, 2 * row_bytes / 2**20 + 8), 512))


def segment_scene(scene, *args, **kwargs) -> SegmentResult:
    """Run the whole pipeline; see :func:`_segment_scene` for the arguments.

    GDAL's cache is capped from the scene's width (a user's own GDAL_CACHEMAX wins)."""
    env = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": gdal_cache_mb(os.fspath(scene))}
    with rasterio.Env(**env):
        return _segment_scene(scene, *args, **kwargs)


def _segment_scene(
    scene: str | os.PathLike,
    expression: str,
    output: str | os.PathLike,
    predictor: Predictor,
    options: SegmentOptions = SegmentOptions(),
    progress: Progress | None = None,
    should_cancel: Callable[[], bool] | None = None,
    inputs: dict[str, str] | None = None,
) -> SegmentResult:
    """Run the whole pipeline; see the module docstring. Raises :class:`~rrsis_geo.errors.InputError`
    subclasses for bad input (before any work starts) and :class:`Cancelled` when interrupted.

    The output set is locked for the run (a second run writing it refuses), and what a killed run
    left of it is settled first: an unfinished commit is finished or rolled back, stray
    temporaries are removed. ``inputs``: see :func:`preflight`."""
    emit = progress or (lambda event: None)
    output = os.fspath(output)
    minfo = predictor.info
    preflight(scene, expression, output, options, needed_bands=minfo.bands, inputs=inputs)
    targets = output_targets(output, options)
    with out.OutputLock(list(targets.values())):
        work = work_dir_for(output)
        job = _job_key(scene, expression, output, options, minfo)
        recovered = out.recover_set(os.path.join(work, COMMIT_MARKER))
        if recovered is not None:
            outcome, data = recovered
            emit({"event": "log", "level": "warning",
                  "message": f"a killed run left its outputs half renamed into place; {outcome} its commit "
                             f"({', '.join(os.path.basename(g) for _, g in data['pairs'])})"})
            if outcome == "finished" and data.get("job") == job and isinstance(data.get("result"), dict):
                try:
                    result = SegmentResult(**data["result"])
                except TypeError:
                    result = None
                if result is not None:
                    shutil.rmtree(work, ignore_errors=True)
                    return result
        for target in targets.values():
            out.remove_stale_temps(target)
        return _segment_locked(scene, expression, output, predictor, options, emit, should_cancel, inputs,
                               work, job)


def _job_key(scene, expression, output, options, minfo) -> str:
    """What a run was asked to do (before any pixel is read): a finished commit answers a rerun of it,
    unless the scene file changed since (its size and modification time, as :func:`_fingerprint`)."""
    st = os.stat(scene)
    key = {"scene": os.path.abspath(os.fspath(scene)), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
           "expression": check_expression(expression),
           "output": os.path.abspath(output), "options": {**asdict(options), "resume": None},
           "model": [minfo.model_id, minfo.checksum]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _segment_locked(scene, expression, output, predictor, options, emit, should_cancel, inputs, work,
                    job) -> SegmentResult:
    t_start = time.perf_counter()
    minfo = predictor.info
    info = preflight(scene, expression, output, options, needed_bands=minfo.bands, inputs=inputs)
    if options.whole_scene:
        check_whole_scene(info, minfo.input_size)
    expression = check_expression(expression)
    threshold = minfo.threshold if options.threshold is None else float(options.threshold)
    tile, warning = training_tile(info, minfo, options.tile)
    if warning:
        emit({"event": "log", "level": "warning", "message": warning})
    overlap = options.overlap if options.overlap is not None else default_overlap(tile)
    validate_tiling(tile, overlap)
    dst_crs = parse_crs(options.dst_crs) if options.dst_crs else None
    aoi_geoms = _aoi_geoms(options.aoi, info) if options.aoi else None
    aoi_fn = _aoi_mask_fn(aoi_geoms, info) if aoi_geoms else None
    mode = mode_of(options)
    plan = plan_query(expression, vocabulary.from_metadata(minfo.extra.get("vocabulary")),
                      options.force) if mode == "scene" else None

    with rasterio.open(info.path) as ds:
        scaling, warning = scene_scaling(ds, info, minfo.extra)
    if warning:
        emit({"event": "log", "level": "warning", "message": warning})
    tiles = ([Tile(0, 0, 0, 0, minfo.input_size, 0, 0, 0, 0)] if options.whole_scene
             else plan_tiles(info.width, info.height, tile, overlap))
    row_starts = axis_plan(info.height, tile, overlap).starts
    margin = default_margin(overlap)
    run_id = uuid.uuid4().hex
    fingerprint = _fingerprint(info, expression, minfo, tile, overlap, scaling, options)

    passes = 0 if plan is not None and plan.abstain else len(plan.phrases()) if plan is not None else 1
    estimate = _check_disk(info, passes, options, work)
    state = _open_work(work, fingerprint, info, options.resume, emit)
    resumed_from = int(state["flushed_rows"])
    emit({"event": "start", "run_id": run_id, "scene": info.path, "expression": expression,
          "tiles": len(tiles), "passes": max(passes, 1), "model": minfo.model_id,
          "resumed_from_row": resumed_from, "disk_estimate_bytes": estimate})
    if resumed_from:
        emit({"event": "log", "level": "info",
              "message": f"resuming an interrupted run from row {resumed_from} of {info.height}"})
    for message in plan.warnings if plan else ():
        emit({"event": "log", "level": "warning", "message": message})

    counts = {"predicted": 0, "skipped": 0}
    scene_answer = None
    try:
        if plan is not None and plan.abstain:
            features = []  # nothing the model could answer: no pass runs
            scene_answer = _abstention(plan.abstain)
        else:
            encode = _Encoder(predictor, emit)
            encoded = encode(plan.zoom_phrase if plan else expression)
            first = pass_progress(emit, 0, passes)
            if options.whole_scene:
                _predict_whole(info, minfo, scaling, aoi_fn, predictor, encoded, work, state, counts, first)
            elif resumed_from < info.height:
                _predict(info, tiles, row_starts, tile, margin, options, minfo, scaling, aoi_fn,
                         predictor, encoded, work, state, counts, first, should_cancel, threshold)
            features = _vectorise(work, info, threshold, options, minfo, expression, run_id, first,
                                  should_cancel)
            if plan is not None:
                runner = _Passes(info, tiles, row_starts, tile, margin, options, minfo, scaling, aoi_fn,
                                 predictor, encode, work, fingerprint, counts, emit, should_cancel,
                                 threshold, expression, run_id, plan.phrases(), plan.query.sentence)
                scene_answer = _scene_level(plan, features, runner, aoi_geoms)
    except KeyboardInterrupt:
        raise Cancelled(f"interrupted; partial work kept in {work}; run the same command to resume") from None

    if scene_answer is not None:
        cand_frame = out.features_frame(scene_answer.rows, info.crs, out.CANDIDATE_SCHEMA)
        frame = out.features_frame(answer_records(scene_answer.rows), info.crs, out.CANDIDATE_SCHEMA)
        if dst_crs is not None:
            cand_frame = cand_frame.to_crs(dst_crs)
    else:
        frame = out.features_frame(features, info.crs)
    if dst_crs is not None:
        frame = frame.to_crs(dst_crs)
    emit({"event": "progress", "stage": "write", "done": 0, "total": 1, "percent": 99.0})
    pending: list[out.PendingFile] = []
    try:
        if scene_answer is not None and os.path.splitext(output)[1].lower() in out.MULTI_LAYER_EXTENSIONS:
            pending.append(out.write_vector(frame, output, layers={out.ANSWER_LAYER: frame,
                                                                   out.CANDIDATES_LAYER: cand_frame}))
        else:
            pending.append(out.write_vector(frame, output))
        if scene_answer is not None and options.candidates_path:
            pending.append(out.write_vector(cand_frame, options.candidates_path))
        if options.prob_path:
            pending.append(_write_prob_cog(os.path.join(work, "prob.tif"), options.prob_path))
        if options.preview_path:
            from rrsis_geo.engine.preview import render_preview

            n = len(frame)
            title = f'"{expression}": {n} feature{"s" if n != 1 else ""} ({minfo.model_id})'
            faint = None
            if scene_answer is not None:
                title = f'"{expression}": {scene_answer.resolution.rule} ({minfo.model_id})'
                faint = cand_frame.to_crs(info.crs) if dst_crs else cand_frame
            pending.append(render_preview(info.path, info.bands, frame.to_crs(info.crs) if dst_crs
                                          else frame, options.preview_path, title, faint=faint))
        seconds = time.perf_counter() - t_start
        result = SegmentResult(
            output=os.path.abspath(output), manifest=os.path.abspath(out.manifest_path(output)),
            prob=os.path.abspath(options.prob_path) if options.prob_path else None,
            features=len(frame), run_id=run_id, seconds=round(seconds, 3), tiles_total=len(tiles),
            tiles_predicted=counts["predicted"], tiles_skipped=counts["skipped"],
            resumed_from_row=resumed_from, mode=mode,
        )
        if scene_answer is not None:
            result.answer_features = len(frame)
            result.candidates = len(scene_answer.rows)
            result.rule = scene_answer.resolution.rule
            result.abstained = scene_answer.resolution.abstained
            if options.candidates_path:
                result.candidates_output = os.path.abspath(options.candidates_path)
        manifest = _manifest(result, info, expression, minfo, options, tile, overlap, margin,
                             threshold, scaling, dst_crs, state["tile_stats"])
        if plan is not None:
            manifest["scene_level"] = _scene_manifest(plan, scene_answer, result)
        pending.append(out.write_json(manifest, result.manifest))
    except BaseException:
        for p in pending:
            p.discard()
        raise
    out.commit_set(pending, os.path.join(work, COMMIT_MARKER), {"job": job, "result": asdict(result)})
    shutil.rmtree(work, ignore_errors=True)
    emit({"event": "progress", "stage": "write", "done": 1, "total": 1, "percent": 100.0})
    return result


# --------------------------------------------------------------------------- predict phase
def _predict_whole(info, minfo, scaling, aoi_fn, predictor, encoded, work, state, counts, emit):
    emit({"event": "progress", "stage": "predict", "done": 0, "total": 1, "percent": 0.0})
    reader = TileReader(info, scaling, minfo.mean, minfo.std, aoi_fn)
    try:
        prob = predict_whole_scene(info, reader, predictor, encoded, minfo.input_size)
    finally:
        reader.close()
    path = os.path.join(work, "prob.tif")
    with rasterio.open(path, "r+", sparse_ok=True) as dst:
        dst.write(prob, 1)
    counts["predicted"] = 1
    state.update(flushed_rows=info.height, check=_flushed_check(path, 0, prob))
    _save_state(work, state)
    emit({"event": "progress", "stage": "predict", "done": 1, "total": 1, "percent": 90.0})


def _predict(info, tiles, row_starts, tile, margin, options, minfo, scaling, aoi_fn, predictor,
             encoded, work, state, counts, emit, should_cancel, threshold):
    flushed = int(state["flushed_rows"])
    first_row = next(k for k, s in enumerate(row_starts) if s + tile > flushed)
    todo = [t for t in tiles if t.row >= first_row]
    # Tile rows from first_row on are predicted again; forget their stats from the last attempt.
    state["tile_stats"] = [s for s in state["tile_stats"] if s["row"] < first_row]
    writer = _StripWriter(os.path.join(work, "prob.tif"), info.width, work, state)
    acc = StripAccumulator(info.width, info.height, tile, writer.put, top=flushed)
    weights_cache: dict[tuple, np.ndarray] = {}
    done_before = len(tiles) - len(todo)
    current_row = first_row
    prefetch = _Prefetcher(lambda: TileReader(info, scaling, minfo.mean, minfo.std, aoi_fn), todo,
                           options.batch_size, options.prefetch, options.readers)
    processed = 0
    emit({"event": "progress", "stage": "predict", "done": done_before, "total": len(tiles),
          "percent": round(90.0 * done_before / len(tiles), 2)})
    try:
        for items, stack in prefetch:
            if should_cancel is not None and should_cancel():
                raise KeyboardInterrupt
            probs = None
            if len(stack):
                probs = np.asarray(predictor.predict(stack, encoded), dtype=np.float32)
                if probs.shape != (len(stack), tile, tile):
                    raise ModelError(
                        f"model returned probabilities of shape {probs.shape}, expected {(len(stack), tile, tile)}"
                    )
            for t, k, valid in items:
                while t.row > current_row:
                    acc.flush(rows_final_after(row_starts, info.height, current_row))
                    current_row += 1
                if k is None:
                    counts["skipped"] += 1
                    continue
                key = (t.overlap_top, t.overlap_bottom, t.overlap_left, t.overlap_right)
                w = weights_cache.get(key)
                if w is None:
                    w = weights_cache[key] = tile_weights(t, margin, options.window)
                full = valid is True
                acc.add(t, probs[k], w if full else w * valid)
                counts["predicted"] += 1
                state["tile_stats"].append(_tile_stats(t, probs[k], None if full else valid, threshold))
            processed += len(items)
            done = done_before + processed
            emit({"event": "progress", "stage": "predict", "done": done, "total": len(tiles),
                  "percent": round(90.0 * done / len(tiles), 2)})
        while current_row < len(row_starts):
            acc.flush(rows_final_after(row_starts, info.height, current_row))
            current_row += 1
        writer.close()
    finally:
        writer.abort()
        prefetch.close()


def _tile_stats(t: Tile, prob: np.ndarray, valid: np.ndarray | None, threshold: float) -> dict:
    v = prob if valid is None else prob[valid]
    return {"row": t.row, "col": t.col, "x": t.x, "y": t.y,
            "max": round(float(v.max()), 5) if v.size else 0.0,
            "fg_fraction": round(float(np.count_nonzero(v > threshold)) / v.size, 5) if v.size else 0.0}


class _StripWriter:
    """Writes finished strips to the work raster in a background thread, then records progress.

    The state file only ever claims rows whose data is already written, the dataset closed and
    the file synced to disk, and it carries a check of the last strip (see :func:`_verify_state`),
    so a run killed at any moment resumes from a consistent point.
    """

    def __init__(self, path: str, width: int, work: str, state: dict):
        self.path, self.width, self.work, self.state = path, width, work, state
        self.q: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, y0: int, prob: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        # The stats of tiles added so far (the list only grows, so a length is a snapshot).
        self.q.put((y0, prob, len(self.state["tile_stats"])))

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue
            y0, prob, stats = item
            try:
                with rasterio.open(self.path, "r+", sparse_ok=True) as dst:  # all-nodata blocks stay unwritten
                    dst.write(prob, 1, window=Window(0, y0, self.width, prob.shape[0]))
                _save_state(self.work, {**self.state, "tile_stats": self.state["tile_stats"][:stats],
                                        "flushed_rows": y0 + prob.shape[0],
                                        "check": _flushed_check(self.path, y0, prob)})
            except BaseException as exc:  # reported to the producer on its next put/close
                self.error = exc

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        if self.thread.is_alive():
            self.q.put(None)
            self.thread.join()


class _Prefetcher:
    """Reads tiles in background threads and yields ``(items, stack)`` batches in plan order.

    Each tile row is cut into chunks of at most ``batch_size`` tiles; reader ``i`` (each with its
    own dataset handle and strip cache) reads tile rows ``i, i + n, ...`` into its own queue, and
    the consumer takes rows round-robin, so order is kept, every strip is read once, and
    decompression runs in parallel. ``stack`` is a
    float32 ``(n, bands, size, size)`` array of the chunk's tiles with valid pixels, read straight
    into place; ``items`` lists every tile as ``(tile, index in stack or None, valid)`` where
    ``valid`` is ``True`` for a fully valid tile or its boolean mask. Fully invalid tiles carry
    index ``None`` and are never sent to the model.
    """

    def __init__(self, make_reader, tiles: list[Tile], batch_size: int, depth: int, workers: int):
        rows: dict[int, list[Tile]] = {}
        for t in tiles:
            rows.setdefault(t.row, []).append(t)
        self.rows = [[r[i : i + batch_size] for i in range(0, len(r), batch_size)]
                     for r in rows.values()]
        workers = max(1, min(workers, len(self.rows)))
        self.stop = threading.Event()
        self.batch_size = batch_size
        self.queues = [queue.Queue(maxsize=max(depth, 1)) for _ in range(workers)]
        # Each reader may hold: `depth` queued batches, one being filled, one being consumed.
        self.pool_size = max(depth, 1) + 2
        self.pools = [queue.Queue() for _ in range(workers)]
        self.allocated = [0] * workers
        self.threads = [
            threading.Thread(target=self._run, args=(make_reader, w, workers), daemon=True)
            for w in range(workers)
        ]
        for t in self.threads:
            t.start()

    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _take_buffer(self, w: int, shape) -> np.ndarray | None:
        """A batch array from reader ``w``'s pool (the consumer returns them once used), or a
        new one while the pool is not yet full: large buffers are reused, never churned."""
        pool = self.pools[w]
        if self.allocated[w] < self.pool_size:
            try:
                return pool.get_nowait()
            except queue.Empty:
                self.allocated[w] += 1
                return np.empty(shape, dtype=np.float32)
        while not self.stop.is_set():
            try:
                return pool.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _run(self, make_reader, w: int, workers: int):
        q = self.queues[w]
        reader = None
        try:
            reader = make_reader()
            for chunk in (c for row in self.rows[w::workers] for c in row):
                if self.stop.is_set():
                    return
                size, bands = chunk[0].size, len(reader.info.bands)
                stack = self._take_buffer(w, (self.batch_size, bands, size, size))
                if stack is None:
                    return
                items, n = [], 0
                for t in chunk:
                    _, valid = reader.read(t, out=stack[n])
                    if valid.all():
                        items.append((t, n, True))
                        n += 1
                    elif valid.any():
                        items.append((t, n, valid))
                        n += 1
                    else:
                        items.append((t, None, None))
                if not self._put(q, (items, stack, n)):
                    return
        except BaseException as exc:  # hand reader errors to the consumer
            self._put(q, exc)
        finally:
            if reader is not None:
                reader.close()

    def __iter__(self) -> Iterator[tuple]:
        for i, row in enumerate(self.rows):
            w = i % len(self.queues)
            for _ in row:
                item = self.queues[w].get()
                if isinstance(item, BaseException):
                    raise item
                items, stack, n = item
                yield items, stack[:n]
                self.pools[w].put(stack)  # the consumer is done with it

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


# ------------------------------------------------------------------------- vectorise phase
def _vectorise(work, info: SceneInfo, threshold, options, minfo, expression, run_id, emit,
               should_cancel) -> list[dict]:
    metric = MetricContext(info.crs, info.bounds)
    min_area = options.min_area_m2
    merger = SeamMerger(info.width, threshold, info.transform, min_area_m2=min_area,
                        area_bound=area_bound(metric, info.transform, info.width))
    records: list[dict] = []
    strip = max(1, int(options.strip_rows))
    n_strips = -(-info.height // strip)
    source = options.source_label or info.path

    def collect(objects):
        if not len(objects):
            return
        areas = areas_m2(metric, objects.geometry)  # the exact test; the merger's was a bound
        keep = np.flatnonzero(areas >= min_area)
        geoms = simplify_m(metric, objects.geometry[keep], options.simplify_m)
        score, score_max = objects.score[keep], objects.prob_max[keep]
        pixels, areas = objects.pixels[keep], areas[keep]
        for j in np.flatnonzero(~shapely.is_empty(geoms)).tolist():
            records.append({
                "expression": expression, "score": round(float(score[j]), 6),
                "score_max": round(float(score_max[j]), 6), "area_m2": round(float(areas[j]), 3),
                "pixels": int(pixels[j]), "model_id": minfo.model_id,
                "model_sha256": minfo.checksum, "source": source, "run_id": run_id,
                "geometry": geoms[j],
            })

    emit({"event": "progress", "stage": "vectorize", "done": 0, "total": n_strips, "percent": 90.0})
    with rasterio.open(os.path.join(work, "prob.tif")) as src:
        for i, y0 in enumerate(range(0, info.height, strip)):
            if should_cancel is not None and should_cancel():
                raise KeyboardInterrupt
            h = min(strip, info.height - y0)
            prob = src.read(1, window=Window(0, y0, info.width, h))
            collect(merger.add_strip(y0, prob, prob >= 0))
            emit({"event": "progress", "stage": "vectorize", "done": i + 1, "total": n_strips,
                  "percent": round(90.0 + 9.0 * (i + 1) / n_strips, 2)})
    collect(merger.finish())
    return records


# ------------------------------------------------------------------------- scene level
@dataclass
class _SceneAnswer:
    resolution: Resolution
    rows: list[dict]  # every candidate's feature record (see referring.answer)


def _abstention(rule: str) -> _SceneAnswer:
    return _SceneAnswer(Resolution([], rule=rule, abstained=True), [])


class _Encoder:
    """Encodes each phrase of a run once (its model warnings, e.g. "truncated to max_tokens",
    become log events once)."""

    def __init__(self, predictor: Predictor, emit: Progress):
        self.predictor, self.emit, self.cache = predictor, emit, {}

    def __call__(self, phrase: str):
        if phrase not in self.cache:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.cache[phrase] = self.predictor.encode_expression(phrase)
            for w in caught:
                self.emit({"event": "log", "level": "warning", "message": str(w.message)})
        return self.cache[phrase]


class _Passes:
    """The model passes of one scene-level run beyond the referent's zoom pass: the glance (the
    whole expression on the whole scene at the model's input) and each reference phrase's zoom
    pass. Each keeps its result in the work folder, so an interrupted run resumes them too."""

    def __init__(self, info, tiles, row_starts, tile, margin, options, minfo, scaling, aoi_fn,
                 predictor, encode, work, fingerprint, counts, emit, should_cancel, threshold, expression,
                 run_id, phrases, glance_phrase):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def glance(self) -> tuple[np.ndarray, Affine]:
        """(probabilities on the coarse grid, the grid's transform); 0 where the scene is invalid."""
        size = self.minfo.input_size
        path = os.path.join(self.work, "glance.npy")
        prob = None
        if self.options.resume and os.path.exists(path):
            try:
                prob = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                self.emit({"event": "log", "level": "warning", "message": UNVERIFIED})
            if prob is not None and (prob.shape != (size, size) or prob.dtype != np.float32):
                self.emit({"event": "log", "level": "warning", "message": UNVERIFIED})
                prob = None
        if prob is None:
            encoded = self.encode(self.glance_phrase)
            reader = TileReader(self.info, self.scaling, self.minfo.mean, self.minfo.std, self.aoi_fn)
            try:
                prob = glance_scene(reader, self.predictor, encoded, size)
            finally:
                reader.close()
            tmp = path + ".tmp.npy"
            np.save(tmp, prob)
            os.replace(tmp, path)
            self.counts["predicted"] += 1
        transform = self.info.transform @ Affine.scale(self.info.width / size, self.info.height / size)
        return prob, transform

    def zoom(self, phrase: str) -> list[dict]:
        """The feature records of ``phrase``'s tiled pass."""
        key = hashlib.sha256(f"{self.fingerprint}|{phrase}".encode()).hexdigest()
        sub = os.path.join(self.work, f"pass-{key[:16]}")
        state = _open_work(sub, key, self.info, self.options.resume, self.emit)
        emit = pass_progress(self.emit, self.phrases.index(phrase), len(self.phrases))
        if int(state["flushed_rows"]) < self.info.height:
            encoded = self.encode(phrase)
            _predict(self.info, self.tiles, self.row_starts, self.tile, self.margin, self.options,
                     self.minfo, self.scaling, self.aoi_fn, self.predictor, encoded, sub, state,
                     self.counts, emit, self.should_cancel, self.threshold)
        return _vectorise(sub, self.info, self.threshold, self.options, self.minfo, self.expression,
                          self.run_id, emit, self.should_cancel)


def pass_progress(emit: Progress, k: int, n: int) -> Progress:
    """``emit`` for pass ``k`` of ``n`` tiled passes: its predict and vectorise percentages (0-99)
    are mapped into the pass's share of 0-99, and the events say which pass they belong to, so
    one progress bar runs once over the whole run. One pass is left as it is."""
    if n <= 1:
        return emit
    lo, share = 99.0 * k / n, 99.0 / n

    def scaled(event: dict) -> None:
        if event.get("event") == "progress" and event.get("stage") != "write":
            event = {**event, "percent": round(lo + share * event["percent"] / 99.0, 2), "pass": k + 1,
                     "passes": n}
        emit(event)

    return scaled


def _scene_level(plan: ScenePlan, features: list[dict], passes: _Passes, aoi_geoms) -> _SceneAnswer:
    """Candidates from the zoom pass's features, glance support, references, resolution."""
    info, options, minfo = passes.info, passes.options, passes.minfo
    metric = MetricContext(info.crs, info.bounds)
    footprint = metric.to_metric(_frame_polygon(info, aoi_geoms))
    frame = Frame.of(footprint)
    candidates = build_candidates(features, metric, frame, footprint)
    glance, glance_transform = passes.glance()
    add_glance_support(candidates, glance, glance_transform)
    references = []
    for ref_query, phrase in plan.references:
        same = phrase == plan.zoom_phrase
        references.append((ref_query, candidates if same else
                           build_candidates(passes.zoom(phrase), metric, frame, footprint)))
    presence = options.presence if options.presence is not None else float(minfo.extra.get("presence", 0.0))
    resolution = resolve(plan.query, candidates, presence=presence,
                         min_pixels=min_candidate_pixels(minfo, passes.tile), references=references,
                         frame=frame)
    return _SceneAnswer(resolution, candidate_records(candidates, resolution))


def min_candidate_pixels(minfo, tile: int) -> int:
    """The smallest candidate (scene pixels) a scene-level run chooses among: the checkpoint's
    ``min_target_px`` when it has one, else :data:`MIN_CANDIDATE_INPUT_PX` model-input pixels at
    this run's tile scale (the model resizes a tile of ``tile`` pixels to its input size)."""
    if minfo.extra.get("min_target_px"):
        return int(minfo.extra["min_target_px"])
    return math.ceil(MIN_CANDIDATE_INPUT_PX * (tile / minfo.input_size) ** 2)


def _frame_polygon(info: SceneInfo, aoi_geoms) -> shapely.Geometry:
    """The scene's footprint (or its part inside the AOI) in the scene's CRS."""
    footprint = pixel_box(info.transform, 0, 0, info.width, info.height)
    if aoi_geoms:
        inside = footprint.intersection(shapely.union_all(aoi_geoms))
        if not inside.is_empty:
            return inside
    return footprint


# ------------------------------------------------------------------------------ helpers
def _aoi_geoms(path: str, info: SceneInfo) -> list:
    import geopandas as gpd

    try:  # existence was checked by preflight
        frame = gpd.read_file(path)
    except Exception as exc:
        raise InputError(f"--aoi: cannot read {path} as vector data ({exc})") from None
    if frame.crs is None:
        raise InputError(f"--aoi: {path} has no CRS")
    geoms = [g for g in frame.to_crs(info.crs).geometry if g is not None and not g.is_empty]
    if not geoms:
        raise InputError(f"--aoi: {path} has no geometries")
    return geoms


def _aoi_mask_fn(geoms: list, info: SceneInfo):
    from rasterio.features import geometry_mask

    def mask(window: Window, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Inside-the-AOI mask of ``window``, at full resolution or resampled to ``out_shape``."""
        shape = out_shape or (int(window.height), int(window.width))
        transform = rasterio.windows.transform(window, info.transform) @ Affine.scale(
            window.width / shape[1], window.height / shape[0])
        return geometry_mask(geoms, out_shape=shape, transform=transform, invert=True)

    return mask


def _fingerprint(info, expression, minfo, tile, overlap, scaling, options) -> str:
    st = os.stat(info.path)
    key = {
        "scene": os.path.abspath(info.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "bands": info.bands, "crs": info.crs.to_string(), "expression": expression,
        "model": [minfo.model_id, minfo.checksum], "tile": tile, "overlap": overlap,
        "scaling": scaling.as_dict(), "window": options.window, "aoi": options.aoi,
        "whole_scene": options.whole_scene, "mode": mode_of(options), "force": options.force,
        "engine": __version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _open_work(work: str, fingerprint: str, info: SceneInfo, resume: bool, emit: Progress) -> dict:
    """The state of a pass's work folder: an interrupted run's when ``resume`` and it verifies
    (:func:`_load_state`), else a fresh folder with a new work raster."""
    state = _load_state(work, fingerprint, info, emit) if resume else None
    if state is None:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        state = _new_state(work, fingerprint, info)
    return state


def _new_state(work: str, fingerprint: str, info: SceneInfo) -> dict:
    """A fresh work raster in ``work`` and the state that claims none of its rows."""
    path = os.path.join(work, "prob.tif")
    _create_prob_raster(path, info)
    state = {"fingerprint": fingerprint, "flushed_rows": 0, "tile_stats": [],
             "check": {"rows": 0, "y0": 0, "size": os.path.getsize(path), "crc32": None}}
    _save_state(work, state)
    return state


def _load_state(work: str, fingerprint: str, info: SceneInfo, emit: Progress) -> dict | None:
    """The state of an interrupted run of this job in ``work``, or ``None`` to start afresh: when
    there is none, it is another job's, or its work does not pass :func:`_verify_state` (then
    with a warning)."""
    try:
        with open(os.path.join(work, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        state = None
    if isinstance(state, dict) and state.get("fingerprint") != fingerprint:
        return None
    if state is None or not _verify_state(work, state, info):
        emit({"event": "log", "level": "warning", "message": UNVERIFIED})
        return None
    return state


def _flushed_check(path: str, y0: int, prob: np.ndarray) -> dict:
    """What a state records of the strip it claims last: rows up to its end, the work raster's
    size once synced, and the strip's checksum."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return {"rows": y0 + prob.shape[0], "y0": y0, "size": os.path.getsize(path),
            "crc32": zlib.crc32(np.ascontiguousarray(prob, dtype=np.float32).tobytes())}


def _verify_state(work: str, state: dict, info: SceneInfo) -> bool:
    """Whether the work raster holds what ``state`` claims: well-typed values, a raster of the
    scene's grid no smaller than when the state was saved, and the last claimed strip's checksum."""
    def is_int(v):
        return type(v) is int

    try:
        rows, check, stats = state["flushed_rows"], state["check"], state["tile_stats"]
        if not (is_int(rows) and 0 <= rows <= info.height and isinstance(stats, list)
                and all(isinstance(s, dict) and is_int(s.get("row")) for s in stats)
                and isinstance(check, dict) and check.get("rows") == rows and is_int(check.get("y0"))
                and is_int(check.get("size"))):
            return False
        path = os.path.join(work, "prob.tif")
        if os.path.getsize(path) < check["size"]:
            return False
        with rasterio.open(path) as src:
            if ((src.width, src.height, src.count) != (info.width, info.height, 1) or src.dtypes[0] != "float32"
                    or src.crs != info.crs):
                return False
            if rows == 0:
                return True
            y0 = check["y0"]
            if not 0 <= y0 < rows:
                return False
            strip = src.read(1, window=Window(0, y0, info.width, rows - y0))
        return zlib.crc32(np.ascontiguousarray(strip, dtype=np.float32).tobytes()) == check["crc32"]
    except Exception:  # an unreadable raster or a state of the wrong shape
        return False


def _check_disk(info: SceneInfo, passes: int, options: SegmentOptions, work: str) -> int:
    """The run's disk estimate in bytes; an :class:`OutputError` when the work folder's filesystem
    lacks it (less what an interrupted run of the job already wrote there)."""
    estimate = disk_estimate(info.width, info.height, stored_fraction(info.path), max(passes, 1),
                             prob_output=bool(options.prob_path))
    folder = os.path.dirname(work)
    free = free_bytes(folder) + (_bytes_used(work) if options.resume else 0)
    if estimate > free:
        raise OutputError(f"not enough disk space in {folder}: this run needs about {format_bytes(estimate)} "
                          f"({max(passes, 1)} work raster{'s' if passes > 1 else ''} of the scene's size"
                          f"{' and --prob' if options.prob_path else ''}), {format_bytes(free)} free")
    return estimate


def _bytes_used(folder: str) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _save_state(work: str, state: dict) -> None:
    tmp = os.path.join(work, "state.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(work, "state.json"))


def _create_prob_raster(path: str, info: SceneInfo) -> None:
    profile = {
        "driver": "GTiff", "width": info.width, "height": info.height, "count": 1,
        "dtype": "float32", "crs": info.crs, "transform": info.transform, "nodata": PROB_NODATA,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER",
        "SPARSE_OK": "TRUE",
    }
    with rasterio.open(path, "w", **profile):
        pass


def _write_prob_cog(src_path: str, target: str) -> out.PendingFile:
    temp = out.temp_sibling(target)
    try:
        rasterio.shutil.copy(src_path, temp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                             BLOCKSIZE=512, OVERVIEWS="AUTO", RESAMPLING="AVERAGE")
    except BaseException:
        out.PendingFile(temp, target).discard()
        raise
    return out.PendingFile(temp, target)


def _versions() -> dict:
    import geopandas
    import pyproj
    import shapely

    v = {"rrsis_geo": __version__, "python": platform.python_version(), "numpy": np.__version__,
         "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__,
         "shapely": shapely.__version__, "geopandas": geopandas.__version__,
         "pyproj": pyproj.__version__}
    if "torch" in sys.modules:  # recorded when a torch model ran; never imported just for this
        v["torch"] = sys.modules["torch"].__version__
    return v


def _relation_record(rel) -> dict:
    """A relation in the manifest; ``also`` lists, once each, those joined to it by "and"."""
    def fields(r):
        return {"kind": r.kind, "direction": r.direction, "distance_m": r.distance_m,
                "references": [ref.text for ref in r.references]}
    return {**fields(rel), "also": [fields(r) for r in rel.chain()[1:]]}


def _scene_manifest(plan: ScenePlan, answer: _SceneAnswer, result: SegmentResult) -> dict:
    q = plan.query
    return {
        "query": {"referent": q.referent, "head": q.head, "attributes": list(q.attributes), "number": q.number,
                  "size": asdict(q.size) if q.size else None,
                  "position": asdict(q.position) if q.position else None,
                  "relation": _relation_record(q.relation) if q.relation else None,
                  "within": asdict(q.within) if q.within else None,
                  "limit": asdict(q.limit) if q.limit else None, "count": q.count,
                  "unparsed": list(q.unparsed)},
        "glance_phrase": q.sentence, "zoom_phrases": plan.phrases(),
        "rule": answer.resolution.rule, "abstained": answer.resolution.abstained,
        "answer_features": result.answer_features, "candidates": result.candidates,
        "candidates_output": result.candidates_output,
    }


def _manifest(result, info, expression, minfo, options, tile, overlap, margin, threshold,
              scaling, dst_crs, tile_stats) -> dict:
    return {
        "run_id": result.run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "expression": expression,
        "scene": {"path": os.path.abspath(info.path), "label": options.source_label,
                  "width": info.width, "height": info.height,
                  "count": info.count, "dtype": info.dtype, "crs": info.crs.to_string(),
                  "crs_assumed": info.crs_assumed, "transform": list(info.transform)[:6],
                  "nodata": info.nodata, "bands": list(info.bands)},
        "model": {"id": minfo.model_id, "sha256": minfo.checksum, "input_size": minfo.input_size,
                  "mean": list(minfo.mean), "std": list(minfo.std)},
        "parameters": {**asdict(options), "tile": tile, "overlap": overlap,
                       "blend_margin": margin, "threshold": threshold,
                       "dst_crs": dst_crs.to_string() if dst_crs else None},
        "normalisation": scaling.as_dict(),
        "outputs": {"vector": result.output, "prob": result.prob,
                    "preview": os.path.abspath(options.preview_path) if options.preview_path else None,
                    "crs":
                    (dst_crs or info.crs).to_string()},
        "result": {"features": result.features, "tiles_total": result.tiles_total,
                   "tiles_predicted": result.tiles_predicted, "tiles_skipped": result.tiles_skipped,
                   "resumed_from_row": result.resumed_from_row, "seconds": result.seconds},
        "tiles": tile_stats,
        "versions": _versions(),
    }
