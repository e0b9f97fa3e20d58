"""``rrsis:segment``: a raster layer and a referring expression in, polygons out.

The algorithm only reads its parameters, prepares a GeoTIFF path, runs the ``rrsis segment``
command in a subprocess (see :mod:`..runner`) and reports its progress. QGIS's Python never
imports torch or rrsis_geo.
"""

import os
import shlex
import shutil
import tempfile
import json

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from .. import runner, scene, styles

HELP = """<p>Finds the object a sentence describes (e.g. <i>"the lake north of the road"</i>)
in a raster and returns it as georeferenced polygons, using a BTDNet or RSRefSeg model through the
<code>rrsis</code> command of rrsis-geo.</p>
<p>The command runs in its own process (configure where it is in Processing &gt; Options &gt;
Providers &gt; rrsis-geo; empty means <code>rrsis</code> on PATH). Cancel stops it within a second;
a failed or cancelled run leaves no output.</p>
<p><i>Extent</i> limits the search to a rectangle (passed to the command as an area of
interest; the raster file is read in place).</p>
<p><b>Layers that are not raster files</b> (WMS/WMTS/XYZ, WCS, virtual rasters, GeoPackage
rasters) are exported to a temporary GeoTIFF first: of <i>Extent</i> (or the layer's full
extent) at <i>Pixel size</i> (or the layer's native resolution). Web layers have neither, so
set both; use "Calculate from Map Canvas Extent" for the current view.</p>
<p>A raster file without a CRS is refused unless <i>Assume CRS</i> says which one it is in.
The polygons are in the raster's CRS unless <i>Output CRS</i> is set.</p>
<p><i>Mode</i>: <b>Scene-level</b> (default) answers the sentence in the frame of the whole
scene: the model maps the objects of the kind the sentence names, and size, position and
relation words ("the largest", "in the north-west", "east of the river", "within 500 m of the
river", "larger than 2 ha", "the two largest") choose among them. It
gives two layers: <b>answer</b> (the referent, or the set for "all the lakes"; empty when the
model abstains: a noun it was not trained on, unless <i>Force unknown nouns</i>, or no confident
match) and <b>candidates</b> (every object it chose from, with rank, selected and the measures
used). A GeoPackage output holds both as its layers <code>answer</code> and
<code>candidates</code>; with another format set <i>Candidates</i> to keep them. The rule that
chose the answer is in the log. <b>Per tile</b> returns every object each tile finds (one
layer); <b>Whole scene</b> resamples the whole scene to one model call (scenes of about one
tile).</p>
<p>Empty options use the model's defaults (tile size, overlap, threshold). <i>Minimum area</i>
is in square metres and <i>Simplify</i> in metres, whatever the raster's CRS. The output is in
the raster's CRS; each feature carries expression, score, area_m2, model_id, model_sha256,
source and run_id, and a run manifest is written beside it (<code>OUTPUT.manifest.json</code>).</p>"""


class SegmentAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    EXPRESSION = "EXPRESSION"
    MODEL = "MODEL"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    TILE = "TILE"
    OVERLAP = "OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    DEVICE = "DEVICE"
    EXTENT = "EXTENT"
    PIXEL_SIZE = "PIXEL_SIZE"
    ASSUME_CRS = "ASSUME_CRS"
    DST_CRS = "DST_CRS"
    WHOLE_SCENE = "WHOLE_SCENE"  # hidden: older scripts and models; MODE replaces it
    MODE = "MODE"
    FORCE = "FORCE"
    PRESENCE = "PRESENCE"
    OUTPUT = "OUTPUT"
    CANDIDATES = "CANDIDATES"
    PROB = "PROB"
    FEATURES = "FEATURES"
    MANIFEST = "MANIFEST"
    RUN_ID = "RUN_ID"
    RULE = "RULE"
    ABSTAINED = "ABSTAINED"

    #: Enum option order is part of the API (scripts pass indices): append, never reorder.
    #: Every preset of every architecture and every shipped model (tests/models/test_registry.py checks
    #: this against the registry; the plugin never imports torch, so the names are listed here), and
    #: "auto": the trained model that fits the layer's bands (btdnet-lite-demo for 4+, btdnet-lite-demo-rgb for 3).
    MODELS = ["btdnet-lite", "btdnet-b", "btdnet-tiny", "btdnet-lite-demo", "rsrefseg-b", "rsrefseg-tiny",
              "btdnet-lite-demo-rgb", "auto"]
    DEFAULT_MODEL = MODELS.index("auto")
    DEVICES = ["auto", "cpu", "cuda"]
    #: (CLI mode, label); indices are API like MODELS: append, never reorder.
    MODES = [
        ("scene", "Scene-level: the sentence answered in the whole scene (answer + candidates)"),
        ("per-tile", "Per tile: every object each tile finds"),
        ("whole-scene", "Whole scene: one model call on the resampled scene (about one tile)"),
    ]
    #: GeoPackage layers of a scene-level run.
    ANSWER_LAYER, CANDIDATES_LAYER = "answer", "candidates"

    def tr(self, text):
        return QCoreApplication.translate("rrsis", text)

    def createInstance(self):  # noqa: N802 - QGIS API name
        return SegmentAlgorithm()

    def name(self):
        return "segment"

    def displayName(self):  # noqa: N802 - QGIS API name
        return self.tr("Segment by referring expression")

    def shortHelpString(self):  # noqa: N802 - QGIS API name
        return self.tr(HELP)

    def tags(self):
        return ["segmentation", "referring", "expression", "deep learning", "btdnet", "rsrefseg", "rrsis"]

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API name
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Raster layer")))
        self.addParameter(
            QgsProcessingParameterString(
                self.EXPRESSION, self.tr("Expression (what to find, in English)")
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MODE, self.tr("Mode"), options=[self.tr(label) for _, label in self.MODES],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MODEL, self.tr("Model (auto: the trained demo model for the layer's bands; presets are architectures)"),
                options=self.MODELS, defaultValue=self.DEFAULT_MODEL
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT,
                self.tr("Model checkpoint (.safetensors; replaces the preset)"),
                extension="safetensors",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterBand(
                self.BANDS,
                self.tr("Bands in the model's order (btdnet-lite-demo: R, G, B, NIR; empty: the first ones)"),
                parentLayerParameterName=self.INPUT,
                optional=True,
                allowMultiple=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD,
                self.tr("Probability threshold (empty: model default)"),
                type=QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
                maxValue=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA,
                self.tr("Minimum polygon area, m² (empty: keep all)"),
                type=QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIMPLIFY,
                self.tr("Simplify tolerance, m (empty: none)"),
                type=QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DEVICE, self.tr("Device"), options=self.DEVICES, defaultValue=0
            )
        )
        advanced = [
            QgsProcessingParameterNumber(
                self.TILE,
                self.tr("Tile size, pixels (empty: model default)"),
                type=QgsProcessingParameterNumber.Integer,
                optional=True,
                minValue=16,
            ),
            QgsProcessingParameterNumber(
                self.OVERLAP,
                self.tr("Tile overlap, pixels (empty: model default)"),
                type=QgsProcessingParameterNumber.Integer,
                optional=True,
                minValue=0,
            ),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE,
                self.tr("Batch size (empty: automatic)"),
                type=QgsProcessingParameterNumber.Integer,
                optional=True,
                minValue=1,
            ),
            QgsProcessingParameterExtent(
                self.EXTENT,
                self.tr("Extent (only look inside it; needed for web layers)"),
                optional=True,
            ),
            QgsProcessingParameterNumber(
                self.PIXEL_SIZE,
                self.tr("Pixel size for exported layers, layer CRS units (needed for web layers)"),
                type=QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
            ),
            QgsProcessingParameterCrs(
                self.ASSUME_CRS,
                self.tr("Assume CRS (for a raster file without one)"),
                optional=True,
            ),
            QgsProcessingParameterCrs(
                self.DST_CRS,
                self.tr("Output CRS (empty: the raster's)"),
                optional=True,
            ),
            QgsProcessingParameterBoolean(
                self.FORCE,
                self.tr("Force unknown nouns (scene-level: answer even when the model was not "
                        "trained on the noun)"),
                defaultValue=False,
            ),
            QgsProcessingParameterNumber(
                self.PRESENCE,
                self.tr("Presence threshold, 0-1 (scene-level: lowest peak probability of a "
                        "candidate; empty: the model's)"),
                type=QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
                maxValue=1.0,
            ),
        ]
        for param in advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)
        # Replaced by MODE; kept, hidden, so saved scripts, models and history that set it still
        # run in whole-scene mode.
        legacy = QgsProcessingParameterBoolean(
            self.WHOLE_SCENE, self.tr("Whole scene in one model call (older; use Mode)"),
            defaultValue=False, optional=True,
        )
        legacy.setFlags(legacy.flags() | QgsProcessingParameterDefinition.FlagHidden)
        self.addParameter(legacy)

        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, self.tr("Segments (scene-level: the answer; a GeoPackage holds the "
                                     "candidates too)"),
                type=QgsProcessing.TypeVectorPolygon
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.CANDIDATES,
                self.tr("Candidates (scene-level; separate layer)"),
                type=QgsProcessing.TypeVectorPolygon,
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.PROB,
                self.tr("Probability raster"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.FEATURES, self.tr("Number of features")))
        self.addOutput(QgsProcessingOutputFile(self.MANIFEST, self.tr("Run manifest (JSON)")))
        self.addOutput(QgsProcessingOutputString(self.RUN_ID, self.tr("Run id")))
        self.addOutput(QgsProcessingOutputString(
            self.RULE, self.tr("Rule that chose the answer (scene-level)")))
        self.addOutput(QgsProcessingOutputBoolean(
            self.ABSTAINED, self.tr("Nothing answered (scene-level)")))

    # ----------------------------------------------------------------------------------------

    def _optional_number(self, parameters, name, context, as_int=False):
        if parameters.get(name) in (None, ""):
            return None
        if as_int:
            return self.parameterAsInt(parameters, name, context)
        return self.parameterAsDouble(parameters, name, context)

    def _mode(self, parameters, context):
        """The CLI mode: MODE, or whole-scene for the older WHOLE_SCENE flag."""
        mode = None
        if parameters.get(self.MODE) not in (None, ""):
            mode = self.MODES[self.parameterAsEnum(parameters, self.MODE, context)][0]
        legacy = parameters.get(self.WHOLE_SCENE) not in (None, "") and self.parameterAsBoolean(
            parameters, self.WHOLE_SCENE, context
        )
        if legacy:
            # MODE's default (scene-level) cannot be told from a choice: the older flag wins.
            if mode == "per-tile":
                raise QgsProcessingException(
                    "WHOLE_SCENE (an older parameter) asks for whole-scene mode but Mode is "
                    "'Per tile'; set Mode only."
                )
            return "whole-scene"
        return mode or "scene"

    def _file_destination(self, parameters, name, context, what):
        value = self.parameterAsOutputLayer(parameters, name, context)
        if not value or "|" in value or value.startswith(("memory:", "postgres:", "ogr:")):
            raise QgsProcessingException(f"{what} must be saved to a file, not {value!r}.")
        return value

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        from ..provider import executable_setting

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        expression = self.parameterAsString(parameters, self.EXPRESSION, context)
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        model = checkpoint or self.MODELS[self.parameterAsEnum(parameters, self.MODEL, context)]
        device = self.DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        pixel_size = self._optional_number(parameters, self.PIXEL_SIZE, context)
        mode = self._mode(parameters, context)
        assume_crs, scene_crs = None, layer.crs()
        if parameters.get(self.ASSUME_CRS) not in (None, ""):
            crs = self.parameterAsCrs(parameters, self.ASSUME_CRS, context)
            if crs.isValid():
                assume_crs = crs.authid() or crs.toWkt()
                # The command will place a file without a CRS in this one: so must the extent.
                path = scene.plain_file(layer)
                if not layer.crs().isValid() or (path and not scene.file_has_crs(path)):
                    scene_crs = crs
        dst_crs = None
        if parameters.get(self.DST_CRS) not in (None, ""):
            crs = self.parameterAsCrs(parameters, self.DST_CRS, context)
            if crs.isValid():
                dst_crs = crs.authid() or crs.toWkt()
        extent = None
        if parameters.get(self.EXTENT) not in (None, ""):
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, scene_crs)

        # Processing registers destinations for loading under these exact strings.
        output_key = self._file_destination(parameters, self.OUTPUT, context, "Segments")
        prob = ""
        if parameters.get(self.PROB) not in (None, ""):
            prob = self.parameterAsOutputLayer(parameters, self.PROB, context) or ""
        if prob and os.path.splitext(prob)[1].lower() not in (".tif", ".tiff"):
            raise QgsProcessingException(
                f"The probability raster must be a GeoTIFF (.tif): {prob}"
            )
        candidates_key = ""
        if parameters.get(self.CANDIDATES) not in (None, ""):
            candidates_key = self._file_destination(parameters, self.CANDIDATES, context, "Candidates")
            if mode != "scene":
                raise QgsProcessingException(
                    "Candidates are written by scene-level runs only: clear 'Candidates' or set "
                    "Mode to 'Scene-level'."
                )
        output = os.path.abspath(output_key)
        ext = os.path.splitext(output)[1].lower().lstrip(".")
        convert = ext not in runner.CLI_VECTOR_EXTENSIONS
        candidates = os.path.abspath(candidates_key) if candidates_key else ""
        if candidates and candidates == output:
            raise QgsProcessingException("Candidates must be saved to another file than Segments.")
        convert_candidates = bool(candidates) and (
            os.path.splitext(candidates)[1].lower().lstrip(".") not in runner.CLI_VECTOR_EXTENSIONS
        )

        try:
            command = runner.resolve_command(executable_setting())
        except runner.RrsisNotFound as exc:
            raise QgsProcessingException(str(exc)) from exc

        workdir = tempfile.mkdtemp(prefix="rrsis_", dir=QgsProcessingUtils.tempFolder())
        try:
            scene_path, aoi, source_label = scene.plain_file(layer), None, None
            if scene_path and pixel_size is None:
                if extent is not None:
                    aoi = scene.write_aoi(extent, scene_crs, workdir, context)
            else:
                scene_path = scene.export_scene(layer, extent, pixel_size, workdir, context, feedback)
                # The export is temporary: features name the layer it came from instead.
                source_label = f"{layer.name()} ({layer.providerType()}: {layer.source()})"
            if feedback.isCanceled():
                raise QgsProcessingException("Cancelled; nothing was written.")
            cli_output = os.path.join(workdir, "segments.gpkg") if convert else output
            cli_candidates = (os.path.join(workdir, "candidates.gpkg") if convert_candidates
                              else candidates)
            request = runner.SegmentRequest(
                scene=scene_path,
                expression=expression,
                output=cli_output,
                model=model,
                bands=bands,
                tile=self._optional_number(parameters, self.TILE, context, as_int=True),
                overlap=self._optional_number(parameters, self.OVERLAP, context, as_int=True),
                batch_size=self._optional_number(parameters, self.BATCH_SIZE, context, as_int=True),
                threshold=self._optional_number(parameters, self.THRESHOLD, context),
                min_area=self._optional_number(parameters, self.MIN_AREA, context),
                simplify=self._optional_number(parameters, self.SIMPLIFY, context),
                device=device,
                prob=prob or None,
                aoi=aoi,
                assume_crs=assume_crs,
                dst_crs=dst_crs,
                whole_scene=mode == "whole-scene",
                per_tile=mode == "per-tile",
                candidates=cli_candidates or None,
                presence=self._optional_number(parameters, self.PRESENCE, context),
                force=self.parameterAsBoolean(parameters, self.FORCE, context),
                source_label=source_label,
                # QGIS already asked before replacing an existing destination.
                overwrite=True,
            )
            argv = command + request.args()
            feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in argv))

            def finish(done):
                # Files the command could not write: converted by QGIS, inside the guard.
                if convert:
                    source = cli_output
                    if done.get("mode") == "scene":
                        source += f"|layername={self.ANSWER_LAYER}"
                    self._convert(source, output, context, feedback, manifest=cli_output)
                if convert_candidates:
                    self._convert(cli_candidates, candidates, context, feedback)

            done = self._run(argv, [output, prob, output + ".manifest.json", candidates], finish,
                             feedback)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        manifest = output + ".manifest.json"
        text = expression.strip()
        scene_run = done.get("mode") == "scene"  # an older rrsis reports no mode: one layer
        answer_source, candidates_source = output, None
        if scene_run:
            in_gpkg = ext == "gpkg"
            if in_gpkg:
                answer_source = f"{output}|layername={self.ANSWER_LAYER}"
            if candidates:
                candidates_source = candidates
            elif in_gpkg:
                candidates_source = f"{output}|layername={self.CANDIDATES_LAYER}"
            else:
                feedback.pushInfo(
                    "The candidates are not kept: a GeoPackage output holds them as its layer "
                    "'candidates'; with other formats set 'Candidates'."
                )
            candidates_layer = None
            if candidates_source:  # (its own destination or none, what to load, its table)
                candidates_layer = (candidates_key or None, candidates_source,
                                    None if candidates else self.CANDIDATES_LAYER)
            styles.attach_scene(
                context, text, (output_key, answer_source, self.ANSWER_LAYER if in_gpkg else None),
                candidates_layer,
            )
        else:
            styles.attach(context, output_key, f"rrsis: {text}", styles.style_segments)
        if prob:
            styles.attach(context, prob, f"rrsis probability: {text}", styles.style_probability)
        results = {
            self.OUTPUT: answer_source,
            self.FEATURES: int(done.get("features", 0)),
            self.MANIFEST: manifest if os.path.exists(manifest) else None,
            self.RUN_ID: self._run_id,
            self.RULE: done.get("rule") if scene_run else None,
            self.ABSTAINED: bool(done.get("abstained")) if scene_run else False,
        }
        if candidates_source:
            results[self.CANDIDATES] = candidates_source
        if prob:
            results[self.PROB] = prob
        return results

    def _run(self, argv, destinations, finish, feedback):
        self._run_id = None

        def on_event(event):
            kind = event.get("event")
            if kind == "progress":
                try:
                    feedback.setProgress(float(event.get("percent", 0.0)))
                except (TypeError, ValueError):
                    pass
                feedback.setProgressText(
                    f"{event.get('stage', '')} {event.get('done', '')}/{event.get('total', '')}"
                )
            elif kind == "start":
                self._run_id = event.get("run_id")
                feedback.pushInfo(
                    f"Run {event.get('run_id')}: {event.get('tiles')} tile(s), "
                    f"model {event.get('model')}"
                )
            elif kind == "log":
                if event.get("level") == "warning":
                    feedback.pushWarning(str(event.get("message", "")))
                else:
                    feedback.pushInfo(str(event.get("message", "")))
            elif kind == "done":
                seconds = f"{float(event.get('seconds') or 0):.1f} s"
                if event.get("mode") == "scene":
                    rule = event.get("rule") or ""
                    feedback.pushInfo(f"Rule: {rule}")
                    if event.get("abstained"):
                        feedback.pushWarning(f"No answer: {rule}")
                    feedback.pushInfo(
                        f"{event.get('answer_features', event.get('features'))} answer feature(s) "
                        f"of {event.get('candidates')} candidate(s) in {seconds}"
                    )
                else:
                    feedback.pushInfo(f"{event.get('features')} feature(s) in {seconds}")

        def on_text(stream, line):
            feedback.pushConsoleInfo(line)

        try:
            with runner.OutputGuard(destinations):
                done = runner.run_cli(
                    argv, on_event=on_event, on_text=on_text, is_canceled=feedback.isCanceled
                )
                finish(done)
        except runner.RunCancelled:
            raise QgsProcessingException(
                "Cancelled: the rrsis process was stopped and no output was written."
            )
        except runner.CliFailed as exc:
            message = f"rrsis failed: {exc}"
            if "--assume-crs" in message:
                message += " (here: the 'Assume CRS' parameter, under Advanced)"
            raise QgsProcessingException(message) from exc
        except runner.RrsisNotFound as exc:
            raise QgsProcessingException(str(exc)) from exc
        return done

    def _convert(self, source, output, context, feedback, manifest=None):
        """Write a layer the CLI wrote (``source``: a path, or ``path|layername=...``) to a format
        the CLI does not write, atomically. ``manifest``: the CLI output whose manifest to copy."""
        layer = QgsVectorLayer(source, "segments", "ogr")
        if not layer.isValid():
            raise QgsProcessingException(f"rrsis wrote an unreadable result: {source}")
        folder = os.path.dirname(output)
        staging = tempfile.mkdtemp(prefix=".rrsis-", dir=folder)
        try:
            options = QgsVectorFileWriter.SaveVectorOptions()
            options.driverName = QgsVectorFileWriter.driverForExtension(
                os.path.splitext(output)[1]
            )
            options.fileEncoding = "UTF-8"
            staged = os.path.join(staging, os.path.basename(output))
            error, message, _, _ = QgsVectorFileWriter.writeAsVectorFormatV3(
                layer, staged, context.transformContext(), options
            )
            if error != QgsVectorFileWriter.NoError:
                raise QgsProcessingException(f"Could not write {output}: {message}")
            for name in os.listdir(staging):
                os.replace(os.path.join(staging, name), os.path.join(folder, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if manifest and os.path.exists(manifest + ".manifest.json"):
            with open(manifest + ".manifest.json", encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict):
                data["converted_to"] = output
            with open(output + ".manifest.json", "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
        feedback.pushInfo(f"Converted to {output}")
