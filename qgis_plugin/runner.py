"""Run the ``rrsis`` command in a subprocess and follow its JSON progress lines.

This module imports nothing from QGIS (nor torch, nor rrsis_geo): it is plain Python so the
subprocess logic can be tested by any interpreter, and so QGIS's Python never needs the heavy
dependencies. The algorithm turns its events into ``QgsProcessingFeedback`` calls and its
exceptions into ``QgsProcessingException``.

Protocol (``rrsis segment ... --progress json``): one JSON object per stdout line, with
``event`` one of ``start``, ``progress``, ``log``, ``done``, ``error``; ``done`` says the ``mode``
and, for scene-level runs, ``rule``, ``abstained``, ``answer_features`` and ``candidates``
(an abstention is a success with an empty answer). Exit codes: 0 ok,
2 bad input, 1 internal error, 130 cancelled. On error a one-line ``Error: ...`` on stderr.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

#: Output extensions the CLI writes itself; anything else is converted by the plugin.
CLI_VECTOR_EXTENSIONS = ("gpkg", "geojson", "fgb", "parquet", "shp")

#: Environment variables that belong to the host application's own Python/GDAL/PROJ and
#: would break a different interpreter (e.g. QGIS on Windows sets PYTHONHOME and PROJ_LIB).
HOST_ONLY_ENV = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONEXECUTABLE",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
    "QGIS_PREFIX_PATH",
)

#: How long to keep reading output after the process has exited.
DRAIN_SECONDS = 1.0

SETTINGS_HINT = "Set it in Processing > Options > Providers > rrsis-geo > rrsis executable"


class RrsisNotFound(Exception):
    """The rrsis command could not be located or cannot be executed."""


class CliFailed(Exception):
    """The command exited with an error; ``str(exc)`` is the CLI's own one-line message."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class RunCancelled(Exception):
    """The run was cancelled by the caller; the process has been stopped."""


# --------------------------------------------------------------------------------------------
# Locating the command
# --------------------------------------------------------------------------------------------

def _is_python(path: str) -> bool:
    name = os.path.basename(path).lower()
    return name.startswith("python") or name.startswith("pythonw")


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def resolve_command(setting: Optional[str], which: Callable[[str], Optional[str]] = shutil.which) -> list:
    """Return the argv prefix that starts ``rrsis``.

    ``setting`` may be empty (auto-detect ``rrsis`` on PATH), the path of the ``rrsis``
    executable, the path of a Python interpreter that has rrsis-geo installed (run as
    ``python -m cli``), or the folder of a Python environment (venv/conda) that has it.
    """
    setting = (setting or "").strip().strip('"')
    if not setting:
        found = which("rrsis")
        if not found:
            raise RrsisNotFound(
                "The rrsis command was not found on PATH. Install rrsis-geo in a Python "
                "environment and give the path of its rrsis executable, its Python or the "
                f"environment folder. {SETTINGS_HINT}."
            )
        return [found]

    path = os.path.abspath(os.path.expanduser(setting))
    if os.path.isdir(path):
        for rel in ("bin/rrsis", "Scripts/rrsis.exe", "rrsis", "rrsis.exe"):
            candidate = os.path.join(path, rel)
            if _executable(candidate):
                return [candidate]
        for rel in ("bin/python3", "bin/python", "python.exe", "Scripts/python.exe"):
            candidate = os.path.join(path, rel)
            if _executable(candidate):
                return [candidate, "-m", "cli"]
        raise RrsisNotFound(
            f"The environment folder {path} has neither an rrsis executable nor a Python "
            f"interpreter. {SETTINGS_HINT}."
        )
    if not os.path.exists(path):
        raise RrsisNotFound(f"The rrsis executable does not exist: {path}. {SETTINGS_HINT}.")
    if not _executable(path):
        raise RrsisNotFound(f"The rrsis executable is not an executable file: {path}. {SETTINGS_HINT}.")
    if _is_python(path):
        return [path, "-m", "cli"]
    return [path]


# --------------------------------------------------------------------------------------------
# Building the argument list
# --------------------------------------------------------------------------------------------

