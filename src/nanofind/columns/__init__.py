"""Atomic columns: sub-pixel peaks, column heights and tracks through time series."""
