"""Which shipped model segments a micrograph, and at what scale: ``--model auto``.

nanofind ships two segmentation models (:data:`SHIPPED_MODELS`): one for HRTEM fields (lattice
fringes; pixels of 0.25-0.7 Å) and one for low-magnification bright field (mass-thickness contrast;
pixels of 1-50 Å, particles of a trained range of sizes in pixels). For every image,
:func:`choose_model` decides:

1. **Pixel size known** (from the file or ``--pixel-size``): up to :data:`HRTEM_LARGEST_PIXEL_A` the
   HRTEM model, whose scale guard resamples into its working pixel sizes
   (:mod:`nanofind.learn.scale_guard`); above it the bright-field model.
2. **Pixel size unknown:** a small classifier (:mod:`nanofind.segment.imaging`) weighs the
   image's lattice fringes (:func:`nanofind.segment.fringes.lattice_fringes`, a sharp peak of the
   power spectrum), the shape of its power spectrum, its blobs and its intensity distribution, and
   gives the probability that it is an HRTEM field (fringes alone mislead: particle superlattices
   and Fresnel fringes look like them, and off-zone particles show none). For HRTEM, the strongest
   fringe is taken as :data:`ASSUMED_FRINGE_SPACING_A` (the close-packed spacing of the common fcc
   metals, 2.04-2.35 Å; oxides' 3.1 Å fringes give a pixel size a third too large) to estimate the
   pixel size. Being that rough, the estimate only resamples an image outside the model's training
   pixel sizes, and sizes stay in pixels. Without the classifier file, fringes alone decide.
3. **Bright-field model, either way:** the typical particle diameter is measured in pixels
   (:func:`nanofind.segment.scale.particle_scale`, dark blobs: mass-thickness contrast darkens
   particles, while Fresnel fringes and noise also make bright ones). The card's ``particle_diameter_px`` holds the
   [10th percentile, median, 90th percentile] of its training images' typical diameters. An image
   whose particles lie within the 10th-90th percentiles is segmented as it is (resampling blurs
   outlines: on the real micrographs, shrinking 55 px particles 0.8× cost 0.025 Dice); one outside
   them is resampled into the core of that range (the geometric mean of the median and the nearer
   end), within :data:`SCALE_ZOOM_LIMITS`. Changes of less than :data:`MIN_ZOOM_CHANGE` are not
   worth the interpolation.

The decision, its reason in words and what it measured are kept for the summary and the report.
A model named explicitly is used as it is; a bright-field card still gets step 3.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nanofind.learn.card import ModelCard
from nanofind.learn.model_file import SHIPPED_MODELS, resolve_model_dir

#: ``--model auto``: the choice of this module (``default`` names the HRTEM model, as before there were two).
AUTO = "auto"
#: Largest pixel size (Å) given to the HRTEM model: its scale guard enlarges up to 4×, and by 1 Å
#: lattice fringes of 2 Å are barely resolved (the bright-field model covers 1-50 Å).
HRTEM_LARGEST_PIXEL_A = 1.0
#: Lattice spacing (Å) assumed for the strongest fringe when the pixel size is unknown.
ASSUMED_FRINGE_SPACING_A = 2.35
#: Resampling closer to 1 than this factor is skipped.
MIN_ZOOM_CHANGE = 1.1
#: Bounds of the resampling chosen from the particles' measured size (1/8× to 8×).
SCALE_ZOOM_LIMITS = (0.125, 8.0)


@dataclass
class ModelDecision:
    """The model chosen for one image, the resampling asked for, and why."""

    model: str  #: "hrtem", "lowmag", or the model named by the user
    directory: Path
    reason: str  #: one sentence for the report
    wanted_zoom: float | None = None  #: resampling from the image's content (None: from the pixel size)
    estimated_pixel_size_A: float | None = None  #: from lattice fringes, used for resampling only
    fringes: dict | None = None  #: :class:`~nanofind.segment.scale.FringeEvidence` record, when measured
    particle_scale: dict | None = None  #: :class:`~nanofind.segment.scale.ParticleScale` record, when measured
    #: the classifier's probability that an image of unknown pixel size is HRTEM (:mod:`nanofind.segment.imaging`)
    probability_hrtem: float | None = None
    seconds: float = 0.0  #: time the measurements took
    #: what makes the result doubtful (a known pixel size outside what the chosen model was trained on)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able record."""
        d = asdict(self)
        d["directory"] = str(self.directory)
        d["seconds"] = round(self.seconds, 4)
        return d


