import json

from click.testing import CliRunner

from cli.main import cli
from rrsis_geo.data.check import check_dataset


def test_check_report_rrsisd(rrsisd_root):
    root, truth = rrsisd_root
    r = check_dataset("rrsisd", root)
    assert r["splits"]["train"]["samples"] == 3 and r["splits"]["train"]["images"] == 2
    assert r["splits"]["train"]["categories"] == {"airplane": 1, "storage tank": 2}
    assert r["problem_counts"] == {"extra_file": 1, "missing_image": 1, "ref_without_mask": 1}
    by_id = {s["sample_id"]: s for s in r["samples"]}
    for sid, (raw, cat, mask, split) in truth.items():
        s = by_id[sid]
        assert s["foreground_pixels"] == int(mask.sum()) and s["expression"] == raw and s["split"] == split
        ys, xs = mask.nonzero()
        assert s["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_check_finds_corrupt_and_empty(refsegrs_root):
    root, _ = refsegrs_root
    (root / "images" / "1000.tif").write_bytes(b"garbage")
    import numpy as np
    import rasterio

    with rasterio.open(root / "masks" / "1003.tif", "r+") as dst:
        dst.write(np.zeros((1, 16, 16), np.uint8))
    r = check_dataset("refsegrs", root)
    counts = r["problem_counts"]
    assert counts["unreadable_image"] == 1  # counted once per image, though two phrases use it
    assert counts["empty_mask"] == 1 and counts["missing_image"] == 1 and counts["ref_without_mask"] == 1


def test_cli_json_and_text(custom_root):
    root, _ = custom_root
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "check", "--format", "custom", str(root), "--json", "--expression-column", "text", "--chip-size", "16"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert sum(s["samples"] for s in report["splits"].values()) == 4
    assert {"sample_id", "split", "expression", "category", "foreground_pixels", "bbox"} <= set(report["samples"][0])
    res = runner.invoke(cli, ["data", "check", "--format", "custom", str(root), "--expression-column", "text", "--chip-size", "16", "--strict"])
    assert res.exit_code == 2 and "outside_rasters" in res.output


def test_cli_bad_root_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["data", "check", "--format", "rrsisd", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "does not exist" in res.output
