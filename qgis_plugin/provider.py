"""The Processing provider ``rrsis`` and its one setting: where the rrsis command is."""

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.batch import BatchAlgorithm
from .algorithms.segment import SegmentAlgorithm

#: Setting key (stored by QGIS as ``Processing/Configuration/RRSIS_EXECUTABLE``).
RRSIS_EXECUTABLE = "RRSIS_EXECUTABLE"

ICON = os.path.join(os.path.dirname(__file__), "icon.svg")


def executable_setting():
    """The configured path (executable, Python interpreter or environment folder), or ''."""
    from processing.core.ProcessingConfig import ProcessingConfig

    value = ProcessingConfig.getSetting(RRSIS_EXECUTABLE)
    return str(value or "")


class RrsisProvider(QgsProcessingProvider):
    def id(self):
        return "rrsis"

    def name(self):
        return "rrsis-geo"

    def longName(self):  # noqa: N802 - QGIS API name
        return "rrsis-geo: referring remote-sensing image segmentation"

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):  # noqa: N802 - QGIS API name
        return ICON

    def load(self):
        from processing.core.ProcessingConfig import ProcessingConfig, Setting

        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(
            Setting(
                self.name(),
                RRSIS_EXECUTABLE,
                self.tr(
                    "rrsis executable, or Python interpreter / environment folder with "
                    "rrsis-geo installed (empty: find rrsis on PATH)"
                ),
                "",
                valuetype=Setting.FILE,
            )
        )
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self):
        from processing.core.ProcessingConfig import ProcessingConfig

        if RRSIS_EXECUTABLE in ProcessingConfig.settings:
            ProcessingConfig.removeSetting(RRSIS_EXECUTABLE)

    def loadAlgorithms(self):  # noqa: N802 - QGIS API name
        self.addAlgorithm(SegmentAlgorithm())
        self.addAlgorithm(BatchAlgorithm())

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802 - QGIS API name
        # The CLI writes its probability raster as GeoTIFF only.
        return ["tif"]

    def defaultVectorFileExtension(self, hasGeometry=True):  # noqa: N802,N803 - QGIS API
        return "gpkg"
