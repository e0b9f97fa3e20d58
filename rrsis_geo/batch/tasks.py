"""One scene as one task, run where the model is (a Dask worker, or the calling process).

A task makes exactly the engine call ``rrsis segment`` makes (:func:`segment_scene` with the same
:class:`SegmentOptions`, atomic outputs and manifest) into ``OUTDIR/<stem>.gpkg``, and leaves a
record of its outcome in ``OUTDIR/.rrsis-batch/<stem>.json``. A scene that fails for good (a bad
raster, no CRS) becomes a record with its one-line message, never an exception: only a lost
worker makes the task itself fail, which the caller retries.

The model is loaded once per worker and kept for its later scenes (:func:`predictor_for`). Which
function loads it is the job's ``loader`` (``"module:function"``, called as
``loader(model, device=...)``); tests name a fake there, which worker processes import by name.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace

from rrsis_geo.engine.segment import SegmentOptions, output_targets, segment_scene
from rrsis_geo.errors import Cancelled, RrsisError

from rrsis_geo.batch.inputs import Scene

STATE_DIR = ".rrsis-batch"  # in the output folder: one record per scene, the collection's commit marker
DEFAULT_LOADER = "rrsis_geo.models:load_predictor"


@dataclass(frozen=True)
class BatchJob:
    """What every scene of a batch shares.

    ``prob`` / ``preview``: also write ``<stem>.prob.tif`` / ``<stem>.preview.png``. ``threads``:
    torch threads per worker (``None``: ``host_workers`` decides, else the worker's default).
    ``host_workers``: (host, workers on it) pairs; a worker then takes its host's cores divided
    by its host's workers. ``gpus``: on a local cluster, worker ``i`` runs on ``cuda:i % gpus``.
    """

    outdir: str
    model: str
    device: str = "auto"
    options: SegmentOptions = SegmentOptions()
    prob: bool = False
    preview: bool = False
    loader: str = DEFAULT_LOADER
    threads: int | None = None
    host_workers: tuple[tuple[str, int], ...] = field(default=())
    gpus: int = 0


def output_path(job: BatchJob, scene: Scene) -> str:
    return os.path.join(job.outdir, scene.stem + ".gpkg")


def scene_options(job: BatchJob, scene: Scene) -> SegmentOptions:
    """The options ``rrsis segment`` gets for this scene: the batch's, plus its own side outputs."""
    return replace(job.options,
                   prob_path=os.path.join(job.outdir, scene.stem + ".prob.tif") if job.prob else None,
                   preview_path=os.path.join(job.outdir, scene.stem + ".preview.png") if job.preview else None)


def scene_targets(job: BatchJob, scene: Scene) -> list[str]:
    """Every file a scene's run writes (the output, its manifest and the side outputs)."""
    return list(output_targets(output_path(job, scene), scene_options(job, scene)).values())


def job_key(job: BatchJob, scene: Scene) -> str:
    """What a scene's run is asked to do: its record answers a rerun only when this is unchanged
    (the scene file, the expression, every option, the model and its file)."""
    key = {"scene": [scene.path, *_stat(scene.path)], "expression": scene.expression,
           "options": {**asdict(scene_options(job, scene)), "resume": None, "overwrite": None},
           "model": [job.model, *_stat(job.model)], "loader": job.loader, "output": output_path(job, scene)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _stat(path: str) -> list[int]:
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def record_path(outdir: str, stem: str) -> str:
    return os.path.join(outdir, STATE_DIR, stem + ".json")


def read_record(outdir: str, stem: str) -> dict | None:
    try:
        with open(record_path(outdir, stem), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(outdir: str, record: dict) -> None:
    path = record_path(outdir, record["scene"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def new_record(scene: Scene, job: BatchJob, key: str) -> dict:
    return {"scene": scene.stem, "path": scene.path, "expression": scene.expression,
            "output": output_path(job, scene), "job": key, "status": "failed", "error": None, "exit_code": None,
            "features": None, "answer_features": None, "candidates": None, "rule": None, "abstained": None,
            "seconds": None, "footprint_wkb": None, "crs": None, "worker": None}


def run_scene(job: BatchJob, scene: Scene, key: str) -> dict:
    """Segment ``scene`` as ``rrsis segment`` would; return (and store) its record."""
    t0 = time.perf_counter()
    record = new_record(scene, job, key)
    record["worker"] = _worker_name()
    options = scene_options(job, scene)
    inputs = {"the model checkpoint": job.model} if os.path.isfile(job.model) else None
    try:
        predictor = predictor_for(job, scene_model(job, scene, options))
        result = segment_scene(scene.path, scene.expression, output_path(job, scene), predictor, options,
                               inputs=inputs)
        record.update(status="done", features=result.features, answer_features=result.answer_features,
                      candidates=result.candidates, rule=result.rule, abstained=result.abstained)
    except Cancelled:
        raise
    except RrsisError as exc:
        record.update(error=str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # a scene GDAL or the model cannot handle: recorded, the batch goes on
        record.update(error=f"internal error: {type(exc).__name__}: {exc}", exit_code=1)
    record.update(_footprint(scene.path, options.assume_crs))
    record["seconds"] = round(time.perf_counter() - t0, 3)
    write_record(job.outdir, record)
    return record


def _footprint(path: str, assume_crs: str | None) -> dict:
    """The scene's outline (WKB hex, densified so it reprojects faithfully) and its CRS (WKT), when
    the raster can be opened and has (or is given) a CRS."""
    import rasterio
    import shapely

    from rrsis_geo.engine.geometry import pixel_box
    from rrsis_geo.engine.raster import parse_crs

    try:
        with rasterio.open(path) as ds:
            crs = ds.crs or (parse_crs(assume_crs) if assume_crs else None)
            if crs is None:
                return {}
            box = pixel_box(ds.transform, 0, 0, ds.width, ds.height)
    except Exception:
        return {}
    box = shapely.segmentize(box, max(box.length / 128, 1e-9))
    return {"footprint_wkb": shapely.to_wkb(box, hex=True), "crs": crs.to_wkt()}


# ------------------------------------------------------------------ the model, once per worker
_predictors: dict[tuple, object] = {}
_load_lock = threading.Lock()


def scene_model(job: BatchJob, scene: Scene, options) -> str:
    """The model for ``scene``: ``job.model``, or for ``auto`` the shipped model that fits the
    scene's bands (as ``rrsis segment`` chooses it)."""
    from rrsis_geo.weights import AUTO, choose_model

    if job.model != AUTO:
        return job.model
    from rrsis_geo.engine.raster import open_scene

    info = open_scene(scene.path, None, options.assume_crs, needed_bands=None)
    return choose_model(AUTO, info.offered_bands(options.bands))


def predictor_for(job: BatchJob, model: str):
    """This worker's predictor for ``model`` (:func:`scene_model`): loaded on the worker's first
    scene that needs it, then reused."""
    worker = _worker()
    module, name = job.loader.split(":")
    load = getattr(importlib.import_module(module), name)
    key = (getattr(worker, "id", None), load, model, job.device, job.gpus)
    with _load_lock:
        predictor = _predictors.get(key)
        if predictor is None:
            predictor = _predictors[key] = load(model, device=_device(job, worker))
            threads = _threads(job, worker)
            if threads and "torch" in sys.modules:  # never imported just for this (a fake model needs none)
                sys.modules["torch"].set_num_threads(threads)
    return predictor


def _worker():
    """The Dask worker running this task, or ``None`` outside Dask."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def _worker_name() -> str:
    worker = _worker()
    return str(worker.name) if worker is not None else "local"


def _device(job: BatchJob, worker) -> str:
    if job.gpus and job.device in ("auto", "cuda") and worker is not None:
        name = worker.name
        index = name if isinstance(name, int) else int(hashlib.sha1(str(name).encode()).hexdigest(), 16)
        return f"cuda:{index % job.gpus}"
    return job.device


def _threads(job: BatchJob, worker) -> int | None:
    if job.threads:
        return job.threads
    if worker is not None and job.host_workers:
        shared = dict(job.host_workers).get(host_of(worker.address))
        if shared:
            return max(1, (os.cpu_count() or 1) // shared)
    return None


def host_of(address: str) -> str:
    """``tcp://10.0.0.5:40000`` -> ``10.0.0.5``."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0]
