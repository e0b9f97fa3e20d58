"""Opening, validating and reading the input raster.

Everything the engine reads goes through here: the checks that turn a bad input into one clear
:class:`RasterError`, band selection, the validity mask (nodata values, alpha bands, internal
GDAL masks, NaN, an optional area of interest), and one scene-wide value scaling (never per
tile: the gains the model's training pixels were made with where its checkpoint records them,
else the scene's own statistics), followed by the model's mean/std normalisation.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from rrsis_geo.engine.tiling import Tile
from rrsis_geo.errors import InputError, RasterError

SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
# Percentiles used to scale non-8-bit data to [0, 1], computed once per scene.
STRETCH_PERCENTILES = (2.0, 98.0)
# Longest side of the decimated read used for scene statistics.
STATS_MAX_SIDE = 1024
# A band is far from a model's training values when more than this share of its pixels reach the
# training maximum, or when its 98th percentile maps below DARK_P98 of the training range.
CLIP_SHARE = 0.25
DARK_P98 = 0.05


@dataclass(frozen=True)
class BandScaling:
    """Linear scaling of raw values to [0, 1], one (lo, hi) pair per selected band."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    method: str

    def as_dict(self) -> dict:
        return {"lo": list(self.lo), "hi": list(self.hi), "method": self.method}


