"""Label-noise-robust training (seed 004, ch. 5) on a tiny problem with known wrong labels (discs and rings)."""

import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.learn.noisy_labels import (
    NoisyTrainingSettings,
    affine_matrices,
    build_network,
    estimate_noise_rate,
    forget_rate,
    predict_proba,
    small_loss_indices,
    train_noisy,
)

SIDE = 24


def _shape(kind: int, rng) -> np.ndarray:
    """A noisy disc (kind 0) or ring (kind 1) at a random place and size: classes any rotation keeps."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    radius = rng.uniform(5, 8)
    cy, cx = rng.uniform(radius, SIDE - radius, 2)
    r = np.hypot(yy - cy, xx - cx)
    body = (r < radius) & ((r > radius - 2.5) if kind else True)
    return (rng.normal(0, 0.5, (SIDE, SIDE)) + 1.5 * body).astype(np.float32)


def noisy_set(n: int, wrong_fraction: float, seed: int):
    """n images, half of each class; exactly round(wrong_fraction · n) labels flipped."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    labels = truth.copy()
    flip = rng.permutation(n)[:round(wrong_fraction * n)]
    labels[flip] = 1 - labels[flip]
    return np.stack([_shape(t, rng) for t in truth]), labels, truth


def test_forget_rate_ramps_to_the_noise_rate():
    assert forget_rate(0, 0.3, 10) == 0.0
    assert forget_rate(5, 0.3, 10) == pytest.approx(0.15)
    assert forget_rate(10, 0.3, 10) == forget_rate(40, 0.3, 10) == pytest.approx(0.3)


def test_small_loss_selection_keeps_the_fraction_within_each_class():
    import torch

    losses = torch.tensor([0.1, 5.0, 0.2, 0.3, 9.0, 8.0, 7.0, 0.4])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert sorted(small_loss_indices(losses, 0.5).tolist()) == [0, 2, 3, 7]  # the whole batch: class 1 crowded out
    assert sorted(small_loss_indices(losses, 0.5, labels).tolist()) == [0, 2, 6, 7]


def test_augmentation_never_mirrors():
    for any_angle in (True, False):
        m = affine_matrices(500, np.random.default_rng(0), any_angle=any_angle)
        assert np.all(np.linalg.det(m[:, :, :2]) > 0)  # a reflection would swap a handedness label


def test_augmentation_turns_by_any_angle_or_by_quarter_turns():
    def angles_deg(any_angle):
        m = affine_matrices(2000, np.random.default_rng(1), zoom=0.0, shear=0.0, any_angle=any_angle)
        return np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])) % 360

    quarter = angles_deg(False)
    off_quarter = np.abs((quarter + 45) % 90 - 45)  # distance to the nearest quarter turn
    assert off_quarter.max() <= 5.0 + 1e-4
    anywhere = angles_deg(True)
    assert np.histogram(anywhere, bins=8, range=(0, 360))[0].min() > 2000 / 8 * 0.8  # uniform over the circle
    assert np.mean(np.abs((anywhere + 45) % 90 - 45) > 10) > 0.7


def test_coteaching_drops_wrong_labels_more_often_than_right_ones():
    images, labels, truth = noisy_set(400, 0.3, seed=1)
    settings = NoisyTrainingSettings(method="coteaching", epochs=10, ramp_epochs=3, noise_rate=0.3, batch_size=32,
                                     learning_rate=2e-3)
    fit = train_noisy(images, labels, 2, settings=settings)
    wrong = (labels != truth) & (fit.offered > 0)
    right = (labels == truth) & (fit.offered > 0)
    drop_wrong = 1 - fit.kept[wrong].sum() / fit.offered[wrong].sum()
    drop_right = 1 - fit.kept[right].sum() / fit.offered[right].sum()
    assert drop_wrong > drop_right + 0.15, (drop_wrong, drop_right)
    test_images, _, test_truth = noisy_set(100, 0.0, seed=99)
    accuracy = np.mean(predict_proba(fit.networks, test_images).argmax(1) == test_truth)
    assert accuracy > 0.8


def test_two_step_first_stage_learns_from_the_clean_set_only():
    # every noisy label is wrong: only the clean set can teach the right classes, and one noisy
    # epoch at a small learning rate cannot undo them
    images, labels, truth = noisy_set(100, 1.0, seed=2)
    clean, _, clean_truth = noisy_set(20, 0.0, seed=3)
    settings = NoisyTrainingSettings(method="two-step", epochs=1, clean_epochs=10, learning_rate=1e-3,
                                     validation_fraction=0.0)
    fit = train_noisy(images, labels, 2, settings=settings, clean_images=clean, clean_labels=clean_truth)
    assert fit.clean_stage_items == 20
    assert [h["stage"] for h in fit.history] == ["clean"] * 10 + ["noisy"]
    test_images, _, test_truth = noisy_set(100, 0.0, seed=98)
    assert np.mean(predict_proba(fit.networks, test_images).argmax(1) == test_truth) > 0.8
    with pytest.raises(Exception, match="clean set"):
        train_noisy(images, labels, 2, settings=settings)


