"""QGIS plugin for rrsis-geo: the Processing provider ``rrsis`` and its algorithm ``rrsis:segment``.

QGIS imports this module at start-up, so it imports nothing heavy: the plugin class is
imported only when QGIS calls :func:`classFactory`.
"""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin import RrsisPlugin

    return RrsisPlugin(iface)
