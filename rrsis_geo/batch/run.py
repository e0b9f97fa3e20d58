"""Running a batch: which scenes still need work, where their tasks run, retries, progress.

``scheduler``: ``"none"`` runs the tasks one after another in this process; ``"local"`` starts a
Dask ``LocalCluster`` (one worker process per GPU, else ``workers`` CPU workers, each with one
task slot and the machine's cores divided among them for the model); an address
(``tcp://host:8786``) uses an existing Dask cluster, whose workers must have this package, the
model and the scenes and output folder at the same paths. A ``distributed.Client`` may be passed
instead (the caller owns it).

Progress events (``progress(event)``): ``start`` (scenes, reused, todo, scheduler, workers,
dashboard), ``scene`` (one per finished scene: its record's status and counts), ``retry`` (a
lost worker; the scene runs again), ``log``, and ``done``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from rrsis_geo.engine import output as out
from rrsis_geo.engine.segment import COMMIT_MARKER, check_options, mode_of, work_dir_for
from rrsis_geo.errors import Cancelled, InputError, OutputError

from rrsis_geo.batch import collect
from rrsis_geo.batch.inputs import Scene
from rrsis_geo.batch.tasks import (
    STATE_DIR,
    DEFAULT_LOADER,
    BatchJob,
    host_of,
    job_key,
    new_record,
    output_path,
    read_record,
    run_scene,
    scene_targets,
    write_record,
)

Progress = Callable[[dict], None]
SCENE_FIELDS = ("scene", "status", "features", "answer_features", "candidates", "rule", "seconds", "error",
                "worker")


@dataclass
class BatchResult:
    records: list[dict]  # one per scene, in input order, with ``reused`` and ``attempts``
    index: str
    answers: str
    crs: str
    done: int
    failed: int
    reused: int
    answer_features: int
    seconds: float


def run_batch(scenes: list[Scene], job: BatchJob, scheduler="local", workers: int | None = None,
              retries: int = 2, progress: Progress | None = None) -> BatchResult:
    """Segment every scene into ``job.outdir``; see the module docstring. Scenes whose outputs a
    run of the same job completed are reused, interrupted ones resume. Raises an
    :class:`InputError` for what the user can fix before any model is loaded; a scene that fails
    is a record with ``status`` ``failed``, never an exception."""
    emit = progress or (lambda event: None)
    t0 = time.perf_counter()
    check_options(job.options)
    if retries < 0:
        raise InputError(f"--retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if workers is not None and scheduler != "local":
        raise InputError("--workers sizes a local cluster (--scheduler local); an existing cluster has the "
                         "workers started for it (dask worker), --scheduler none runs in this process")
    if job.loader == DEFAULT_LOADER:
        _check_model(job.model)
    _prepare_outdir(job.outdir, job.options.overwrite)
    keys = {s.stem: job_key(job, s) for s in scenes}
    reused = {s.stem: r for s in scenes if (r := _completed(job, s, keys[s.stem])) is not None}
    todo = [s for s in scenes if s.stem not in reused]
    _check_clobber(job, todo)

    results: dict[str, dict] = {stem: {**r, "reused": True, "attempts": 0} for stem, r in reused.items()}
    start = {"event": "start", "scenes": len(scenes), "reused": len(reused), "todo": len(todo),
             "outdir": job.outdir}
    reused_events = [{"event": "scene", "reused": True, **{k: reused[s.stem].get(k) for k in SCENE_FIELDS}}
                     for s in scenes if s.stem in reused]

    def announce(**where) -> None:  # the start event (once the workers are up), then the reused scenes
        emit({**start, **where})
        for e in reused_events:
            emit(e)

    if todo:
        runner = _run_serial if scheduler in (None, "none") else _run_dask
        for record in runner(todo, job, keys, scheduler, workers, retries, emit, announce):
            results[record["scene"]] = {**record, "reused": False}
            emit({"event": "scene", "reused": False, "attempts": record["attempts"],
                  **{k: record.get(k) for k in SCENE_FIELDS}})
    else:
        announce(scheduler=None, workers=0)

    records = [results[s.stem] for s in scenes]
    index, answers, crs, n_answers = collect.write_collection(job.outdir, records, job.options.dst_crs,
                                                              mode_of(job.options) == "scene")
    done = sum(r["status"] == "done" for r in records)
    return BatchResult(records=records, index=index, answers=answers, crs=crs.to_string(), done=done,
                       failed=len(records) - done, reused=len(reused), answer_features=n_answers,
                       seconds=round(time.perf_counter() - t0, 3))


# -------------------------------------------------------------------------------- before the run
def _check_model(model: str) -> None:
    """A model argument that names no model of this package is refused before any scene starts."""
    from rrsis_geo.weights import AUTO, SHIPPED

    if model in SHIPPED or model == AUTO or os.path.isfile(model):
        return
    from rrsis_geo.models.registry import checkpoint_for  # presets (imports torch), else the ModelError

    checkpoint_for(model)


def _prepare_outdir(outdir: str, overwrite: bool) -> None:
    """Create the output folder; finish (or roll back) a killed run's index commit; refuse an index
    or answers file that no batch wrote there unless ``overwrite``."""
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise OutputError(f"-o {outdir} is a file; the batch writes a folder")
    try:
        os.makedirs(os.path.join(outdir, STATE_DIR), exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {outdir}: {exc.strerror or exc}") from None
    out.recover_set(collect.commit_marker(outdir))
    ours = any(name.endswith(".json") for name in os.listdir(os.path.join(outdir, STATE_DIR)))
    for name in (collect.INDEX_FILE, collect.ANSWERS_FILE):
        path = os.path.join(outdir, name)
        if os.path.exists(path) and not ours and not overwrite:
            raise OutputError(f"{path} exists and no batch wrote it: pass --overwrite or choose another folder")
        out.remove_stale_temps(path)


def _completed(job: BatchJob, scene: Scene, key: str) -> dict | None:
    """The record of a finished run of this very job whose outputs are all in place, else None."""
    if job.options.overwrite:
        return None
    record = read_record(job.outdir, scene.stem)
    if record is None or record.get("status") != "done" or record.get("job") != key:
        return None
    if not all(os.path.exists(p) for p in scene_targets(job, scene)):
        return None
    return record


def _check_clobber(job: BatchJob, todo: list[Scene]) -> None:
    """Outputs in the way that no completed run of this job explains: refused without --overwrite
    (an interrupted commit of the same output is finished by its run instead)."""
    if job.options.overwrite:
        return
    clash = [p for s in todo if not os.path.exists(os.path.join(work_dir_for(output_path(job, s)), COMMIT_MARKER))
             for p in scene_targets(job, s) if os.path.exists(p)]
    if clash:
        more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise OutputError(f"{', '.join(clash[:3])}{more} exist from another run (other options, expression, "
                          "model or scene): pass --overwrite to replace them, or choose another folder")


# ------------------------------------------------------------------------------------ execution
def _run_serial(todo, job, keys, scheduler, workers, retries, emit, announce):
    announce(scheduler="none", workers=1)
    for scene in todo:
        yield {**run_scene(job, scene, keys[scene.stem]), "attempts": 1}


def _run_dask(todo, job, keys, scheduler, workers, retries, emit, announce):
    from distributed import Client, as_completed

    cluster = None
    if not isinstance(scheduler, str):  # a Client the caller owns
        client, own_client = scheduler, False
    elif scheduler == "local":
        cluster, job = local_cluster(job, workers)
        client, own_client = Client(cluster), True
    else:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc})") from None
        own_client = True
    futures: dict = {}
    try:
        info = client.scheduler_info()
        if cluster is None and job.threads is None:
            job = replace(job, host_workers=_host_workers(info))
        announce(scheduler=scheduler if isinstance(scheduler, str) else info.get("address"),
                 workers=len(info.get("workers", {})), dashboard=_dashboard(client, info, local=cluster is not None))
        attempts = {s.stem: 1 for s in todo}
        waiting = list(reversed(todo))  # scenes not yet handed out, next one last
        pending = as_completed()

        def hand_out() -> None:
            """Keep as many scenes in flight as the cluster has task slots (at least one): the scheduler
            never holds a scene behind another on a worker, so a lost worker costs only its running
            scene an attempt, and workers that join later get scenes too."""
            slots = max(1, sum(client.nthreads().values()))
            while waiting and len(futures) < slots:
                scene = waiting.pop()
                future = _submit(client, job, scene, keys[scene.stem])
                futures[future.key] = (future, scene)
                pending.add(future)

        hand_out()
        for future in pending:
            _, scene = futures.pop(future.key)
            try:
                record = future.result()
            except Exception as exc:  # the task returns every scene's failure: this is a lost worker
                message = f"{type(exc).__name__}: {exc}"
                if attempts[scene.stem] <= retries:
                    attempts[scene.stem] += 1
                    emit({"event": "retry", "scene": scene.stem, "attempt": attempts[scene.stem], "message": message})
                    waiting.append(scene)
                    hand_out()
                    continue
                record = new_record(scene, job, keys[scene.stem])
                record.update(error=f"its worker was lost {attempts[scene.stem]} times ({message})", exit_code=1)
                write_record(job.outdir, record)
            hand_out()
            yield {**record, "attempts": attempts[scene.stem]}
    except KeyboardInterrupt:
        raise Cancelled("interrupted; finished scenes are kept: run the same command to go on") from None
    finally:
        if futures:
            client.cancel([f for f, _ in futures.values()], force=True)
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


def _submit(client, job: BatchJob, scene: Scene, key: str):
    # A fresh task key per attempt: a retried scene is a new task, not the lost one again.
    return client.submit(run_scene, job, scene, key, key=f"rrsis-{scene.stem}-{uuid.uuid4().hex[:8]}",
                         pure=False)


def local_plan(workers: int | None, device: str, cores: int | None = None, gpus: int | None = None
               ) -> tuple[int, int, int]:
    """(workers, model threads per worker, GPUs) of a local cluster: one worker per GPU, else
    ``workers`` CPU workers (default: one per 4 cores); the cores are divided among the workers,
    so workers x threads <= cores."""
    cores = cores or os.cpu_count() or 1
    gpus = (count_gpus() if device != "cpu" else 0) if gpus is None else gpus
    if device == "cuda" and not gpus:
        raise InputError("--device cuda: no GPU is visible on this machine; use --device cpu or auto")
    n = workers or gpus or max(1, cores // 4)
    return n, max(1, cores // n), gpus


def count_gpus() -> int:
    """NVIDIA GPUs visible here (``nvidia-smi -L``; 0 without the tool), honouring CUDA_VISIBLE_DEVICES."""
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    n = sum(line.startswith("GPU ") for line in listed.splitlines())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        n = min(n, len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"]))
    return n


def local_cluster(job: BatchJob, workers: int | None):
    """A started ``LocalCluster`` for ``job`` (see :func:`local_plan`) and the job with its threads
    and GPUs filled in."""
    import dask
    from distributed import LocalCluster

    n, threads, gpus = local_plan(workers, job.device)
    # A lost worker fails its task at once (no silent rescheduling): the batch retries it, --retries times.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True,
            dashboard_address=":8787" if _has_bokeh() else ":0",
            silence_logs=logging.ERROR)
    return cluster, replace(job, threads=job.threads or threads, gpus=gpus)


def _host_workers(info: dict) -> tuple[tuple[str, int], ...]:
    counts: dict[str, int] = {}
    for address in info.get("workers", {}):
        counts[host_of(address)] = counts.get(host_of(address), 0) + 1
    return tuple(sorted(counts.items()))


def _dashboard(client, info: dict, local: bool) -> str | None:
    """The dashboard's address when the scheduler serves one (a local one needs ``bokeh`` here)."""
    if "dashboard" not in info.get("services", {}) or (local and not _has_bokeh()):
        return None
    return client.dashboard_link


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None
