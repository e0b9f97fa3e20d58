import numpy as np
import pytest

from rrsis_geo.engine.blending import WINDOWS, default_margin, ramp, tile_weights
from rrsis_geo.engine.tiling import axis_plan, grid_shape, plan_tiles
from rrsis_geo.errors import InputError


def coverage(width, height, tiles):
    cov = np.zeros((height, width), dtype=int)
    for t in tiles:
        cov[t.y : t.y_end, t.x : t.x_end] += 1
    return cov


def test_small_area_gets_one_full_size_tile():
    tiles = plan_tiles(100, 37, 64, 8)
    assert len(tiles) == 2  # 100 wide needs two columns, 37 high fits one row
    assert all(t.size == 64 and t.y == 0 for t in tiles)
    assert [t.x for t in tiles] == [0, 36]  # last column flush with the right edge


def test_scene_smaller_than_tile_is_one_tile_at_origin():
    (t,) = plan_tiles(20, 10, 64, 8)
    assert (t.x, t.y, t.size) == (0, 0, 64)
    assert (t.overlap_left, t.overlap_right, t.overlap_top, t.overlap_bottom) == (0, 0, 0, 0)


def test_integer_multiple_has_no_extra_tile():
    plan = axis_plan(512 + 3 * 448, 512, 64)  # exactly 4 tiles at stride 448
    assert plan.starts == (0, 448, 896, 1344)
    assert plan.before == (0, 64, 64, 64) and plan.after == (64, 64, 64, 0)


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 32), (257, 256, 0), (723, 512, 64),
                                                  (37, 16, 5), (4099, 512, 200), (100, 64, 63)])
def test_last_tile_flush_and_overlaps_at_least_requested(length, tile, overlap):
    plan = axis_plan(length, tile, overlap)
    assert plan.starts[0] == 0
    assert plan.starts[-1] + tile == length
    assert all(b >= overlap for b in plan.before[1:])
    assert all(b == a for a, b in zip(plan.after[:-1], plan.before[1:]))
    assert plan.before[0] == 0 and plan.after[-1] == 0
    assert list(plan.starts) == sorted(set(plan.starts))


@pytest.mark.parametrize("w,h", [(100, 37), (37, 100), (513, 1025), (64, 64)])
def test_every_pixel_covered(w, h):
    tiles = plan_tiles(w, h, 64, 16)
    cov = coverage(max(w, 64), max(h, 64), tiles)[:h, :w]
    assert cov.min() >= 1
    assert grid_shape(w, h, 64, 16)[0] * grid_shape(w, h, 64, 16)[1] == len(tiles)


@pytest.mark.parametrize("tile,overlap", [(64, 64), (64, 100), (0, 0), (64, -1)])
def test_bad_tiling_refused(tile, overlap):
    with pytest.raises(InputError):
        plan_tiles(100, 100, tile, overlap)


def test_weights_flat_core_and_no_taper_at_scene_border():
    tiles = plan_tiles(300, 300, 128, 32)
    corner = tiles[0]  # top-left: borders on top and left, overlaps right and bottom
    assert corner.overlap_right >= 32 and corner.overlap_bottom >= 32
    w = tile_weights(corner, default_margin(32))
    core_h, core_w = 128 - corner.overlap_bottom, 128 - corner.overlap_right
    assert np.all(w[:core_h, :core_w] == 1.0)  # the core, including the scene border
    assert w[-1, -1] == 0.0  # inside the overlap margin
    m = default_margin(32)
    # Inside an overlap the weight rises over all but the innermost `m` pixels.
    assert np.all(w[-(corner.overlap_bottom - m):, 0] < 1.0)
    assert np.all(w[0, -(corner.overlap_right - m):] < 1.0)


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("w,h,tile,overlap", [(300, 200, 64, 16), (1000, 130, 128, 60),
                                              (130, 130, 64, 48), (97, 97, 32, 2)])
def test_every_pixel_has_positive_total_weight(window, w, h, tile, overlap):
    tiles = plan_tiles(w, h, tile, overlap)
    total = np.zeros((h, w))
    m = default_margin(overlap)
    for t in tiles:
        total[t.y : t.y_end, t.x : t.x_end] += tile_weights(t, m, window)[: h - t.y, : w - t.x]
    assert total.min() > 0


def test_ramp_margin_is_zero_then_rises_to_one():
    r = ramp(32, 8, "linear")
    assert np.all(r[:8] == 0) and np.all(np.diff(r[8:24]) > 0) and np.all(r[24:] == 1)


def test_info_and_segment_share_the_default_overlap(tmp_path):
    # `rrsis info` must show the plan `rrsis segment` will run when no overlap is given.
    from click.testing import CliRunner

    from cli.main import cli
    from rrsis_geo.engine.tiling import default_overlap
    from tests.rasters import smooth_field, write_raster

    scene = write_raster(tmp_path / "s.tif", smooth_field(300, 500))
    r = CliRunner().invoke(cli, ["info", scene, "--tile", "128", "--json", "--model", "btdnet-tiny"])
    assert r.exit_code == 0, r.output
    import json

    assert json.loads(r.output)["tile_plan"]["overlap"] == default_overlap(128) == 16
