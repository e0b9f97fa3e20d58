"""Scene-engine benchmarks: memory versus scene height, and overhead versus a bare read.

    python benchmarks/bench_engine.py [--width 2048] [--base-height 2048] [--factors 1,4,16]

1. Peak RSS: each scene height runs in its own process with a cheap stand-in model (the
   engine's cost, not a network's); the largest scene's peak is compared with the smallest's.
   Goal: within 1.1x for >= 16x the pixels. The smallest scene has 4 tile rows, so its reader
   queues fill as in any longer run: the comparison measures growth with height, not start-up.
2. Overhead: megapixels/s of the whole pipeline (read, normalise, blend, write, vectorise) with a
   zero-cost model, against a plain windowed read of the same file, in the same run.
   Goal: the engine costs at most 3x a bare read.

The stand-in models below replace the network so that only the engine is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_scene(path: str, width: int, height: int) -> None:
    """A tiled uint8 RGB GeoTIFF written in strips (never whole in memory) with scattered blobs."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500000, 6000000, 1.0, 1.0),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for y0 in range(0, height, 512):
            h = min(512, height - y0)
            yy, xx = np.mgrid[y0 : y0 + h, 0:width]
            blobs = (np.sin(xx / 37.0) * np.sin(yy / 41.0) > 0.9).astype(np.uint8)
            base = rng.integers(40, 80, (3, h, width), dtype=np.uint8)
            base[0] += 150 * blobs
            dst.write(base, window=Window(0, y0, width, h))


def child_memory(scene: str, out_dir: str) -> None:
    from rrsis_geo.engine.segment import SegmentOptions, segment_scene

    model = BlobModel(512)
    t = time.perf_counter()
    r = segment_scene(scene, "blobs", os.path.join(out_dir, "out.gpkg"), model,
                      SegmentOptions(overwrite=True, batch_size=4))
    dt = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "features": r.features, "seconds": dt}))


class ZeroModel:
    """Zero-cost stand-in: probability 0 everywhere (measures the engine alone)."""

    def __init__(self, size):
        from rrsis_geo.predictor import ModelInfo

        self.info = ModelInfo(model_id="zero", checksum="none", input_size=size)

    def encode_expression(self, e):
        return e

    def predict(self, tiles, enc):
        return np.zeros((tiles.shape[0], tiles.shape[2], tiles.shape[3]), dtype=np.float32)


class BlobModel(ZeroModel):
    """Cheap stand-in that fires on the bright blobs of the synthetic scene (keeps no state)."""

    def predict(self, tiles, enc):
        return (tiles[:, 0] > 1.0).astype(np.float32)


def bare_read_seconds(scene: str) -> float:
    import rasterio

    t = time.perf_counter()
    with rasterio.open(scene) as src:
        for _, window in src.block_windows(1):
            src.read(window=window)
    return time.perf_counter() - t


def engine_seconds(scene: str, out_dir: str, tile: int) -> float:
    from rrsis_geo.engine.segment import SegmentOptions, segment_scene

    t = time.perf_counter()
    segment_scene(scene, "nothing", os.path.join(out_dir, "zero.gpkg"), ZeroModel(tile),
                  SegmentOptions(overwrite=True, batch_size=8))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--base-height", type=int, default=2048)
    ap.add_argument("--factors", default="1,4,16")
    ap.add_argument("--overhead-size", type=int, default=4096)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_memory(*args.child)
        return
    factors = [int(f) for f in args.factors.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"# peak RSS vs scene height (width {args.width}, tile 512, stand-in model)")
        print(f"{'height':>8} {'megapixels':>10} {'peak MB':>9} {'features':>9} {'seconds':>8}")
        peaks = []
        for f in factors:
            h = args.base_height * f
            scene = os.path.join(tmp, f"scene_{h}.tif")
            make_scene(scene, args.width, h)
            proc = subprocess.run([sys.executable, __file__, "--child", scene, tmp],
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            peaks.append(r["peak_mb"])
            print(f"{h:>8} {args.width * h / 1e6:>10.1f} {r['peak_mb']:>9.1f} {r['features']:>9} {r['seconds']:>8.2f}")
            os.remove(scene)
        print(f"peak ratio largest/smallest ({factors[-1]}x pixels): {peaks[-1] / peaks[0]:.3f} (goal <= 1.1)")

        n = args.overhead_size
        scene = os.path.join(tmp, "overhead.tif")
        make_scene(scene, n, n)
        bare_read_seconds(scene)  # warm the page cache
        bare = min(bare_read_seconds(scene) for _ in range(3))
        eng = min(engine_seconds(scene, tmp, 512) for _ in range(2))
        mp = n * n / 1e6
        print(f"\n# overhead on {n} x {n} uint8 RGB ({mp:.1f} MP), zero-cost model")
        print(f"bare windowed read: {mp / bare:8.1f} MP/s")
        print(f"whole engine:       {mp / eng:8.1f} MP/s")
        print(f"engine / bare-read time ratio: {eng / bare:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()
