"""A dataset file as a PyTorch ``Dataset`` (torch is imported only when this module is used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nanofind.datasets.store import DatasetReader


class SegmentationDataset(Dataset):
    """Image and particle-mask pairs for segmentation training.

    Each item is a dict with ``image`` (1, H, W) float32 normalised to zero mean and unit
    standard deviation after a 3 × 3 median filter (removes X-ray spikes, as the seeds do),
    ``mask`` (H, W) int64 with 1 on particles, and ``index``. ``transform`` (optional) is called
    on that dict.
    """

    def __init__(self, path: str | Path, transform=None, median_filter: bool = True):
        self.reader = DatasetReader(path)
        self.transform = transform
        self.median_filter = median_filter

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, k: int) -> dict:
        from nanofind.learn.preprocess import median3x3

        s = self.reader.sample(k)
        image = median3x3(s.image) if self.median_filter else s.image
        image = (image - image.mean()) / max(float(image.std()), 1e-6)
        item = {"image": torch.from_numpy(np.ascontiguousarray(image, np.float32))[None],
                "mask": torch.from_numpy(s.mask.astype(np.int64)), "index": s.index}
        return self.transform(item) if self.transform else item
