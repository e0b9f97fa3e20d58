"""The evaluation picture (``rrsis eval --out``'s grid.png)."""

import numpy as np
import torch
from PIL import Image

from rrsis_geo.training.logs import prediction_grid


def test_grid_shows_the_first_three_bands_of_a_four_band_model(tmp_path):
    """Red, green, blue, NIR input: the picture un-normalises and shows red, green, blue."""
    mean, std = (0.4, 0.5, 0.6, 0.3), (0.2, 0.2, 0.2, 0.25)
    red = torch.tensor([(1.0 - m) / s if i == 0 else (0.0 - m) / s for i, (m, s) in enumerate(zip(mean, std))])
    image = red[:, None, None].expand(4, 32, 32).clone()
    mask = torch.zeros(32, 32, dtype=torch.bool)
    ex = {"image": image, "gt": mask, "pred": mask, "expression": "the lake", "sample_id": "a"}
    path = prediction_grid([ex], tmp_path / "grid.png", mean, std)
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    pure_red = (rgb[:, 0] > 200) & (rgb[:, 1] < 40) & (rgb[:, 2] < 40)
    assert pure_red.sum() > 500  # the image area is drawn red: band 1 at full scale, 2 and 3 at zero
