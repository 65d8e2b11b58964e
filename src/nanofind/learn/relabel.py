"""Relabelling rounds: a network's own answers replace the labels it was given (self-training).

Method ``relabel`` of :func:`nanofind.learn.noisy_labels.train_noisy`:

1. A first network trains as ``two-step`` when a clean set is given, else as ``standard``.
2. Each of :attr:`~nanofind.learn.noisy_labels.NoisyTrainingSettings.relabel_rounds` rounds takes
   that network's predicted classes for all items as their labels (the clean items, when given, are
   added with their checked labels), and a fresh network of the same kind trains on them as
   ``standard`` for :func:`relabel_round_epochs` epochs (by default one round, as long as the first
   network's noisy stage).

Why: at high label error a network learns far more than its labels say. After two-step at 40 %
wrong labels (mirror-odd network, chiral set) its own answers on the training items were wrong for
only 5.6–7.3 % of them; a fresh network trained on those answers scored 0.94–0.96 on clean test
images where the first scored 0.90–0.94, and a second round 0.95–0.97 (docs/benchmarks.md). This
is the iterative relabelling of Tanaka et al. (CVPR 2018) and Reed et al.'s hard bootstrapping
(2015) taken to its end: the given labels are not mixed back in. Mixing them in by Bayes' rule with
the noise rate, tried too, made the answers wrong for 28–37 % of the items, because the first
network, trained on those very labels, already leans toward them.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np


def relabel_round_epochs(settings) -> int:
    """Epochs of each round: ``relabel_epoch_factor · epochs``, but at least 10 (or ``epochs`` when fewer).

    A fresh network needs about 10 epochs to learn anything here (on clean labels the chiral set
    reached 0.9 after 9); shorter rounds left it below the network it replaced, and on a held-out
    chiral set even rounds of 0.6 × epochs did (docs/benchmarks.md).
    """
    return max(round(settings.relabel_epoch_factor * settings.epochs), min(settings.epochs, 10), 1)


def train_relabel(images: np.ndarray, labels: np.ndarray, n_classes: int, *, settings, clean_images=None,
                  clean_labels=None, groups=None, progress=None):
    """Method ``relabel``; arguments as :func:`nanofind.learn.noisy_labels.train_noisy`.

    Returns a ``NoisyTrainingResult`` of the last round's network, whose ``rounds`` lists per round
    the method, the share of labels changed from the given ones and from the previous round's, and
    whose ``round_networks`` holds each round's networks (round 0: the first network).
    """
    from nanofind.learn.noisy_labels import predict_proba, train_noisy

    start = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    has_clean = clean_images is not None and len(clean_images) > 0
    first = "two-step" if has_clean else "standard"
    fit = train_noisy(images, labels, n_classes, settings=replace(settings, method=first), groups=groups,
                      clean_images=clean_images, clean_labels=clean_labels, progress=progress)
    history = [{**h, "round": 0} for h in fit.history]
    rounds = [{"round": 0, "method": first, "changed_from_given": 0.0, "changed_from_previous": 0.0,
               "restarts": fit.restarts}]
    round_networks = [fit.networks]
    current = labels
    round_groups = None if groups is None else np.asarray(groups).astype(str)
    x, extra_y = images, np.zeros(0, np.int64)
    if has_clean:
        x = np.concatenate([images, np.asarray(clean_images, dtype=np.float32)])
        extra_y = np.asarray(clean_labels, dtype=np.int64)
        if round_groups is not None:  # each clean item its own group, apart from every noisy one
            round_groups = np.r_[round_groups, [f"\0clean {k}" for k in range(len(extra_y))]]
    round_epochs = relabel_round_epochs(settings)
    for k in range(1, settings.relabel_rounds + 1):
        answers = predict_proba(fit.networks, images).argmax(1)
        rounds.append({"round": k, "method": "standard", "epochs": round_epochs,
                       "changed_from_given": round(float(np.mean(answers != labels)), 4),
                       "changed_from_previous": round(float(np.mean(answers != current)), 4)})
        current = answers
        fit = train_noisy(x, np.r_[answers, extra_y], n_classes, groups=round_groups, progress=progress,
                          settings=replace(settings, method="standard", epochs=round_epochs,
                                           seed=settings.seed + 7919 * k))
        history += [{**h, "round": k} for h in fit.history]
        rounds[-1]["restarts"] = fit.restarts
        round_networks.append(fit.networks)
    fit.restarts = sum(r["restarts"] for r in rounds)
    fit.settings, fit.history = settings, history
    fit.rounds, fit.round_networks = rounds, round_networks
    fit.clean_stage_items = 0 if not has_clean else len(clean_labels)
    fit.seconds = time.perf_counter() - start
    return fit
