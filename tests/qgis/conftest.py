"""Fixtures for the QGIS plugin tests.

QGIS's Python (Debian's ``/usr/bin/python3``, with numpy < 2) is not the interpreter that runs
pytest, so QGIS is driven through subprocesses: ``qgis_driver.py`` for in-process
``processing.run`` scenarios, ``qgis_process.bin`` for the command-line runner. Each driver run
starts QGIS once and plays a list of scenarios; the tests assert on what it recorded.

The plugin is installed into an isolated profile (``QGIS_CUSTOM_CONFIG_PATH``) from the zip
that ``scripts/build_plugin.py`` builds, so the zip itself is what gets tested.

Skips: outside CI, a machine without QGIS skips these tests. In CI (``CI=true``) a missing
QGIS, or a missing real ``rrsis segment`` command, is a failure, never a skip.

Variables: ``RRSIS_QGIS_PYTHON`` (default /usr/bin/python3), ``RRSIS_QGIS_PROCESS`` (default
/usr/bin/qgis_process.bin), ``RRSIS_TEST_EXECUTABLE`` (the real rrsis to test against; default:
this checkout's ``cli`` run by the interpreter running pytest).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.qgis.qgis_support import ROOT, qgis_missing, skip_or_fail


@pytest.fixture(scope="session")
def qgis_available():
    missing = qgis_missing()
    if missing:
        skip_or_fail(f"QGIS is not installed: {missing}")
    return True


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_plugin
    finally:
        sys.path.pop(0)
    return build_plugin.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def real_rrsis(tmp_path_factory) -> str:
    """Path of the real ``rrsis`` command under test."""
    override = os.environ.get("RRSIS_TEST_EXECUTABLE")
    if override:
        return override
    # Look at this checkout's files: the venv's editable install may point at another one.
    if not (ROOT / "cli" / "segment.py").is_file():
        skip_or_fail("the real `rrsis segment` command is not in this checkout (cli/segment.py)")
    wrapper = tmp_path_factory.mktemp("real-rrsis") / "rrsis"
    # The plugin strips PYTHONPATH from the child's environment (it belongs to QGIS), so the
    # wrapper sets it: this checkout's cli/ and rrsis_geo/, run by the pytest interpreter.
    wrapper.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="{ROOT}" exec "{sys.executable}" -m cli "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)
