"""Custom data: GeoTIFF scene(s) + a vector file of target polygons with an expression column.

One row of the vector file is one (target, expression) sample. Polygons are reprojected to each
raster's CRS; a row belongs to the first raster whose footprint holds its centroid. A chip of
``chip_size`` pixels is cut around each target (see :mod:`rrsis_geo.data.chips`: chips stay
inside their split's block, so validation is spatially disjoint from training) and its mask is
the row's polygon rasterised on the chip's own geotransform. Samples carry ``crs``,
``transform`` and ``bounds`` so predictions can be turned back into georeferenced polygons.

Optional negative chips (``negative_fraction``): an expression paired with a chip of the same
split that does not touch its target; the mask is empty.

Layout for ``rrsis data check --format custom ROOT``: ROOT holds the GeoTIFF(s) (``*.tif``)
and one vector file (``*.gpkg``, ``*.geojson``, ``*.shp``); or pass ``rasters=`` / ``vector=``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rrsis_geo.data.base import Problem, ReferringDataset, SampleRecord
from rrsis_geo.data.chips import ChipWindow, assign_blocks, block_of, place_chip
from rrsis_geo.errors import DatasetError

VECTOR_EXTS = (".gpkg", ".geojson", ".json", ".shp")
RASTER_EXTS = (".tif", ".tiff")


def discover(root: Path) -> tuple[list[Path], Path]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"custom data root {root} does not exist (pass the folder with the GeoTIFFs and the vector file)")
    rasters = sorted(p for p in root.iterdir() if p.suffix.lower() in RASTER_EXTS)
    vectors = sorted(p for p in root.iterdir() if p.suffix.lower() in VECTOR_EXTS)
    if not rasters:
        raise DatasetError(f"custom data root {root} has no GeoTIFF (*.tif)")
    if len(vectors) != 1:
        found = ", ".join(p.name for p in vectors) or "none"
        raise DatasetError(f"custom data root {root} needs exactly one vector file (*.gpkg, *.geojson, *.shp); found {found}: pass vector=")
    return rasters, vectors[0]


def apply_affine(t, x: float, y: float) -> tuple[float, float]:
    """``t * (x, y)`` for an affine transform, without the operator affine is deprecating."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


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

        if root is None and (rasters is None or vector is None):
            raise DatasetError("custom data needs a root folder, or both rasters= and vector=")
        super().__init__(root if root is not None else Path(vector).parent, splits, transforms, on_error)
        if rasters is None or vector is None:
            found_r, found_v = discover(self.root)
            rasters = rasters if rasters is not None else found_r
            vector = vector if vector is not None else found_v
        if isinstance(rasters, (str, Path)):
            rasters = [rasters]
        self.raster_paths = [Path(p) for p in rasters]
        self.vector_path = Path(vector)
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

        for p in [*self.raster_paths, self.vector_path]:
            if not p.exists():
                raise DatasetError(f"custom data file {p} does not exist")
        try:
            gdf = gpd.read_file(self.vector_path)
        except Exception as exc:
            raise DatasetError(f"cannot read vector file {self.vector_path}: {exc}") from None
        if expression_column not in gdf.columns:
            cols = ", ".join(c for c in gdf.columns if c != "geometry")
            raise DatasetError(f"vector file {self.vector_path.name} has no column {expression_column!r} (expression_column=); columns: {cols}")
        if category_column is not None and category_column not in gdf.columns:
            raise DatasetError(f"vector file {self.vector_path.name} has no column {category_column!r} (category_column=)")
        if gdf.crs is None:
            raise DatasetError(f"vector file {self.vector_path} has no CRS: set one (e.g. ogr2ogr -a_srs) so polygons can be placed on the rasters")

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

        crs0, t0 = self._rasters[0][1], self._rasters[0][2]
        if crs0.is_projected and abs(crs0.linear_units_factor[1] - 1.0) < 1e-9:
            self.gsd_m = float(abs(t0.a))

        # Place every row on a raster, in that raster's CRS.
        placed = []  # (row index, raster index, geometry in raster CRS, centre col/row)
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

        block_keys = {i: f"{self._rasters[ri][0].name}:{block_of(col, row, self.block)}" for i, ri, _g, col, row in placed}
        split_of = assign_blocks(block_keys.values(), *self.split_fractions, seed=seed)
        self._geoms = {}
        positives_by_split: dict[str, list] = {}
        for i, ri, geom, col, row in placed:
            split = split_of[block_keys[i]]
            value = gdf[expression_column].iloc[i]
            expr = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
            sid = f"row{i}"
            if not expr:
                self.problems.append(Problem("empty_expression", f"row {i} has an empty {expression_column!r}", sid))
                continue
            category = str(gdf[category_column].iloc[i]) if category_column else "unknown"
            window = place_chip(col, row, self.chip_size, self.block)
            positives_by_split.setdefault(split, []).append((i, ri, geom, window, expr, category))
            if split in self.splits:
                self._geoms[sid] = geom
                self.records.append(self._record(sid, ri, split, expr, category, window, negative=False))

        rng = np.random.default_rng(seed)
        for split in self.splits:
            pos = positives_by_split.get(split, [])
            n_neg = int(round(negative_fraction * len(pos)))
            for k in range(n_neg):
                i, ri, geom, _w, expr, category = pos[rng.integers(len(pos))]
                window = self._negative_window(rng, ri, split, split_of, geom)
                if window is None:
                    continue
                sid = f"neg{k}_row{i}"
                self._geoms[sid] = None
                self.records.append(self._record(sid, ri, split, expr, category, window, negative=True))

    def _record(self, sid, ri, split, expr, category, window: ChipWindow, negative: bool) -> SampleRecord:
        path = self._rasters[ri][0]
        return SampleRecord(sid, f"{path.stem}@{window.col_off},{window.row_off}", split, expr, category, path,
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
        size = rec.extra["window"].size
        if geom is None:
            return np.zeros((size, size), np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rasterize([(geom, 1)], out_shape=(size, size), transform=self.chip_transform(rec), fill=0, dtype="uint8")

    def sample_extra(self, rec: SampleRecord) -> dict:
        t = self.chip_transform(rec)
        size = rec.extra["window"].size
        x0, y1 = apply_affine(t, 0, 0)
        x1, y0 = apply_affine(t, size, size)
        return {
            "crs": self._rasters[rec.extra["raster"]][1].to_wkt(),
            "transform": tuple(t)[:6],
            "bounds": (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
            "negative": rec.extra["negative"],
        }
