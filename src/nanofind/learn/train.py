"""Training and fine-tuning of segmentation networks.

One epoch is ``steps_per_epoch`` batches of augmented random crops; crops come from simulated and
real images in a set proportion (``real_fraction``), which is how one model keeps both domains:
fine-tuning on real images alone makes a network forget HRTEM lattice contrast. After each epoch
the whole validation images are segmented and pooled Dice and IoU (per domain, too) are logged to
``history.csv`` and ``learning_curve.png``; a checkpoint is written, so ``resume`` continues from
the last finished epoch with the same result as an uninterrupted run (each epoch's randomness is
seeded from ``(seed, epoch)``). Training stops early when the validation loss has not improved by
``min_delta`` for ``patience`` epochs. The best epoch's weights are kept, and the decision
threshold is the one that maximises pooled Dice on the validation images (precision and recall
against threshold, seed 004 appendix B).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from nanofind._files import atomic_path, write_text_atomic
from nanofind._progress import ProgressBar
from nanofind._version import __version__
from nanofind.errors import NanofindInputError
from nanofind.learn.augment import Augmentation, random_crops
from nanofind.learn.card import ModelCard, TrainingRecord
from nanofind.learn.data import LabelledImage, describe
from nanofind.learn.engine import Engine, TorchRunner, choose_engine
from nanofind.learn.losses import SegmentationLoss
from nanofind.learn.metrics import (
    best_threshold,
    confusion,
    plot_pr_curve,
    pooled_scores,
    pooled_scores_by_domain,
    precision_recall_curve,
)
from nanofind.learn.model_file import load_model, save_model
from nanofind.learn.preprocess import STANDARD_NORMALISATION
from nanofind.segment.inference import predict_normalised

CHECKPOINT = "checkpoint"
#: bright-field models refine the outlines of particles smaller than this (px; :mod:`nanofind.segment.outline`):
#: on real micrographs resampled to 8-37 px particles it raised pixel Dice by 0.01-0.07, at 46 px and larger it
#: lowered it by 0.005-0.014 (docs/benchmarks.md, "Outline refinement")
BRIGHT_FIELD_REFINE_BELOW_PX = 40.0
HISTORY = "history.csv"


class TrainConfig(BaseModel):
    """Everything that defines a training run (stored in the model card)."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = "unet"
    options: dict = Field(default_factory=dict)
    loss: Literal["ce", "dice_ce", "weighted_ce"] = "dice_ce"
    learning_rate: float = Field(default=1e-3, gt=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    batch_size: int = Field(default=8, ge=1)
    crop_px: int = Field(default=256, ge=32)
    max_epochs: int = Field(default=30, ge=1)
    steps_per_epoch: int = Field(default=100, ge=1)
    patience: int = Field(default=4, ge=1)
    min_delta: float = Field(default=0.001, ge=0)
    seed: int = Field(default=0, ge=0)
    real_fraction: float | None = Field(default=None, ge=0, le=1)
    augmentation: Augmentation = Field(default_factory=Augmentation)
    max_minutes: float | None = Field(default=None, gt=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  #: auto: bf16 on CPUs with native bf16, else fp32
    init: str | None = None
    #: the micrographs the model is for (recorded in its card; ``bright_field`` cards also get the particle
    #: diameters they were trained on, which ``--model auto`` resamples images towards)
    imaging: Literal["hrtem", "bright_field"] | None = None


#: Where the cosine schedule ends, as a fraction of the initial learning rate.
COSINE_FLOOR = 0.05


def learning_rate_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (1-based), in Adam's units.

    Constant, or a cosine from the initial rate down to :data:`COSINE_FLOOR` of it at
    ``max_epochs``; a function of the epoch alone, so a resumed run repeats it.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    progress = (epoch - 1) / max(1, config.max_epochs - 1)
    return config.learning_rate * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + np.cos(np.pi * progress)))


def _history_row(epoch, loss, val, seconds) -> dict:
    row = {"epoch": epoch, "train_loss": round(loss, 5), "val_loss": round(val["loss"], 5),
           "val_dice": round(val["dice"], 5), "val_iou": round(val["iou"], 5), "seconds": round(seconds, 1)}
    for domain, s in val["domains"].items():
        row[f"val_dice_{domain}"] = round(s["dice"], 5)
    return row


