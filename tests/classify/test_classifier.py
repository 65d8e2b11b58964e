"""Class rules, classifier files, population statistics and ``nanofind classify`` end to end."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from nanofind.classify.classes import CLASS_NAMES, particle_class
from nanofind.classify.model import load_classifier, save_classifier, train_classifier
from nanofind.classify.population import population_statistics
from nanofind.errors import NanofindInputError


def _record(**kw):
    return {"source": "scene", "shape": "sphere", "off_axis_tilt_deg": 0.0, "visible_planar_defects": [], **kw}


def test_particle_class_rules():
    assert particle_class(_record(visible_planar_defects=["twin"]), {"tilt_deg": 0.0}) == "fault"
    assert particle_class(_record(), {"tilt_deg": 0.0}) == "no_fault"
    assert particle_class(_record(visible_planar_defects=["twin"]), {"tilt_deg": 8.0}) == "misoriented"
    assert particle_class(_record(), {"tilt_deg": 2.5}) is None  # neither on axis nor clearly off
    # the record's tilt is to the nearest of all zones (indices up to 3): the drawn tilt decides for crystals
    assert particle_class(_record(off_axis_tilt_deg=0.5), {"tilt_deg": 9.0}) == "misoriented"
    # multiply twinned particles: the tilt from their nearest symmetry axis
    mtp = _record(shape="decahedron", off_axis_tilt_deg=0.0, visible_planar_defects=["twin"] * 5)
    assert particle_class(mtp, None) == "fault"
    assert particle_class({"source": "mask", "id": 1}) is None


def _separable(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(CLASS_NAMES)[rng.integers(0, 5, n)]
    features = rng.normal(0, 0.3, (n, 5)) + np.array([CLASS_NAMES.index(c) for c in labels])[:, None]
    return features, labels


@pytest.mark.parametrize("method", ["rf", "gbt"])
def test_classifier_learns_and_round_trips(method, tmp_path):
    # with sample weights, boosting on 300 crops grows every tree to full size and takes ten times as long
    features, labels = _separable(200 if method == "gbt" else 300)
    if method == "gbt":
        from nanofind.classify.features import RICH_FEATURES

        features = np.tile(features, (1, len(RICH_FEATURES) // 5 + 1))[:, :len(RICH_FEATURES)]
    classifier = train_classifier(features, labels, method=method, seed=1)
    test_features, test_labels = _separable(seed=2)
    if method == "gbt":
        test_features = np.tile(test_features, (1, features.shape[1] // 5 + 1))[:, :features.shape[1]]
    predicted = np.asarray(CLASS_NAMES)[classifier.predict_proba_features(test_features).argmax(axis=1)]
    assert np.mean(predicted == test_labels) > 0.95
    save_classifier(classifier, tmp_path / "m")
    loaded = load_classifier(tmp_path / "m")
    assert np.allclose(loaded.predict_proba_features(test_features), classifier.predict_proba_features(test_features))
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["task"] == "defect_classification" and card["method"] == method
    assert card["training"]["per_class"] == {c: int(np.sum(labels == c)) for c in CLASS_NAMES}


def test_loading_refuses_other_tasks_untrusted_types_and_junk(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    features, labels = _separable(60)
    save_classifier(train_classifier(features, labels, method="rf"), tmp_path / "ok")
    card = json.loads((tmp_path / "ok" / "card.json").read_text())
    (tmp_path / "ok" / "card.json").write_text(json.dumps({**card, "task": "segmentation"}))
    with pytest.raises(NanofindInputError, match="not for 'defect_classification'"):
        load_classifier(tmp_path / "ok")
    (tmp_path / "ok" / "card.json").write_text(json.dumps(card))
    (tmp_path / "ok" / "classifier.skops").write_bytes(sio.dumps(LogisticRegression().fit(features, labels)))
    with pytest.raises(NanofindInputError, match="holds a LogisticRegression"):
        load_classifier(tmp_path / "ok")
    (tmp_path / "ok" / "classifier.skops").write_bytes(b"not a zip")
    with pytest.raises(NanofindInputError, match="unreadable classifier"):
        load_classifier(tmp_path / "ok")
    with pytest.raises(NanofindInputError, match="not a classifier directory"):
        load_classifier(tmp_path / "missing")


def test_shipped_classifier_loads():
    classifier = load_classifier("default")
    assert classifier.card["classes"] == list(CLASS_NAMES)


def test_population_statistics_match_counts_and_bracket_the_value():
    classes = ["fault"] * 30 + ["no_fault"] * 70 + ["misoriented"] * 100 + ["agglomerate"] * 5 + ["", "empty"]
    stats = population_statistics(classes, seed=3)
    assert stats["counts"] == {"fault": 30, "no_fault": 70, "misoriented": 100, "agglomerate": 5, "empty": 1}
    on_axis, faulted = stats["on_zone_axis_fraction"], stats["faulted_fraction_on_axis"]
    assert on_axis["value"] == 0.5 and on_axis["n"] == 200
    assert faulted["value"] == 0.3 and faulted["n"] == 100
    # binomial standard error of 0.3 at n = 100 is 0.046: the 95 % interval spans about ±0.09
    assert faulted["ci95"][0] < 0.3 < faulted["ci95"][1]
    assert 0.13 < faulted["ci95"][1] - faulted["ci95"][0] < 0.23
    assert population_statistics(classes, seed=3) == stats
    assert population_statistics([])["faulted_fraction_on_axis"] is None


def test_population_fractions_from_probabilities_are_expected_counts():
    # 40 unsure faults (p 0.45 fault, 0.55 no_fault): counting classes calls every one no_fault,
    # expected counts keep 0.45 of each; 60 sure no_faults and 100 sure misoriented particles
    unsure = [0.45, 0.55, 0.0, 0.0, 0.0]
    probabilities = np.array([unsure] * 40 + [[0.0, 1.0, 0.0, 0.0, 0.0]] * 60 + [[0.0, 0.0, 1.0, 0.0, 0.0]] * 100)
    classes = [CLASS_NAMES[k] for k in probabilities.argmax(axis=1)]
    counted = population_statistics(classes, seed=1)["faulted_fraction_on_axis"]
    expected = population_statistics(classes, probabilities, seed=1)
    assert counted["value"] == 0.0
    assert expected["faulted_fraction_on_axis"]["value"] == 0.18  # 40 × 0.45 / 100
    assert expected["faulted_fraction_on_axis"]["n"] == 100
    assert expected["on_zone_axis_fraction"]["value"] == 0.5
    low, high = expected["faulted_fraction_on_axis"]["ci95"]
    assert low < 0.18 < high
    # every particle sure of its class: the two estimators agree
    sure = np.eye(5)[[0] * 30 + [1] * 70 + [2] * 100]
    names = [CLASS_NAMES[k] for k in sure.argmax(axis=1)]
    assert population_statistics(names, sure, seed=2)["faulted_fraction_on_axis"] == \
        population_statistics(names, seed=2)["faulted_fraction_on_axis"]


def test_classify_command_writes_the_csv_and_refuses_bad_input(tmp_path):
    crops = tmp_path / "crops"
    crops.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        tifffile.imwrite(crops / f"c{k}.tif", rng.normal(size=(64, 80)).astype(np.float32))
    out = subprocess.run([sys.executable, "-m", "nanofind", "classify", str(crops), "-o", str(tmp_path / "out"),
                          "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "out" / "classes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["file", "class", "probability", "p_fault", "p_no_fault", "p_misoriented",
                             "p_agglomerate", "p_empty"]
    assert len(rows) == 3
    for row in rows:
        p = [float(row[f"p_{c}"]) for c in CLASS_NAMES]
        assert abs(sum(p) - 1) < 1e-3 and row["class"] == CLASS_NAMES[int(np.argmax(p))]
        assert float(row["probability"]) == max(p)

    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((20, 40), np.float32))
    bad = subprocess.run([sys.executable, "-m", "nanofind", "classify", str(small), "-o", str(tmp_path / "o2")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "at least 32 px" in bad.stderr
    for model in (tmp_path / "nothing", "src/nanofind/learn/default_model"):
        wrong = subprocess.run([sys.executable, "-m", "nanofind", "classify", str(crops), "-o", str(tmp_path / "o3"),
                                "--model", str(model)], capture_output=True, text=True)
        assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr


def test_cnn_classifier_round_trips(tmp_path):
    from nanofind.classify.cnn import crop_channels, train_network
    from nanofind.classify.model import DefectClassifier

    rng = np.random.default_rng(0)
    crops = [rng.normal(size=(rng.integers(40, 150),) * 2).astype(np.float32) for _ in range(10)]
    inputs = np.stack([crop_channels(c) for c in crops])
    assert inputs.shape == (10, 3, 96, 96) and np.isfinite(inputs).all()
    net = train_network(inputs, [CLASS_NAMES[k % 5] for k in range(10)], epochs=1)
    card = {"task": "defect_classification", "method": "cnn", "features": "cnn", "classes": list(CLASS_NAMES)}
    save_classifier(DefectClassifier(net, card), tmp_path / "cnn")
    loaded = load_classifier(tmp_path / "cnn")
    p = loaded.predict_proba(crops)
    assert p.shape == (10, 5) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(p, DefectClassifier(net, card).predict_proba(crops), atol=1e-6)


def test_trees_and_network_mix_their_probabilities(tmp_path):
    """A gbt+cnn classifier gives (1 − w) · trees + w · network, and keeps doing so after a round trip."""
    from nanofind.classify.cnn import crop_channels, train_network
    from nanofind.classify.features import RICH_FEATURES, feature_matrix
    from nanofind.classify.model import DefectClassifier, TreesAndNetwork

    rng = np.random.default_rng(3)
    crops = [rng.normal(size=(int(rng.integers(40, 120)),) * 2).astype(np.float32) for _ in range(10)]
    labels = [CLASS_NAMES[k % 5] for k in range(10)]
    features, separable_labels = _separable(60)
    features = np.tile(features, (1, len(RICH_FEATURES) // 5 + 1))[:, :len(RICH_FEATURES)]
    trees = train_classifier(features, separable_labels, method="gbt", seed=0)
    net = train_network(np.stack([crop_channels(c) for c in crops]), labels, epochs=1)
    card = {**trees.card, "method": "gbt+cnn", "features": "rich+cnn", "network_weight": 0.25}
    mixed = DefectClassifier(TreesAndNetwork(trees.estimator, net, 0.25), card)
    alone_trees = trees.predict_proba_features(feature_matrix(crops, "rich"))
    alone_net = DefectClassifier(net, {"features": "cnn"}).predict_proba(crops)
    assert not np.allclose(alone_trees, alone_net, atol=1e-3)
    p = mixed.predict_proba(crops)
    assert np.allclose(p, 0.75 * alone_trees + 0.25 * alone_net, atol=1e-6)
    assert np.allclose(p.sum(axis=1), 1, atol=1e-5)
    save_classifier(mixed, tmp_path / "mix")
    assert {f.name for f in (tmp_path / "mix").iterdir()} == {"card.json", "classifier.skops",
                                                              "classifier.safetensors"}
    assert np.allclose(load_classifier(tmp_path / "mix").predict_proba(crops), p, atol=1e-6)
    # a share outside 0..1 is refused with one clear error
    card_path = tmp_path / "mix" / "card.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "network_weight": 1.5}))
    with pytest.raises(NanofindInputError, match="network_weight"):
        load_classifier(tmp_path / "mix")
    (tmp_path / "mix" / "classifier.safetensors").unlink()
    with pytest.raises(NanofindInputError, match="unusable network weights"):
        load_classifier(tmp_path / "mix")


def test_training_from_folders_with_trees_and_network(tmp_path, monkeypatch):
    import nanofind.classify.cnn as cnn
    from nanofind.classify.model import TreesAndNetwork
    from nanofind.classify.training import train_from_folders

    monkeypatch.setattr(cnn, "EPOCHS", 1)
    rng = np.random.default_rng(5)
    for k, name in enumerate(("fault", "no_fault", "empty")):
        (tmp_path / "crops" / name).mkdir(parents=True)
        for j in range(4):  # the classes differ in their noise level
            crop = rng.normal(0, 1 + 2 * k, size=(48 + 8 * j,) * 2).astype(np.float32)
            tifffile.imwrite(tmp_path / "crops" / name / f"c{j}.tif", crop)
    card = train_from_folders([str(tmp_path / "crops")], tmp_path / "m", method="gbt+cnn", quiet=True)
    assert card["method"] == "gbt+cnn" and card["features"] == "rich+cnn" and card["training"]["epochs"] == 1
    assert card["training"]["cross_validation"]["of"] == "the trees alone"
    assert card["training"]["per_class"] == {"fault": 4, "no_fault": 4, "misoriented": 0, "agglomerate": 0,
                                             "empty": 4}
    loaded = load_classifier(tmp_path / "m")
    assert isinstance(loaded.estimator, TreesAndNetwork) and loaded.estimator.network_weight == card["network_weight"]


def test_network_gives_the_same_probabilities_in_onnx_runtime_and_pytorch():
    import nanofind.classify.cnn as cnn
    from nanofind.learn.engine import make_runner
    from nanofind.learn.heads import OutputHead

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(130, 3, cnn.INPUT_PX, cnn.INPUT_PX)).astype(np.float32)  # one batch of 128 and 2
    net = cnn.train_network(inputs, [CLASS_NAMES[k % 5] for k in range(len(inputs))], epochs=1)
    head = OutputHead("classification", 0)
    fast = cnn.predict_network(net, inputs, make_runner(net, "fp32", "onnx", head=head))
    plain = cnn.predict_network(net, inputs, make_runner(net, "fp32", "torch", head=head))
    assert fast.shape == (130, 5) and np.allclose(fast.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(fast, plain, atol=1e-5)
    # the default runner is the machine's engine, made once per network
    assert cnn.network_runner(net) is cnn.network_runner(net)


def test_folded_batch_norm_gives_the_network_outputs():
    import torch

    import nanofind.classify.cnn as cnn

    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(40, 3, cnn.INPUT_PX, cnn.INPUT_PX)).astype(np.float32)
    net = cnn.train_network(inputs, [CLASS_NAMES[k % 5] for k in range(len(inputs))], epochs=1)
    folded = cnn.fold_batch_norm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the network itself is untouched
    with torch.no_grad():
        x = torch.from_numpy(inputs)
        assert torch.allclose(folded(x), net(x), atol=1e-4)


_POOL_SCRIPT = """
import os
import time

