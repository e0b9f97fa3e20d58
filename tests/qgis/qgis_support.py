"""Constants and helpers shared by the QGIS plugin tests (see conftest.py for the fixtures)."""

from __future__ import annotations

import json
import os
import sys
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_RRSIS = HERE / "fake_rrsis.py"
DRIVER = HERE / "qgis_driver.py"
SAMPLE = ROOT / "data" / "samples" / "naip_lakes_5m.tif"
PLUGIN = "rrsis_geo_qgis"

QGIS_PYTHON = os.environ.get("RRSIS_QGIS_PYTHON", "/usr/bin/python3")
QGIS_PROCESS = os.environ.get("RRSIS_QGIS_PROCESS", "/usr/bin/qgis_process.bin")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

#: The attributes every feature must carry (engine contract).
DOCUMENTED_FIELDS = ["expression", "score", "area_m2", "model_id", "model_sha256", "source", "run_id"]


def skip_or_fail(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the QGIS tests must run here)", pytrace=False)
    pytest.skip(reason)


def host_env() -> dict:
    """This process's environment without the venv: QGIS's embedded Python would otherwise find
    the venv's interpreter first on PATH and take its standard library and site-packages."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    venv_bin = os.path.join(sys.prefix, "bin")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != venv_bin
    ) or "/usr/bin:/bin"
    return env


def qgis_missing() -> str | None:
    if not os.path.exists(QGIS_PYTHON):
        return f"{QGIS_PYTHON} not found"
    probe = subprocess.run(
        [QGIS_PYTHON, "-c", "import qgis.core, processing"],
        capture_output=True,
        text=True,
        env={**host_env(), "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": "/usr/share/qgis/python/plugins"},
    )
    if probe.returncode != 0:
        return f"QGIS's Python cannot import qgis.core ({probe.stderr.strip().splitlines()[-1:]})"
    return None


@dataclass
class Profile:
    root: Path  # QGIS_CUSTOM_CONFIG_PATH
    plugins: Path
    zip_path: Path

    def env(self, **extra) -> dict:
        env = host_env()  # the venv's paths must not leak into QGIS's Python
        env.update(
            QT_QPA_PLATFORM="offscreen",
            QGIS_CUSTOM_CONFIG_PATH=str(self.root),
            XDG_RUNTIME_DIR=str(self.root / "runtime"),
            # QGIS and Qt leave QGIS3-*/qt_temp-* folders in the temp dir: keep them in the test's.
            TMPDIR=str(self.root / "tmp"),
            # No .aux.xml statistics files written beside the repository's sample scenes.
            GDAL_PAM_ENABLED="NO",
        )
        env.update(extra)
        return env


def make_profile(base: Path, zip_path: Path) -> Profile:
    """A fresh QGIS profile with the plugin installed from the zip."""
    root = base / "qgis-profile"
    plugins = root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (root / "runtime").mkdir(mode=0o700)
    (root / "tmp").mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins)
    return Profile(root, plugins, zip_path)


def run_driver(profile: Profile, scenarios: list, workdir: Path, timeout: float = 600) -> dict:
    scenarios_path = workdir / "scenarios.json"
    results_path = workdir / "results.json"
    scenarios_path.write_text(json.dumps(scenarios))
    proc = subprocess.run(
        [QGIS_PYTHON, str(DRIVER), str(scenarios_path), str(results_path)],
        capture_output=True,
        text=True,
        env=profile.env(),
        timeout=timeout,
    )
    if proc.returncode != 0 or not results_path.exists():
        raise AssertionError(
            f"QGIS driver failed (exit {proc.returncode})\nstdout:\n{proc.stdout[-4000:]}\n"
            f"stderr:\n{proc.stderr[-4000:]}"
        )
    return json.loads(results_path.read_text())


def cli_error_line(executable: str, args: list) -> str:
    """Run the rrsis command directly and return its ``Error: ...`` message (without prefix)."""
    proc = subprocess.run([executable, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert lines, proc.stderr
    return lines[-1][len("Error:"):].strip()
