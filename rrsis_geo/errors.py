"""One root for every error the library raises on purpose.

The CLI maps :class:`InputError` (and its subclasses) to a one-line message and exit code 2,
:class:`BatchIncomplete` to 3, and anything else to exit code 1. The QGIS plugin never sees these classes: it reads the CLI's
message. Subclasses also inherit the matching builtin so callers can catch ``ValueError`` or
``OSError`` if they prefer.
"""

from __future__ import annotations


class RrsisError(Exception):
    """Root of all deliberate rrsis-geo errors."""

    exit_code = 1


class InputError(RrsisError, ValueError):
    """Something the user handed us is wrong (a path, a value, a file). Exit code 2."""

    exit_code = 2


class RasterError(InputError):
    """The input raster is missing, unreadable or unusable (no CRS, bad dtype, bad bands)."""


class OutputError(InputError, OSError):
    """The output path cannot be written (unknown format, missing folder, exists)."""


class ModelError(InputError):
    """A model name or checkpoint that cannot be used (unknown preset, not a checkpoint,
    wrong architecture, missing pretrained files, wrong band count)."""


class CheckpointError(ModelError):
    """A file that is not a valid rrsis-geo checkpoint, or that does not match the model."""


class ExpressionError(InputError):
    """An empty or unusable referring expression."""


class DatasetError(InputError):
    """A dataset root, file or sample that is missing or malformed."""


class ConfigError(InputError):
    """An unknown or invalid configuration key or value."""


class BatchIncomplete(RrsisError):
    """A batch finished, but some of its scenes failed (each one's message is in its index). Exit code 3."""

    exit_code = 3


class Cancelled(RrsisError):
    """The run was cancelled (Ctrl-C or a cancel callback). Nothing was written."""

    exit_code = 130