import numpy as np
from nanofind.classify import crop_pool
from nanofind.classify.cnn import crop_channels
from nanofind.classify.features import rich_features

crop_pool.MIN_CROPS = 16
rng = np.random.default_rng(4)
crops = [rng.normal(size=(int(rng.integers(32, 90)),) * 2) for _ in range(21)]
here = crop_pool.map_crops(rich_features, crops, workers=1)
away = crop_pool.map_crops(rich_features, crops, workers=2)
channels = crop_pool.map_crops(crop_channels, crops, workers=2)
assert len(away) == len(crops)
assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(here, away, strict=True))
assert np.array_equal(np.stack(channels), np.stack([crop_channels(c) for c in crops]))
def process_of(crop):
    return os.getpid()
print("crop processes:", len(set(crop_pool.map_crops(process_of, crops, workers=2)) - {os.getpid()}))

CALLER = os.getpid()
def stuck_away(crop):
    if os.getpid() != CALLER:
        time.sleep(60)
    return crop.shape
crop_pool.TASK_TIMEOUT_S = 1.0
start = time.monotonic()
assert crop_pool.map_crops(stuck_away, crops, workers=2) == [c.shape for c in crops]
assert time.monotonic() - start < 30, "a stuck worker held the batch"
"""


def test_crop_work_on_worker_processes_gives_the_same_rows_in_order(monkeypatch):
    """Run in a fresh interpreter: the pool's processes never live inside the test process (conftest
    turns the pool off there), and a stuck pool fails this test instead of stalling the run."""
    from nanofind.classify import crop_pool

    env = {k: v for k, v in os.environ.items() if k != crop_pool.WORKERS_ENV}
    done = subprocess.run([sys.executable, "-c", _POOL_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    others = int(done.stdout.rsplit("crop processes:", 1)[1])
    assert 1 <= others <= 2  # the rows came from worker processes, not the calling one
    monkeypatch.setenv(crop_pool.WORKERS_ENV, "1")
    assert crop_pool.crop_workers() == 1
    monkeypatch.setenv(crop_pool.WORKERS_ENV, "3")
    assert crop_pool.crop_workers() == 3


def test_classify_in_blocks_gives_the_one_call_numbers(monkeypatch):
    from nanofind.classify import command

    class Counting:
        """A stand-in whose probabilities depend on each crop alone, counting its calls."""

        calls = 0

        def predict_proba(self, crops):
            self.calls += 1
            means = np.array([c.mean() for c in crops]).reshape(-1, 1)
            return np.hstack([means, 1 - means])

    rng = np.random.default_rng(0)
    crops = [rng.uniform(size=(4, 4)) for _ in range(23)]
    monkeypatch.setattr(command, "PREDICT_BLOCK", 5)
    model = Counting()
    blocks = command._predict_in_blocks(model, crops, quiet=True)
    assert model.calls == 5 and np.array_equal(blocks, Counting().predict_proba(crops))
