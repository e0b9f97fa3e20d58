"""How results look when QGIS loads them: outlines that read on imagery, a probability ramp."""

from qgis.core import (
    QgsColorRampShader,
    QgsFillSymbol,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    Qgis,
)
from qgis.PyQt.QtGui import QColor

#: Yellow outline with a faint fill: visible on most imagery, does not hide what is under it.
SEGMENT_SYMBOL = {
    "color": "255,212,0,50",
    "outline_color": "255,212,0,255",
    "outline_width": "0.6",
    "outline_width_unit": "MM",
    "joinstyle": "round",
}

#: Probability ramp (magma-like), transparent at 0.
PROB_STOPS = [
    (0.0, QColor(0, 0, 4, 0)),
    (0.25, QColor(81, 18, 124, 110)),
    (0.5, QColor(183, 55, 121, 170)),
    (0.75, QColor(252, 137, 97, 210)),
    (1.0, QColor(252, 253, 191, 235)),
]


def style_segments(layer):
    layer.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(dict(SEGMENT_SYMBOL))))
    layer.triggerRepaint()


def style_probability(layer):
    provider = layer.dataProvider()
    byte = provider.dataType(1) == Qgis.Byte
    top = 255.0 if byte else 1.0
    items = [QgsColorRampShader.ColorRampItem(v * top, c, f"{v:g}") for v, c in PROB_STOPS]
    ramp = QgsColorRampShader(0.0, top)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    ramp.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(top)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


class _Styler(QgsProcessingLayerPostProcessorInterface):
    """Applies a style function when Processing loads the layer."""

    # QGIS holds post-processors by raw pointer: keep each alive until it has run.
    _alive = set()

    def __init__(self, function):
        super().__init__()
        self.function = function
        _Styler._alive.add(self)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API name
        try:
            if layer is not None and layer.isValid():
                self.function(layer)
        finally:
            _Styler._alive.discard(self)


def attach(context, path, name, function):
    """Give the layer loaded from ``path`` a name and a style, if Processing will load it."""
    if not path or not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = name
    details.setPostProcessor(_Styler(function))
