import numpy as np
import pytest

from nanofind.learn.metrics import (
    SCORE_KEYS,
    best_threshold,
    confusion,
    per_image_scores,
    plot_pr_curve,
    pooled_scores,
    pooled_scores_by_domain,
    precision_recall_curve,
    scores,
    segmentation_scores,
    sum_confusions,
)

PRED = np.array([[1, 1, 0, 0],
                 [1, 1, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 1]], dtype=bool)
TRUE = np.array([[1, 1, 1, 0],
                 [1, 0, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0]], dtype=bool)


def test_hand_computed_4x4():
    # TP: (0,0) (0,1) (1,0) = 3; FP: (1,1) (3,3) = 2; FN: (0,2) = 1; TN = 16 - 6 = 10
    assert confusion(PRED, TRUE) == {"tp": 3, "fp": 2, "fn": 1, "tn": 10}
    assert all(type(v) is int for v in confusion(PRED, TRUE).values())
    s = segmentation_scores(PRED, TRUE)
    assert s["dice"] == pytest.approx(2 / 3)  # 2*3 / (2*3 + 2 + 1) = 6/9
    assert s["iou"] == pytest.approx(0.5)  # 3 / (3 + 2 + 1)
    assert s["precision"] == pytest.approx(0.6)  # 3 / (3 + 2)
    assert s["recall"] == pytest.approx(0.75)  # 3 / (3 + 1)
    assert s["pixel_accuracy"] == pytest.approx(13 / 16)  # (3 + 10) / 16
    assert s["false_positive_fraction"] == pytest.approx(2 / 16)
    # Dice is the harmonic mean of precision and recall: 2*0.6*0.75/1.35 = 2/3
    assert s["dice"] == pytest.approx(2 * s["precision"] * s["recall"] / (s["precision"] + s["recall"]))
    # 0/1 integer masks give the same
    assert segmentation_scores(PRED.astype(np.uint8), TRUE.astype(int)) == s


def test_both_empty_is_perfect():
    empty = np.zeros((5, 7), dtype=bool)
    s = segmentation_scores(empty, empty)
    assert s == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "pixel_accuracy": 1.0,
                 "false_positive_fraction": 0.0}


