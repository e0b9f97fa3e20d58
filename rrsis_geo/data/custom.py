"""Custom data: GeoTIFF scene(s) + a vector file of target polygons with an expression column.

One row of the vector file is one (target, expression) sample. Polygons are reprojected to each
raster's CRS; a row belongs to the first raster whose footprint holds its centroid. A chip of
``chip_size`` pixels is cut around each target (see :mod:`rrsis_geo.data.chips`: chips stay
inside their split's block, so validation is spatially disjoint from training) and its mask is
the row's polygon rasterised on the chip's own geotransform. Samples carry ``crs``,
``transform`` and ``bounds`` so predictions can be turned back into georeferenced polygons.

Optional negative chips (``negative_fraction``): an expression paired with a chip of the same
split that does not touch its target; the mask is empty.

Splits: by default whole blocks of ``block_chips`` x ``block_chips`` chips, assigned from
``split_seed`` (``val_fraction``, ``test_fraction``). With ``split_column`` each row's split is that
column's value (``train``/``val``/``test``, anything else is refused) and blocks play no part:
chips are centred on their target, and keeping the splits apart on the ground is the column's job.

Whole-raster mode (``raster_column``): each row names, relative to the root, the raster file it
belongs to; the sample's frame is that whole raster (no chip is cut: the usual transform resizes
it to the model size), the polygon is reprojected to that raster's CRS only and rasterised on its
transform. Without ``split_column`` the split unit is then the raster (hashed like a block).
Use it when each raster already *is* the frame its expressions describe (e.g. ``data/demo``).

Ground resolution: each sample carries ``gsd_m``, its own raster's pixel size in metres (None for
a geographic CRS). The dataset's ``gsd_m`` is the lower median over its samples (always a real
raster's resolution); :meth:`CustomGeoDataset.gsd_values` lists every resolution with its counts.

Layout for ``rrsis data check --format custom ROOT``: ROOT holds the GeoTIFF(s) (``*.tif``)
and one vector file (``*.gpkg``, ``*.geojson``, ``*.shp``); or pass ``rasters=`` / ``vector=``.
"""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path

import numpy as np

from rrsis_geo.data.base import SPLITS, Problem, ReferringDataset, SampleRecord
from rrsis_geo.data.chips import ChipWindow, RasterWindow, assign_blocks, block_of, centre_chip, place_chip
from rrsis_geo.errors import DatasetError

VECTOR_EXTS = (".gpkg", ".geojson", ".json", ".shp")
RASTER_EXTS = (".tif", ".tiff")


def discover(root: Path, need_rasters: bool = True) -> tuple[list[Path], Path]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"custom data root {root} does not exist (pass the folder with the GeoTIFFs and the vector file)")
    rasters = sorted(p for p in root.iterdir() if p.suffix.lower() in RASTER_EXTS)
    vectors = sorted(p for p in root.iterdir() if p.suffix.lower() in VECTOR_EXTS)
    if not rasters and need_rasters:
        raise DatasetError(f"custom data root {root} has no GeoTIFF (*.tif)")
    if len(vectors) != 1:
        found = ", ".join(p.name for p in vectors) or "none"
        raise DatasetError(f"custom data root {root} needs exactly one vector file (*.gpkg, *.geojson, *.shp); found {found}: pass vector=")
    return rasters, vectors[0]