def available_shipped() -> dict[str, Path]:
    """The shipped models present in this installation (the bright-field one may be missing in a development tree)."""
    return {k: d for k, d in SHIPPED_MODELS.items() if (d / "card.json").is_file()}


def choose_model(image: np.ndarray, pixel_size_A: float | None, model: str | Path = AUTO,
                 cards: dict[str, ModelCard] | None = None) -> ModelDecision:
    """Decide which model segments ``image`` (2D, rows along y) and how it is resampled (see the module docstring).

    ``pixel_size_A`` is the image's pixel size in Å, or None. ``cards`` maps model names to their
    cards (read from :data:`SHIPPED_MODELS` or the named directory when not given).
    """
    start = time.perf_counter()
    cards = dict(cards or {})
    if str(model) != AUTO:
        name = str(model)
        card = cards.get(name) or ModelCard.read(resolve_model_dir(name))
        decision = ModelDecision(name, resolve_model_dir(name), "named by the user")
        if card.imaging == "bright_field":
            _particle_zoom(decision, image, card)
        decision.seconds = time.perf_counter() - start
        return decision
    shipped = available_shipped()
    if pixel_size_A:
        if pixel_size_A <= HRTEM_LARGEST_PIXEL_A or "lowmag" not in shipped:
            decision = ModelDecision("hrtem", SHIPPED_MODELS["hrtem"],
                                     f"pixel size {pixel_size_A:.3g} Å: HRTEM (up to {HRTEM_LARGEST_PIXEL_A:g} Å)")
        else:
            decision = ModelDecision("lowmag", SHIPPED_MODELS["lowmag"],
                                     f"pixel size {pixel_size_A:.3g} Å: low-magnification bright field "
                                     f"(above {HRTEM_LARGEST_PIXEL_A:g} Å)")
    else:
        from nanofind.segment.imaging import imaging_features, shipped_classifier
        from nanofind.segment.scale import lattice_fringes, particle_scale

        fringes = lattice_fringes(image)
        classifier = shipped_classifier()
        scale = particle_scale(image, polarity="dark") if classifier is not None and "lowmag" in shipped else None
        p_hrtem = (classifier.probability_hrtem(imaging_features(image, fringes, scale)) if scale is not None
                   else float(fringes.present))
        spot = (f"lattice spot of {fringes.period_px:.2f} px period {fringes.strength:.0f}× the background"
                if fringes.present else f"no lattice fringes (strongest spot {fringes.strength:.1f}× the background)")
        if p_hrtem >= 0.5 or "lowmag" not in shipped:
            decision = ModelDecision("hrtem", SHIPPED_MODELS["hrtem"], "", fringes=fringes.to_dict(),
                                     probability_hrtem=round(p_hrtem, 4))
            if "lowmag" not in shipped:
                decision.reason = "pixel size unknown and no bright-field model installed: HRTEM"
            else:
                decision.reason = f"pixel size unknown; {spot}; HRTEM with probability {p_hrtem:.2f}"
            if fringes.present:
                card = cards.get("hrtem") or ModelCard.read(decision.directory)
                _fringe_zoom(decision, fringes.period_px, card)
        else:
            decision = ModelDecision("lowmag", SHIPPED_MODELS["lowmag"],
                                     f"pixel size unknown; {spot}; low-magnification bright field with probability "
                                     f"{1 - p_hrtem:.2f}", fringes=fringes.to_dict(),
                                     probability_hrtem=round(p_hrtem, 4))
            card = cards.get("lowmag") or ModelCard.read(decision.directory)
            _particle_zoom(decision, image, card, scale)
            decision.seconds = time.perf_counter() - start
            return decision
    if decision.model == "lowmag":
        card = cards.get("lowmag") or ModelCard.read(decision.directory)
        low, high = card.pixel_size_range_A or (0.0, float("inf"))
        if not low <= pixel_size_A <= high:
            decision.warnings.append(f"pixel size {pixel_size_A:g} Å is outside the {low:g}–{high:g} Å the "
                                     "bright-field model was trained on: results are unreliable")
        _particle_zoom(decision, image, card)
    decision.seconds = time.perf_counter() - start
    return decision


