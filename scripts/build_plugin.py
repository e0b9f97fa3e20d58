#!/usr/bin/env python3
"""Build the QGIS plugin zip: ``python scripts/build_plugin.py [-o dist/]``.

The zip holds one top-level folder, ``rrsis_geo_qgis/`` (the name QGIS installs it under), with
the plugin's sources from ``qgis_plugin/``. Install it with QGIS's Plugins > Manage and Install
Plugins > Install from ZIP. Only the standard library is used, so any Python can run this.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "qgis_plugin"
PLUGIN_NAME = "rrsis_geo_qgis"
INCLUDE_SUFFIXES = {".py", ".txt", ".svg", ".qml", ".md"}
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "version", "author", "about")


def plugin_files(source: Path = SOURCE) -> list[Path]:
    files = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.is_file() and path.suffix in INCLUDE_SUFFIXES:
            files.append(path)
    return files


def read_metadata(source: Path = SOURCE) -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read(source / "metadata.txt", encoding="utf-8")
    meta = dict(parser["general"])
    missing = [key for key in REQUIRED_METADATA if not meta.get(key)]
    if missing:
        raise SystemExit(f"metadata.txt lacks {', '.join(missing)}")
    if meta.get("hasProcessingProvider", "").lower() != "yes":
        raise SystemExit("metadata.txt must say hasProcessingProvider=yes")
    return meta


def build(out_dir: Path) -> Path:
    meta = read_metadata()
    if not (SOURCE / "__init__.py").is_file():
        raise SystemExit(f"{SOURCE}/__init__.py is missing")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN_NAME}-{meta['version']}.zip"
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in plugin_files():
            arcname = f"{PLUGIN_NAME}/{path.relative_to(SOURCE).as_posix()}"
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    print(build(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
