"""Runs inside QGIS's Python (``/usr/bin/python3``), started by the tests in this folder.

``python3 qgis_driver.py SCENARIOS.json RESULTS.json`` starts one headless QgsApplication,
initialises Processing, loads the plugin from the test profile's plugin folder the way QGIS
does (``qgis.utils.loadPlugin`` + ``startProcessingPlugin``), then runs each scenario with
``processing.run`` (or ``runAndLoadResults``) and records what QGIS saw: results or the
exception's message, progress values, messages, cancel latency and the output layers as
QGIS opens them. The pytest side makes the assertions.

A scenario is a dict:
  name, params (for rrsis:segment, or ``algorithm``'s), algorithm (default rrsis:segment), setting (the provider's executable setting, or null),
  env (variables set for this scenario only; a value null removes one),
  cancel_at_percent (cancel once progress reaches it), load (use runAndLoadResults),
  layer (build INPUT as {"uri", "provider", "name"} instead of passing a path),
  prefer_filename (QGIS's "Prefer output filename for layer names" for this run; default: QGIS's).
"""

import json
import os
import sys
import time
import traceback

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

PLUGIN = "rrsis_geo_qgis"


class RecordingFeedback(QgsProcessingFeedback):
    def __init__(self, cancel_at=None):
        super().__init__()
        self.cancel_at = cancel_at
        self.cancelled_at = None
        self.progress_values = []
        self.log = {"info": [], "warning": [], "console": [], "command": [], "error": []}
        self.progressChanged.connect(self._on_progress)

    def _on_progress(self, value):
        self.progress_values.append(float(value))
        if self.cancel_at is not None and self.cancelled_at is None and value >= self.cancel_at:
            self.cancelled_at = time.monotonic()
            self.cancel()

    def pushInfo(self, info):  # noqa: N802
        self.log["info"].append(info)

    def pushWarning(self, warning):  # noqa: N802
        self.log["warning"].append(warning)

    def pushConsoleInfo(self, info):  # noqa: N802
        self.log["console"].append(info)

    def pushCommandInfo(self, info):  # noqa: N802
        self.log["command"].append(info)

    def reportError(self, error, fatalError=False):  # noqa: N802,N803
        self.log["error"].append(error)


def describe_vector(path):
    """``path``: a file, or ``file|layername=...``."""
    layer = QgsVectorLayer(path, "out", "ogr")
    if not layer.isValid():
        return {"valid": False}
    return {
        "valid": True,
        "crs": layer.crs().authid(),
        "fields": [f.name() for f in layer.fields()],
        "count": layer.featureCount(),
        "geometry_type": layer.geometryType(),
    }


def describe_raster(path):
    layer = QgsRasterLayer(path, "prob", "gdal")
    if not layer.isValid():
        return {"valid": False}
    return {
        "valid": True,
        "crs": layer.crs().authid(),
        "width": layer.width(),
        "height": layer.height(),
        "bands": layer.bandCount(),
    }


def describe_loaded():
    """The project's layers, top to bottom as the layer tree shows them."""
    out = []
    project = QgsProject.instance()
    tree = [node.layerId() for node in project.layerTreeRoot().findLayers()]
    layers = project.mapLayers()
    for layer_id in tree + sorted(set(layers) - set(tree)):
        layer = layers[layer_id]
        item = {"name": layer.name(), "source": layer.source(), "renderer": layer.renderer().type(),
                "in_tree": layer_id in tree}
        if isinstance(layer, QgsVectorLayer):
            item["count"] = layer.featureCount()
            if layer.renderer().type() == "singleSymbol":
                symbol = layer.renderer().symbol()
                item["fill"] = symbol.color().name()
                item["fill_alpha"] = symbol.symbolLayer(0).fillColor().alpha()
                item["brush"] = int(symbol.symbolLayer(0).brushStyle())
                item["outline"] = symbol.symbolLayer(0).strokeColor().name()
                item["outline_alpha"] = symbol.symbolLayer(0).strokeColor().alpha()
                item["outline_width"] = symbol.symbolLayer(0).strokeWidth()
        out.append(item)
    return out


