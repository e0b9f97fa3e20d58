"""Turning the engine's progress events into a bar, JSON lines, or silence (``rrsis batch``: see
:class:`BatchReporter`).

JSON lines (``--progress json``) are the protocol the QGIS plugin reads; one object per line on
stdout:

- ``{"event": "start", "run_id", "scene", "expression", "tiles" (per pass), "passes", "model",
  "resumed_from_row", "disk_estimate_bytes"}``
- ``{"event": "progress", "stage": "predict"|"vectorize"|"write", "done", "total", "percent"}``;
  with several tiled passes (a scene-level relation) also ``"pass"`` and ``"passes"``: ``done``
  and ``total`` count the pass's tiles, ``percent`` rises once over the whole run
- ``{"event": "log", "level": "info"|"warning", "message"}``
- ``{"event": "done", "output", "prob", "manifest", "features", "seconds", "mode"}``; scene-level
  runs add ``answer_features``, ``candidates``, ``candidates_output``, ``rule`` and ``abstained``
- ``{"event": "error", "message", "exit_code"}`` (the message is also printed on stderr)
"""

from __future__ import annotations

import json
import signal
import sys

import click


def json_line(event: dict) -> None:
    """One event as a JSON line on stdout (``--progress json``)."""
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def run_reported(reporter, call):
    """``call()`` with its failures reported through ``reporter.error`` before they propagate to
    ``cli.main`` (a JSON ``error`` event, a closed bar), a full disk as the one-line input error it
    is, and a terminate from a parent process (the QGIS plugin) cancelling like Ctrl-C."""
    from rrsis_geo.errors import OutputError, RrsisError

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return call()
    except RrsisError as exc:
        reporter.error(str(exc), exc.exit_code)
        raise
    except KeyboardInterrupt:
        reporter.error("cancelled", 130)
        raise
    except Exception as exc:  # a full disk is reported like bad input (see cli.main)
        from cli.main import disk_full_message

        message = disk_full_message(exc)
        if message is None:
            raise
        reporter.error(message, OutputError.exit_code)
        raise OutputError(message) from exc


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Reporter:
    def __init__(self, mode: str, quiet: int = 0):
        self.mode = mode
        self.quiet = quiet
        self.bars: dict = {}

    def __call__(self, event: dict) -> None:
        if self.mode == "json":
            json_line(event)
            return
        kind = event.get("event")
        if kind == "log":
            if event.get("level") == "warning" or not self.quiet:
                click.echo(f"{event['level']}: {event['message']}", err=True)
        elif kind == "progress" and self.mode == "bar" and not self.quiet:
            self._bar(event)

    def _bar(self, event: dict) -> None:
        from tqdm import tqdm

        stage = event["stage"]
        if stage == "write":
            return
        bar = self.bars.get(stage)
        if bar is None:
            for other in self.bars.values():
                other.close()
            unit = "tile" if stage == "predict" else "strip"
            bar = self.bars[stage] = tqdm(total=event["total"], initial=event["done"], desc=stage,
                                          unit=unit, file=sys.stderr, dynamic_ncols=True)
        bar.update(event["done"] - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def error(self, message: str, exit_code: int) -> None:
        self.close()
        if self.mode == "json":
            self({"event": "error", "message": message, "exit_code": exit_code})


class BatchReporter:
    """``rrsis batch``'s progress: one bar over scenes (stderr), or every event as a JSON line
    (stdout): ``start``, ``scene`` per finished scene, ``retry``, ``log``, then ``done`` or ``error``
    (see :mod:`rrsis_geo.batch.run`)."""

    def __init__(self, mode: str, quiet: int = 0):
        self.mode, self.quiet = mode, quiet
        self.bar = None

    def __call__(self, event: dict) -> None:
        if self.mode == "json":
            json_line(event)
            return
        kind = event.get("event")
        if kind == "start":
            if event.get("dashboard") and not self.quiet:
                click.echo(f"Dask dashboard: {event['dashboard']}", err=True)
            if self.mode == "bar" and not self.quiet:
                from tqdm import tqdm

                self.bar = tqdm(total=event["scenes"], initial=event["reused"], desc="scenes", unit="scene",
                                file=sys.stderr, dynamic_ncols=True)
        elif kind == "scene" and not event.get("reused"):
            if event["status"] != "done":
                self._say(f"failed: {event['scene']}: {event['error']}")
            if self.bar is not None:
                self.bar.update(1)
        elif kind == "retry":
            self._say(f"retrying {event['scene']} (attempt {event['attempt']}): {event['message']}")
        elif kind == "log" and (event.get("level") == "warning" or not self.quiet):
            self._say(f"{event['level']}: {event['message']}")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self, result) -> None:
        self.close()
        if self.mode == "json":
            self({"event": "done", "index": result.index, "answers": result.answers, "crs": result.crs,
                  "scenes": len(result.records), "done": result.done, "failed": result.failed,
                  "reused": result.reused, "answer_features": result.answer_features, "seconds": result.seconds})
        elif self.quiet < 2:
            reused = f" ({result.reused} reused)" if result.reused else ""
            failed = f", {result.failed} failed" if result.failed else ""
            click.echo(f"{result.done} of {len(result.records)} scenes done{reused}{failed} -> {result.index}; "
                       f"{result.answer_features} answer features in {result.answers} ({result.crs}), "
                       f"{result.seconds:.1f} s", err=True)

    def error(self, message: str, exit_code: int) -> None:
        self.close()
        if self.mode == "json":
            self({"event": "error", "message": message, "exit_code": exit_code})
