"""Entry point of the ``rrsis`` command.

Subcommands live one per module and are imported only when invoked, so ``rrsis --help`` stays
instant (torch is never imported for it). Library errors are turned into one-line messages and
exit codes here, at the edge: 2 for bad input, 1 for internal errors, 3 for a batch in which some
scenes failed, 130 for a cancelled run.
A full disk (``ENOSPC`` from any write) is exit 2 as well: the user frees space or picks another
folder, as for any other input they can fix; its message names the file being written.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

# name -> "module:attribute". Add a subcommand by adding a line.
COMMANDS: dict[str, str] = {
    "segment": "cli.segment:segment",
    "batch": "cli.batch:batch",
    "info": "cli.info:info",
    "model": "cli.model:model",
    "data": "cli.data:data",
    "train": "cli.train:train",
    "eval": "cli.evaluate:evaluate",
    "init-weights": "cli.init_weights:init_weights",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx, name):
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        from rrsis_geo.errors import Cancelled, RrsisError

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Cancelled as exc:
            click.echo(f"Cancelled: {exc}" if str(exc) else "Cancelled.", err=True)
            ctx.exit(Cancelled.exit_code)
        except KeyboardInterrupt:
            click.echo("Cancelled.", err=True)
            ctx.exit(Cancelled.exit_code)
        except RrsisError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:  # an internal error: one line, traceback only on request
            if os.environ.get("RRSIS_DEBUG"):
                raise
            full = disk_full_message(exc)
            if full is not None:
                click.echo(f"Error: {full}", err=True)
                ctx.exit(2)
            click.echo(
                f"Internal error: {type(exc).__name__}: {exc} (set RRSIS_DEBUG=1 for the traceback)",
                err=True,
            )
            ctx.exit(1)


def disk_full_message(exc: BaseException) -> str | None:
    """"no space left on device writing FILE" when ``exc`` (or what caused it) is ENOSPC, else None.
    GDAL-based writers report it only in their message, so that is checked too."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc):
            name = getattr(exc, "filename", None)
            return f"no space left on device writing {name or 'the output'}; free some space or write elsewhere"
        exc = exc.__cause__ or exc.__context__
    return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rrsis-geo")
def cli():
    """Referring remote-sensing image segmentation: a GeoTIFF and a sentence in,
    georeferenced polygons out."""


def main():
    # click reports usage errors with exit code 2 itself; everything else goes through invoke.
    cli.main(prog_name="rrsis", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