def run_scenario(scenario):
    import processing
    from processing.core.ProcessingConfig import ProcessingConfig

    saved_env = {}
    for key, value in (scenario.get("env") or {}).items():
        saved_env[key] = os.environ.get(key)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if scenario.get("setting") is not None:
        # Bypass the settings dialog's validator: a stale path must reach the algorithm.
        ProcessingConfig.settings["RRSIS_EXECUTABLE"].value = scenario["setting"]

    prefer = ProcessingConfig.PREFER_FILENAME_AS_LAYER_NAME
    saved_prefer = ProcessingConfig.getSetting(prefer)
    if scenario.get("prefer_filename") is not None:
        ProcessingConfig.setSettingValue(prefer, scenario["prefer_filename"])

    params = dict(scenario["params"])
    if scenario.get("layer"):
        spec = scenario["layer"]
        layer = QgsRasterLayer(spec["uri"], spec.get("name", "layer"), spec["provider"])
        assert layer.isValid(), f"test layer is not valid: {spec}"
        params["INPUT"] = layer

    algorithm = scenario.get("algorithm", "rrsis:segment")
    feedback = RecordingFeedback(scenario.get("cancel_at_percent"))
    record = {"name": scenario["name"], "ok": False}
    start = time.monotonic()
    try:
        if scenario.get("load"):
            QgsProject.instance().removeAllMapLayers()
            results = processing.runAndLoadResults(algorithm, params, feedback=feedback)
            record["loaded"] = describe_loaded()
        else:
            results = processing.run(algorithm, params, feedback=feedback)
        record["ok"] = True
        record["results"] = {k: (v if isinstance(v, (str, int, float, type(None))) else str(v))
                             for k, v in results.items()}
        for key, name in (("OUTPUT", "output"), ("CANDIDATES", "candidates"), ("ANSWERS", "answers"),
                          ("INDEX", "index")):
            out = results.get(key)
            if out and os.path.exists(out.split("|")[0]):
                record[name] = describe_vector(out)
        if results.get("PROB") and os.path.exists(results["PROB"]):
            record["prob"] = describe_raster(results["PROB"])
    except Exception as exc:  # the message QGIS shows the user
        record["error"] = str(exc)
        record["error_type"] = type(exc).__name__
        if type(exc).__name__ != "QgsProcessingException":
            record["traceback"] = traceback.format_exc()
    finally:
        end = time.monotonic()
        record["seconds"] = end - start
        record["cancel_latency"] = (
            end - feedback.cancelled_at if feedback.cancelled_at is not None else None
        )
        record["progress"] = feedback.progress_values
        record["log"] = feedback.log
        ProcessingConfig.setSettingValue(prefer, saved_prefer)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return record


def main(scenarios_path, results_path):
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
    from processing.core.Processing import Processing

    Processing.initialize()

    import qgis.utils

    plugins_dir = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "plugins")
    if plugins_dir not in sys.path:
        sys.path.insert(0, plugins_dir)
    qgis.utils.plugin_paths = [plugins_dir]
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN in qgis.utils.available_plugins, qgis.utils.available_plugins
    assert qgis.utils.loadPlugin(PLUGIN), f"could not load {PLUGIN}"
    assert qgis.utils.startProcessingPlugin(PLUGIN), f"could not start {PLUGIN}"
    alg = QgsApplication.processingRegistry().algorithmById("rrsis:segment")
    assert alg is not None, "rrsis:segment is not registered"

    with open(scenarios_path) as fh:
        scenarios = json.load(fh)
    records = {
        "plugin": {
            "module": qgis.utils.plugins[PLUGIN].__class__.__module__,
            "parameters": [d.name() for d in alg.parameterDefinitions()],
            "hidden": [d.name() for d in alg.parameterDefinitions()
                       if d.flags() & d.FlagHidden],
            "advanced": [d.name() for d in alg.parameterDefinitions()
                         if d.flags() & d.FlagAdvanced],
            "enums": {d.name(): d.options() for d in alg.parameterDefinitions()
                      if d.type() == "enum"},
            "defaults": {d.name(): d.defaultValue() for d in alg.parameterDefinitions()
                         if isinstance(d.defaultValue(), (bool, int, float, str))},
            "outputs": [d.name() for d in alg.outputDefinitions()],
            # Runs in a background task in the desktop (never on the GUI thread).
            "threaded": not (alg.flags() & QgsProcessingAlgorithm.FlagNoThreading),
            "provider_setting": "RRSIS_EXECUTABLE"
            in __import__("processing.core.ProcessingConfig", fromlist=["x"]).ProcessingConfig.settings,
        },
        "scenarios": {},
    }
    for scenario in scenarios:
        records["scenarios"][scenario["name"]] = run_scenario(scenario)
        with open(results_path, "w") as fh:  # partial results survive a crash
            json.dump(records, fh, indent=1)
    QgsProject.instance().removeAllMapLayers()
    qgis.utils.unloadPlugin(PLUGIN)
    records["unloaded"] = QgsApplication.processingRegistry().providerById("rrsis") is None
    # QGIS's Python must never need the heavy stack: it only runs the command.
    records["imported"] = sorted(
        name for name in ("torch", "rrsis_geo", "cli", "transformers", "rasterio", "geopandas")
        if name in sys.modules
    )
    with open(results_path, "w") as fh:
        json.dump(records, fh, indent=1)
    app.exitQgis()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