@dataclass
class SegmentRequest:
    """Everything one ``rrsis segment`` run needs. ``None`` leaves a value to the CLI's default.

    Neither ``whole_scene`` nor ``per_tile``: the CLI's default, scene-level mode (a GeoPackage
    output gets the layers ``answer`` and ``candidates``; ``candidates`` writes the latter to a
    file of its own as well).
    """

    scene: str
    expression: str
    output: str
    model: Optional[str] = None
    bands: Optional[Iterable[int]] = None
    tile: Optional[int] = None
    overlap: Optional[int] = None
    batch_size: Optional[int] = None
    threshold: Optional[float] = None
    min_area: Optional[float] = None
    simplify: Optional[float] = None
    device: Optional[str] = None
    prob: Optional[str] = None
    aoi: Optional[str] = None
    assume_crs: Optional[str] = None
    dst_crs: Optional[str] = None
    whole_scene: bool = False
    per_tile: bool = False
    candidates: Optional[str] = None
    presence: Optional[float] = None
    force: bool = False
    overwrite: bool = True
    source_label: str | None = None
    extra: list = field(default_factory=list)

    def args(self) -> list:
        """The arguments after the command. Options come first and the positionals after
        ``--``, so an expression starting with ``-`` is never read as an option."""
        out = ["segment", "-o", self.output, "--progress", "json"]
        if self.model:
            out += ["--model", str(self.model)]
        if self.bands:
            out += ["--bands", ",".join(str(int(b)) for b in self.bands)]
        for flag, value in (
            ("--tile", self.tile),
            ("--overlap", self.overlap),
            ("--batch-size", self.batch_size),
        ):
            if value is not None:
                out += [flag, str(int(value))]
        for flag, value in (
            ("--threshold", self.threshold),
            ("--min-area", self.min_area),
            ("--simplify", self.simplify),
            ("--presence", self.presence),
        ):
            if value is not None:
                out += [flag, repr(float(value))]
        if self.device:
            out += ["--device", self.device]
        if self.prob:
            out += ["--prob", self.prob]
        if self.aoi:
            out += ["--aoi", self.aoi]
        if self.assume_crs:
            out += ["--assume-crs", self.assume_crs]
        if self.dst_crs:
            out += ["--dst-crs", self.dst_crs]
        if self.source_label:
            out += ["--source-label", self.source_label]
        if self.whole_scene:
            out.append("--whole-scene")
        if self.per_tile:
            out.append("--per-tile")
        if self.candidates:
            out += ["--candidates", self.candidates]
        if self.force:
            out.append("--force")
        if self.overwrite:
            out.append("--overwrite")
        out += list(self.extra)
        out += ["--", self.scene, self.expression]
        return out


@dataclass
class BatchRequest:
    """Everything one ``rrsis batch --scheduler none`` run needs (serially, in the subprocess: no
    Dask cluster inside QGIS). ``inputs``: scene files, folders or .txt / .csv lists."""

    inputs: list
    expression: str
    outdir: str
    model: Optional[str] = None
    min_area: Optional[float] = None
    simplify: Optional[float] = None
    device: Optional[str] = None
    assume_crs: Optional[str] = None
    dst_crs: Optional[str] = None
    force: bool = False
    extra: list = field(default_factory=list)

    def args(self) -> list:
        """The arguments after the command; the positionals after ``--`` (see SegmentRequest)."""
        out = ["batch", "-o", self.outdir, "--scheduler", "none", "--progress", "json"]
        if self.model:
            out += ["--model", str(self.model)]
        for flag, value in (("--min-area", self.min_area), ("--simplify", self.simplify)):
            if value is not None:
                out += [flag, repr(float(value))]
        for flag, value in (("--device", self.device), ("--assume-crs", self.assume_crs),
                            ("--dst-crs", self.dst_crs)):
            if value:
                out += [flag, value]
        if self.force:
            out.append("--force")
        out += list(self.extra)
        out += ["--", *[str(i) for i in self.inputs], self.expression]
        return out


def child_env(base: Optional[dict] = None) -> dict:
    """The environment for the subprocess: the host's, minus its Python/GDAL/PROJ variables,
    with unbuffered UTF-8 output so progress lines arrive as they are written."""
    env = dict(os.environ if base is None else base)
    for key in HOST_ONLY_ENV:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------

