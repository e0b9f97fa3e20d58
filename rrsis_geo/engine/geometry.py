"""Metric measurements for any CRS: areas in m^2 and simplification tolerances in metres.

Projected CRSs scale by their linear unit. Geographic CRSs (EPSG:4326 ...) measure areas on the
ellipsoid (pyproj.Geod) and simplify in the local UTM zone, so ``--min-area`` and
``--simplify`` mean the same on a degree grid as on a metre grid.
"""

from __future__ import annotations

import numpy as np
import shapely
import shapely.affinity
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from shapely.ops import transform as shp_transform

from rrsis_geo.errors import InputError


def pixel_box(transform, col0: float, row0: float, col1: float, row1: float) -> shapely.Geometry:
    """The pixel-space rectangle ``[col0, col1] x [row0, row1]`` mapped into the CRS by the
    raster's affine ``transform`` (a parallelogram on a rotated grid)."""
    t = transform
    return shapely.affinity.affine_transform(shapely.box(col0, row0, col1, row1), [t.a, t.b, t.d, t.e, t.c, t.f])


class MetricContext:
    def __init__(self, crs, bounds_in_crs: tuple[float, float, float, float]):
        self.crs = CRS.from_user_input(crs)
        self.geographic = self.crs.is_geographic
        if self.geographic:
            self.geod = self.crs.get_geod()
            w, s, e, n = bounds_in_crs
            utm = query_utm_crs_info(
                datum_name="WGS 84",
                area_of_interest=AreaOfInterest(
                    west_lon_degree=max(min(w, e), -180), south_lat_degree=max(min(s, n), -90),
                    east_lon_degree=min(max(w, e), 180), north_lat_degree=min(max(s, n), 90),
                ),
            )
            self.local = CRS.from_epsg(int(utm[0].code)) if utm else CRS.from_epsg(3857)
            self._fwd = Transformer.from_crs(self.crs, self.local, always_xy=True).transform
            self._inv = Transformer.from_crs(self.local, self.crs, always_xy=True).transform
            self.unit_m = None
        else:
            factor = None
            for axis in self.crs.axis_info:
                if axis.unit_conversion_factor:
                    factor = axis.unit_conversion_factor
                    break
            if factor is None:
                raise InputError(f"cannot measure in metres in the CRS {self.crs.to_string()}")
            self.unit_m = float(factor)

    def area_m2(self, geom: shapely.Geometry) -> float:
        if self.geographic:
            area, _ = self.geod.geometry_area_perimeter(geom)
            return abs(area)
        return geom.area * self.unit_m**2

    def simplify(self, geom: shapely.Geometry, tolerance_m: float) -> shapely.Geometry:
        if tolerance_m <= 0:
            return geom
        if self.geographic:
            local = shp_transform(self._fwd, geom).simplify(tolerance_m, preserve_topology=True)
            return shp_transform(self._inv, local)
        return geom.simplify(tolerance_m / self.unit_m, preserve_topology=True)

    def to_metric(self, geom: shapely.Geometry) -> shapely.Geometry:
        """The geometry in a local frame measured in metres (x east, y north): the CRS's own axes
        scaled by its unit, or the local UTM zone for a geographic CRS."""
        if self.geographic:
            return shapely.transform(geom, lambda xy: np.column_stack(self._fwd(xy[:, 0], xy[:, 1])))
        return shapely.transform(geom, lambda xy: xy * self.unit_m)
