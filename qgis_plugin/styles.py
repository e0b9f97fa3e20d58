"""How results look when QGIS loads them: outlines that read on imagery, a probability ramp.

A scene-level run loads two layers: the answer (strong) and the candidates it was chosen from
(faint, just below the answer).
"""

import os

from qgis.core import (
    QgsColorRampShader,
    QgsFillSymbol,
    QgsLayerTree,
    QgsProcessingContext,
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

#: Candidates of a scene-level run: a thin light outline, no fill, so the answer stands out.
CANDIDATE_SYMBOL = {
    "color": "0,0,0,0",
    "style": "no",
    "outline_color": "255,255,255,170",
    "outline_width": "0.26",
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


def style_candidates(layer):
    layer.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(dict(CANDIDATE_SYMBOL))))
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


# --------------------------------------------------------------------------------------------
# Scene-level runs: two layers
# --------------------------------------------------------------------------------------------

def _put_below(project, upper_id, lower_id):
    """Move the layer-tree node of ``lower_id`` to just below that of ``upper_id``."""
    root = project.layerTreeRoot() if project is not None else None
    if root is None:
        return
    upper, lower = root.findLayer(upper_id), root.findLayer(lower_id)
    if upper is None or lower is None:  # e.g. QGIS adds nodes only after all post-processing
        return
    parent = upper.parent()
    siblings = parent.children()
    index = next(i for i, node in enumerate(siblings)
                 if QgsLayerTree.isLayer(node) and node.layerId() == upper_id)
    following = siblings[index + 1] if index + 1 < len(siblings) else None
    if following is not None and QgsLayerTree.isLayer(following) and following.layerId() == lower_id:
        return
    # Insert a copy first: removing the only node of a layer would remove the layer from the project.
    parent.insertChildNode(index + 1, lower.clone())
    lower.parent().removeChildNode(lower)


def _scene_function(style, loaded, role, table, stem, project):
    def apply(layer):
        style(layer)
        # With "Prefer output filename for layer names", QGIS names a GeoPackage layer after its
        # table alone ("answer"): add the file's name, so two runs' layers stay apart.
        if table and stem and layer.name() == table:
            layer.setName(f"{stem}: {table}")
        loaded[role] = layer.id()
        if len(loaded) == 2:
            _put_below(project, loaded["answer"], loaded["candidates"])
    return apply


def attach_scene(context, expression, answer, candidates):
    """Load a scene-level run's two layers, if Processing will load its results.

    ``answer`` and ``candidates`` are ``(key, uri, table)``: ``key`` the destination Processing
    registered for loading (``None`` for the candidates layer inside the answer's GeoPackage),
    ``uri`` what to load instead (``path|layername=answer``), ``table`` the GeoPackage layer
    name or ``None``. ``candidates`` may be ``None`` (nothing to load).
    """
    a_key, a_uri, a_table = answer
    a_loads = bool(a_key) and context.willLoadLayerOnCompletion(a_key)
    c_loads = False
    if candidates is not None:
        c_key = candidates[0]
        c_loads = context.willLoadLayerOnCompletion(c_key) if c_key else a_loads
    if not (a_loads or c_loads):
        return
    base = context.layerToLoadOnCompletionDetails(a_key if a_loads else candidates[0])
    project, hint, output_name = base.project, base.layerTypeHint, base.outputName
    layers = context.layersToLoadOnCompletion()
    for key in (a_key, candidates[0] if candidates else None):
        if key:
            layers.pop(key, None)
    context.setLayersToLoadOnCompletion(layers)

    loaded = {}
    text = expression.strip()
    stem = os.path.splitext(os.path.basename(a_uri.split("|")[0]))[0]
    plan = []
    if a_loads:
        plan.append(("answer", a_uri, a_table, f"rrsis answer: {text}", style_segments, 1, output_name))
    if c_loads:
        _, c_uri, c_table = candidates
        plan.append(("candidates", c_uri, c_table, f"rrsis candidates: {text}", style_candidates, 0,
                     "CANDIDATES"))
    for role, uri, table, name, style, sort_key, out_name in plan:
        details = QgsProcessingContext.LayerDetails(name, project, out_name, hint)
        details.setPostProcessor(_Styler(_scene_function(style, loaded, role, table, stem, project)))
        if hasattr(details, "layerSortKey"):  # QGIS >= 3.32 sorts loaded layers by it (greater on top)
            details.layerSortKey = sort_key
        context.addLayerToLoadOnCompletion(uri, details)
