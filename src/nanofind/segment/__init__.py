"""Particle segmentation.

Sliding-window inference, baselines, evaluation, and the batch machinery that ``nanofind segment``
and ``nanofind analyze`` share.
"""
