"""Segmentation networks, training, inference and model files."""