@dataclass(frozen=True)
class SceneInfo:
    """What the engine knows about an opened scene (no pixel data)."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS
    transform: rasterio.Affine
    nodata: float | None
    bands: tuple[int, ...]
    crs_assumed: bool = False
    mask_flags: tuple[str, ...] = field(default_factory=tuple)
    color_interp: tuple[str, ...] = field(default_factory=tuple)

    def offered_bands(self, bands: tuple[int, ...] | None = None) -> int:
        """How many bands the scene offers a model: those ``--bands`` names, else those that hold
        data (not marked alpha)."""
        if bands:
            return len(bands)
        return sum(ci != "alpha" for ci in self.color_interp) if self.color_interp else self.count

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the pixel grid's corners in the scene's CRS (also for
        rotated grids)."""
        t = self.transform
        cols = np.array([0, self.width, 0, self.width])
        rows = np.array([0, 0, self.height, self.height])
        xs = t.a * cols + t.b * rows + t.c
        ys = t.d * cols + t.e * rows + t.f
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"4,3,2"`` into ``(4, 3, 2)``; raise :class:`InputError` on anything else."""
    if text is None or str(text).strip() == "":
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        bands = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"--bands must be band numbers like 1,2,3, got {text!r}") from None
    return bands


def choose_bands(count: int, color_interp: tuple[str, ...], bands: tuple[int, ...] | None,
                 needed: int | None = 3) -> tuple[int, ...]:
    """The 1-based band numbers that feed the model.

    Default: the first ``needed`` non-alpha bands; a single-band raster is repeated as grey.
    ``needed=None`` (the model is not known yet) checks only that given bands exist.
    """
    if bands is not None:
        if needed is not None and len(bands) != needed:
            raise RasterError(
                f"--bands must name exactly {needed} bands for this model, got {len(bands)} "
                f"({','.join(map(str, bands))})"
            )
        bad = [b for b in bands if b < 1 or b > count]
        if bad:
            raise RasterError(
                f"--bands {','.join(map(str, bands))}: band {bad[0]} is out of range "
                f"(the raster has {count} band{'s' if count != 1 else ''}, numbered 1..{count})"
            )
        return bands
    needed = 3 if needed is None else needed
    usable = [i + 1 for i in range(count) if color_interp[i] != "alpha"]
    if len(usable) >= needed:
        return tuple(usable[:needed])
    if len(usable) == 1:
        return (usable[0],) * needed
    if count >= needed:  # enough bands, but some are marked alpha (4-band GeoTIFFs often mark the NIR so)
        alpha = [i + 1 for i in range(count) if color_interp[i] == "alpha"]
        raise RasterError(
            f"the model takes {needed} bands but band {','.join(map(str, alpha))} of the raster is marked alpha; "
            f"if it holds data, name the bands with --bands {','.join(map(str, range(1, needed + 1)))}"
        )
    rgb = ("; for a 3-band scene use --model btdnet-lite-demo-rgb, or leave --model out" if len(usable) == 3 else "")
    raise RasterError(
        f"the model takes {needed} bands but the raster has only {len(usable)} usable; use a scene with the "
        f"model's bands (its model card names them; btdnet-lite-demo: red, green, blue, NIR) or another --model{rgb}"
    )


def _check_readable(ds, path: str) -> None:
    """Read the first and the last block of every band, so a truncated file or a VRT with a missing
    source fails here, naming the file, rather than as a read error mid-run."""
    if not ds.count or not ds.width or not ds.height:
        return
    bh, bw = ds.block_shapes[0] if ds.block_shapes else (1, ds.width)
    bh, bw = min(bh, ds.height, 1024), min(bw, ds.width, 1024)
    first = Window(0, 0, bw, bh)
    last = Window(ds.width - bw, ds.height - bh, bw, bh)
    try:
        for window in (first, last):
            ds.read(window=window)
    except RasterioIOError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        why = f" ({lines[0][:200]})" if lines else ""
        raise RasterError(f"{path} cannot be read: the file is truncated or damaged, or (a VRT) one of its "
                          f"sources is missing{why}") from None


def open_scene(
    path: str | os.PathLike,
    bands: tuple[int, ...] | None = None,
    assume_crs: str | None = None,
    needed_bands: int | None = 3,
) -> SceneInfo:
    """Open and validate ``path``; return its :class:`SceneInfo` or raise :class:`RasterError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RasterError(f"input raster not found: {path}")
    if os.path.isdir(path):
        raise RasterError(f"input is a folder, not a raster file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                width, height, count = ds.width, ds.height, ds.count
                dtypes = set(ds.dtypes)
                crs, transform, nodata = ds.crs, ds.transform, ds.nodata
                gcps = ds.gcps[0]
                flags = tuple(
                    "+".join(f.name for f in ds.mask_flag_enums[i]) for i in range(count)
                )
                interp = tuple(ci.name for ci in ds.colorinterp)
                _check_readable(ds, path)
    except RasterioIOError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RasterError(f"not a readable raster: {path} ({first})") from None
    if count == 0:
        raise RasterError(f"the raster has no bands: {path}")
    bad = sorted(dtypes - set(SUPPORTED_DTYPES))
    if bad:
        raise RasterError(
            f"unsupported data type {bad[0]} in {path}; supported: {', '.join(SUPPORTED_DTYPES)}"
        )
    if len(dtypes) > 1:
        raise RasterError(f"bands of mixed data types ({', '.join(sorted(dtypes))}) in {path}")
    if transform.is_identity:
        if gcps:
            raise RasterError(
                f"{path} is georeferenced by ground control points only; warp it to a grid "
                "first (e.g. gdalwarp -tps in.tif out.tif)"
            )
        raise RasterError(
            f"{path} has no geotransform, so results cannot be placed on the map; "
            "georeference it first (e.g. gdal_translate -a_ullr ... -a_srs ...)"
        )
    crs_assumed = False
    if crs is None:
        if not assume_crs:
            raise RasterError(
                f"{path} has no coordinate reference system; give one with --assume-crs "
                "(e.g. --assume-crs EPSG:32633) if you know it"
            )
        crs = parse_crs(assume_crs, "--assume-crs")
        crs_assumed = True
    chosen = choose_bands(count, interp, bands, needed_bands)
    return SceneInfo(
        path=path,
        width=width,
        height=height,
        count=count,
        dtype=dtypes.pop(),
        crs=crs,
        transform=transform,
        nodata=nodata,
        bands=chosen,
        crs_assumed=crs_assumed,
        mask_flags=flags,
        color_interp=interp,
    )


def parse_crs(text: str, option: str = "--dst-crs") -> CRS:
    """Parse a user's CRS (EPSG code, WKT, PROJ string). pyproj parses it first because GDAL
    would print its own error line for a bad one."""
    import pyproj

    try:
        return CRS.from_wkt(pyproj.CRS.from_user_input(text).to_wkt())
    except Exception:
        raise InputError(f"{option}: not a coordinate reference system: {text!r}") from None


def valid_mask(ds, bands: tuple[int, ...], window: Window, data: np.ndarray | None = None) -> np.ndarray:
    """Boolean (h, w) mask of pixels valid in every selected band.

    GDAL's per-band masks already combine nodata values, alpha bands and internal masks; NaN in
    floating-point data is added on top.
    """
    masks = ds.read_masks(list(dict.fromkeys(bands)), window=window)
    valid = np.all(masks > 0, axis=0)
    if data is not None and np.issubdtype(data.dtype, np.floating):
        valid &= np.all(np.isfinite(data), axis=0)
    return valid


def _sample_values(ds, info: SceneInfo) -> list[np.ndarray]:
    """The valid, finite values of each selected band in one decimated read of the whole scene
    (at most ``STATS_MAX_SIDE`` pixels a side; overviews are used when present)."""
    scale = max(info.width, info.height) / STATS_MAX_SIDE
    shape = (max(1, math.ceil(info.height / max(scale, 1))), max(1, math.ceil(info.width / max(scale, 1))))
    unique = list(dict.fromkeys(info.bands))
    data = ds.read(unique, out_shape=(len(unique), *shape), resampling=Resampling.nearest)
    masks = ds.read_masks(unique, out_shape=(len(unique), *shape), resampling=Resampling.nearest)
    picks = [unique.index(b) for b in info.bands]
    return [data[i][(masks[i] > 0) & np.isfinite(data[i])] for i in picks]


def compute_scaling(ds, info: SceneInfo, percentiles=STRETCH_PERCENTILES) -> BandScaling:
    """One scaling for the whole scene.

    8-bit data maps 0..255 to 0..1 as the models were trained. Other types use per-band
    percentiles of the valid pixels of a decimated read (overviews are used when present),
    so every tile is scaled the same way.
    """
    if info.dtype == "uint8":
        n = len(info.bands)
        return BandScaling(lo=(0.0,) * n, hi=(255.0,) * n, method="uint8")
    lo, hi = [], []
    for vals in _sample_values(ds, info):
        if vals.size == 0:
            lo.append(0.0)
            hi.append(1.0)
            continue
        p_lo, p_hi = np.percentile(vals.astype(np.float64), percentiles)
        if p_hi <= p_lo:
            p_lo, p_hi = float(vals.min()), float(vals.max())
            if p_hi <= p_lo:
                p_hi = p_lo + 1.0
        lo.append(float(p_lo))
        hi.append(float(p_hi))
    return BandScaling(lo=tuple(lo), hi=tuple(hi), method=f"percentile{percentiles[0]:g}-{percentiles[1]:g}")


def _per_band(values, n: int) -> tuple[float, ...]:
    """One float per band: a single value is repeated for all ``n``."""
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    return tuple(values * n if len(values) == 1 else values)


def scaling_from_model(extra: dict, nbands: int) -> BandScaling | None:
    """A scaling stored in a checkpoint's metadata (``value_range: {lo: [...], hi: [...]}``)."""
    vr = (extra or {}).get("value_range")
    if not vr:
        return None
    return BandScaling(lo=_per_band(vr["lo"], nbands), hi=_per_band(vr["hi"], nbands), method="checkpoint")


def radiometry_mismatch(values: list[np.ndarray], info: SceneInfo, scaling: BandScaling,
                        note: str | None = None) -> str | None:
    """A one-line warning when a band of the scene lies far outside the training values
    ``scaling`` describes, else None.

    ``values`` are each selected band's valid values (:func:`_sample_values`). A band is far off
    when more than ``CLIP_SHARE`` of its pixels reach the training maximum, or when its 98th
    percentile maps below ``DARK_P98`` of the training range.
    """
    problems = []
    for i, (band, vals) in enumerate(zip(info.bands, values)):
        if vals.size == 0:
            continue
        lo, hi = scaling.lo[i], scaling.hi[i]
        clipped = np.count_nonzero(vals >= hi) / vals.size
        if clipped > CLIP_SHARE:
            problems.append(f"band {band}: {clipped * 100:.0f} % of its pixels are at or above the training "
                            f"maximum {hi:g}")
        elif (np.percentile(vals.astype(np.float64), 98) - lo) / (hi - lo) < DARK_P98:
            problems.append(f"band {band}: 98 % of its pixels lie in the lowest {DARK_P98 * 100:g} % "
                            f"of the training range {lo:g}..{hi:g}")
    if not problems:
        return None
    trained = f" ({note})" if note else ""
    return (f"this {info.dtype} scene is far from the values the model was trained on{trained}: "
            f"{'; '.join(problems)}. Check that --bands picks the model's bands in order, or rescale "
            "the scene to the training values")


def scene_scaling(ds, info: SceneInfo, extra: dict | None) -> tuple[BandScaling, str | None]:
    """The scene-wide scaling for a model, and a one-line warning when the scene does not match
    how the model's training pixels were made (else None).

    In order: the model's fixed ``value_range`` (any data type); its ``radiometry`` entry for the
    scene's data type (method ``checkpoint:<dtype>``), checked against the scene's values; else
    :func:`compute_scaling`, with a warning for a non-8-bit scene of a data type the model's
    ``radiometry`` does not record.
    """
    n = len(info.bands)
    fixed = scaling_from_model(extra, n)
    if fixed is not None:
        return fixed, None
    radiometry = (extra or {}).get("radiometry") or {}
    entry = radiometry.get(info.dtype)
    if entry is None:
        warning = None
        if radiometry and info.dtype != "uint8":
            p_lo, p_hi = STRETCH_PERCENTILES
            warning = (f"the model was trained on {', '.join(sorted(radiometry))} data; this {info.dtype} scene "
                       f"is stretched to its own {p_lo:g}-{p_hi:g} % range instead, so results may be poor")
        return compute_scaling(ds, info), warning
    scaling = BandScaling(lo=_per_band(entry["lo"], n), hi=_per_band(entry["hi"], n), method=f"checkpoint:{info.dtype}")
    return scaling, radiometry_mismatch(_sample_values(ds, info), info, scaling, entry.get("note"))


class TileReader:
    """Reads tiles of one scene, scaled and normalised, with their validity masks.

    Holds its own dataset handle (rasterio handles are not shared across threads). Integer data
    is normalised through a per-band lookup table (one gather instead of six array passes).
    """

    def __init__(self, info: SceneInfo, scaling: BandScaling, mean, std, aoi_mask_fn=None):
        self.info = info
        self.ds = rasterio.open(info.path)
        self.unique = list(dict.fromkeys(info.bands))
        self.index = [self.unique.index(b) for b in info.bands]
        n = len(info.bands)
        mean = np.asarray(mean, dtype=np.float64)  # lengths checked by ModelInfo
        std = np.asarray(std, dtype=np.float64)
        self.lo = np.asarray(scaling.lo, dtype=np.float64)
        self.hi = np.asarray(scaling.hi, dtype=np.float64)
        self.mean = np.broadcast_to(mean, (n,))
        self.std = np.broadcast_to(std, (n,))
        self.aoi_mask_fn = aoi_mask_fn
        self._strip = None  # (y0, y1, raw rows, valid rows or None)
        dtype = np.dtype(info.dtype)
        self.is_float = dtype.kind == "f"
        # Masks need reading unless GDAL says every pixel of the chosen bands is valid.
        flags = [self.ds.mask_flag_enums[b - 1] for b in self.unique]
        self.all_valid = all(f == [rasterio.enums.MaskFlags.all_valid] for f in flags)
        self.luts = None
        if dtype.kind in "ui" and dtype.itemsize <= 2:
            info_ = np.iinfo(dtype)
            values = np.arange(info_.min, info_.max + 1, dtype=np.float64)
            self.lut_offset = -info_.min
            self.luts = [self._normalise(values, i).astype(np.float32) for i in range(n)]

    def _normalise(self, x: np.ndarray, i: int) -> np.ndarray:
        """(clip((x - lo) / (hi - lo), 0, 1) - mean) / std for band ``i``."""
        scaled = np.clip((x - self.lo[i]) / (self.hi[i] - self.lo[i]), 0.0, 1.0)
        return (scaled - self.mean[i]) / self.std[i]

    def close(self) -> None:
        self.ds.close()

    def _load_strip(self, y0: int, y1: int) -> None:
        """Read scene rows ``[y0, y1)`` at full width (one read per tile row: far cheaper than
        separate unaligned windows) with their validity."""
        window = Window(0, y0, self.info.width, y1 - y0)
        raw = self.ds.read(self.unique, window=window)
        if self.all_valid and not self.is_float:
            valid = None  # every pixel valid
        else:
            valid = valid_mask(self.ds, tuple(self.unique), window, raw)
        if self.aoi_mask_fn is not None:
            aoi = self.aoi_mask_fn(window)
            valid = aoi if valid is None else valid & aoi
        self._strip = (y0, y1, raw, valid)

    def read(self, tile: Tile, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 (bands, size, size), valid bool (size, size)); padding is invalid.

        ``out`` may be a preallocated ``(bands, size, size)`` float32 array to fill. Tiles of one
        tile row share a cached full-width strip.
        """
        info = self.info
        y0, x0 = tile.y, tile.x
        y1 = min(tile.y_end, info.height)
        h, w = y1 - y0, min(tile.x_end, info.width) - x0
        if self._strip is None or self._strip[0] != y0 or self._strip[1] != y1:
            self._load_strip(y0, y1)
        _, _, strip_raw, strip_valid = self._strip
        raw = strip_raw[:, :, x0 : x0 + w]
        valid_in = np.ones((h, w), dtype=bool) if strip_valid is None else strip_valid[:, x0 : x0 + w]
        img = out if out is not None else np.empty((len(info.bands), tile.size, tile.size), np.float32)
        valid = np.zeros((tile.size, tile.size), dtype=bool)
        if h < tile.size or w < tile.size:
            img[...] = 0.0
        if valid_in.any():
            for i, j in enumerate(self.index):
                if self.luts is not None:
                    idx = raw[j].astype(np.int32) + self.lut_offset if self.lut_offset else raw[j]
                    np.take(self.luts[i], idx, out=img[i, :h, :w])
                else:
                    img[i, :h, :w] = self._normalise(raw[j].astype(np.float64), i)
            if not valid_in.all():
                img[:, :h, :w][:, ~valid_in] = 0.0
            valid[:h, :w] = valid_in
        return img, valid

    def valid_rows(self, y0: int, y1: int) -> np.ndarray:
        """Validity of full scene rows ``[y0, y1)``."""
        self._load_strip(y0, y1)
        valid = self._strip[3]
        return np.ones((y1 - y0, self.info.width), dtype=bool) if valid is None else valid

    def valid_resampled(self, size: int) -> np.ndarray:
        """Validity of the whole scene on a ``size x size`` grid (nearest), AOI included."""
        shape = (len(self.unique), size, size)
        valid = np.all(self.ds.read_masks(self.unique, out_shape=shape, resampling=Resampling.nearest) > 0,
                       axis=0)
        if self.is_float:
            data = self.ds.read(self.unique, out_shape=shape, resampling=Resampling.nearest)
            valid &= np.all(np.isfinite(data), axis=0)
        if self.aoi_mask_fn is not None:
            valid &= self.aoi_mask_fn(Window(0, 0, self.info.width, self.info.height), out_shape=(size, size))
        return valid

    def read_resampled(self, size: int) -> np.ndarray:
        """The whole scene resampled (bilinear) to ``size x size``, normalised: float32
        ``(bands, size, size)``."""
        raw = self.ds.read(self.unique, out_shape=(len(self.unique), size, size),
                           resampling=Resampling.bilinear)
        img = np.empty((len(self.info.bands), size, size), dtype=np.float32)
        for i, j in enumerate(self.index):
            img[i] = self._normalise(raw[j].astype(np.float64), i)
        return img
