"""Disk, locks, inputs and the output set (issue 20): nothing fills the disk, clobbers an input,
collides with another run, resumes from unverified work or leaves half an output set."""

import json
import os
import signal
import subprocess
import sys
import time

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from rrsis_geo.engine import output as out
from rrsis_geo.engine import segment as seg
from rrsis_geo.engine.disk import disk_estimate, stored_fraction
from rrsis_geo.engine.segment import SegmentOptions, segment_scene, work_dir_for
from rrsis_geo.errors import Cancelled, OutputError
from tests.fakes import PointwiseModel, ThresholdModel
from tests.rasters import smooth_field, write_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sparse_scene(tmp_path, side=1024):
    """A tiled scene stored sparse: nodata (0) everywhere except a 100 x 100 corner."""
    data = np.zeros((3, side, side), dtype="uint8")
    data[:, :100, :100] = smooth_field(100, 100)
    return write_raster(tmp_path / "sparse.tif", data, nodata=0, tiled=True, SPARSE_OK="TRUE")


def run(tmp_path, scene, model, name="out.gpkg", events=None, **opts):
    opts.setdefault("per_tile", True)
    output = str(tmp_path / name)
    result = segment_scene(scene, "the thing", output, model, SegmentOptions(**opts),
                           progress=events.append if events is not None else None)
    return result, output


# ----------------------------------------------------------------------------- 1. disk
def test_sparse_scene_keeps_the_work_raster_sparse(tmp_path):
    scene = sparse_scene(tmp_path)
    used = []

    def watch(event):
        if event.get("stage") == "vectorize" and not used:
            st = os.stat(os.path.join(work_dir_for(str(tmp_path / "out.gpkg")), "prob.tif"))
            used.append(st.st_blocks * 512)

    segment_scene(scene, "x", str(tmp_path / "out.gpkg"), PointwiseModel(input_size=128),
                  SegmentOptions(tile=128, overlap=16, per_tile=True), progress=watch)
    assert used and used[0] < 1024 * 1024  # the dense raster would take 4 MB


def test_disk_estimate_in_start_event_and_refusal_when_it_cannot_fit(tmp_path, monkeypatch):
    scene = sparse_scene(tmp_path)
    assert stored_fraction(scene) < 0.1
    events = []
    run(tmp_path, scene, PointwiseModel(input_size=128), events=events, tile=128, overlap=16)
    estimate = next(e for e in events if e["event"] == "start")["disk_estimate_bytes"]
    assert 0 < estimate < disk_estimate(1024, 1024, 1.0)  # only the stored blocks count

    monkeypatch.setattr(seg, "free_bytes", lambda folder: 1000)
    with pytest.raises(OutputError, match=r"not enough disk space .* needs about .*MB.*, 1.0 KB free"):
        run(tmp_path, scene, PointwiseModel(input_size=128), name="o2.gpkg", tile=128, overlap=16)
    assert not os.path.exists(tmp_path / "o2.gpkg")
    assert not os.path.exists(work_dir_for(str(tmp_path / "o2.gpkg")))


# ----------------------------------------------------------------------------- 2. lock
HOLD = ("import sys, time; from rrsis_geo.engine.output import OutputLock\n"
        "with OutputLock([sys.argv[1]]):\n    print('held', flush=True); time.sleep(120)\n")


def test_second_run_on_a_locked_output_refuses_and_a_killed_holder_does_not_block(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    target = str(tmp_path / "out.gpkg")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, target], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=rf"another rrsis run is writing .*out.gpkg \(pid {holder.pid}\)"):
            run(tmp_path, scene, PointwiseModel(input_size=32))
        assert not os.path.exists(target) and not os.path.exists(work_dir_for(target))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.path.exists(out.lock_path(target))  # a stale lock file: it must not block
    result, _ = run(tmp_path, scene, PointwiseModel(input_size=32))
    assert os.path.exists(result.output) and not os.path.exists(out.lock_path(target))


