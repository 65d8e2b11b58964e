"""Particle analysis of micrographs: segmentation, measurements, tables and reports."""
