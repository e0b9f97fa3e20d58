"""``rrsis:batch``: one expression over many scenes ("Segment many scenes").

Runs ``rrsis batch --scheduler none`` in a subprocess (scenes one after another; see
:mod:`..runner`) and reports its per-scene JSON events. QGIS's Python never imports torch or
rrsis_geo.
"""

import os
import shlex

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from .. import runner, scene, styles
from .segment import SegmentAlgorithm

HELP = """<p>Finds what one sentence describes (e.g. <i>"the largest lake"</i>) in many rasters,
one after another, with the <code>rrsis batch</code> command of rrsis-geo. Give the scenes as
raster layers (files), a folder of rasters, or a list file (.txt: one path per line; .csv: a
<code>scene</code> column and an optional <code>expression</code> column).</p>
<p>The output folder gets one GeoPackage per scene (layers <code>answer</code> and
<code>candidates</code>, with its manifest), <code>index.gpkg</code> (one row per scene: its
footprint, status, counts, seconds and error message) and <code>answers.gpkg</code> (every
scene's answer, with its <code>scene</code> and <code>source</code>), both in one CRS: the output
CRS if set, else the scenes' common CRS, else EPSG:4326.</p>
<p>A scene that fails (an unreadable file, no CRS) is reported as a warning and recorded in the
index; the others go on. Running the algorithm again on the same folder skips the scenes already
done and resumes an interrupted one; cancel keeps the finished scenes. For many machines, run
<code>rrsis batch</code> on a Dask cluster from the command line.</p>"""