def _reader(stream, tag: str, q: "queue.Queue") -> None:
    try:
        for line in iter(stream.readline, ""):
            q.put((tag, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        q.put((tag, None))


def _popen_platform_kwargs() -> dict:
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags}
    # A session of its own: signals go to the whole process group (the CLI and any worker
    # processes it started), and a Ctrl-C in QGIS's terminal never reaches it.
    return {"start_new_session": True}


def stop_process(proc: subprocess.Popen, grace: float = 0.4) -> None:
    """Interrupt the process (SIGINT, so the CLI cleans up), then kill it after ``grace`` s."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "nt":
            proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        if os.name == "nt":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    proc.wait()


def _kill_strays(proc: subprocess.Popen) -> None:
    """Kill what the exited command left running in its process group (POSIX only)."""
    if os.name == "nt":
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def error_message(events: list, stderr_lines: list, exit_code: int) -> str:
    """The CLI's own one-line message for a failed run."""
    for event in reversed(events):
        if event.get("event") == "error" and event.get("message"):
            return str(event["message"])
    for line in reversed(stderr_lines):
        if line.startswith("Error:"):
            return line[len("Error:"):].strip()
    for line in reversed(stderr_lines):
        if line.startswith("Internal error:"):
            return line.strip()
    tail = [line for line in stderr_lines if line.strip()]
    if tail:
        return tail[-1].strip()
    return f"rrsis exited with code {exit_code} and no message"


def run_cli(
    argv: list,
    on_event: Callable[[dict], None] = lambda event: None,
    on_text: Callable[[str, str], None] = lambda stream, line: None,
    is_canceled: Callable[[], bool] = lambda: False,
    env: Optional[dict] = None,
    grace: float = 0.4,
    poll: float = 0.05,
) -> dict:
    """Run ``argv`` and return its ``done`` event.

    Callbacks run on the calling thread: ``on_event`` for every JSON event line, ``on_text``
    for other output (``"stdout"``/``"stderr"``, line). ``is_canceled`` is polled every
    ``poll`` seconds; when it turns true the process is stopped (SIGINT, then SIGKILL after
    ``grace`` seconds) and :class:`RunCancelled` is raised. A non-zero exit raises
    :class:`CliFailed` carrying the CLI's message.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=child_env() if env is None else env,
            **_popen_platform_kwargs(),
        )
    except FileNotFoundError as exc:
        raise RrsisNotFound(f"The rrsis executable does not exist: {argv[0]}. {SETTINGS_HINT}.") from exc
    except PermissionError as exc:
        raise RrsisNotFound(f"The rrsis executable cannot be run: {argv[0]} ({exc}). {SETTINGS_HINT}.") from exc

    q: "queue.Queue" = queue.Queue()
    threads = [
        threading.Thread(target=_reader, args=(proc.stdout, "stdout", q), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, "stderr", q), daemon=True),
    ]
    for t in threads:
        t.start()

    events: list = []
    stderr_lines: list = []
    open_streams = 2
    exited_at = None
    try:
        while open_streams:
            if is_canceled():
                raise RunCancelled("Cancelled")
            try:
                tag, line = q.get(timeout=poll)
            except queue.Empty:
                # A process that exited while something it started still holds its pipes open
                # must not hang the run: drain for a moment, then stop waiting for EOF.
                if proc.poll() is not None:
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > DRAIN_SECONDS:
                        _kill_strays(proc)
                        break
                continue
            if line is None:
                open_streams -= 1
                continue
            if tag == "stderr":
                stderr_lines.append(line)
                on_text("stderr", line)
                continue
            event = _parse_event(line)
            if event is None:
                on_text("stdout", line)
                continue
            events.append(event)
            on_event(event)
        # Streams closed: the process is exiting. Keep honouring cancel while it does.
        while True:
            try:
                code = proc.wait(timeout=poll)
                break
            except subprocess.TimeoutExpired:
                if is_canceled():
                    raise RunCancelled("Cancelled")
    except BaseException:
        stop_process(proc, grace)
        raise
    finally:
        for thread, stream in zip(threads, (proc.stdout, proc.stderr)):
            thread.join(timeout=poll)
            if not thread.is_alive():  # closing under a blocked reader would block too
                try:
                    stream.close()
                except OSError:
                    pass

    if code == 0:
        for event in reversed(events):
            if event.get("event") == "done":
                return event
        raise CliFailed(
            "rrsis finished without reporting a result; is it a version without "
            "'--progress json'?",
            1,
        )
    if code in (130, -signal.SIGINT) and is_canceled():
        raise RunCancelled("Cancelled")
    raise CliFailed(error_message(events, stderr_lines, code), code)


def _parse_event(line: str) -> Optional[dict]:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    if isinstance(event, dict) and isinstance(event.get("event"), str):
        return event
    return None


# --------------------------------------------------------------------------------------------
# Nothing half-written
# --------------------------------------------------------------------------------------------

class OutputGuard:
    """Remove whatever a failed or cancelled run left at its destinations.

    The CLI writes atomically and cleans up on SIGINT, but a process that had to be killed
    cannot. Before the run the guard records which destination files exist and what each
    destination folder holds; on failure it deletes destinations that did not exist before,
    their manifests, and new entries in those folders whose names contain a destination's
    name (the CLI's temporary files). Files that existed before are never touched.
    """

    def __init__(self, paths: Iterable[str]):
        self.paths = [os.path.abspath(p) for p in paths if p]
        self.before: dict = {}
        for path in self.paths:
            folder = os.path.dirname(path)
            if folder not in self.before:
                try:
                    self.before[folder] = set(os.listdir(folder))
                except OSError:
                    self.before[folder] = set()

    def _stems(self, folder: str) -> list:
        stems = []
        for path in self.paths:
            if os.path.dirname(path) == folder:
                base = os.path.basename(path)
                stems.append(base)
                stems.append(os.path.splitext(base)[0])
        return stems

    def cleanup(self) -> list:
        """Delete the leftovers; return what was deleted."""
        removed = []
        for folder, before in self.before.items():
            try:
                now = set(os.listdir(folder))
            except OSError:
                continue
            stems = self._stems(folder)
            for name in sorted(now - before):
                if not any(stem and stem in name for stem in stems):
                    continue
                target = os.path.join(folder, name)
                try:
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target)
                    else:
                        os.remove(target)
                    removed.append(target)
                except OSError:
                    pass
        return removed

    def __enter__(self) -> "OutputGuard":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.cleanup()
        return False


__all__ = [
    "CLI_VECTOR_EXTENSIONS",
    "CliFailed",
    "OutputGuard",
    "RrsisNotFound",
    "RunCancelled",
    "SegmentRequest",
    "child_env",
    "error_message",
    "resolve_command",
    "run_cli",
    "stop_process",
]
