"""Atomic columns: sub-pixel peaks, column heights and tracks through time series."""

from pathlib import Path

#: The bundled example: one CeO2 particle along [110], full multislice HRTEM, with its true columns
#: (``ceo2_110_truth.csv``; made by scripts/make-columns-example.py).
EXAMPLES_DIR = Path(__file__).parent / "examples"