def test_a_shared_prob_output_is_locked_too(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    prob = str(tmp_path / "p.tif")
    with out.OutputLock([prob]):
        import threading

        errors = []
        t = threading.Thread(target=lambda: errors.append(_try(run, tmp_path, scene, PointwiseModel(input_size=32),
                                                                prob_path=prob)))
        t.start()
        t.join()
    assert isinstance(errors[0], OutputError) and "p.tif" in str(errors[0])


def _try(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except Exception as exc:
        return exc


# ----------------------------------------------------------------------------- 3. outputs that are inputs
def test_outputs_that_resolve_to_inputs_are_refused_even_with_overwrite(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    before = open(scene, "rb").read()
    os.symlink(scene, tmp_path / "link.tif")
    with pytest.raises(OutputError, match="--prob .* is the scene"):
        run(tmp_path, scene, PointwiseModel(input_size=32), prob_path=str(tmp_path / "link.tif"), overwrite=True)
    aoi = str(tmp_path / "aoi.gpkg")
    gpd.GeoDataFrame(geometry=[__import__("shapely").box(500000, 4999700, 500200, 5000000)],
                     crs="EPSG:32633").to_file(aoi)
    with pytest.raises(OutputError, match="--candidates .* is the AOI"):
        run(tmp_path, scene, PointwiseModel(input_size=32), aoi=aoi, per_tile=False,
            candidates_path=str(tmp_path / "." / "aoi.gpkg"), overwrite=True)
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"weights")
    os.link(ckpt, tmp_path / "hard.gpkg")
    with pytest.raises(OutputError, match="-o .* is the model checkpoint"):
        segment_scene(scene, "x", str(tmp_path / "hard.gpkg"), PointwiseModel(input_size=32),
                      SegmentOptions(overwrite=True), inputs={"the model checkpoint": str(ckpt)})
    assert open(scene, "rb").read() == before and ckpt.read_bytes() == b"weights"


# ----------------------------------------------------------------------------- 4. verified resume
class Interrupting(ThresholdModel):
    def predict(self, tiles, enc):
        if len(self.calls) >= 9:
            raise KeyboardInterrupt
        return super().predict(tiles, enc)


def _corrupt(work, kind):
    path = os.path.join(work, "state.json")
    state = json.load(open(path))
    if kind == "claims unwritten rows":
        state["flushed_rows"] = 160
        if "check" in state:
            state["check"]["rows"] = 160
    elif kind == "truncated raster":
        with open(os.path.join(work, "prob.tif"), "r+b") as f:
            f.truncate(2000)
    elif kind == "wrong types":
        state["flushed_rows"], state["tile_stats"] = "64", 5
    json.dump(state, open(path, "w"))


@pytest.mark.parametrize("kind", ["claims unwritten rows", "truncated raster", "wrong types"])
def test_resume_discards_work_it_cannot_verify(tmp_path, kind):
    scene = write_raster(tmp_path / "s.tif", smooth_field(160, 120, seed=7))
    opts = dict(tile=32, overlap=8, batch_size=2)
    ref, ref_out = run(tmp_path, scene, ThresholdModel(input_size=32, level=0.55), name="ref.gpkg",
                       prob_path=str(tmp_path / "ref.tif"), **opts)
    with pytest.raises(Cancelled):
        run(tmp_path, scene, Interrupting(input_size=32, level=0.55), prob_path=str(tmp_path / "p.tif"), **opts)
    _corrupt(work_dir_for(str(tmp_path / "out.gpkg")), kind)
    events = []
    again, again_out = run(tmp_path, scene, ThresholdModel(input_size=32, level=0.55), events=events,
                           prob_path=str(tmp_path / "p.tif"), **opts)
    assert {"event": "log", "level": "warning", "message": seg.UNVERIFIED} in events
    assert again.resumed_from_row == 0 and again.tiles_predicted == ref.tiles_predicted
    assert len(gpd.read_file(again_out)) == len(gpd.read_file(ref_out))
    with rasterio.open(again.prob) as a, rasterio.open(ref.prob) as b:
        assert a.crs == b.crs and np.array_equal(a.read(1), b.read(1))


def test_an_intact_interrupted_run_still_resumes(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(160, 120, seed=7))
    opts = dict(tile=32, overlap=8, batch_size=2)
    with pytest.raises(Cancelled):
        run(tmp_path, scene, Interrupting(input_size=32, level=0.55), **opts)
    events = []
    again, _ = run(tmp_path, scene, ThresholdModel(input_size=32, level=0.55), events=events, **opts)
    assert again.resumed_from_row > 0
    assert not any(e.get("message") == seg.UNVERIFIED for e in events)


# ----------------------------------------------------------------------------- 5. the output set commits as one
class Killed(BaseException):
    """Stands in for the process dying: no handler of the engine catches it."""


def _kill_at_rename(monkeypatch, prefix):
    real = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith(prefix):
            raise Killed
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("temps_left", [True, False])
def test_a_commit_killed_between_renames_is_finished_or_rolled_back_by_the_rerun(tmp_path, monkeypatch,
                                                                                 temps_left):
    scene = write_raster(tmp_path / "s.tif", smooth_field(64, 64))
    opts = dict(tile=32, overlap=8, prob_path=str(tmp_path / "p.tif"))
    _kill_at_rename(monkeypatch, ".p.tmp-")  # after out.gpkg, before the prob raster and the manifest
    with pytest.raises(Killed):
        run(tmp_path, scene, PointwiseModel(input_size=32), **opts)
    monkeypatch.undo()
    target = tmp_path / "out.gpkg"
    assert target.exists() and not (tmp_path / "p.tif").exists()
    if not temps_left:
        for name in os.listdir(tmp_path):
            if name.startswith(".p.tmp-"):
                os.remove(tmp_path / name)
    events = []
    result, _ = run(tmp_path, scene, PointwiseModel(input_size=32), events=events, **opts)
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any(("finished" if temps_left else "rolled back") in m for m in logs), logs
    assert target.exists() and (tmp_path / "p.tif").exists() and os.path.exists(result.manifest)
    assert json.load(open(result.manifest))["run_id"] == result.run_id
    assert not os.path.exists(work_dir_for(str(target)))
    assert [n for n in os.listdir(tmp_path) if ".tmp-" in n] == []


def test_a_killed_commit_does_not_answer_a_rerun_on_a_changed_scene(tmp_path, monkeypatch):
    """The rerun finishes the old commit, but its result belongs to the old scene: a scene
    rewritten since is segmented again."""
    scene = write_raster(tmp_path / "s.tif", smooth_field(64, 64))
    # --overwrite in both runs: the rerun replaces the old set the recovery finishes
    opts = dict(tile=32, overlap=8, prob_path=str(tmp_path / "p.tif"), overwrite=True)
    _kill_at_rename(monkeypatch, ".p.tmp-")
    with pytest.raises(Killed):
        run(tmp_path, scene, PointwiseModel(input_size=32), **opts)
    monkeypatch.undo()
    write_raster(tmp_path / "s.tif", smooth_field(64, 64, seed=1))
    model = PointwiseModel(input_size=32)
    run(tmp_path, scene, model, **opts)
    assert model.calls  # not answered from the killed run's record


def test_stray_temporaries_of_the_same_output_are_removed(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_field(40, 40))
    stray = [".out.tmp-0123abcd.gpkg", ".out.gpkg.manifest.tmp-89abcdef.json", ".p.tmp-deadbeef.tif"]
    for name in stray + [".other.tmp-0123abcd.gpkg"]:
        (tmp_path / name).write_bytes(b"half")
    run(tmp_path, scene, PointwiseModel(input_size=32), prob_path=str(tmp_path / "p.tif"))
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == [".other.tmp-0123abcd.gpkg"]
