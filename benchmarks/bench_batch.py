"""``rrsis batch`` throughput: scenes per minute serially and on a local Dask cluster of 1 and 2
workers, on the same scenes, and Dask's overhead per scene against the serial run.

    python benchmarks/bench_batch.py [--scenes 12] [--size 256] [--model standin:0.05] [--workers 1,2]

The scenes are windows cut from ``data/samples/naip_lakes_5m.tif`` (4-band NAIP, 5 m). Each mode
writes into its own folder with ``rrsis batch``'s library call (``run_batch``), so every figure
includes what a batch does per scene: the engine run, the atomic outputs and manifest, the
record, and the index and merged answers at the end. The cluster's start-up (worker processes
coming up and importing the package) is timed apart from the run; the model loads once per worker inside the run, as it
does once in the serial run.

``--model``: ``standin:SECONDS`` is a stand-in network (``per-tile`` mode; the engine's cost, not
a network's) that sleeps SECONDS per tile without using the CPU, like a model on a GPU, so that
workers can overlap on this small machine; ``standin:0`` leaves only the engine's and Dask's
costs. Any other value is a real model (``btdnet-lite-demo``...), run in scene mode with the
machine's cores divided among the workers.

Printed per mode: wall seconds, scenes per minute, speed-up against serial, and for the Dask
modes the cluster start-up and the overhead per scene ((run - serial run x serial workers /
workers) / scenes, i.e. the time per scene above ideal scaling).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SOURCE = os.path.join(ROOT, "data", "samples", "naip_lakes_5m.tif")


class StandIn:
    """p = 0.9 where band 1 (red) is dark, else 0.05, after ``cost`` seconds of sleep per tile."""

    def __init__(self, cost: float):
        from rrsis_geo.predictor import ModelInfo

        self.cost = cost
        self.info = ModelInfo(model_id="stand-in", checksum="stand-in", input_size=64, bands=4,
                              mean=(0.5,) * 4, std=(0.25,) * 4)

    def encode_expression(self, expression: str):
        return expression

    def predict(self, tiles: np.ndarray, encoded) -> np.ndarray:
        if self.cost:
            time.sleep(self.cost * len(tiles))
        return np.where(tiles[:, 0] < -0.5, 0.9, 0.05).astype(np.float32)


def stand_in(model: str, device: str = "auto") -> StandIn:
    """The loader ``rrsis batch`` workers import by name: ``model`` is ``standin:SECONDS``."""
    return StandIn(float(model.split(":", 1)[1]))


def cut_scenes(folder: str, n: int, size: int) -> None:
    """``n`` windows of ``size`` px from the sample scene, in a grid, as GeoTIFFs in ``folder``."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(SOURCE) as src:
        cols, rows = (src.width - size) // (size // 2) + 1, (src.height - size) // (size // 2) + 1
        for k in range(n):
            r, c = divmod(k % (cols * rows), cols)
            window = Window(c * (size // 2), r * (size // 2), size, size)
            profile = {**src.profile, "width": size, "height": size,
                       "transform": rasterio.windows.transform(window, src.transform)}
            with rasterio.open(os.path.join(folder, f"scene{k:03d}.tif"), "w", **profile) as dst:
                dst.write(src.read(window=window))
                dst.colorinterp = src.colorinterp  # band 4 is NIR, not alpha


def run(scenes, job, mode: str) -> tuple[float, float, object]:
    """(cluster start-up s, run s, result) of one mode: ``serial`` or a worker count."""
    from distributed import Client

    from rrsis_geo.batch.run import local_cluster, run_batch

    if mode == "serial":
        t = time.perf_counter()
        result = run_batch(scenes, job, scheduler="none")
        return 0.0, time.perf_counter() - t, result
    t = time.perf_counter()
    cluster, job = local_cluster(job, int(mode))
    client = Client(cluster)
    client.wait_for_workers(int(mode))
    client.run(lambda: __import__("rrsis_geo.batch.tasks"))  # each worker's imports, as the serial run has its own
    start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        result = run_batch(scenes, job, scheduler=client)
        return start, time.perf_counter() - t, result
    finally:
        client.close()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="standin:0.05")
    parser.add_argument("--workers", default="1,2", help="local cluster sizes to run, comma-separated")
    parser.add_argument("--expression", default="the lakes")
    args = parser.parse_args()

    from rrsis_geo.batch.inputs import list_scenes
    from rrsis_geo.batch.tasks import DEFAULT_LOADER, BatchJob
    from rrsis_geo.engine.segment import SegmentOptions

    standin = args.model.startswith("standin:")
    options = SegmentOptions(per_tile=True) if standin else SegmentOptions()
    loader = "bench_batch:stand_in" if standin else DEFAULT_LOADER
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        os.makedirs(os.path.join(tmp, "scenes"))
        cut_scenes(os.path.join(tmp, "scenes"), args.scenes, args.size)
        scenes = list_scenes([os.path.join(tmp, "scenes")], args.expression)
        print(f"{len(scenes)} scenes of {args.size} x {args.size} px (4 bands, 5 m) cut from {os.path.basename(SOURCE)}; "
              f"model {args.model}; {os.cpu_count()} CPU cores")
        print(f"{'mode':>10} {'start s':>8} {'run s':>8} {'scenes/min':>11} {'speed-up':>9} {'overhead/scene s':>17}")
        serial_run = None
        for mode in ["serial", *args.workers.split(",")]:
            job = BatchJob(outdir=os.path.join(tmp, f"out-{mode}"), model=args.model, options=options, loader=loader,
                           device="cpu")
            start, seconds, result = run(scenes, job, mode)
            assert result.failed == 0, [r["error"] for r in result.records if r["error"]]
            rate = 60 * len(scenes) / seconds
            if mode == "serial":
                serial_run = seconds
                print(f"{'serial':>10} {'-':>8} {seconds:8.2f} {rate:11.1f} {1.0:9.2f} {'-':>17}")
            else:
                overhead = (seconds - serial_run / int(mode)) / len(scenes)
                print(f"{mode + ' wkr':>10} {start:8.2f} {seconds:8.2f} {rate:11.1f} {serial_run / seconds:9.2f} "
                      f"{overhead:17.3f}")


if __name__ == "__main__":
    main()
