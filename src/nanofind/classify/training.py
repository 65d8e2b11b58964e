"""Training a defect classifier from folders of labelled crops, with a grouped cross-validation.

Crops of one simulated scene (its images differ only in optics and noise) share a group, so that
the cross-validation never scores a crop whose twin was trained on; groups come from the
``crops.csv`` that ``nanofind classify crops`` writes (otherwise every crop is its own group).
"""

from __future__ import annotations

import time

import numpy as np

from nanofind.classify.classes import CLASS_NAMES
from nanofind.classify.command import crop_metadata, read_crop_folders
from nanofind.classify.features import feature_matrix
from nanofind.classify.model import (
    METHODS,
    NETWORK_WEIGHT,
    DefectClassifier,
    TreesAndNetwork,
    classifier_card,
    save_classifier,
    train_classifier,
)

#: Folds of the cross-validation recorded in the card.
CV_FOLDS = 5


def balanced_accuracy(truth, predicted) -> float:
    """Mean per-class recall over the classes present in ``truth``."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    recalls = [np.mean(predicted[truth == c] == c) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan")


def confusion(truth, predicted) -> dict[str, dict[str, int]]:
    """Counts by true class (rows) and predicted class, in :data:`CLASS_NAMES` order."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return {t: {p: int(np.sum((truth == t) & (predicted == p))) for p in CLASS_NAMES} for t in CLASS_NAMES}


def cross_validate(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, method: str, seed: int,
                   folds: int = CV_FOLDS) -> dict:
    """Grouped, stratified cross-validation: balanced accuracy, per-class recall and confusion."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = min(folds, *(int(np.sum(labels == c)) for c in np.unique(labels)), len(np.unique(groups)))
    if folds < 2:
        return {}
    predicted = np.empty(len(labels), dtype=object)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels, groups):
        model = train_classifier(features[train], labels[train], method=method, seed=seed)
        probabilities = model.predict_proba_features(features[test])
        predicted[test] = np.asarray(CLASS_NAMES)[np.argmax(probabilities, axis=1)]
    predicted = predicted.astype(str)
    return {"folds": folds, "balanced_accuracy": round(balanced_accuracy(labels, predicted), 4),
            "recall": {c: round(float(np.mean(predicted[labels == c] == c)), 4) for c in np.unique(labels)},
            "confusion": confusion(labels, predicted)}


def _fit_network(crops, labels, *, seed: int, quiet: bool):
    """The CNN trained on the crops, and the seconds it took."""
    from nanofind._progress import ProgressBar
    from nanofind.classify.cnn import EPOCHS, network_inputs, train_network

    inputs = network_inputs(crops)
    start = time.perf_counter()
    with ProgressBar("epochs", EPOCHS, enabled=not quiet) as bar:
        net = train_network(inputs, labels, seed=seed, epochs=EPOCHS, progress=bar.advance)
    return net, time.perf_counter() - start


def _train_cnn(crops, labels, folders, out_dir, *, seed: int, quiet: bool) -> dict:
    """The CNN method: inputs from the crops, training (no cross-validation: it would take folds × minutes)."""
    from nanofind.classify.cnn import EPOCHS

    net, seconds = _fit_network(crops, labels, seed=seed, quiet=quiet)
    card = classifier_card("cnn", labels, seed=seed, seconds=seconds,
                           record={"epochs": EPOCHS, "inputs": [str(f) for f in folders]})
    save_classifier(DefectClassifier(net, card), out_dir)
    return card


def train_from_folders(folders: list[str], out_dir, *, method: str = "gbt", seed: int = 0, quiet: bool = False,
                       cross_validation: bool = True) -> dict:
    """Train on crop folders (one sub-folder per class), cross-validate, save; returns the card.

    ``method``: rf, gbt, cnn or gbt+cnn (:data:`~nanofind.classify.model.METHODS`); ``seed`` fixes
    the folds, the trees and the network's initial weights and batches.
    """
    from nanofind._progress import ProgressBar

    crops, labels, files = read_crop_folders(folders)
    if method == "cnn":
        return _train_cnn(crops, labels, folders, out_dir, seed=seed, quiet=quiet)
    trees_method = "gbt" if method == "gbt+cnn" else method
    meta = crop_metadata(folders)
    groups = np.array([f"{meta[f]['dataset']}#{meta[f].get('group', meta[f]['sample'])}" if f in meta else f
                       for f in files])
    start = time.perf_counter()
    with ProgressBar("features", len(crops), enabled=not quiet) as bar:
        rows = []
        for crop in crops:
            rows.append(feature_matrix([crop], METHODS[trees_method])[0])
            bar.advance()
    features = np.array(rows)
    labels = np.asarray(labels)
    feature_seconds = time.perf_counter() - start
    record = {"inputs": [str(f) for f in folders], "feature_seconds": round(feature_seconds, 2)}
    if cross_validation:  # of the trees only for gbt+cnn: the network's folds would take folds × minutes
        record["cross_validation"] = cross_validate(features, labels, groups, method=trees_method, seed=seed)
    classifier = train_classifier(features, labels, method=trees_method, seed=seed, record=record)
    if method == "gbt+cnn":
        from nanofind.classify.cnn import EPOCHS

        net, seconds = _fit_network(crops, labels, seed=seed, quiet=quiet)
        card = {**classifier.card, "method": method, "features": METHODS[method], "network_weight": NETWORK_WEIGHT}
        card["training"] = {**card["training"], "network_seconds": round(seconds, 2), "epochs": EPOCHS}
        if cross_validation:
            card["training"]["cross_validation"]["of"] = "the trees alone"
        classifier = DefectClassifier(TreesAndNetwork(classifier.estimator, net), card)
    save_classifier(classifier, out_dir)
    return classifier.card
