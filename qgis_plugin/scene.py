"""Turn the algorithm's input layer into a GeoTIFF path the rrsis command can read.

A raster that is a plain GDAL file on disk is passed as it is. Anything else (a WMS/WMTS/XYZ
or WCS layer, a virtual raster, a GeoPackage raster table, a file inside an archive) and any
run with an extent to clip to is exported first to a temporary GeoTIFF:

- extent: the algorithm's Extent parameter, or the layer's full extent when the layer has one
  (web layers do not: without an extent they are refused with a message saying what to set);
- resolution: the Pixel size parameter, or the layer's native resolution (web layers have none:
  without a pixel size they are refused likewise).

Files are clipped with GDAL on their own pixel grid (values and data type kept exactly);
other providers are rendered through a QgsRasterPipe with QgsRasterFileWriter.
"""

import math
import os

from qgis.core import (
    QgsProcessingException,
    QgsProviderRegistry,
    QgsRasterBlockFeedback,
    QgsRasterDataProvider,
    QgsRasterFileWriter,
    QgsRasterPipe,
    QgsRectangle,
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


def scene_for(layer, extent, pixel_size, workdir, context, feedback):
    """Return a GeoTIFF path for ``layer``.

    ``extent`` is a QgsRectangle in the layer's CRS or None; ``pixel_size`` a float in the
    layer's CRS units or None. Raises QgsProcessingException with what to do when the layer
    cannot be exported as asked.
    """
    path = plain_file(layer)
    if path and extent is None and pixel_size is None:
        return path

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
        # The CLI refuses rasters without a CRS; say it here for exported layers too.
        raise QgsProcessingException(
            f"The layer '{layer.name()}' has no coordinate reference system; assign one "
            "(Layer Properties > Source) or save it as a GeoTIFF with a CRS first."
        )

    if has_grid and pixel_size is None:
        extent = _snap_to_grid(extent, layer)
        res_x, res_y = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    else:
        res_x = res_y = float(pixel_size)
        if res_x <= 0:
            raise QgsProcessingException("'Pixel size' must be greater than 0.")
    clipped = extent.intersect(layer.extent()) if has_grid else QgsRectangle(extent)
    if clipped.isEmpty():
        raise QgsProcessingException(
            f"The extent does not overlap the layer '{layer.name()}'."
        )
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
    if path and pixel_size is None:
        _clip_file(path, clipped, target)
    else:
        _render(layer, clipped, cols, rows, target, context, feedback)
    return target


def _snap_to_grid(extent, layer):
    """Grow ``extent`` outward to the layer's pixel grid so clipping keeps whole pixels."""
    full = layer.extent()
    rx, ry = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    xmin = full.xMinimum() + math.floor((extent.xMinimum() - full.xMinimum()) / rx + 1e-9) * rx
    xmax = full.xMinimum() + math.ceil((extent.xMaximum() - full.xMinimum()) / rx - 1e-9) * rx
    ymax = full.yMaximum() - math.floor((full.yMaximum() - extent.yMaximum()) / ry + 1e-9) * ry
    ymin = full.yMaximum() - math.ceil((full.yMaximum() - extent.yMinimum()) / ry - 1e-9) * ry
    return QgsRectangle(xmin, ymin, xmax, ymax)


def _clip_file(path, extent, target):
    from osgeo import gdal

    options = gdal.TranslateOptions(
        format="GTiff",
        projWin=[extent.xMinimum(), extent.yMaximum(), extent.xMaximum(), extent.yMinimum()],
        creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"],
    )
    result = gdal.Translate(target, path, options=options)
    if result is None:
        raise QgsProcessingException(f"Could not clip {path}: {gdal.GetLastErrorMsg()}")
    result = None  # noqa: F841 - closes the dataset


def _render(layer, extent, cols, rows, target, context, feedback):
    provider = layer.dataProvider().clone()
    pipe = QgsRasterPipe()
    if not pipe.set(provider):
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
            pipe, cols, rows, extent, layer.crs(), context.transformContext(), block_feedback
        )
    finally:
        feedback.canceled.disconnect(block_feedback.cancel)
    if feedback.isCanceled():
        raise QgsProcessingException("Cancelled while exporting the layer; nothing was written.")
    if error != QgsRasterFileWriter.NoError:
        raise QgsProcessingException(
            f"Could not export the layer '{layer.name()}' to a GeoTIFF (error {int(error)})."
        )