@pytest.mark.parametrize("wrong_fraction", [0.1, 0.3])
def test_noise_rate_estimate_is_within_a_tenth(wrong_fraction):
    images, labels, truth = noisy_set(400, wrong_fraction, seed=4)
    rate, details = estimate_noise_rate(images, labels, 2, settings=NoisyTrainingSettings(epochs=10, batch_size=32))
    assert abs(rate - np.mean(labels != truth)) <= 0.1, (rate, details)


def test_default_epochs_follow_the_images_seen_within_bounds():
    from nanofind.learn.noisy_labels import DEFAULT_EPOCH_RANGE, DEFAULT_IMAGES_SEEN, default_epochs

    assert default_epochs(1800) * 1800 >= DEFAULT_IMAGES_SEEN > (default_epochs(1800) - 1) * 1800
    assert default_epochs(10) == DEFAULT_EPOCH_RANGE[1]  # a tiny set is not trained for ever
    assert default_epochs(10**6) == DEFAULT_EPOCH_RANGE[0]  # a large one still gets the seed-like minimum
    epochs = [default_epochs(n) for n in (50, 500, 900, 1800, 3600, 7200, 20000)]
    assert epochs == sorted(epochs, reverse=True)


def _hooked_bar(rng) -> np.ndarray:
    """A right-handed shape: a bar with a hook at one end, at a random quarter turn and place."""
    image = rng.normal(0, 0.4, (SIDE, SIDE))
    top, left = rng.integers(3, 8, 2)
    image[top:top + 12, left:left + 3] += 1.5  # the bar
    image[top:top + 3, left + 3:left + 9] += 1.5  # the hook, to the right at the top
    return np.rot90(image, rng.integers(4)).astype(np.float32)


def test_mirror_odd_network_gives_a_mirror_image_the_opposite_answer():
    import torch

    net = build_network(2, SIDE, mirror_odd=True).eval()
    x = torch.randn(6, 1, SIDE, SIDE)
    with torch.no_grad():
        p = torch.softmax(net(x), 1)
        mirrored = torch.softmax(net(torch.flip(x, dims=(3,))), 1)
        symmetric = torch.softmax(net(x + torch.flip(x, dims=(3,))), 1)  # its own mirror: no hand
    assert torch.allclose(mirrored, p.flip(1), atol=1e-6)
    assert torch.allclose(symmetric, torch.full((6, 2), 0.5), atol=1e-6)
    with pytest.raises(NanofindInputError, match="exactly two classes"):
        build_network(3, SIDE, mirror_odd=True)


def test_network_has_one_block_per_channel_entry_and_the_seeds_layout_for_two():
    import torch
    import torch.nn as nn

    from nanofind.learn.noisy_labels import chapter5_network

    seed_net = chapter5_network(2, 32, channels=(16, 32))
    deeper = chapter5_network(2, 32, channels=(16, 32, 64))
    for net, blocks in ((seed_net, 2), (deeper, 3)):
        assert sum(isinstance(m, nn.Conv2d) for m in net) == blocks
        assert sum(isinstance(m, nn.MaxPool2d) for m in net) == blocks
        assert net(torch.zeros(3, 1, 32, 32)).shape == (3, 2)
    # the seed's network keeps its average pooling and the layer order of models already saved
    assert any(isinstance(m, nn.AvgPool2d) for m in seed_net)
    assert not any(isinstance(m, nn.AvgPool2d) for m in deeper)
    assert [k for k in seed_net.state_dict() if k.endswith("weight")] == ["0.weight", "3.weight", "8.weight",
                                                                           "11.weight"]
    # the dense layer sees a 4 x 4 map at 32 px either way: 32 and 64 channels of it
    assert seed_net[8].in_features == 32 * 16 and deeper[10].in_features == 64 * 16
    with pytest.raises(ValueError, match="divisible by 16"):
        chapter5_network(2, 24, channels=(8, 8, 8, 8))


def _hands(n: int, left_share: float, seed: int):
    """Mirror labelling of n hooked bars, ``left_share`` of them truly left-handed: images, labels, truth, groups."""
    rng = np.random.default_rng(seed)
    originals = np.stack([_hooked_bar(rng) for _ in range(n)])
    left = rng.permutation(n)[:round(left_share * n)]
    originals[left] = originals[left][:, :, ::-1]
    images = np.concatenate([originals, originals[:, :, ::-1]])
    labels = np.r_[np.zeros(n, int), np.ones(n, int)]
    truth = labels.copy()
    truth[left], truth[n + left] = 1, 0
    return images, labels, truth, np.r_[np.arange(n), np.arange(n)]


