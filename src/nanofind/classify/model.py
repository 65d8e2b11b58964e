"""Defect classifiers: training, files (skops with an explicit trusted-type list, never pickle), use.

Four methods:

- ``rf``: seed 004's random forest reproduced — its five features (:func:`seed_features`),
  500 trees, Gini splits; the baseline.
- ``gbt``: gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``) on the
  richer features (:func:`rich_features`);
- ``cnn``: a small convolutional network on the crop and its spectrum (:mod:`nanofind.classify.cnn`),
  saved as safetensors;
- ``gbt+cnn``: both of the last two, their class probabilities mixed with the network's share
  :data:`NETWORK_WEIGHT` (the shipped default: the two err on different crops, docs/benchmarks.md,
  "Trees and network together").

All weigh the classes equally (class-balanced sample weights). A classifier directory holds
``card.json`` (task, classes, features, method, what it was trained on and its scores) beside
``classifier.skops`` (trees, forests) and/or ``classifier.safetensors`` (networks).
Loading refuses any type outside :data:`TRUSTED_TYPES` and any card of another
task.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanofind._files import write_atomic, write_text_atomic
from nanofind._version import __version__
from nanofind.classify.classes import CLASS_NAMES
from nanofind.classify.features import RICH_FEATURES, SEED_FEATURES, feature_matrix
from nanofind.errors import NanofindInputError

TASK = "defect_classification"
MODEL_FILE = "classifier.skops"
CARD_FILE = "card.json"
#: The shipped default classifier.
DEFAULT_DIR = Path(__file__).with_name("default_classifier")
#: Types a classifier file may contain; skops refuses everything else.
TRUSTED_TYPES = [
    "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.int64", "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937", "builtins.slice",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree", "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
    "HistGradientBoostingClassifier", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper", "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.MultinomialLogit", "sklearn._loss.link.Interval", "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn.preprocessing._label.LabelEncoder",
]
METHODS = {"rf": "seed", "gbt": "rich", "cnn": "cnn", "gbt+cnn": "rich+cnn"}
#: The network's share of the mixed probabilities of ``gbt+cnn``: chosen on a grouped fifth of the training
#: crops held out of both (0.3-0.7 tried; balanced accuracy 0.871 for the trees alone, 0.878-0.897 mixed) and
#: kept after out-of-fold probabilities of a 5-fold cross-validation on the shipped classifier's crops
#: (trees 0.854, mixed 0.861-0.878, 0.877 at 0.6; docs/benchmarks.md)
NETWORK_WEIGHT = 0.6


@dataclass
class TreesAndNetwork:
    """The two estimators of a ``gbt+cnn`` classifier and the network's share of their mixed probabilities."""

    trees: object
    network: object
    network_weight: float = NETWORK_WEIGHT


@dataclass
class DefectClassifier:
    """A trained classifier and its card."""

    estimator: object
    card: dict

    @property
    def features(self) -> str:
        """``seed`` or ``rich``."""
        return self.card["features"]

    def predict_proba(self, crops) -> np.ndarray:
        """Class probabilities (n, 5) in :data:`CLASS_NAMES` order for a list of crops."""
        if self.features == "cnn":
            return _network_proba(self.estimator, crops)
        if self.features == "rich+cnn":
            trees = self._trees_proba(self.estimator.trees, feature_matrix(crops, "rich"))
            w = float(self.estimator.network_weight)
            return (1 - w) * trees + w * _network_proba(self.estimator.network, crops)
        return self.predict_proba_features(feature_matrix(crops, self.features))

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, 5) from a feature matrix of this classifier's kind.

        For ``gbt+cnn`` these are the trees' alone: the network needs the crops.
        """
        trees = self.estimator.trees if isinstance(self.estimator, TreesAndNetwork) else self.estimator
        return self._trees_proba(trees, features)

    @staticmethod
    def _trees_proba(estimator, features: np.ndarray) -> np.ndarray:
        out = np.zeros((len(features), len(CLASS_NAMES)))
        if len(features):
            p = estimator.predict_proba(np.nan_to_num(features))
            for k, name in enumerate(estimator.classes_):
                out[:, CLASS_NAMES.index(str(name))] = p[:, k]
        return out


def _network_proba(network, crops) -> np.ndarray:
    from nanofind.classify.cnn import network_inputs, predict_network

    return predict_network(network, network_inputs(crops))


def _estimator(method: str, seed: int):
    if method == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=500, criterion="gini", random_state=seed, n_jobs=1)
    if method == "gbt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=400, learning_rate=0.08, max_leaf_nodes=31,
                                              l2_regularization=1.0, random_state=seed)
    raise NanofindInputError(f"must be rf, gbt, cnn or gbt+cnn, got {method!r}", "--method")


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights that give every class the same total weight."""
    names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return (len(labels) / (len(names) * counts))[inverse]


def train_classifier(features: np.ndarray, labels, *, method: str, seed: int = 0, record: dict | None = None
                     ) -> DefectClassifier:
    """Fit a classifier on a feature matrix of the method's kind (:data:`METHODS`) and class labels."""
    labels = np.asarray(labels, dtype=str)
    unknown = sorted(set(labels) - set(CLASS_NAMES))
    if unknown:
        raise NanofindInputError(f"unknown classes {unknown}; expected {', '.join(CLASS_NAMES)}")
    estimator = _estimator(method, seed)
    start = time.perf_counter()
    estimator.fit(np.nan_to_num(features), labels, sample_weight=balanced_weights(labels))
    names = SEED_FEATURES if METHODS[method] == "seed" else RICH_FEATURES
    card = classifier_card(method, labels, seed=seed, seconds=time.perf_counter() - start, record=record)
    return DefectClassifier(estimator, {**card, "feature_names": list(names)})


