"""The plugin object QGIS holds: it only registers and unregisters the Processing provider."""

from qgis.core import QgsApplication


class RrsisPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 - QGIS API name
        """Called by QGIS (also by qgis_process, which has no GUI) to register the provider."""
        if self.provider is not None:
            return
        from .provider import RrsisProvider

        self.provider = RrsisProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 - QGIS API name
        # The desktop calls only initGui; the provider is everything this plugin adds.
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
