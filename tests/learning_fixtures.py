"""Fixtures shared by the learning and segmentation tests (imported by their conftest files)."""

import numpy as np
import pytest
import torch
from PIL import Image


def disc_field(shape=(96, 96), centres=((30, 40),), radius=12, seed=0):
    """Bright-field-like field: grey noisy background with darker discs (particles); returns image, mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    image = 150.0 - 60.0 * mask + rng.normal(0, 8, shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


@pytest.fixture
def labelled_folder(tmp_path):
    """Six labelled 96² micrographs in the img_<id>.png / mask_<id>.png layout."""
    folder = tmp_path / "labelled"
    folder.mkdir()
    for k in range(6):
        rng = np.random.default_rng(k)
        centres = [tuple(rng.integers(16, 80, 2)) for _ in range(int(rng.integers(1, 3)))]
        image, mask = disc_field(centres=centres, radius=int(rng.integers(8, 14)), seed=k)
        Image.fromarray(image).save(folder / f"img_{k:03d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"mask_{k:03d}.png")
    return folder


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