def test_mirror_odd_network_learns_a_hand_through_thirty_percent_wrong_labels():
    # the left-handed originals' labels, and their mirrors', are wrong (the seed's plain network
    # stayed at 0.51 here after 30 epochs of 150 originals)
    rng = np.random.default_rng(6)
    n = 300
    images, labels, truth, groups = _hands(n, 0.3, seed=5)
    settings = NoisyTrainingSettings(method="standard", epochs=15, batch_size=32, mirror_odd=True)
    fit = train_noisy(images, labels, 2, settings=settings, groups=groups)
    assert fit.best_epoch == settings.epochs - 1  # a mirror-odd network keeps its last epoch
    test = np.stack([_hooked_bar(rng) for _ in range(60)])
    test_images, test_truth = np.concatenate([test, test[:, :, ::-1]]), np.r_[np.zeros(60, int), np.ones(60, int)]
    assert np.mean(labels != truth) == pytest.approx(0.3)
    assert np.mean(predict_proba(fit.networks, test_images).argmax(1) == test_truth) >= 0.8  # 0.88 measured


def test_relabel_rounds_train_fresh_networks_on_answers_that_undo_the_wrong_labels():
    images, labels, truth, groups = _hands(300, 0.3, seed=5)
    settings = NoisyTrainingSettings(method="relabel", epochs=15, batch_size=32, mirror_odd=True, relabel_rounds=2)
    fit = train_noisy(images, labels, 2, settings=settings, groups=groups)
    assert [r["round"] for r in fit.rounds] == [0, 1, 2] and fit.rounds[0]["method"] == "standard"  # no clean set
    assert len(fit.round_networks) == 3 and fit.networks is fit.round_networks[-1]
    assert fit.round_networks[1][0] is not fit.round_networks[0][0]  # each round a fresh network
    assert len(fit.history) == settings.total_epochs == 15 + 2 * 15  # rounds as long as the first network
    # the first network's answers differ from the given labels where those are wrong
    answers = predict_proba(fit.round_networks[0], images).argmax(1)
    assert fit.rounds[1]["changed_from_given"] == pytest.approx(np.mean(answers != labels), abs=1e-4)
    assert np.mean(answers != truth) < 0.2 < 0.3 == pytest.approx(np.mean(labels != truth))


def test_a_dead_network_answers_nothing_and_is_trained_again_with_a_new_seed(monkeypatch):
    import torch

    import nanofind.learn.noisy_labels as noisy_labels

    images, labels, _ = noisy_set(24, 0.0, 3)
    alive = build_network(2, SIDE)
    dead = build_network(2, SIDE)
    with torch.no_grad():  # every unit after the last ReLU silenced: the same logits for any image
        dead[-1].weight.zero_()
    assert noisy_labels.answers_nothing([dead], images)
    assert not noisy_labels.answers_nothing([alive], images)
    assert noisy_labels.answers_nothing([alive, dead], images)  # co-teaching: either network
    nearly_dead = build_network(2, SIDE)
    with torch.no_grad():  # a few units alive, but too weakly to change any answer
        nearly_dead[-1].weight.mul_(1e-4)
    logits = nearly_dead.eval()(torch.from_numpy(images[:, None].astype(np.float32))).detach().numpy()
    assert np.ptp(logits[:, 1] - logits[:, 0]) > 0  # not exactly constant
    assert noisy_labels.answers_nothing([nearly_dead], images)
    same_for_every_class = build_network(2, SIDE)
    with torch.no_grad():  # both classes' logits move together: the softmax never changes
        same_for_every_class[-1].weight[1] = same_for_every_class[-1].weight[0]
    assert noisy_labels.answers_nothing([same_for_every_class], images)

    seeds = []

    def train_once(images, labels, n_classes, settings, *rest):
        seeds.append(settings.seed)
        return noisy_labels.NoisyTrainingResult([dead if len(seeds) < 2 else alive], settings)

    monkeypatch.setattr(noisy_labels, "_train_once", train_once)
    fit = train_noisy(images, labels, 2, settings=NoisyTrainingSettings(method="standard", seed=5))
    assert fit.restarts == 1 and fit.networks == [alive]
    assert seeds[0] == 5 and seeds[1] != 5
    seeds.clear()

    def always_dead(images, labels, n_classes, settings, *rest):
        seeds.append(settings.seed)
        return noisy_labels.NoisyTrainingResult([dead], settings)

    monkeypatch.setattr(noisy_labels, "_train_once", always_dead)
    fit = train_noisy(images, labels, 2, settings=NoisyTrainingSettings(method="standard"))
    assert fit.restarts == noisy_labels.MAX_RESTARTS and len(set(seeds)) == noisy_labels.MAX_RESTARTS + 1