def classifier_card(method: str, labels, *, seed: int, seconds: float, record: dict | None = None) -> dict:
    """The card of a classifier trained by ``method`` on crops of classes ``labels``."""
    labels = np.asarray(labels, dtype=str)
    return {"task": TASK, "nanofind_version": __version__, "method": method, "features": METHODS[method],
            "classes": list(CLASS_NAMES), "seed": seed,
            "training": {"crops": len(labels), "per_class": {c: int((labels == c).sum()) for c in CLASS_NAMES},
                         "seconds": round(seconds, 2), **(record or {})}}


def model_folder(directory: str | Path) -> Path:
    """``directory`` as a Path, created if needed; one clear error when it cannot be."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"{directory}: cannot create the folder ({exc.strerror or exc})") from None
    return directory


def save_classifier(classifier: DefectClassifier, directory: str | Path) -> Path:
    """Write the classifier into ``directory`` (created).

    Files: ``card.json``, and ``classifier.skops`` (trees, forests) and/or ``classifier.safetensors``
    (networks).
    """
    directory = model_folder(directory)
    estimator, network = classifier.estimator, None
    if isinstance(estimator, TreesAndNetwork):
        estimator, network = estimator.trees, estimator.network
    elif classifier.features == "cnn":
        estimator, network = None, estimator
    if network is not None:
        from nanofind.classify.cnn import WEIGHTS_FILE, save_network

        write_atomic(directory / WEIGHTS_FILE, lambda tmp: save_network(network, tmp))
    if estimator is not None:
        import skops.io as sio

        data = sio.dumps(estimator)
        write_atomic(directory / MODEL_FILE, lambda tmp: tmp.write_bytes(data))
    write_text_atomic(directory / CARD_FILE, json.dumps(classifier.card, indent=2) + "\n")
    return directory


def classifier_dir(name: str | Path | None) -> Path:
    """The folder a classifier name means: ``None`` or ``"default"`` is the shipped one."""
    return DEFAULT_DIR if name in (None, "default") else Path(name)


def read_classifier_card(directory: str | Path, needs: str = CARD_FILE) -> dict:
    """The card of any classifier directory; one clear error when it is missing or unreadable."""
    card_path = Path(directory) / CARD_FILE
    if not card_path.is_file():
        raise NanofindInputError(f"{directory}: not a classifier directory (needs {needs})")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NanofindInputError(f"{card_path}: unreadable card ({exc})") from None
    if not isinstance(card, dict):
        raise NanofindInputError(f"{card_path}: not a classifier card")
    return card


def load_classifier(directory: str | Path | None = None) -> DefectClassifier:
    """Load a classifier directory (``None`` or ``"default"``: the shipped one); one clear error if unusable."""
    import skops.io as sio

    directory = classifier_dir(directory)
    card_path, model_path = directory / CARD_FILE, directory / MODEL_FILE
    card = read_classifier_card(directory, f"{CARD_FILE} and {MODEL_FILE}")
    if card.get("task") != TASK:
        raise NanofindInputError(f"{directory}: a model for {card.get('task')!r}, not for {TASK!r}")
    network = None
    if card.get("features") in ("cnn", "rich+cnn"):
        from nanofind.classify.cnn import WEIGHTS_FILE, load_network

        try:
            network = load_network(directory / WEIGHTS_FILE)
        except Exception as exc:  # missing or mismatched weights
            raise NanofindInputError(f"{directory / WEIGHTS_FILE}: unusable network weights "
                                     f"({type(exc).__name__}: {exc})") from None
        if card["features"] == "cnn":
            return DefectClassifier(network, card)
    if not model_path.is_file():
        raise NanofindInputError(f"{directory}: not a classifier directory (needs {CARD_FILE} and {MODEL_FILE})")
    try:
        data = model_path.read_bytes()
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        if untrusted:
            raise NanofindInputError(f"{model_path}: refuses to load types outside nanofind's list: {untrusted}")
        estimator = sio.loads(data, trusted=TRUSTED_TYPES)
    except NanofindInputError:
        raise
    except Exception as exc:  # skops raises many types on corrupt files
        raise NanofindInputError(f"{model_path}: unreadable classifier ({type(exc).__name__}: {exc})") from None
    if type(estimator).__name__ not in ("RandomForestClassifier", "HistGradientBoostingClassifier"):
        raise NanofindInputError(f"{model_path}: holds a {type(estimator).__name__}, not one of nanofind's "
                                 "classifiers (random forest or gradient-boosted trees)")
    if card.get("features") not in ("seed", "rich", "rich+cnn"):  # cnn returned above
        raise NanofindInputError(f"{card_path}: unknown features {card.get('features')!r}")
    if network is not None:
        weight = card.get("network_weight", NETWORK_WEIGHT)
        if not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise NanofindInputError(f"{card_path}: network_weight must be a number from 0 to 1, got {weight!r}")
        return DefectClassifier(TreesAndNetwork(estimator, network, float(weight)), card)
    return DefectClassifier(estimator, card)
