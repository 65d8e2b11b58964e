"""Training datasets: chunked HDF5 files of simulated or labelled images with ground truth."""

from nanofind.datasets.export import describe_dataset, export_dataset
from nanofind.datasets.sample import Sample
from nanofind.datasets.store import DatasetReader, consolidate, parts_dir

__all__ = ["DatasetReader", "RunReport", "Sample", "consolidate", "describe_dataset", "export_dataset",
           "generate_dataset", "parts_dir"]


def __getattr__(name: str):
    # generation pulls in the whole simulation stack; reading a dataset should not pay for it
    if name in ("RunReport", "generate_dataset"):
        from nanofind.datasets import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'nanofind.datasets' has no attribute {name!r}")
