"""Segmentation metrics on plain arrays: confusion counts, scores, pooled curves and a plot.

Masks are boolean (or 0/1) arrays of one shape, rows along y; the particle class is the positive
class. Probabilities are float arrays in [0, 1] of the same shape as their masks.

Conventions for empty denominators (stated once here, used by every function):

* ``dice`` = 2TP/(2TP+FP+FN) and ``iou`` = TP/(TP+FP+FN) are 1.0 when prediction and truth are
  both empty (TP = FP = FN = 0), the only case in which their denominators vanish.
* ``precision`` = TP/(TP+FP) with nothing predicted (TP+FP = 0) is 1.0 when the truth is empty as
  well (FN = 0) and 0.0 when the truth has particle pixels (FN > 0).
* ``recall`` = TP/(TP+FN) with an empty truth (TP+FN = 0) is 1.0 when nothing is predicted
  (FP = 0) and 0.0 when something is (FP > 0).

In words: a ratio whose denominator is empty is 1.0 when prediction and truth agree that there
is nothing (perfect agreement on an empty field) and 0.0 otherwise. With these choices the Dice
coefficient equals the harmonic mean 2PR/(P+R) of precision and recall in every case (taking
2PR/(P+R) = 0 when P = R = 0).

* ``pixel_accuracy`` = (TP+TN)/N and ``false_positive_fraction`` = FP/N, with N all pixels; the
  latter is the useful number on fields that contain no particle at all. For N = 0 they are 1.0
  and 0.0.

"Pooled" scores sum the counts over all images before taking ratios (every pixel weighs the
same); "per-image" scores take ratios image by image (every image weighs the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

COUNT_KEYS = ("tp", "fp", "fn", "tn")
SCORE_KEYS = ("dice", "iou", "precision", "recall", "pixel_accuracy", "false_positive_fraction")
DEFAULT_THRESHOLDS = np.linspace(0.02, 0.98, 49)
#: Where labelled images come from; scores are also given per domain, in this order.
DOMAINS = ("simulated", "real")


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype == bool:
        return array
    if not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must be boolean or 0/1; threshold probabilities before computing a confusion")
    return array.astype(bool)


def confusion(pred_mask: np.ndarray, true_mask: np.ndarray) -> dict[str, int]:
    """Pixel confusion counts of a predicted mask against the true mask.

    Parameters
    ----------
    pred_mask, true_mask : numpy.ndarray
        Boolean or 0/1 arrays of equal shape; True marks particle pixels.

    Returns
    -------
    dict
        ``{"tp", "fp", "fn", "tn"}`` as Python ints.

    Raises
    ------
    ValueError
        If the shapes differ, or a mask holds values other than 0/1.
    """
    pred = _as_mask(pred_mask, "pred_mask")
    true = _as_mask(true_mask, "true_mask")
    if pred.shape != true.shape:
        raise ValueError(f"shape mismatch: pred_mask {pred.shape} vs true_mask {true.shape}")
    tp = int(np.count_nonzero(pred & true))
    n_pred = int(np.count_nonzero(pred))
    n_true = int(np.count_nonzero(true))
    fp = n_pred - tp
    fn = n_true - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(pred.size) - tp - fp - fn}


def _ratio(numerator, denominator, agree_empty):
    """``numerator/denominator``; where the denominator is 0: 1.0 if ``agree_empty`` else 0.0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    empty = denominator == 0
    return np.where(empty, np.where(agree_empty, 1.0, 0.0), numerator / np.where(empty, 1.0, denominator))


def _scores_arrays(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    nothing = (tp + fp + fn) == 0  # prediction and truth both empty
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, nothing),
        "iou": _ratio(tp, tp + fp + fn, nothing),
        "precision": _ratio(tp, tp + fp, fn == 0),
        "recall": _ratio(tp, tp + fn, fp == 0),
        "pixel_accuracy": _ratio(tp + tn, n, True),
        "false_positive_fraction": _ratio(fp, n, False),
    }


