"""Turn the algorithm's input layer (and optional extent) into what the rrsis command reads.

- A raster that is a plain GDAL file on disk is passed as it is, so features name it as their
  ``source``. An Extent is then passed as an area of interest (``--aoi``, a one-polygon
  GeoPackage in the layer's CRS): the command looks only inside it and never copies the data.
- Anything else (a WMS/WMTS/XYZ or WCS layer, a virtual raster, a GeoPackage raster table, a
  file inside an archive), or a file with an explicit Pixel size, is exported first to a
  temporary GeoTIFF through a QgsRasterPipe:

  - extent: the Extent parameter, or the layer's full extent when the layer has one (web
    layers do not: without an Extent they are refused with a message saying what to set);
  - resolution: the Pixel size parameter, or the layer's native resolution (web layers have
    none: without a Pixel size they are refused likewise).

  Features of an exported layer name the temporary GeoTIFF as their ``source``; the command
  line in the log and the run manifest say which layer it came from.
"""

import math
import os

from qgis.core import (
    QgsFeature,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProviderRegistry,
    QgsRasterBlockFeedback,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterPipe,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsWkbTypes,
)

#: Largest export, in pixels (about 20000 x 20000); beyond it the user is asked to clip.
MAX_EXPORT_PIXELS = 400_000_000


def plain_file(layer):
    """The path of ``layer`` if it is a GDAL raster that is a whole file on disk, else None."""
    if layer.providerType() != "gdal":
        return None
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or ""
    if parts.get("layerName") or parts.get("vsiPrefix") or not os.path.isfile(path):
        return None
    return path


def file_has_crs(path):
    """Whether the raster file itself carries a CRS (QGIS may show a default one for it)."""
    from osgeo import gdal

    dataset = gdal.Open(path)
    return dataset is not None and dataset.GetSpatialRef() is not None


def write_aoi(extent, crs, workdir, context):
    """Write ``extent`` (in ``crs``) as a one-polygon GeoPackage; return its path."""
    path = os.path.join(workdir, "aoi.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    writer = QgsVectorFileWriter.create(
        path, QgsFields(), QgsWkbTypes.Polygon, crs, context.transformContext(), options
    )
    if writer.hasError() != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"Could not write the extent as an AOI: {writer.errorMessage()}")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(extent))
    writer.addFeature(feature)
    del writer  # flushes and closes the file
    return path


def export_scene(layer, extent, pixel_size, workdir, context, feedback):
    """Export ``layer`` to a temporary GeoTIFF and return its path.

    ``extent`` is a QgsRectangle in the layer's CRS or None; ``pixel_size`` a float in the
    layer's CRS units or None. Raises QgsProcessingException saying what to set when the
    layer cannot be exported as asked.
    """
    provider = layer.dataProvider()
    has_grid = bool(provider.capabilities() & QgsRasterDataProvider.Size) and provider.xSize() > 0
    kind = provider.name()
    if extent is None:
        if not has_grid:
            raise QgsProcessingException(
                f"The layer '{layer.name()}' is a {kind} layer, not a raster file: set the "
                "'Extent' parameter (e.g. the map canvas extent) and the 'Pixel size' so it can "
                "be exported to a temporary GeoTIFF, or save the layer as a GeoTIFF first."
            )
        extent = layer.extent()
    if pixel_size is None and not has_grid:
        raise QgsProcessingException(
            f"The layer '{layer.name()}' is a {kind} layer without a native resolution: set "
            "the 'Pixel size' parameter (in the layer's CRS units, e.g. metres) so it can be "
            "exported to a temporary GeoTIFF."
        )
    if not layer.crs().isValid():
        raise QgsProcessingException(
            f"The layer '{layer.name()}' has no coordinate reference system; assign one "
            "(Layer Properties > Source) or save it as a GeoTIFF with a CRS first."
        )

    if pixel_size is None:
        extent = _snap_to_grid(extent, layer)
        res_x, res_y = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    else:
        res_x = res_y = float(pixel_size)
        if res_x <= 0:
            raise QgsProcessingException("'Pixel size' must be greater than 0.")
    clipped = extent.intersect(layer.extent()) if has_grid else QgsRectangle(extent)
    if clipped.isEmpty():
        raise QgsProcessingException(f"The extent does not overlap the layer '{layer.name()}'.")
    cols = max(1, int(round(clipped.width() / res_x)))
    rows = max(1, int(round(clipped.height() / res_y)))
    if cols * rows > MAX_EXPORT_PIXELS:
        raise QgsProcessingException(
            f"Exporting '{layer.name()}' at this extent and pixel size would make a "
            f"{cols} x {rows} raster; choose a smaller extent or a larger pixel size."
        )

    target = os.path.join(workdir, "scene.tif")
    feedback.pushInfo(
        f"Exporting '{layer.name()}' ({kind}) to a temporary GeoTIFF: {cols} x {rows} pixels"
    )
    pipe = QgsRasterPipe()
    if not pipe.set(provider.clone()):
        raise QgsProcessingException(f"Could not read the layer '{layer.name()}'.")
    writer = QgsRasterFileWriter(target)
    writer.setOutputFormat("GTiff")
    writer.setCreateOptions(["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    # The writer takes a raster block feedback: forward cancellation to it.
    block_feedback = QgsRasterBlockFeedback()
    feedback.canceled.connect(block_feedback.cancel)
    if feedback.isCanceled():
        block_feedback.cancel()
    try:
        error = writer.writeRaster(
            pipe, cols, rows, clipped, layer.crs(), context.transformContext(), block_feedback
        )
    finally:
        feedback.canceled.disconnect(block_feedback.cancel)
    if feedback.isCanceled():
        raise QgsProcessingException("Cancelled while exporting the layer; nothing was written.")
    if error != QgsRasterFileWriter.NoError:
        raise QgsProcessingException(
            f"Could not export the layer '{layer.name()}' to a GeoTIFF (error {int(error)})."
        )
    return target


def _snap_to_grid(extent, layer):
    """Grow ``extent`` outward to the layer's pixel grid so the export keeps whole pixels."""
    full = layer.extent()
    rx, ry = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    xmin = full.xMinimum() + math.floor((extent.xMinimum() - full.xMinimum()) / rx + 1e-9) * rx
    xmax = full.xMinimum() + math.ceil((extent.xMaximum() - full.xMinimum()) / rx - 1e-9) * rx
    ymax = full.yMaximum() - math.floor((full.yMaximum() - extent.yMaximum()) / ry + 1e-9) * ry
    ymin = full.yMaximum() - math.ceil((full.yMaximum() - extent.yMinimum()) / ry - 1e-9) * ry
    return QgsRectangle(xmin, ymin, xmax, ymax)
