"""Score a model and the classical baselines on labelled data.

Writes into the output directory: ``summary.json`` (pooled Dice, IoU, precision, recall, pixel
accuracy, empty-field false-positive fraction and the confusion matrix per method), ``per_image.csv``
(one row per image and method) and ``pr_curve.png`` (the model's precision–recall curve against
threshold, with the baselines as points).

Particle-level scores (:mod:`nanofind.segment.particle_metrics`): every method's mask is cleaned and
split into particles as ``nanofind analyze`` does (for images without a pixel size, with the px
clean-up scaled to the particle size measured for the model choice), and matched one to one with the true particles
(IoU > 0.5): particle precision, recall, F1 and count error per field, and for the model the recall
broken down by dose, Cs, zone axis and size. True particles are the instance map of datasets of
format 2, else the watershed-split true mask.

With :class:`ShippedChoice` as the model (``nanofind evaluate --model auto``), each image is
segmented by the shipped model ``nanofind analyze --model auto`` would pick for it, at the same
resampling, so the scores are those of the analysis as users run it; ``per_image.csv`` and the
summary name the model of every image.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nanofind._files import atomic_path, write_text_atomic
from nanofind._progress import ProgressBar
from nanofind.analyze.measure import CleaningSettings, cleaning_for_particles, find_particles, split_particles
from nanofind.learn.card import ModelCard
from nanofind.learn.data import LabelledImage
from nanofind.learn.metrics import (
    confusion,
    plot_pr_curve,
    pooled_scores,
    pooled_scores_by_domain,
    precision_recall_curve,
    scores,
    sum_confusions,
)
from nanofind.learn.scale_guard import plan_scale
from nanofind.segment.baselines import BASELINES
from nanofind.segment.inference import predict_probability
from nanofind.segment.model_choice import AUTO, choose_model, content_zoom
from nanofind.segment.outline import outline_mask
from nanofind.segment.particle_metrics import particle_conditions, particle_counts, particle_scores, recall_by


class ShippedChoice:
    """The shipped models, each image given the one ``--model auto`` picks (loaded once, when first picked).

    ``precision`` and ``backend`` as for :func:`nanofind.learn.engine.load_runner`.
    """

    def __init__(self, precision: str = "auto", backend: str = "auto"):
        self.precision, self.backend = precision, backend
        self.runners: dict[str, tuple] = {}

    def __call__(self, raw: np.ndarray, pixel_size_A: float | None):
        """(runner, card, scale plan, model name, particle-scale record or None) for one image.

        ``raw`` is 2D (rows along y); ``pixel_size_A`` in Å, or None.
        """
        from nanofind.learn.engine import load_runner

        cards = {name: card for name, (_, card) in self.runners.items()}
        decision = choose_model(raw, pixel_size_A, AUTO, cards)
        if decision.model not in self.runners:
            self.runners[decision.model] = load_runner(decision.model, self.precision, self.backend)
        runner, card = self.runners[decision.model]
        plan = plan_scale(np.shape(raw), pixel_size_A, card, wanted_zoom=decision.wanted_zoom)
        return runner, card, plan, decision.model, decision.particle_scale


def evaluate(model, card: ModelCard | None, items: list[LabelledImage], out_dir: str | Path, baselines: bool = True,
             progress: bool = True, tta: bool = False) -> dict:
    """Segment every image with the model (at the card's threshold) and the baselines; score them.

    ``model`` is a network (run in PyTorch fp32) or a runner (:func:`nanofind.learn.engine.make_runner`),
    whose engine the summary records, or a :class:`ShippedChoice` (``card`` None): the model
    ``--model auto`` picks for each image. ``tta`` averages the model over mirror images, as
    ``segment --tta`` and ``analyze --tta`` do.

    ``items`` must keep their raw images (``keep_raw=True`` when loading). Returns the summary.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = ["model"] + (list(BASELINES) if baselines else [])
    confs: dict[str, list[dict]] = {m: [] for m in methods}
    counts: dict[str, list[dict]] = {m: [] for m in methods}
    model_found: list[tuple[dict, bool]] = []
    probs, rows, thresholds, used = [], [], {}, []
    with ProgressBar("evaluating", len(items), enabled=progress) as bar:
        for item in items:
            raw = item.raw if item.raw is not None else item.image
            if isinstance(model, ShippedChoice):
                runner, card, plan, chosen, scale = model(raw, item.pixel_size_A)
            else:  # a bright-field model: resampled by its particles, as analyze does
                zoom, scale, _ = content_zoom(raw, card)
                runner, chosen = model, None
                plan = plan_scale(np.shape(raw), item.pixel_size_A, card, wanted_zoom=zoom)
            # the px clean-up (used only without a pixel size) follows the particle scale measured for the choice
            cleaning = cleaning_for_particles(CleaningSettings(), (scale or {}).get("diameter_px"))
            if chosen:
                thresholds[chosen] = float(card.threshold)
            used.append(chosen)
            prob = predict_probability(runner, card, raw, item.pixel_size_A, tta=tta, plan=plan)
            probs.append(prob)
            truth = item.mask > 0
            masks = {"model": outline_mask(card, prob, raw)}
            for name in methods[1:]:
                masks[name] = BASELINES[name](raw, item.pixel_size_A)
            true_particles = _true_particles(item)
            records = {r.get("id"): r for r in item.particles or []}
            for name, mask in masks.items():
                c = confusion(mask, truth)
                confs[name].append(c)
                found = particle_counts(find_particles(mask, item.pixel_size_A, cleaning), true_particles)
                counts[name].append(found)
                if name == "model":
                    model_found += [(particle_conditions(item.params, records.get(t)), hit)
                                    for t, hit in found["found"].items()]
                rows.append({"image": item.source, "domain": item.domain, "method": name,
                             **({"shipped_model": used[-1]} if used[-1] else {}),
                             "particle_fraction": round(float(truth.mean()), 5), **c,
                             **{k: round(v, 5) for k, v in scores(**c).items()},
                             "true_particles": found["true"], "found_particles": found["predicted"],
                             "matched_particles": found["matched"]})
            bar.advance()
    curve = precision_recall_curve(probs, [x.mask > 0 for x in items])
    summary: dict = {"images": len(items)}
    if isinstance(model, ShippedChoice):
        summary.update(model=AUTO, model_threshold=thresholds,
                       images_by_model={m: used.count(m) for m in sorted(set(used))})
    else:
        summary["model_threshold"] = float(card.threshold)
        if card.hysteresis_low is not None:
            summary["model_hysteresis_low"] = card.hysteresis_low
    if tta:
        summary["tta"] = True
    summary["methods"] = {}
    if hasattr(model, "engine"):
        summary["engine"] = model.engine.record()
    elif isinstance(model, ShippedChoice):
        summary["engine"] = {name: runner.engine.record() for name, (runner, _) in model.runners.items()}
    empty = [k for k, x in enumerate(items) if not x.mask.any()]
    for name in methods:
        pooled = pooled_scores(confs[name])
        entry = {k: round(v, 5) for k, v in pooled.items()}
        entry["confusion"] = sum_confusions(confs[name])
        if empty:
            entry["empty_fields"] = len(empty)
            entry["empty_field_false_positive_fraction"] = round(
                float(np.mean([confs[name][k]["fp"] / items[k].mask.size for k in empty])), 5)
        by_domain = pooled_scores_by_domain(confs[name], [x.domain for x in items])
        if len(by_domain) > 1:
            entry.update({f"dice_{d}": round(s["dice"], 5) for d, s in by_domain.items()})
        entry["particles"] = particle_scores(counts[name])
        summary["methods"][name] = entry
    summary["model_particle_recall_by"] = recall_by(model_found)
    points = {name: (summary["methods"][name]["precision"], summary["methods"][name]["recall"])
              for name in methods[1:]}
    plot_pr_curve({"model": curve, **points}, out / "pr_curve.png", title="Precision and recall")
    with atomic_path(out / "per_image.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _true_particles(item: LabelledImage) -> np.ndarray:
    """The true particles: the dataset's instance map, else the true mask split as analysis splits it."""
    if item.instance is not None:
        return np.asarray(item.instance)
    return split_particles(item.mask > 0, CleaningSettings().split_depth)
