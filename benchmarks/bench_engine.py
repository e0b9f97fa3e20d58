"""Scene-engine benchmarks: memory versus scene height, overhead versus a bare read, and
vectorising many objects versus the five-line floor.

    python benchmarks/bench_engine.py [--width 2048] [--base-height 2048] [--factors 1,4,16]
    python benchmarks/bench_engine.py --many-objects [--sizes 4096,8192] [--tall 4]

1. Peak RSS: each scene height runs in its own process with a cheap stand-in model (the
   engine's cost, not a network's); the largest scene's peak is compared with the smallest's.
   Goal: within 1.1x for >= 16x the pixels. The smallest scene has 4 tile rows, so its reader
   queues fill as in any longer run: the comparison measures growth with height, not start-up.
2. Overhead: megapixels/s of the whole pipeline (read, normalise, blend, write, vectorise) with a
   zero-cost model, against a plain windowed read of the same file, in the same run.
   Goal: the engine costs at most 3x a bare read.
3. Many objects (``--many-objects``, instead of 1 and 2): a 3-band uint8 scene at 1 m, tiled
   512, whose band 1 is smoothed noise, and the trivial model p = sigmoid((band1 - 128) / 16):
   about 220 k ragged 4-connected objects per 4096^2 (most under 10 px, some of thousands of
   pixels crossing strip seams). The engine end to end (tile 512, overlap 128, minimum area
   10 m^2, GeoPackage) against, in the same run, the floor a user could write in five lines
   (read the thresholded mask whole, ``rasterio.features.shapes``, area filter, GeoPackage).
   Each runs in its own process; printed: seconds, peak RSS, features, the vectorising share of
   the engine's run and the floor / engine time ratio. ``--tall K`` adds engine-only runs on a
   scene as wide as the first size and K times as tall, at the minimum area and at
   ``--tall-min-area`` (20 000 m^2: a handful of features), and compares the latter's peak with
   the first scene's at that area: the engine's working memory against scene height. The
   features themselves are held until they are written (some 5 kB each for these ragged
   outlines, ~230 k of them at 64 Mpx), so at 10 m^2 the peak also follows the size of the
   output, as the floor's does.
   Goal: the engine no slower than the floor, its peak memory flat in scene height.

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


# ------------------------------------------------------------------------ many objects
RAGGED_SIGMA = 0.7  # smoothing of the noise, pixels: ~13 objects per 1000 pixels


def make_ragged_scene(path: str, width: int, height: int, seed: int = 0) -> None:
    """Band 1 = 128 + 40 * (white noise smoothed by a Gaussian of RAGGED_SIGMA px, unit variance),
    written in strips (the noise of each 512-row block comes from its own seed, blocks above and
    below supply the filter's halo). Band 1 never equals 128, so blending cannot move a pixel
    across p = 0.5; bands 2 and 3 repeat band 1."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from scipy import ndimage

    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500000, 6000000, 1.0, 1.0),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    delta = np.zeros((15, 15))
    delta[7, 7] = 1.0
    unit = float(np.sqrt((ndimage.gaussian_filter(delta, RAGGED_SIGMA) ** 2).sum()))
    halo = int(4 * RAGGED_SIGMA + 0.5)
    blocks: dict[int, np.ndarray] = {}

    def block(b: int) -> np.ndarray:
        if b not in blocks:
            h = min(512, height - 512 * b)
            rng = np.random.default_rng([seed, b])
            blocks[b] = rng.standard_normal((h, width), dtype=np.float32)
        return blocks[b]

    n_blocks = -(-height // 512)
    with rasterio.open(path, "w", **profile) as dst:
        for b in range(n_blocks):
            parts = [block(i)[-halo:] if i < b else block(i)[:halo] if i > b else block(i)
                     for i in (b - 1, b, b + 1) if 0 <= i < n_blocks]
            top = halo if b > 0 else 0
            noise = np.concatenate(parts)
            z = ndimage.gaussian_filter(noise, RAGGED_SIGMA)[top : top + len(block(b))] / unit
            band = np.clip(np.rint(128.0 + 40.0 * z), 0, 255).astype(np.uint8)
            band[band == 128] = 127
            dst.write(np.stack([band] * 3), window=Window(0, 512 * b, width, len(band)))
            blocks.pop(b - 1, None)


class RaggedModel(ZeroModel):
    """p = sigmoid((band1 - 128) / 16) on raw 8-bit values (tiles arrive as value / 255)."""

    def __init__(self, size):
        from rrsis_geo.predictor import ModelInfo

        self.info = ModelInfo(model_id="ragged", checksum="none", input_size=size,
                              mean=(0.0,) * 3, std=(1.0,) * 3)

    def predict(self, tiles, enc):
        raw = np.rint(tiles[:, 0] * 255.0)
        return (1.0 / (1.0 + np.exp(-(raw - 128.0) / 16.0))).astype(np.float32)


def child_many(kind: str, scene: str, out_dir: str, min_area: float) -> None:
    """One run of the engine or the floor, in this (fresh) process; prints a JSON line."""
    out = os.path.join(out_dir, f"{kind}.gpkg")
    if os.path.exists(out):
        os.remove(out)
    result = {"kind": kind}
    t = time.perf_counter()
    if kind == "floor":  # the five lines a user could write
        import geopandas as gpd
        import rasterio
        import rasterio.features
        from shapely.geometry import shape

        with rasterio.open(scene) as src:
            mask, transform, crs = src.read(1) > 128, src.transform, src.crs  # p > 0.5
        shapes = rasterio.features.shapes(mask.view(np.uint8), mask=mask, transform=transform)
        frame = gpd.GeoDataFrame(geometry=[shape(g) for g, _ in shapes], crs=crs)
        frame = frame[frame.area >= min_area]
        frame.to_file(out, driver="GPKG", engine="pyogrio")
        result["features"] = len(frame)
    else:
        from rrsis_geo.engine.segment import SegmentOptions, segment_scene

        stamps: dict[str, float] = {}

        def progress(event):
            stage = event.get("stage")
            if stage and stage not in stamps:
                stamps[stage] = time.perf_counter()

        opts = dict(overwrite=True, tile=512, overlap=128, min_area_m2=min_area, batch_size=4)
        if "per_tile" in SegmentOptions.__dataclass_fields__:
            opts["per_tile"] = True  # every object the model finds; no scene-level referent choice
        r = segment_scene(scene, "ragged objects", out, RaggedModel(512), SegmentOptions(**opts),
                          progress=progress)
        result["features"] = r.features
        result["vectorise_seconds"] = stamps.get("write", time.perf_counter()) - stamps["vectorize"]
    result["seconds"] = time.perf_counter() - t
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child-many", *args],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def many_objects(sizes: list[int], tall: int, min_area: float, tall_min_area: float) -> None:
    print(f"# many objects: band-1 noise smoothed by {RAGGED_SIGMA} px, "
          "p = sigmoid((band1 - 128) / 16), tile 512 / overlap 128, GeoPackage; one process per run")
    print(f"{'scene':>12} {'run':>6} {'min m2':>6} {'seconds':>8} {'peak MB':>8} {'features':>9} "
          f"{'vectorise':>10}")

    def engine(scene, label, area):
        r = run_child("engine", scene, tmp, str(area))
        share = r["vectorise_seconds"] / r["seconds"]
        print(f"{label:>12} {'engine':>6} {area:>6g} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} "
              f"{r['features']:>9} {r['vectorise_seconds']:>6.2f} s {100 * share:>2.0f}%", flush=True)
        return r

    with tempfile.TemporaryDirectory() as tmp:
        flat = []
        for i, n in enumerate(sizes):
            scene = os.path.join(tmp, f"ragged_{n}.tif")
            make_ragged_scene(scene, n, n)
            label = f"{n}x{n}"
            eng = engine(scene, label, min_area)
            flo = run_child("floor", scene, tmp, str(min_area))
            print(f"{label:>12} {'floor':>6} {min_area:>6g} {flo['seconds']:>8.2f} "
                  f"{flo['peak_mb']:>8.0f} {flo['features']:>9}", flush=True)
            print(f"{label:>12} floor / engine time: {flo['seconds'] / eng['seconds']:.2f} "
                  "(goal >= 1), peak memory engine / floor: "
                  f"{eng['peak_mb'] / flo['peak_mb']:.2f}"
                  + ("" if flo["features"] == eng["features"] else
                     f"  WARNING: {eng['features']} vs {flo['features']} features"), flush=True)
            if i == 0 and tall > 1:
                flat.append(engine(scene, label, tall_min_area))
            os.remove(scene)
        if tall > 1:
            n = sizes[0]
            scene = os.path.join(tmp, f"ragged_{n}x{n * tall}.tif")
            make_ragged_scene(scene, n, n * tall)
            label = f"{n}x{n * tall}"
            engine(scene, label, min_area)
            flat.append(engine(scene, label, tall_min_area))
            print(f"engine peak RSS {label} / {n}x{n} ({tall}x the height), min area "
                  f"{tall_min_area:g} m2 (few features held for the write): "
                  f"{flat[1]['peak_mb'] / flat[0]['peak_mb']:.3f} (goal <= 1.1)")


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
    ap.add_argument("--many-objects", action="store_true",
                    help="run only case 3: many ragged objects, engine versus the five-line floor")
    ap.add_argument("--sizes", default="4096,8192", help="--many-objects: square scene sides")
    ap.add_argument("--tall", type=int, default=4,
                    help="--many-objects: also run the engine on a scene as wide as the first size "
                         "and this many times as tall (0: skip)")
    ap.add_argument("--min-area", type=float, default=10.0, help="--many-objects: m^2")
    ap.add_argument("--tall-min-area", type=float, default=20000.0,
                    help="--many-objects: m^2 for the memory-versus-height pair, so that the "
                         "features held until the write stay few")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-many", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_memory(*args.child)
        return
    if args.child_many:
        kind, scene, out_dir, min_area = args.child_many
        child_many(kind, scene, out_dir, float(min_area))
        return
    if args.many_objects:
        many_objects([int(v) for v in args.sizes.split(",")], args.tall, args.min_area,
                     args.tall_min_area)
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
