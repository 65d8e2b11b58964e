"""Training datasets: chunked HDF5 files of simulated images with ground truth."""

from nanofind.datasets.export import describe_dataset, export_dataset
from nanofind.datasets.generate import RunReport, generate_dataset
from nanofind.datasets.store import DatasetReader, consolidate, parts_dir

__all__ = ["DatasetReader", "RunReport", "consolidate", "describe_dataset", "export_dataset", "generate_dataset",
           "parts_dir"]