def _fringe_zoom(decision: ModelDecision, period_px: float, card: ModelCard) -> None:
    """Set ``decision``'s pixel-size estimate and resampling from the strongest lattice fringe.

    The estimate (the fringe taken as :data:`ASSUMED_FRINGE_SPACING_A`) is good to about a third,
    so only an image outside the pixel sizes the model was trained on is resampled, to the nearest
    end of them (within the scale guard's bounds).
    """
    from nanofind.learn.scale_guard import ZOOM_LIMITS

    estimate = ASSUMED_FRINGE_SPACING_A / period_px
    decision.estimated_pixel_size_A = round(estimate, 4)
    low, high = card.pixel_size_range_A or (None, None)
    if low is None or low <= estimate <= high:
        decision.wanted_zoom = 1.0
        decision.reason += (f"; as {ASSUMED_FRINGE_SPACING_A:g} Å fringes they mean about {estimate:.2g} Å "
                            "per pixel, within the model's training range: not resampled")
        return
    zoom = float(min(max(estimate / min(max(estimate, low), high), ZOOM_LIMITS[0]), ZOOM_LIMITS[1]))
    decision.wanted_zoom = zoom
    decision.reason += (f"; as {ASSUMED_FRINGE_SPACING_A:g} Å fringes they mean about {estimate:.2g} Å per "
                        f"pixel, outside the model's {low:g}-{high:g} Å: resampled {zoom:.3g}×")


def content_zoom(image: np.ndarray, card: ModelCard, scale=None) -> tuple[float | None, dict | None, str]:
    """Resampling that brings ``image``'s particles into the diameters ``card`` was trained on (module docstring).

    Returns ``(zoom, particle-scale record, sentence)``; ``zoom`` is None when the card records no
    trained diameters (an HRTEM model: its pixel size decides), 1 when the particles are already
    within them or none were measured.
    """
    from nanofind.segment.scale import particle_scale

    if not card.particle_diameter_px:
        return None, None, ""
    smallest, typical, largest = (float(v) for v in card.particle_diameter_px)
    low, high = np.sqrt(smallest * typical), np.sqrt(typical * largest)
    scale = scale or particle_scale(image, polarity="dark")
    if scale.diameter_px is None:
        return 1.0, scale.to_dict(), "no particle-like blobs measured, so not resampled"
    d = float(scale.diameter_px)
    lo, hi = SCALE_ZOOM_LIMITS
    zoom = 1.0 if smallest <= d <= largest else float(min(max(min(max(d, low), high) / d, lo), hi))
    if 1 / MIN_ZOOM_CHANGE < zoom < MIN_ZOOM_CHANGE:
        return 1.0, scale.to_dict(), (f"particles about {d:.0f} px across, within the {smallest:.0f}-{largest:.0f} "
                                      "px the model was trained on: not resampled")
    return zoom, scale.to_dict(), (f"particles about {d:.0f} px across, outside the {smallest:.0f}-{largest:.0f} px "
                                   f"the model was trained on: resampled {zoom:.3g}× (to {d * zoom:.0f} px)")


def content_plan(image: np.ndarray, pixel_size_A: float | None, card: ModelCard, **scale_guard):
    """The checked resampling of ``image`` for ``card`` as a named ``--model`` runs it.

    By its particles for a bright-field card (:func:`content_zoom`), else by its pixel size (Å);
    ``scale_guard`` (memory limit, job, name) goes to :func:`~nanofind.learn.scale_guard.plan_scale`.
    """
    from nanofind.learn.scale_guard import plan_scale

    return plan_scale(np.shape(image), pixel_size_A, card, wanted_zoom=content_zoom(image, card)[0], **scale_guard)


def _particle_zoom(decision: ModelDecision, image: np.ndarray, card: ModelCard, scale=None) -> None:
    """Set ``decision``'s resampling from the particles' measured diameter (:func:`content_zoom`)."""
    zoom, scale, sentence = content_zoom(image, card, scale)
    if zoom is None:
        return
    decision.wanted_zoom, decision.particle_scale = zoom, scale
    decision.reason += f"; {sentence}"
