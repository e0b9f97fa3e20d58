import pandas as pd
import pytest

from scripts.demo_data.compare import grouped


def test_samples_land_in_the_baselines_groups():
    rows = pd.DataFrame({"needs_language": [True, False, True], "kind": ["position", "category", "size"]})
    per_sample = [
        {"sample_id": "row0", "intersection": "5", "union": "10"},   # position: IoU 0.5
        {"sample_id": "row1", "intersection": "9", "union": "10"},   # category: IoU 0.9
        {"sample_id": "row2", "intersection": "0", "union": "0"},    # size: empty union scores 0
    ]
    g = grouped(per_sample, rows)
    assert g["needs_language"]["n"] == 2 and g["category_only"]["n"] == 1
    assert g["kind=position"]["mIoU"] == 0.5 and g["kind=position"]["Pr@0.5"] == 1.0
    assert g["kind=size"]["mIoU"] == 0.0 and g["kind=relation"]["n"] == 0
    assert g["all"]["oIoU"] == pytest.approx(14 / 20)
    assert g["needs_language"]["oIoU"] == pytest.approx(5 / 10)