class BatchAlgorithm(QgsProcessingAlgorithm):
    LAYERS = "LAYERS"
    FOLDER = "FOLDER"
    LIST = "LIST"
    EXPRESSION = "EXPRESSION"
    MODEL = "MODEL"
    CHECKPOINT = "CHECKPOINT"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    DEVICE = "DEVICE"
    ASSUME_CRS = "ASSUME_CRS"
    DST_CRS = "DST_CRS"
    FORCE = "FORCE"
    REDO = "REDO"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    ANSWERS = "ANSWERS"
    INDEX = "INDEX"
    DONE = "DONE"
    FAILED = "FAILED"

    MODELS, DEFAULT_MODEL, DEVICES = SegmentAlgorithm.MODELS, SegmentAlgorithm.DEFAULT_MODEL, SegmentAlgorithm.DEVICES

    def tr(self, text):
        return QCoreApplication.translate("rrsis", text)

    def createInstance(self):  # noqa: N802 - QGIS API name
        return BatchAlgorithm()

    def name(self):
        return "batch"

    def displayName(self):  # noqa: N802 - QGIS API name
        return self.tr("Segment many scenes")

    def shortHelpString(self):  # noqa: N802 - QGIS API name
        return self.tr(HELP)

    def tags(self):
        return ["referring", "segmentation", "batch", "many", "folder", "rrsis"]

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.LAYERS, self.tr("Raster layers (files)"), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.FOLDER, self.tr("Folder of rasters"), behavior=QgsProcessingParameterFile.Folder, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.LIST, self.tr("Scene list (.txt or .csv)"), fileFilter="Scene lists (*.txt *.csv)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.EXPRESSION, self.tr("Expression (what to find, in English)")))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODEL, self.tr("Model (btdnet-lite-demo is trained; presets are architectures)"),
            options=self.MODELS, defaultValue=self.DEFAULT_MODEL))
        self.addParameter(QgsProcessingParameterFile(
            self.CHECKPOINT, self.tr("Model checkpoint (.safetensors; replaces the preset)"),
            extension="safetensors", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, self.tr("Minimum object area (m²)"), QgsProcessingParameterNumber.Double,
            optional=True, minValue=0))
        advanced = [
            QgsProcessingParameterNumber(self.SIMPLIFY, self.tr("Simplify tolerance (m)"),
                                         QgsProcessingParameterNumber.Double, optional=True, minValue=0),
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=self.DEVICES, defaultValue=0),
            QgsProcessingParameterCrs(self.ASSUME_CRS, self.tr("Assume CRS (rasters without one)"), optional=True),
            QgsProcessingParameterCrs(self.DST_CRS, self.tr("Output CRS"), optional=True),
            QgsProcessingParameterBoolean(self.FORCE, self.tr("Force unknown nouns"), defaultValue=False),
            QgsProcessingParameterBoolean(
                self.REDO, self.tr("Run every scene again, replacing earlier outputs in the folder"),
                defaultValue=False),
        ]
        for param in advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.ANSWERS, self.tr("Answers of all scenes")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.INDEX, self.tr("Index of scenes")))
        self.addOutput(QgsProcessingOutputNumber(self.DONE, self.tr("Scenes done")))
        self.addOutput(QgsProcessingOutputNumber(self.FAILED, self.tr("Scenes failed")))

    def _inputs(self, parameters, context):
        inputs = []
        for layer in self.parameterAsLayerList(parameters, self.LAYERS, context) or []:
            path = scene.plain_file(layer)
            if not path:
                raise QgsProcessingException(
                    f"{layer.name()} is not a raster file ({layer.providerType()}); export it to a GeoTIFF "
                    "first, or use 'Segment referred object' for it")
            inputs.append(path)
        for key in (self.FOLDER, self.LIST):
            value = self.parameterAsFile(parameters, key, context)
            if value:
                inputs.append(value)
        if not inputs:
            raise QgsProcessingException("No scenes: give raster layers, a folder of rasters or a scene list.")
        return inputs

    def _crs(self, parameters, key, context):
        if parameters.get(key) in (None, ""):
            return None
        crs = self.parameterAsCrs(parameters, key, context)
        return (crs.authid() or crs.toWkt()) if crs.isValid() else None

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        from ..provider import executable_setting

        inputs = self._inputs(parameters, context)
        expression = self.parameterAsString(parameters, self.EXPRESSION, context)
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        outdir = os.path.abspath(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        numbers = {key: (self.parameterAsDouble(parameters, key, context)
                         if parameters.get(key) not in (None, "") else None) for key in (self.MIN_AREA, self.SIMPLIFY)}
        request = runner.BatchRequest(
            inputs=inputs, expression=expression, outdir=outdir,
            model=checkpoint or self.MODELS[self.parameterAsEnum(parameters, self.MODEL, context)],
            min_area=numbers[self.MIN_AREA], simplify=numbers[self.SIMPLIFY],
            device=self.DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            assume_crs=self._crs(parameters, self.ASSUME_CRS, context),
            dst_crs=self._crs(parameters, self.DST_CRS, context),
            force=self.parameterAsBoolean(parameters, self.FORCE, context),
            extra=["--overwrite"] if self.parameterAsBoolean(parameters, self.REDO, context) else [],
        )
        try:
            argv = runner.resolve_command(executable_setting()) + request.args()
        except runner.RrsisNotFound as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in argv))
        done = self._run(argv, feedback, outdir)

        text = expression.strip()
        for key, name in ((done["answers"], f"rrsis: {text} (all scenes)"), (done["index"], "rrsis: scenes")):
            context.addLayerToLoadOnCompletion(key, QgsProcessingContext.LayerDetails(name, context.project(), name))
        styles.attach(context, done["answers"], f"rrsis: {text} (all scenes)", styles.style_segments)
        return {self.ANSWERS: done["answers"], self.INDEX: done["index"], self.DONE: int(done.get("done", 0)),
                self.FAILED: int(done.get("failed", 0)), self.OUTPUT_FOLDER: outdir}

    def _run(self, argv, feedback, outdir):
        state = {"scenes": 0, "finished": 0, "done": None}

        def on_event(event):
            kind = event.get("event")
            if kind == "start":
                state["scenes"] = int(event.get("scenes") or 0)
                feedback.pushInfo(f"{event.get('scenes')} scene(s), {event.get('reused')} already done")
            elif kind == "scene":
                state["finished"] += 1
                if event.get("status") == "failed":
                    feedback.pushWarning(f"{event.get('scene')}: {event.get('error')}")
                elif not event.get("reused"):
                    feedback.pushInfo(f"{event.get('scene')}: {event.get('answer_features', event.get('features'))} "
                                      f"answer feature(s) ({event.get('rule') or ''})")
                if state["scenes"]:
                    feedback.setProgress(100.0 * state["finished"] / state["scenes"])
            elif kind == "log":
                (feedback.pushWarning if event.get("level") == "warning" else feedback.pushInfo)(
                    str(event.get("message", "")))
            elif kind == "done":
                state["done"] = event
                feedback.pushInfo(f"{event.get('done')} of {event.get('scenes')} scene(s) done, "
                                  f"{event.get('failed')} failed; {event.get('answer_features')} answer "
                                  f"feature(s) in {event.get('crs')}")

        try:
            return runner.run_cli(argv, on_event=on_event, on_text=lambda stream, line: feedback.pushConsoleInfo(line),
                                  is_canceled=feedback.isCanceled)
        except runner.RunCancelled:
            raise QgsProcessingException(
                f"Cancelled: the finished scenes are kept in {outdir}; run again to go on.")
        except runner.CliFailed as exc:
            if exc.exit_code == 3 and state["done"] is not None:  # some scenes failed: the rest is there
                feedback.reportError(f"rrsis: {exc}", fatalError=False)
                return state["done"]
            raise QgsProcessingException(f"rrsis failed: {exc}") from exc
        except runner.RrsisNotFound as exc:
            raise QgsProcessingException(str(exc)) from exc