def test_prediction_empty_truth_not():
    pred = np.zeros((4, 4), dtype=bool)
    s = segmentation_scores(pred, TRUE)
    assert (s["dice"], s["iou"], s["precision"], s["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["pixel_accuracy"] == pytest.approx(12 / 16)
    assert s["false_positive_fraction"] == 0.0


def test_truth_empty_prediction_not():
    true = np.zeros((4, 4), dtype=bool)
    s = segmentation_scores(PRED, true)
    assert (s["dice"], s["iou"], s["precision"], s["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["false_positive_fraction"] == pytest.approx(5 / 16)  # the number that matters on an empty field


def test_errors():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        confusion(PRED, np.zeros((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="0/1"):
        confusion(np.full((4, 4), 0.7), TRUE)
    with pytest.raises(ValueError, match="non-negative"):
        scores(1, -1, 0, 0)


def test_pooled_vs_per_image():
    empty = np.zeros((4, 4), dtype=bool)
    confusions = [confusion(PRED, TRUE), confusion(empty, empty)]
    assert sum_confusions(confusions) == {"tp": 3, "fp": 2, "fn": 1, "tn": 26}
    assert sum_confusions([]) == {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    pooled = pooled_scores(confusions)
    assert pooled["dice"] == pytest.approx(2 / 3)  # the empty image adds only true negatives
    assert pooled["pixel_accuracy"] == pytest.approx(29 / 32)
    per = per_image_scores(confusions)
    assert set(per) == set(SCORE_KEYS)
    assert per["dice"] == pytest.approx([2 / 3, 1.0])
    assert np.mean(per["dice"]) == pytest.approx(5 / 6)


def _direct(probs, trues, t):
    tp = sum(int(np.sum((p >= t) & m)) for p, m in zip(probs, trues, strict=True))
    fp = sum(int(np.sum((p >= t) & ~m)) for p, m in zip(probs, trues, strict=True))
    fn = sum(int(np.sum((p < t) & m)) for p, m in zip(probs, trues, strict=True))
    tn = sum(int(np.sum((p < t) & ~m)) for p, m in zip(probs, trues, strict=True))
    return scores(tp, fp, fn, tn)


def test_pr_curve_tiny_example_by_hand():
    probs = [np.array([[0.1, 0.6], [0.5, 0.9]]), np.array([[0.5, 0.2, 0.8]])]
    trues = [np.array([[0, 1], [0, 1]], dtype=bool), np.array([[1, 0, 0]], dtype=bool)]
    curve = precision_recall_curve(probs, trues, thresholds=[0.75, 0.25, 0.5])
    assert np.array_equal(curve["thresholds"], [0.25, 0.5, 0.75])
    # t = 0.5 (prob >= t, so the two 0.5 pixels count): predicted 0.6, 0.5, 0.9 | 0.5, 0.8 -> TP 3 (0.6, 0.9, 0.5),
    # FP 2 (0.5 of image 1, 0.8), FN 0, TN 2: precision 3/5, recall 1, Dice 6/8
    assert curve["precision"][1] == pytest.approx(0.6)
    assert curve["recall"][1] == pytest.approx(1.0)
    assert curve["dice"][1] == pytest.approx(0.75)
    # t = 0.75: predicted 0.9, 0.8 -> TP 1, FP 1, FN 2: precision 1/2, recall 1/3, Dice 2/5
    assert curve["precision"][2] == pytest.approx(0.5)
    assert curve["recall"][2] == pytest.approx(1 / 3)
    assert curve["dice"][2] == pytest.approx(0.4)
    assert (curve["tp"] + curve["fp"] + curve["fn"] + curve["tn"] == 7).all()


def test_pr_curve_matches_direct_thresholding():
    rng = np.random.default_rng(3)
    trues = [rng.random((20, 30)) < 0.3 for _ in range(3)]
    # quantised probabilities so that many pixels sit exactly on thresholds
    probs = [np.clip(np.round(0.5 * m + 0.6 * rng.random(m.shape), 2), 0, 1) for m in trues]
    curve = precision_recall_curve(probs, trues)
    assert curve["thresholds"].size == 49
    for j, t in enumerate(curve["thresholds"]):
        direct = _direct(probs, trues, t)
        for key in ("precision", "recall", "dice"):
            assert curve[key][j] == pytest.approx(direct[key], abs=1e-12), (key, t)


def test_pr_curve_errors():
    with pytest.raises(ValueError, match="shape mismatch"):
        precision_recall_curve([np.zeros((3, 3))], [np.zeros((3, 4), dtype=bool)])
    with pytest.raises(ValueError, match="2 probability maps but 1"):
        precision_recall_curve([np.zeros((3, 3))] * 2, [np.zeros((3, 3), dtype=bool)])


def test_best_threshold():
    curve = {"thresholds": np.array([0.2, 0.3, 0.4, 0.6, 0.7]), "dice": np.array([0.5, 0.8, 0.9, 0.9, 0.7])}
    assert best_threshold(curve) == 0.4  # 0.4 and 0.6 tie and are equally close to 0.5: the lower wins
    curve = {"thresholds": np.array([0.1, 0.3, 0.45, 0.7]), "dice": np.array([0.2, 0.9, 0.9, 0.9])}
    assert best_threshold(curve) == 0.45
    curve = {"thresholds": np.array([0.1, 0.3, 0.45, 0.7]), "dice": np.array([0.2, 0.95, 0.9, 0.9])}
    assert best_threshold(curve) == 0.3
    # separable probabilities: any threshold in (0.3, 0.7] is perfect; the one nearest 0.5 is chosen
    true = np.zeros((10, 10), dtype=bool)
    true[:4] = True
    ramp = np.linspace(0, 1, 100).reshape(10, 10)
    prob = np.where(true, 0.7 + 0.2 * ramp, 0.3 * ramp)
    curve = precision_recall_curve([prob], [true])
    assert best_threshold(curve) == pytest.approx(0.5)
    assert curve["dice"].max() == 1.0


def test_plot_writes_png(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    true = rng.random((32, 32)) < 0.4
    prob = np.clip(0.6 * true + 0.5 * rng.random(true.shape), 0, 1)
    curve = precision_recall_curve([prob], [true])
    otsu_like = segmentation_scores(rng.random(true.shape) < 0.5, true)
    path = plot_pr_curve({"unet": curve, "otsu": otsu_like, "fourier": (0.4, 0.7)}, tmp_path / "pr.png", title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    # points only: the threshold panel says so, and the file is still written
    path2 = plot_pr_curve({"otsu": (0.5, 0.5)}, tmp_path / "points.png")
    assert path2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pooled_scores_by_domain_pools_each_domain_present():
    real = [{"tp": 8, "fp": 2, "fn": 0, "tn": 90}, {"tp": 2, "fp": 0, "fn": 2, "tn": 96}]
    sim = [{"tp": 5, "fp": 5, "fn": 5, "tn": 85}]
    by = pooled_scores_by_domain(real[:1] + sim + real[1:], ["real", "simulated", "real"])
    assert list(by) == ["simulated", "real"]  # fixed order, whatever the input order
    assert by["real"]["dice"] == pytest.approx(2 * 10 / (2 * 10 + 2 + 2))  # counts summed before scoring
    assert by["simulated"]["dice"] == pytest.approx(0.5)
    assert list(pooled_scores_by_domain(sim, ["simulated"])) == ["simulated"]