def _sampling_probabilities(items: list[LabelledImage], real_fraction: float | None) -> np.ndarray:
    """Per-image probability of being cropped: by area, with the real share set when asked."""
    area = np.array([x.image.size for x in items], float)
    p = area / area.sum()
    real = np.array([x.domain == "real" for x in items])
    if real_fraction is not None and real.any() and (~real).any():
        p[real] *= real_fraction / p[real].sum()
        p[~real] *= (1 - real_fraction) / p[~real].sum()
    return p / p.sum()


def training_step(model, optimizer, loss_fn, images: torch.Tensor, masks: torch.Tensor, bf16: bool) -> float:
    """One optimiser step on a batch (under bf16 autocast with channels-last memory when ``bf16``); the loss."""
    memory_format = torch.channels_last if bf16 else torch.contiguous_format
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(images.contiguous(memory_format=memory_format))
    loss = loss_fn(logits.float(), masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def evaluate_items(model, items: list[LabelledImage], loss_fn, engine: Engine) -> tuple[dict, list[np.ndarray]]:
    """Validation loss, pooled scores at 0.5 (overall and per domain), and the probabilities."""
    probs, confs, losses = [], [], []
    runner = TorchRunner(model, engine)
    with torch.inference_mode():
        for item in items:
            prob = predict_normalised(runner, item.image)
            probs.append(prob)
            confs.append(confusion(prob >= 0.5, item.mask > 0))
            p = torch.from_numpy(np.stack([1 - prob, prob]))[None].clamp(1e-6, 1 - 1e-6)
            losses.append(float(loss_fn(torch.log(p), torch.from_numpy(item.mask.astype(np.int64))[None])))
    out = {"loss": float(np.mean(losses)), **pooled_scores(confs),
           "domains": pooled_scores_by_domain(confs, [x.domain for x in items])}
    return out, probs


def _plot_history(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    ax1.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in rows], "s-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax1.legend()
    for key, label in (("val_dice", "Dice"), ("val_iou", "IoU"), ("val_dice_simulated", "Dice, simulated"),
                       ("val_dice_real", "Dice, real")):
        if key in rows[0]:
            ax2.plot(epochs, [r[key] for r in rows], "o-", label=label)
    ax2.set(xlabel="epoch", ylabel="score", title="Validation", ylim=(0, 1))
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _save_checkpoint(out: Path, model, optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    scalars = {}
    for pid, s in optimizer.state_dict()["state"].items():
        for name, value in s.items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"optim.{pid}.{name}"] = value.contiguous()
            else:
                scalars[f"{pid}.{name}"] = float(value)
    ckpt = out / CHECKPOINT
    ckpt.mkdir(parents=True, exist_ok=True)
    with atomic_path(ckpt / "state.safetensors") as tmp:
        save_file(tensors, str(tmp))
    if state.get("best_state") is not None:
        with atomic_path(ckpt / "best.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in state["best_state"].items()}, str(tmp))
    record = {k: v for k, v in state.items() if k != "best_state"}
    write_text_atomic(ckpt / "state.json", json.dumps({**record, "optimizer_scalars": scalars}, indent=1))


def _load_checkpoint(out: Path, model, optimizer) -> dict:
    from safetensors.torch import load_file

    ckpt = out / CHECKPOINT
    state = json.loads((ckpt / "state.json").read_text())
    tensors = load_file(str(ckpt / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state = optimizer.state_dict()
    restored = {}
    for pid in opt_state["param_groups"][0]["params"]:
        s = {name.split(".", 2)[2]: v for name, v in tensors.items() if name.startswith(f"optim.{pid}.")}
        for key, value in state["optimizer_scalars"].items():
            p, name = key.split(".", 1)
            if int(p) == pid:
                s[name] = torch.tensor(value)
        if s:
            restored[pid] = s
    opt_state["state"] = restored
    optimizer.load_state_dict(opt_state)
    best = ckpt / "best.safetensors"
    state["best_state"] = load_file(str(best)) if best.is_file() else None
    return state


def train(config: TrainConfig, train_items: list[LabelledImage], val_items: list[LabelledImage], out_dir: str | Path,
          resume: bool = False, progress: bool = True, sources: list[str] | None = None,
          split: dict | None = None) -> ModelCard:
    """Train (or fine-tune, with ``config.init``) a network and write a model directory.

    Parameters
    ----------
    config : TrainConfig
        Architecture, loss, schedule, augmentation and seed.
    train_items, val_items : list of LabelledImage
        Normalised training and validation images.
    out_dir : str or Path
        Model directory: ``model.safetensors``, ``card.json``, ``history.csv``,
        ``learning_curve.png``, ``pr_curve.png`` and ``checkpoint/``.
    resume : bool
        Continue from ``out_dir/checkpoint`` (the configuration must be the same).
    progress : bool
        Show a progress bar.
    sources : list of str, optional
        The data paths, recorded in the card.
    split : dict, optional
        How the validation images were chosen, recorded in the card.

    Returns
    -------
    ModelCard
        The model card (task ``segmentation``).
    """
    from nanofind.learn.networks import build_network

    if not train_items:
        raise NanofindInputError("no training images", "DATA")
    if not val_items:
        raise NanofindInputError("no validation images (use more images or a validation fraction)", "--val-fraction")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"cannot create ({exc.strerror or exc})", str(out)) from None
    torch.manual_seed(config.seed)
    init_card = None
    if config.init is not None:
        model, init_card = load_model(config.init)
        if init_card.task != "segmentation" or init_card.output_channels != 2:
            raise NanofindInputError(f"fine-tuning needs a particle-segmentation model of 2 classes, got a "
                                     f"{init_card.task} model of classes {init_card.classes}", "--init")
        if init_card.architecture != config.architecture or init_card.options != config.options:
            config = config.model_copy(update={"architecture": init_card.architecture,
                                               "options": init_card.options})
    else:
        try:
            model = build_network(config.architecture, **config.options)
        except (TypeError, ValueError) as exc:
            raise NanofindInputError(str(exc), "--arch") from None
    engine = choose_engine(config.precision, training=True)
    bf16 = engine.precision == "bf16"
    memory_format = torch.channels_last if bf16 else torch.contiguous_format  # channels-last pays with bf16 only
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = SegmentationLoss(config.loss)
    config_record = config.model_dump(mode="json")
    state = {"epoch": 0, "history": [], "best_loss": float("inf"), "best_epoch": 0, "stale": 0,
             "best_state": None, "config": config_record, "seconds": 0.0}
    if resume and (out / CHECKPOINT / "state.json").is_file():
        found = json.loads((out / CHECKPOINT / "state.json").read_text()).get("config") or {}
        if _without_limits(found) != _without_limits(config_record):
            raise NanofindInputError("checkpoint was made with different settings; resume with the same ones",
                                     str(out / CHECKPOINT))
        state = _load_checkpoint(out, model, optimizer)
        state["config"] = config_record
    elif (out / CHECKPOINT / "state.json").is_file() and not resume:
        raise NanofindInputError("holds a checkpoint; pass --resume to continue it or choose another -o", str(out))
    probabilities = _sampling_probabilities(train_items, config.real_fraction)
    start = time.perf_counter() - state["seconds"]
    stopped = "max_epochs"
    with ProgressBar("training", config.max_epochs * config.steps_per_epoch,
                     completed=state["epoch"] * config.steps_per_epoch, enabled=progress) as bar:
        while state["epoch"] < config.max_epochs:
            epoch = state["epoch"] + 1
            rng = np.random.default_rng([config.seed, epoch])
            torch.manual_seed(config.seed * 100003 + epoch)
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, epoch)
            t0, losses = time.perf_counter(), []
            for _ in range(config.steps_per_epoch):
                images, masks = random_crops(train_items, probabilities, config.batch_size, config.crop_px,
                                             config.augmentation, rng)
                losses.append(training_step(model, optimizer, loss_fn, images, masks, bf16))
                bar.advance(1, f"epoch {epoch} loss {np.mean(losses):.4f}")
            val, _ = evaluate_items(model, val_items, loss_fn, engine)
            row = _history_row(epoch, float(np.mean(losses)), val, time.perf_counter() - t0)
            state["history"].append(row)
            bar.print(" ".join(f"{k} {v}" for k, v in row.items()))
            if val["loss"] < state["best_loss"] - config.min_delta:
                state.update(best_loss=val["loss"], best_epoch=epoch, stale=0,
                             best_state={k: v.detach().clone() for k, v in model.state_dict().items()})
            else:
                state["stale"] += 1
            state["epoch"] = epoch
            state["seconds"] = time.perf_counter() - start
            _save_checkpoint(out, model, optimizer, state)
            _write_history(out, state["history"])
            if state["stale"] >= config.patience:
                stopped = "early_stopping"
                break
            if config.max_minutes and state["seconds"] > 60 * config.max_minutes:
                stopped = "time_limit"
                break
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    val, probs = evaluate_items(model, val_items, loss_fn, engine)
    curve = precision_recall_curve(probs, [x.mask > 0 for x in val_items])
    threshold = best_threshold(curve)
    plot_pr_curve({"model (validation)": curve}, out / "pr_curve.png", title="Validation precision and recall")
    confs = [confusion(p >= threshold, x.mask > 0) for p, x in zip(probs, val_items, strict=True)]
    at_threshold = pooled_scores(confs)
    by_domain = pooled_scores_by_domain(confs, [x.domain for x in val_items])
    pixels = [x.pixel_size_A for x in train_items if x.pixel_size_A]
    card = ModelCard(
        nanofind_version=__version__, task="segmentation", architecture=config.architecture,
        options=config.options, classes=["background", "particle"], input_channels=1,
        normalisation=STANDARD_NORMALISATION,
        pixel_size_A=round(float(np.median(pixels)), 4) if pixels else None,
        pixel_size_range_A=[round(min(pixels), 4), round(max(pixels), 4)] if pixels else None,
        threshold=round(float(threshold), 4),
        imaging=config.imaging,
        particle_diameter_px=trained_diameters_px(train_items) if config.imaging == "bright_field" else None,
        refine_outlines_below_px=BRIGHT_FIELD_REFINE_BELOW_PX if config.imaging == "bright_field" else None,
        training=TrainingRecord(
            config=config_record, sources=sources or [], split=split or {}, train_data=describe(train_items),
            validation_data=describe(val_items), epochs=state["epoch"], best_epoch=state["best_epoch"],
            stopped=stopped, seconds=round(state["seconds"], 1), engine=engine.record(),
            init=init_card.training.config if init_card else None),
        metrics={"validation_at_threshold": {k: round(v, 5) for k, v in at_threshold.items()},
                 "validation_by_domain": {d: {k: round(v, 5) for k, v in s.items()} for d, s in by_domain.items()},
                 "validation_loss": round(val["loss"], 5)},
    )
    save_model(out, model, card)
    return card


def trained_diameters_px(items) -> list[float] | None:
    """[10th percentile, median, 90th percentile] over the training images of each one's typical particle, px.

    An image's typical particle is the median equivalent diameter of its particles (its instances in
    datasets, else the connected components of its mask), leaving out those cut by the image edge;
    per image, so that a dense field of a thousand small particles counts as one image. None when
    no image has a particle.
    """
    from nanofind.datasets.sample import footprint_facts, instances_from_mask

    typical = []
    for item in items:
        instance = item.instance if item.instance is not None else instances_from_mask(item.mask)
        diameters = [2 * np.sqrt(f["area_px"] / np.pi) for f in footprint_facts(instance, None).values()
                     if not f["cut_by_edge"]]
        if diameters:
            typical.append(float(np.median(diameters)))
    if not typical:
        return None
    return [round(float(v), 1) for v in np.percentile(typical, [10, 50, 90])]


def _without_limits(config: dict) -> dict:
    """A run's settings without the stopping limits that a resumed run may raise.

    The epoch count stays in under a cosine schedule, since it sets every epoch's learning rate.
    """
    limits = ("max_minutes",) if config.get("lr_schedule") == "cosine" else ("max_epochs", "max_minutes")
    return {k: v for k, v in config.items() if k not in limits}


def _write_history(out: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(out / HISTORY) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, keys)
        writer.writeheader()
        writer.writerows(rows)
    _plot_history(rows, out / "learning_curve.png")
