"""A dataset file as a PyTorch ``Dataset`` (torch is imported only when this module is used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nanofind.datasets.store import DatasetReader


class SegmentationDataset(Dataset):
    """Image, particle-mask and instance-map triples for segmentation training.

    Each item is a dict with ``image`` (1, H, W) float32 normalised exactly as every model trains
    (:func:`nanofind.learn.preprocess.normalise` with ``normalisation``, by default the standard
    one: 3 × 3 median, flattened background, robust scale), ``mask`` (H, W) int64 with 1 on
    particles, ``instance`` (H, W) int64 with the particle id per pixel (0 off particles; the ids
    of the sample's particle records), and ``index``. ``transform`` (optional) is called on that dict.
    """

    def __init__(self, path: str | Path, transform=None, normalisation=None):
        self.reader = DatasetReader(path)
        self.transform = transform
        self.normalisation = normalisation

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, k: int) -> dict:
        from nanofind.learn.preprocess import normalise

        s = self.reader.sample(k)
        image = normalise(s.image) if self.normalisation is None else normalise(s.image, self.normalisation)
        item = {"image": torch.from_numpy(np.ascontiguousarray(image, np.float32))[None],
                "mask": torch.from_numpy(s.mask.astype(np.int64)),
                "instance": torch.from_numpy(s.instance.astype(np.int64)), "index": s.index}
        return self.transform(item) if self.transform else item
