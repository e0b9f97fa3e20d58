"""Dataset readers for referring remote-sensing segmentation.

``DATASETS`` maps a format name (as used by ``--format``) to its reader class; every reader
returns dict samples with the keys documented in :mod:`rrsis_geo.data.base`.
"""

from __future__ import annotations

from rrsis_geo.errors import DatasetError


def _readers():
    from rrsis_geo.data.custom import CustomGeoDataset
    from rrsis_geo.data.refsegrs import RefSegRS
    from rrsis_geo.data.rrsisd import RRSISD

    return {"rrsisd": RRSISD, "refsegrs": RefSegRS, "custom": CustomGeoDataset}


FORMATS = ("rrsisd", "refsegrs", "custom")


def open_dataset(fmt: str, root, splits=("train",), transforms=None, on_error: str = "raise", **options):
    """Open a dataset by format name; ``options`` go to the reader (custom data only)."""
    readers = _readers()
    if fmt not in readers:
        raise DatasetError(f"unknown dataset format {fmt!r}: use one of {', '.join(FORMATS)}")
    if options and fmt != "custom":
        raise DatasetError(f"format {fmt!r} takes no options (got {', '.join(sorted(options))})")
    return readers[fmt](root, splits=splits, transforms=transforms, on_error=on_error, **options)
