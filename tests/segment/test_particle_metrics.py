import numpy as np
import pytest

from nanofind.segment.particle_metrics import (
    match_particles,
    particle_conditions,
    particle_counts,
    particle_scores,
    recall_by,
)


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_matching_follows_the_iou_of_the_pixels():
    shape = (80, 160)
    true = np.zeros(shape, int)
    true[_disc(shape, (40, 40), 15)] = 1
    true[_disc(shape, (40, 120), 15)] = 2
    pred = np.zeros(shape, int)
    pred[_disc(shape, (40, 43), 15)] = 5  # shifted 3 px: IoU well above 0.5
    pred[_disc(shape, (40, 138), 15)] = 7  # shifted 18 px: IoU below 0.5
    pairs = match_particles(pred, true)
    a, b = true == 1, pred == 5
    expected = (a & b).sum() / (a | b).sum()
    assert [(t, p) for t, p, _ in pairs] == [(1, 5)]
    assert pairs[0][2] == pytest.approx(expected)
    far = ((true == 2) & (pred == 7)).sum() / ((true == 2) | (pred == 7)).sum()
    assert far < 0.5
    with pytest.raises(ValueError):
        match_particles(pred, true, min_iou=0.3)


def test_counts_leave_out_slivers_and_pool_into_precision_recall_f1():
    shape = (100, 100)
    true = np.zeros(shape, int)
    true[_disc(shape, (25, 25), 12)] = 1  # found
    true[_disc(shape, (75, 75), 12)] = 2  # missed
    true[0:3, 90:100] = 3  # a 30 px sliver at the edge: not counted
    pred = np.zeros(shape, int)
    pred[_disc(shape, (25, 26), 12)] = 1
    pred[_disc(shape, (75, 25), 10)] = 2  # a false alarm
    pred[0:3, 90:100] = 3  # finds the sliver: neither a hit nor a false alarm
    counts = particle_counts(pred, true)
    assert (counts["matched"], counts["true"], counts["predicted"]) == (1, 2, 2)
    assert counts["found"] == {1: True, 2: False}
    empty = particle_counts(np.zeros(shape, int), np.zeros(shape, int))
    pooled = particle_scores([counts, empty])
    assert pooled["precision"] == 0.5 and pooled["recall"] == 0.5 and pooled["f1"] == 0.5
    assert pooled["count_error_per_field"] == 0.0


def test_breakdown_classes_and_recall():
    params = {"dose_e_per_A2": 300.0, "optics": {"Cs_A": 1.2e7}}  # 1.2 mm
    on = particle_conditions(params, {"on_zone_axis": True, "equivalent_diameter_nm": 4.0})
    assert on == {"dose": "200–500 e/Å²", "Cs": "≥ 1 mm", "zone_axis": "on zone axis", "size": "3–6 nm"}
    off = particle_conditions(params, {"on_zone_axis": False, "equivalent_diameter_nm": 12.0})
    unknown = particle_conditions(None, None)
    assert set(unknown.values()) == {"unknown"}
    table = recall_by([(on, True), (off, False), (off, True)])
    assert table["zone_axis"]["off zone axis"] == {"true": 2, "found": 1, "recall": 0.5}
    assert table["dose"]["200–500 e/Å²"]["recall"] == pytest.approx(2 / 3, abs=1e-4)
