"""rrsis-geo: referring remote-sensing image segmentation for GeoTIFFs.

Give it a raster and a sentence ("the bridge over the river"), get georeferenced polygons.
"""

__version__ = "0.1.0"
