"""Measurements do not depend on how the micrograph is turned: a 90° rotation of the pixel grid is exact."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.draw import ellipse, polygon

from nanofind.analyze.measure import measure_particles

CELL_PX = 48  # each shape is drawn in its own cell, so that no two touch


@st.composite
def label_images(draw):
    """A few discs, ellipses and polygons (concave ones too) on a grid of cells, some cut by the image edge."""
    rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    labels = np.zeros((rows * CELL_PX, cols * CELL_PX + draw(st.integers(0, 7))), np.int32)
    cells = draw(st.lists(st.tuples(st.integers(0, rows - 1), st.integers(0, cols - 1)), min_size=1, max_size=6,
                          unique=True))
    for k, (r, c) in enumerate(cells, start=1):
        cy, cx = (r + 0.5) * CELL_PX, (c + 0.5) * CELL_PX
        kind = draw(st.sampled_from(["disc", "ellipse", "polygon"]))
        if kind == "polygon":
            n = draw(st.integers(3, 8))
            angles = np.sort(np.array(draw(st.lists(st.floats(0, 2 * np.pi), min_size=n, max_size=n))))
            radii = np.array(draw(st.lists(st.floats(6, 22), min_size=n, max_size=n)))
            rr, cc = polygon(cy + radii * np.sin(angles), cx + radii * np.cos(angles), labels.shape)
        else:
            a = draw(st.floats(5, 22))
            b = a if kind == "disc" else draw(st.floats(4, 22))
            # some shapes run over their cell's outer side: the ones in the first row or column leave the image
            shift = draw(st.floats(-8, 0))
            rr, cc = ellipse(cy + shift, cx + shift, a, b, labels.shape, rotation=draw(st.floats(-np.pi, np.pi)))
        labels[rr, cc] = k
    return labels


def _turned_centroids(x, y, shape, k):
    """Centroids (x right, y down, pixel centres at +0.5) after ``np.rot90(image, k)`` of an image of ``shape``."""
    for _ in range(k % 4):
        height, width = shape
        x, y = y, width - x  # one quarter turn counter-clockwise: column c goes to row width - 1 - c
        shape = (width, height)
    return x, y


def _angle_difference_deg(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 90.0) % 180.0 - 90.0)


@settings(max_examples=25, deadline=None)
@given(labels=label_images(), k=st.integers(1, 3))
def test_measurements_turn_with_the_image(labels, k):
    if labels.max() == 0:
        return
    before = measure_particles(labels, pixel_size_A=0.8)
    after = measure_particles(np.rot90(labels, k), pixel_size_A=0.8)
    assert after["particle_id"].tolist() == before["particle_id"].tolist()
    np.testing.assert_array_equal(after["area_px"], before["area_px"])
    for column, tolerance in [("equivalent_diameter_nm", 1e-4), ("equivalent_diameter_px", 1e-3),
                              ("major_axis_px", 2e-3), ("minor_axis_px", 2e-3), ("circularity", 2e-4),
                              ("solidity", 2e-4)]:
        np.testing.assert_allclose(after[column], before[column], atol=tolerance, err_msg=column)
    np.testing.assert_array_equal(after["touches_edge"], before["touches_edge"])
    np.testing.assert_array_equal(after["agglomerate"], before["agglomerate"])

    x, y = _turned_centroids(before["centroid_x_px"], before["centroid_y_px"], labels.shape, k)
    np.testing.assert_allclose(after["centroid_x_px"], x, atol=0.011)
    np.testing.assert_allclose(after["centroid_y_px"], y, atol=0.011)
    # the major axis turns with the image (counter-clockwise as displayed), where there is one
    elongated = before["aspect_ratio"] > 1.1
    turned = before["orientation_deg"][elongated] + 90.0 * k
    assert (_angle_difference_deg(after["orientation_deg"][elongated], turned) < 0.02).all()