def scores(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Dice, IoU, precision, recall, pixel accuracy and false-positive fraction from counts.

    Empty denominators follow the module conventions: 1.0 when prediction and truth are both
    empty, 0.0 otherwise (``precision`` = 0 when nothing is predicted but the truth has particle
    pixels; ``recall`` = 0 when the truth is empty but something is predicted).

    Returns
    -------
    dict
        Keys :data:`SCORE_KEYS`, values Python floats.
    """
    if min(tp, fp, fn, tn) < 0:
        raise ValueError(f"confusion counts must be non-negative, got tp={tp} fp={fp} fn={fn} tn={tn}")
    return {key: float(value) for key, value in _scores_arrays(tp, fp, fn, tn).items()}


def segmentation_scores(pred_mask: np.ndarray, true_mask: np.ndarray) -> dict[str, float]:
    """:func:`scores` of :func:`confusion` of one predicted mask against its truth."""
    return scores(**confusion(pred_mask, true_mask))


def sum_confusions(confusions: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Add confusion dicts count by count (an empty iterable gives all zeros)."""
    total = dict.fromkeys(COUNT_KEYS, 0)
    for counts in confusions:
        for key in COUNT_KEYS:
            total[key] += int(counts[key])
    return total


def pooled_scores(confusions: Iterable[Mapping[str, int]]) -> dict[str, float]:
    """Scores of the summed counts: every pixel of every image weighs the same."""
    return scores(**sum_confusions(confusions))


def pooled_scores_by_domain(confusions: Iterable[Mapping[str, int]], domains: Iterable[str]
                            ) -> dict[str, dict[str, float]]:
    """Pooled scores of the images of each domain (:data:`DOMAINS` order) that occurs in ``domains``.

    ``domains`` gives each confusion's domain, in the same order.
    """
    pairs = list(zip(confusions, domains, strict=True))
    return {d: pooled_scores([c for c, domain in pairs if domain == d])
            for d in DOMAINS if any(domain == d for _, domain in pairs)}


def per_image_scores(confusions: Iterable[Mapping[str, int]]) -> dict[str, list[float]]:
    """Scores image by image, as ``{score name: [value per image]}`` in input order.

    Average a list with ``numpy.mean`` for the per-image mean (every image weighs the same).
    """
    out: dict[str, list[float]] = {key: [] for key in SCORE_KEYS}
    for counts in confusions:
        for key, value in scores(**{k: int(counts[k]) for k in COUNT_KEYS}).items():
            out[key].append(value)
    return out


def precision_recall_curve(prob_list: Iterable[np.ndarray], true_list: Iterable[np.ndarray],
                           thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS) -> dict[str, np.ndarray]:
    """Pooled precision, recall and Dice of ``prob >= t`` for every threshold ``t``.

    The pixels are not thresholded once per ``t``: each image's probabilities are binned with the
    sorted thresholds as bin edges (``searchsorted`` + ``bincount``, separately for true-particle
    and background pixels), and reverse cumulative sums of the summed histograms give, for every
    threshold at once, the number of particle and background pixels with ``prob >= t``. The result
    is exact (no binning error) and costs O(N log T) for N pixels and T thresholds.

    Parameters
    ----------
    prob_list : iterable of numpy.ndarray
        Particle probability maps.
    true_list : iterable of numpy.ndarray
        True masks, paired with ``prob_list`` (same length, each of the same shape).
    thresholds : sequence of float
        Thresholds; returned sorted ascending and without duplicates.

    Returns
    -------
    dict
        ``thresholds``, ``precision``, ``recall``, ``dice``, ``iou`` (float arrays of length T)
        and the pooled ``tp``, ``fp``, ``fn``, ``tn`` (int arrays), with the module's conventions
        for empty denominators.
    """
    t = np.unique(np.asarray(thresholds, dtype=np.float64).ravel())
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError("thresholds must be a non-empty set of finite numbers")
    hist_pos = np.zeros(t.size + 1, dtype=np.int64)
    hist_neg = np.zeros(t.size + 1, dtype=np.int64)
    probs, trues = list(prob_list), list(true_list)
    if len(probs) != len(trues):
        raise ValueError(f"{len(probs)} probability maps but {len(trues)} true masks")
    for prob, true in zip(probs, trues, strict=True):
        prob = np.asarray(prob, dtype=np.float64)
        true = _as_mask(true, "true mask")
        if prob.shape != true.shape:
            raise ValueError(f"shape mismatch: probability map {prob.shape} vs true mask {true.shape}")
        if np.isnan(prob).any():
            raise ValueError("probability map contains NaN")
        # index k = number of thresholds <= p, so p >= t[j] exactly when k > j
        index = np.searchsorted(t, prob.ravel(), side="right")
        flat_true = true.ravel()
        hist_pos += np.bincount(index[flat_true], minlength=t.size + 1)
        hist_neg += np.bincount(index[~flat_true], minlength=t.size + 1)
    # at or above t[j]: sum of bins k >= j+1
    tp = np.cumsum(hist_pos[::-1])[::-1][1:]
    fp = np.cumsum(hist_neg[::-1])[::-1][1:]
    fn = hist_pos.sum() - tp
    tn = hist_neg.sum() - fp
    s = _scores_arrays(tp, fp, fn, tn)
    return {"thresholds": t, "precision": s["precision"], "recall": s["recall"], "dice": s["dice"],
            "iou": s["iou"], "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def best_threshold(curve: Mapping[str, np.ndarray], tol: float = 1e-12) -> float:
    """Threshold of ``curve`` with the highest pooled Dice (F1).

    Thresholds whose Dice is within ``tol`` of the maximum count as tied; of those the one closest
    to 0.5 wins, and of two equally close the lower one.
    """
    t = np.asarray(curve["thresholds"], dtype=np.float64)
    dice = np.asarray(curve["dice"], dtype=np.float64)
    if t.size == 0 or t.shape != dice.shape:
        raise ValueError(f"curve needs thresholds and dice of one non-zero length, got {t.shape} and {dice.shape}")
    tied = np.flatnonzero(dice >= np.nanmax(dice) - tol)
    distance = np.abs(t[tied] - 0.5)
    close = tied[distance <= distance.min() + 1e-12]
    return float(t[close].min())


def _curve_points(curve) -> tuple[np.ndarray, np.ndarray, Mapping | None]:
    if isinstance(curve, Mapping):
        precision, recall = curve["precision"], curve["recall"]
        with_thresholds = curve if "thresholds" in curve and "dice" in curve else None
    else:
        precision, recall = curve
        with_thresholds = None
    return np.atleast_1d(np.asarray(precision, float)), np.atleast_1d(np.asarray(recall, float)), with_thresholds


def plot_pr_curve(curves: Mapping[str, Mapping | tuple], path: str | Path, title: str | None = None) -> Path:
    """Write a PNG of precision vs recall per method, and of the scores vs threshold.

    Parameters
    ----------
    curves : mapping
        Method name → either a :func:`precision_recall_curve` dict, or anything with
        ``precision`` and ``recall`` (a :func:`scores` dict, or a ``(precision, recall)`` pair).
        A method given as a single point (a baseline that yields a mask, not a probability) is
        drawn as a marker; one with thresholds as a line, with its :func:`best_threshold` marked.
    path : str or pathlib.Path
        Output PNG file; its folder must exist.
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Uses the object-oriented Figure API with the Agg canvas, so no GUI backend is touched and the
    global pyplot state is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_pr, ax_t = fig.subplots(1, 2)
    markers = "osD^v<>pPX*h"
    n_thresholded = 0
    for i, (name, curve) in enumerate(curves.items()):
        precision, recall, full = _curve_points(curve)
        color = f"C{i % 10}"
        if precision.size == 1:
            ax_pr.plot(recall, precision, linestyle="none", marker=markers[i % len(markers)], markersize=8,
                       color=color, label=name)
        else:
            line_label = name
            if full is not None:
                t_best = best_threshold(full)
                j = int(np.argmin(np.abs(np.asarray(full["thresholds"]) - t_best)))
                line_label = f"{name} (best t = {t_best:.2f})"
                ax_pr.plot(recall[j], precision[j], marker="o", color=color, markersize=6)
            ax_pr.plot(recall, precision, color=color, label=line_label)
        if full is not None:
            n_thresholded += 1
            t = np.asarray(full["thresholds"], float)
            ax_t.plot(t, precision, color=color, linestyle="-", label=f"{name} precision")
            ax_t.plot(t, recall, color=color, linestyle="--", label=f"{name} recall")
            ax_t.plot(t, np.asarray(full["dice"], float), color=color, linestyle=":", label=f"{name} Dice")
            ax_t.axvline(best_threshold(full), color=color, linewidth=0.8, alpha=0.5)
    ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="precision vs recall (pooled)")
    ax_pr.grid(alpha=0.3)
    if curves:
        ax_pr.legend(loc="lower left", fontsize="small")
    ax_t.set(xlabel="threshold", ylabel="score", xlim=(0, 1), ylim=(0, 1.02), title="scores vs threshold")
    ax_t.grid(alpha=0.3)
    if n_thresholded:
        ax_t.legend(loc="lower center", fontsize="x-small", ncols=min(3, 3 * n_thresholded))
    else:
        ax_t.text(0.5, 0.5, "no thresholded curves", ha="center", va="center", transform=ax_t.transAxes)
    if title:
        fig.suptitle(title)
    fig.savefig(path, format="png", dpi=110)
    return path
