"""Particle-level scores: predicted and true particles matched one to one, and where the misses are.

Pixel Dice hides whole missed particles when the others are large; a user counting and sizing
particles needs to know how many were found. A predicted particle matches a true one when their
intersection over union exceeds ``min_iou`` (0.5 by default); above 0.5 a particle can overlap more
than half of only one other, so the matching is one to one without any assignment step.

- precision = matched / predicted, recall = matched / true, F1 their harmonic mean;
- true particles smaller than ``min_area_px`` (slivers at the image edge) are not counted, and
  predicted particles that overlap only such slivers or nothing count as false positives only when
  at least that large too.

:func:`recall_by` breaks the true particles down by what they are and how they were imaged
(dose in e/Å², spherical aberration Cs in mm, on or off a zone axis, equivalent diameter in nm), so
that the weak corners of a model show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

#: Smallest true or predicted particle that counts, px (the issue's test sets count components ≥ 100 px).
MIN_AREA_PX = 100
#: Bin edges of the breakdowns: dose e/Å², |Cs| mm, equivalent diameter nm.
DOSE_BINS_E_PER_A2 = (0.0, 200.0, 500.0, 2000.0, np.inf)
CS_BINS_MM = (0.0, 0.1, 1.0, np.inf)
SIZE_BINS_NM = (0.0, 3.0, 6.0, 10.0, np.inf)


def match_particles(predicted: np.ndarray, true: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Pairs ``(true id, predicted id, IoU)`` of label images whose particles overlap with IoU > ``min_iou``.

    ``predicted`` and ``true`` are integer label images of one shape (0 = background). With
    ``min_iou`` ≥ 0.5 every particle is in at most one pair.
    """
    predicted, true = np.asarray(predicted), np.asarray(true)
    if predicted.shape != true.shape:
        raise ValueError(f"label images differ in shape: {predicted.shape} and {true.shape}")
    if min_iou < 0.5:
        raise ValueError(f"min_iou must be >= 0.5 for a one-to-one matching, got {min_iou}")
    n_pred, n_true = int(predicted.max(initial=0)) + 1, int(true.max(initial=0)) + 1
    area_pred = np.bincount(predicted.ravel(), minlength=n_pred)
    area_true = np.bincount(true.ravel(), minlength=n_true)
    both = (predicted > 0) & (true > 0)
    # each overlapping (true, predicted) pair once, with its intersection in pixels
    keys = true[both].astype(np.int64) * n_pred + predicted[both]
    pairs, inter = np.unique(keys, return_counts=True)
    t, p = pairs // n_pred, pairs % n_pred
    iou = inter / (area_true[t] + area_pred[p] - inter)
    keep = iou > min_iou
    return [(int(a), int(b), float(c)) for a, b, c in zip(t[keep], p[keep], iou[keep], strict=True)]


def _areas(labels: np.ndarray) -> dict[int, int]:
    counts = np.bincount(np.asarray(labels).ravel())
    return {i: int(c) for i, c in enumerate(counts) if i > 0 and c > 0}


def particle_counts(predicted: np.ndarray, true: np.ndarray, min_iou: float = 0.5,
                    min_area_px: int = MIN_AREA_PX) -> dict:
    """Matched, predicted and true particle counts of one image, and which true particles were found.

    Returns ``{"matched", "predicted", "true", "found": {true id: bool}}``, counting particles of at
    least ``min_area_px`` pixels (a predicted particle matched to a counted true one always counts).
    """
    pairs = match_particles(predicted, true, min_iou)
    true_area, pred_area = _areas(true), _areas(predicted)
    counted_true = {i for i, a in true_area.items() if a >= min_area_px}
    matched = {t: p for t, p, _ in pairs if t in counted_true}
    matched_pred = set(matched.values())
    counted_pred = {i for i, a in pred_area.items() if a >= min_area_px} | matched_pred
    # a prediction that matches a sliver of the truth is neither a hit nor a false alarm
    sliver_hits = {p for t, p, _ in pairs if t not in counted_true}
    counted_pred -= sliver_hits - matched_pred
    return {"matched": len(matched), "predicted": len(counted_pred), "true": len(counted_true),
            "found": {t: t in matched for t in sorted(counted_true)}}


def particle_scores(counts: Iterable[Mapping[str, int]]) -> dict:
    """Pooled particle precision, recall and F1 of several images' :func:`particle_counts`.

    Also ``count_error_per_field``: the mean absolute difference of predicted and true counts.
    An empty denominator scores 1 (nothing to find, nothing found).
    """
    counts = list(counts)
    matched = sum(c["matched"] for c in counts)
    predicted = sum(c["predicted"] for c in counts)
    true = sum(c["true"] for c in counts)
    precision = matched / predicted if predicted else 1.0
    recall = matched / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    error = float(np.mean([abs(c["predicted"] - c["true"]) for c in counts])) if counts else 0.0
    return {"true": true, "predicted": predicted, "matched": matched, "precision": round(precision, 5),
            "recall": round(recall, 5), "f1": round(f1, 5), "count_error_per_field": round(error, 4)}


def _bin_name(value: float | None, edges: Sequence[float], unit: str) -> str:
    if value is None or not np.isfinite(value):
        return "unknown"
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if lo <= value < hi:
            return f"≥ {lo:g} {unit}" if not np.isfinite(hi) else f"{lo:g}–{hi:g} {unit}"
    return "unknown"


def particle_conditions(params: Mapping | None, record: Mapping | None) -> dict[str, str]:
    """The breakdown classes of one true particle: dose, |Cs|, zone axis and size (strings, "unknown" if not known).

    ``params`` is the sample's parameter record (``dose_e_per_A2``, ``optics.Cs_A``), ``record`` the
    particle's ground-truth record (``on_zone_axis``, ``equivalent_diameter_nm``).
    """
    params, record = params or {}, record or {}
    cs_A = (params.get("optics") or {}).get("Cs_A")
    on_zone = record.get("on_zone_axis")
    return {
        "dose": _bin_name(params.get("dose_e_per_A2"), DOSE_BINS_E_PER_A2, "e/Å²"),
        "Cs": _bin_name(None if cs_A is None else abs(cs_A) * 1e-7, CS_BINS_MM, "mm"),
        "zone_axis": "unknown" if on_zone is None else ("on zone axis" if on_zone else "off zone axis"),
        "size": _bin_name(record.get("equivalent_diameter_nm"), SIZE_BINS_NM, "nm"),
    }


def recall_by(found: Iterable[tuple[Mapping[str, str], bool]]) -> dict[str, dict[str, dict]]:
    """Recall of true particles per breakdown class: ``{breakdown: {class: {"true", "found", "recall"}}}``.

    ``found`` holds, per true particle, its :func:`particle_conditions` and whether it was matched.
    """
    table: dict[str, dict[str, list[int]]] = {}
    for conditions, hit in found:
        for breakdown, name in conditions.items():
            cell = table.setdefault(breakdown, {}).setdefault(name, [0, 0])
            cell[0] += 1
            cell[1] += bool(hit)
    return {b: {name: {"true": n, "found": k, "recall": round(k / n, 4)} for name, (n, k) in sorted(classes.items())}
            for b, classes in table.items()}