def apply_affine(t, x: float, y: float) -> tuple[float, float]:
    """``t * (x, y)`` for an affine transform, without the operator affine is deprecating."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def ground_resolution_m(crs, t) -> float | None:
    """Pixel side in metres (square root of the pixel area, so rotated or non-square pixels
    count too); None for a geographic or unit-less CRS."""
    try:
        if not crs.is_projected:
            return None
        factor = float(crs.linear_units_factor[1])
    except Exception:
        return None
    return float(math.sqrt(abs(t.a * t.e - t.b * t.d)) * factor)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()


class CustomGeoDataset(ReferringDataset):
    format_name = "custom"

    def __init__(
        self,
        root=None,
        splits=("train",),
        transforms=None,
        on_error: str = "raise",
        *,
        rasters=None,
        vector=None,
        expression_column: str = "expression",
        category_column: str | None = None,
        split_column: str | None = None,
        raster_column: str | None = None,
        chip_size: int = 512,
        block_chips: int = 4,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        negative_fraction: float = 0.0,
        bands=(1, 2, 3),
        value_scale: float | None = None,
        seed: int = 0,
    ):
        import geopandas as gpd
        import rasterio
        from shapely.geometry import box

        if root is None and (vector is None or (rasters is None and raster_column is None)):
            raise DatasetError("custom data needs a root folder, or vector= with rasters= (or raster_column=)")
        if raster_column is not None and rasters is not None:
            raise DatasetError("pass either rasters= or raster_column= (whole-raster mode names each row's raster), not both")
        super().__init__(root if root is not None else Path(vector).parent, splits, transforms, on_error)
        if vector is None or (rasters is None and raster_column is None):
            found_r, found_v = discover(self.root, need_rasters=raster_column is None)
            rasters = rasters if rasters is not None or raster_column is not None else found_r
            vector = vector if vector is not None else found_v
        if isinstance(rasters, (str, Path)):
            rasters = [rasters]
        self.vector_path = Path(vector)
        self.split_column, self.raster_column = split_column, raster_column
        if chip_size <= 0 or block_chips < 1:
            raise DatasetError(f"chip_size must be > 0 and block_chips >= 1 (got {chip_size}, {block_chips})")
        self.chip_size, self.block = int(chip_size), int(chip_size) * int(block_chips)
        self.bands = tuple(int(b) for b in bands)
        self.value_scale = value_scale
        try:
            self.split_fractions = (float(val_fraction), float(test_fraction))
            assign_blocks([], *self.split_fractions)
        except ValueError as exc:
            raise DatasetError(f"val_fraction/test_fraction: {exc}") from None

        for p in [*(rasters or []), self.vector_path]:
            if not Path(p).exists():
                raise DatasetError(f"custom data file {p} does not exist")
        try:
            gdf = gpd.read_file(self.vector_path)
        except Exception as exc:
            raise DatasetError(f"cannot read vector file {self.vector_path}: {exc}") from None
        if expression_column not in gdf.columns:
            cols = ", ".join(c for c in gdf.columns if c != "geometry")
            raise DatasetError(f"vector file {self.vector_path.name} has no column {expression_column!r} (expression_column=); columns: {cols}")
        for option, column in (("category_column", category_column), ("split_column", split_column), ("raster_column", raster_column)):
            if column is not None and column not in gdf.columns:
                raise DatasetError(f"vector file {self.vector_path.name} has no column {column!r} ({option}=)")
        if gdf.crs is None:
            raise DatasetError(f"vector file {self.vector_path} has no CRS: set one (e.g. ogr2ogr -a_srs) so polygons can be placed on the rasters")

        row_split: dict[int, str] = {}
        if split_column is not None:
            for i, value in enumerate(gdf[split_column]):
                if _text(value) not in SPLITS:
                    shown = repr(value) if _text(value) else "no value"
                    raise DatasetError(f"vector file {self.vector_path.name}: column {split_column!r} (split_column=) has "
                                       f"{shown} in row {i}; use one of {', '.join(SPLITS)}")
                row_split[i] = _text(value)

        # Which rasters, in which order.
        if raster_column is not None:
            wanted: dict[str, list[int]] = {}
            for i, value in enumerate(gdf[raster_column]):
                name = _text(value)
                if not name:
                    self.problems.append(Problem("missing_image", f"row {i} has no {raster_column!r} (raster_column=)", f"row{i}"))
                else:
                    wanted.setdefault(name, []).append(i)
            rasters, raster_names = [], []
            for name in sorted(wanted):
                if (self.root / name).is_file():
                    rasters.append(self.root / name)
                    raster_names.append(name)
                else:
                    for i in wanted.pop(name):
                        self.problems.append(Problem("missing_image", f"row {i}: raster {self.root / name} does not exist", f"row{i}"))
            if not rasters:
                raise DatasetError(f"no raster named in column {raster_column!r} (raster_column=) exists under {self.root}")
        self.raster_paths = [Path(p) for p in rasters]

        self._rasters = []  # (path, crs, transform, width, height, count, dtype)
        for p in self.raster_paths:
            try:
                with rasterio.open(p) as src:
                    if src.crs is None:
                        raise DatasetError(f"raster {p} has no CRS")
                    if max(self.bands) > src.count:
                        raise DatasetError(f"raster {p} has {src.count} bands; bands={list(self.bands)} asks for band {max(self.bands)}")
                    self._rasters.append((p, src.crs, src.transform, src.width, src.height, src.count, src.dtypes[0]))
            except DatasetError:
                raise
            except Exception as exc:
                raise DatasetError(f"cannot read raster {p}: {exc}") from None
        self._gsd = [ground_resolution_m(crs, t) for _p, crs, t, *_ in self._rasters]

        # Place every row on a raster, in that raster's CRS: (row, raster, geometry, centre col/row)
        placed = []
        if raster_column is not None:
            for ri, name in enumerate(raster_names):
                rows = wanted[name]
                _p, crs, transform, width, height, *_ = self._rasters[ri]
                x0, y0 = apply_affine(transform, 0, height)
                x1, y1 = apply_affine(transform, width, 0)
                footprint = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
                for i, geom in zip(rows, gdf.geometry.iloc[rows].to_crs(crs)):
                    if geom is None or geom.is_empty:
                        self.problems.append(Problem("ref_without_mask", f"row {i} has no geometry", f"row{i}"))
                    elif not geom.intersects(footprint):
                        self.problems.append(Problem("outside_rasters", f"row {i} lies outside its raster {name}", f"row{i}"))
                    else:
                        placed.append((i, ri, geom, width / 2, height / 2))
        else:
            taken = np.zeros(len(gdf), bool)
            for ri, (p, crs, transform, width, height, *_rest) in enumerate(self._rasters):
                geoms = gdf.geometry.to_crs(crs)
                inv = ~transform
                for i, geom in enumerate(geoms):
                    if taken[i] or geom is None or geom.is_empty:
                        continue
                    c = geom.representative_point() if not geom.centroid.within(geom) else geom.centroid
                    col, row = apply_affine(inv, c.x, c.y)
                    if 0 <= col < width and 0 <= row < height:
                        taken[i] = True
                        placed.append((i, ri, geom, col, row))
            for i in np.flatnonzero(~taken):
                geom = gdf.geometry.iloc[i]
                why = "has no geometry" if geom is None or geom.is_empty else "lies outside every raster"
                self.problems.append(Problem("ref_without_mask" if why == "has no geometry" else "outside_rasters", f"row {i} {why}", f"row{i}"))

        # Splits: from the column, else whole blocks (whole rasters in whole-raster mode).
        self._block_split = None
        if split_column is not None:
            split_of = {i: row_split[i] for i, *_ in placed}
        else:
            if raster_column is not None:
                keys = {i: self._rasters[ri][0].name for i, ri, *_ in placed}
            else:
                keys = {i: f"{self._rasters[ri][0].name}:{block_of(col, row, self.block)}" for i, ri, _g, col, row in placed}
            by_key = assign_blocks(keys.values(), *self.split_fractions, seed=seed)
            split_of = {i: by_key[k] for i, k in keys.items()}
            if raster_column is None:
                self._block_split = by_key

        self._geoms = {}
        self._source = gdf.geometry  # rows in the vector file's CRS (for negative frames on other rasters)
        positives_by_split: dict[str, list] = {}
        for i, ri, geom, col, row in placed:
            split = split_of[i]
            expr = _text(gdf[expression_column].iloc[i])
            sid = f"row{i}"
            if not expr:
                self.problems.append(Problem("empty_expression", f"row {i} has an empty {expression_column!r}", sid))
                continue
            category = str(gdf[category_column].iloc[i]) if category_column else "unknown"
            if raster_column is not None:
                window = RasterWindow(self._rasters[ri][3], self._rasters[ri][4])
            elif split_column is not None:
                window = centre_chip(col, row, self.chip_size)
            else:
                window = place_chip(col, row, self.chip_size, self.block)
            positives_by_split.setdefault(split, []).append((i, ri, geom, window, expr, category))
            if split in self.splits:
                self._geoms[sid] = geom
                self.records.append(self._record(sid, ri, split, expr, category, window, negative=False))

        rng = np.random.default_rng(seed)
        for split in self.splits:
            pos = positives_by_split.get(split, [])
            frames = sorted({(ri, w) for _i, ri, _g, w, _e, _c in pos}, key=lambda f: (f[0], f[1].bounds_px))
            n_neg = int(round(negative_fraction * len(pos)))
            for k in range(n_neg):
                i, ri, geom, _w, expr, category = pos[rng.integers(len(pos))]
                if self._block_split is not None:
                    window = self._negative_window(rng, ri, split, self._block_split, geom)
                else:
                    ri, window = self._negative_frame(rng, frames, i, gdf.crs)
                if window is None:
                    continue
                sid = f"neg{k}_row{i}"
                self._geoms[sid] = None
                self.records.append(self._record(sid, ri, split, expr, category, window, negative=True))

    @property
    def gsd_m(self) -> float | None:
        """Lower median of the samples' ground resolutions (metres), over the current records (so
        ``limit_train`` or ``drop_unreadable`` keep it honest); always one raster's real value."""
        known = [g for g in (self._gsd[r.extra["raster"]] for r in self.records) if g is not None]
        known = known or [g for g in self._gsd if g is not None]
        return float(statistics.median_low(known)) if known else None

    def gsd_values(self) -> list[dict]:
        """Every ground resolution (metres) of this dataset's samples: ``[{gsd_m, rasters, samples}]``,
        finest first (``gsd_m`` None for rasters in a geographic CRS)."""
        rasters_at: dict = {}
        samples_at: dict = {}
        for r in self.records:
            g = self._gsd[r.extra["raster"]]
            rasters_at.setdefault(g, set()).add(r.extra["raster"])
            samples_at[g] = samples_at.get(g, 0) + 1
        order = sorted(rasters_at, key=lambda g: (g is None, g or 0.0))
        return [{"gsd_m": g, "rasters": len(rasters_at[g]), "samples": samples_at[g]} for g in order]

    @property
    def chip_px(self) -> int | None:
        """Side in pixels of the training windows before the model's resize: ``chip_size``, or in
        whole-raster mode the lower median of the longer side of the samples' rasters."""
        if self.raster_column is None:
            return self.chip_size
        sides = [max(self._rasters[r.extra["raster"]][3:5]) for r in self.records]
        return int(statistics.median_low(sides)) if sides else None

    def radiometry(self) -> dict:
        """How :meth:`load_image` turns raw values into pixels, per data type of the samples'
        rasters: ``{dtype: {"lo": [...], "hi": [...], "note": ...}}``, the linear map of raw values
        to [0, 1] (one value per band)."""
        n = len(self.bands)
        out = {}
        for dtype in sorted({self._rasters[r.extra["raster"]][6] for r in self.records}):
            if dtype == "uint8" and self.value_scale is None:
                hi, note = 255.0, "8-bit values as stored"
            elif self.value_scale is not None:
                hi, note = float(self.value_scale), f"value_scale {self.value_scale:g}"
            elif np.issubdtype(np.dtype(dtype), np.integer):
                hi, note = float(np.iinfo(dtype).max), f"the {dtype} maximum"
            else:
                hi, note = 1.0, "values in 0..1"
            out[dtype] = {"lo": [0.0] * n, "hi": [hi] * n, "note": f"training data: {note}"}
        return out

    def _negative_frame(self, rng, frames, i, vector_crs):
        """A frame (raster, window) of the same split that does not touch row ``i``'s target."""
        import geopandas as gpd
        from shapely.geometry import box

        if not frames:
            return None, None
        target = gpd.GeoSeries([self._source.iloc[i]], crs=vector_crs)
        in_crs = {}
        for _ in range(50):
            ri, w = frames[rng.integers(len(frames))]
            _p, crs, t, *_ = self._rasters[ri]
            key = crs.to_wkt()
            if key not in in_crs:
                in_crs[key] = target.to_crs(crs).iloc[0]
            x0, y0 = apply_affine(t, w.col_off, w.row_off + w.height)
            x1, y1 = apply_affine(t, w.col_off + w.width, w.row_off)
            if not box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)).intersects(in_crs[key]):
                return ri, w
        return None, None

    def _record(self, sid, ri, split, expr, category, window: ChipWindow | RasterWindow, negative: bool) -> SampleRecord:
        path = self._rasters[ri][0]
        image_id = path.stem if isinstance(window, RasterWindow) else f"{path.stem}@{window.col_off},{window.row_off}"
        return SampleRecord(sid, image_id, split, expr, category, path,
                            {"raster": ri, "window": window, "negative": negative})

    def _negative_window(self, rng, ri, split, split_of, geom) -> ChipWindow | None:
        from shapely.geometry import box

        path, _crs, transform, width, height, *_ = self._rasters[ri]
        for _ in range(50):
            col, row = rng.uniform(0, width), rng.uniform(0, height)
            key = f"{path.name}:{block_of(col, row, self.block)}"
            if split_of.get(key, "train") != split:
                continue
            w = place_chip(col, row, self.chip_size, self.block)
            x0, y0 = apply_affine(transform, w.col_off, w.row_off + w.size)
            x1, y1 = apply_affine(transform, w.col_off + w.size, w.row_off)
            if not box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)).intersects(geom):
                return w
        return None

    # -- pixels -------------------------------------------------------------------------------
    def chip_transform(self, rec: SampleRecord):
        from affine import Affine

        w = rec.extra["window"]
        t = self._rasters[rec.extra["raster"]][2]
        x, y = apply_affine(t, w.col_off, w.row_off)
        return Affine(t.a, t.b, x, t.d, t.e, y)

    def load_image(self, rec: SampleRecord) -> np.ndarray:
        import rasterio
        from rasterio.windows import Window

        w = rec.extra["window"]
        try:
            with rasterio.open(rec.image_path) as src:
                if isinstance(w, RasterWindow):
                    data = src.read(list(self.bands))
                else:
                    data = src.read(list(self.bands), window=Window(w.col_off, w.row_off, w.size, w.size), boundless=True, fill_value=0)
        except Exception as exc:
            raise DatasetError(f"cannot read raster {rec.image_path}: {exc}") from None
        data = np.moveaxis(data, 0, -1)
        if data.dtype == np.uint8 and self.value_scale is None:
            return np.ascontiguousarray(data)
        scale = self.value_scale or (np.iinfo(data.dtype).max if np.issubdtype(data.dtype, np.integer) else 1.0)
        return np.clip(data.astype(np.float64) / scale * 255.0, 0, 255).astype(np.uint8)

    def load_mask(self, rec: SampleRecord) -> np.ndarray:
        from rasterio.features import rasterize

        geom = self._geoms[rec.sample_id]
        w = rec.extra["window"]
        shape = (w.height, w.width)
        if geom is None:
            return np.zeros(shape, np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rasterize([(geom, 1)], out_shape=shape, transform=self.chip_transform(rec), fill=0, dtype="uint8")

    def sample_extra(self, rec: SampleRecord) -> dict:
        t = self.chip_transform(rec)
        w = rec.extra["window"]
        x0, y1 = apply_affine(t, 0, 0)
        x1, y0 = apply_affine(t, w.width, w.height)
        return {
            "crs": self._rasters[rec.extra["raster"]][1].to_wkt(),
            "transform": tuple(t)[:6],
            "bounds": (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
            "negative": rec.extra["negative"],
            "gsd_m": self._gsd[rec.extra["raster"]],
        }
