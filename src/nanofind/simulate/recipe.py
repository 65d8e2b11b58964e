"""Simulation recipes: a scene recipe plus microscope, detector, multislice and ground-truth sections.

A simulation recipe is a scene recipe (:mod:`nanofind.scene.recipe`) with these extra top-level
keys; every number may be fixed or a distribution, and a ``choice`` may mix distributions, e.g.
``Cs_A: {choice: [{uniform: [-3.0e+5, 3.0e+5]}, {uniform: [5.0e+6, 1.2e+7]}], weights: [0.6, 0.4]}``
for corrected and uncorrected microscopes. The field of view is not given: it is the detector
shape times its pixel size, and the scene is built on that field plus ``multislice.margin_A`` on
every side, so particles and contrast continue past the image edge as in a real micrograph.

Per scene (shared by the ``images_per_scene`` images that reuse its exit waves): the scene, the
energy, the pixel size and the multislice settings. Per image: every other optics and detector
value.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from nanofind.errors import NanofindInputError
from nanofind.scene.distributions import (
    Choice,
    LogNormal,
    Normal,
    Number,
    StrictModel,
    Uniform,
    check_fraction,
    check_positive,
    checked_field,
    draw,
)
from nanofind.scene.recipe import SceneRecipe, parse_recipe, read_recipe_yaml
from nanofind.simulate.detector import Detector
from nanofind.simulate.multislice import MultisliceSettings
from nanofind.simulate.optics import Optics, scherzer_defocus_A

_DISTRIBUTION = TypeAdapter(Uniform | Normal | LogNormal)


def number_or_distribution(value: Any) -> Any:
    """A recipe number or distribution, checked; the entries of a choice may themselves be numbers or distributions."""
    if isinstance(value, Choice):
        items = []
        for item in value.choice:
            if isinstance(item, dict):
                try:
                    item = _DISTRIBUTION.validate_python(item)
                except ValidationError:
                    raise ValueError(f"choice entry {item!r} is not a number or a distribution") from None
            elif isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                raise ValueError(f"choices for a number must be finite numbers or distributions, got {item!r}")
            items.append(item)
        value = Choice(choice=items, weights=value.weights)
    return value


def _not_negative(value: Any, allow_zero: bool) -> Any:
    """A number or distribution (or a choice of them) that cannot draw below zero (or zero)."""
    value = number_or_distribution(value)
    for item in (value.choice if isinstance(value, Choice) else [value]):
        check_positive(item, "", allow_zero=allow_zero)
    return value


def _nonneg(value: Any) -> Any:
    return _not_negative(value, allow_zero=True)


def _pos(value: Any) -> Any:
    return _not_negative(value, allow_zero=False)


class MicroscopeSpec(StrictModel):
    """Objective-lens optics; lengths in Å (1 mm = 1e7 Å), angles in mrad or degrees."""

    energy_keV: Number = 300.0
    defocus_A: Number | Literal["scherzer"] = "scherzer"
    defocus_offset_A: Number = 0.0
    Cs_A: Number = 0.0
    C5_A: Number = 0.0
    astigmatism_A: Number = 0.0
    astigmatism_angle_deg: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 180.0)))
    trefoil_A: Number = 0.0
    trefoil_angle_deg: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 120.0)))
    coma_A: Number = 0.0
    coma_angle_deg: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 360.0)))
    aperture_mrad: Number | None = None
    focal_spread_A: Number = 0.0
    angular_spread_mrad: Number = 0.0
    focal_points: int = Field(default=1, ge=1, le=15)

    _positive_values = checked_field(_pos, "energy_keV", "aperture_mrad", allow=(None,))
    _nonnegative_values = checked_field(_nonneg, "astigmatism_A", "trefoil_A", "coma_A", "focal_spread_A",
                                        "angular_spread_mrad")
    _numbers = checked_field(number_or_distribution, "defocus_offset_A", "Cs_A", "C5_A", "astigmatism_angle_deg",
                             "trefoil_angle_deg", "coma_angle_deg")
    _defocus = checked_field(number_or_distribution, "defocus_A", allow=("scherzer",))


class DetectorSpec(StrictModel):
    """Camera, dose and image defects."""

    shape: tuple[int, int] = (512, 512)
    pixel_size_A: Number = 0.5
    dose_e_per_A2: Number | Literal["inf"] = 1000.0
    mtf_half_frequency: Number | Literal["inf"] = "inf"
    mtf_floor: Number = 0.0
    gain: Number = 1.0
    read_noise: Number = 0.0
    gradient: Number = 0.0
    drift_A: Number = 0.0
    distortion_A: Number = 0.0
    distortion_correlation_A: Number = 50.0
    xray_rate_per_megapixel: Number = 0.0
    xray_brightness: Number = 20.0

    @field_validator("shape")
    @classmethod
    def _shape(cls, v):
        if min(v) < 8:
            raise ValueError(f"detector shape must be at least 8 x 8 pixels, got {list(v)}")
        return v

    _positive_values = checked_field(_pos, "pixel_size_A", "gain", "distortion_correlation_A")
    _positive_or_inf = checked_field(_pos, "dose_e_per_A2", "mtf_half_frequency", allow=("inf",))
    _nonnegative_values = checked_field(_nonneg, "read_noise", "drift_A", "distortion_A", "xray_rate_per_megapixel",
                                        "xray_brightness")
    _fractions = checked_field(lambda v: check_fraction(number_or_distribution(v)), "mtf_floor", "gradient")


class MultisliceSpec(StrictModel):
    """Simulation grid and physics."""

    max_sampling_A: float = Field(default=0.2, gt=0, le=1.0)
    slice_thickness_A: float = Field(default=2.0, gt=0)
    parametrization: Literal["lobato", "kirkland"] = "lobato"
    frozen_phonons: int = Field(default=0, ge=0, le=64)
    debye_waller_sigma_A: dict[str, float] | None = None
    tilt_spread_mrad: float = Field(default=0.0, ge=0)
    mode: Literal["multislice", "phase_object"] = "multislice"
    margin_A: float = Field(default=10.0, ge=0)
    substrate_pool: int | None = Field(default=None, ge=1)


class GroundTruthSpec(StrictModel):
    """How the particle mask is defined."""

    mask: Literal["footprint", "phase"] = "footprint"
    atom_radius_A: float = Field(default=1.5, gt=0)
    phase_threshold_rad: float = Field(default=math.pi / 16, gt=0)


class SimulationRecipe(SceneRecipe):
    """A scene recipe plus everything that turns a scene into training images."""

    microscope: MicroscopeSpec = Field(default_factory=MicroscopeSpec)
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    multislice: MultisliceSpec = Field(default_factory=MultisliceSpec)
    ground_truth: GroundTruthSpec = Field(default_factory=GroundTruthSpec)
    images_per_scene: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _field_from_detector(self):
        if "size_A" in self.field.model_fields_set:
            raise ValueError("field.size_A is set by detector.shape x detector.pixel_size_A; remove it")
        return self


def parse_simulation_recipe(data: Any, source: str = "recipe") -> SimulationRecipe:
    """Validate a simulation recipe given as a mapping."""
    return parse_recipe(data, source, SimulationRecipe)


def parse_any_simulation_recipe(data: Any, source: str = "recipe"):
    """Validate a simulation recipe of either kind.

    ``kind: bright_field`` gives a low-magnification recipe (:mod:`nanofind.simulate.brightfield_recipe`);
    no ``kind``, or ``kind: hrtem``, an HRTEM :class:`SimulationRecipe`.
    """
    kind = data.get("kind", "hrtem") if isinstance(data, dict) else "hrtem"
    if kind == "bright_field":
        from nanofind.simulate.brightfield_recipe import BrightFieldRecipe

        return parse_recipe(data, source, BrightFieldRecipe)
    if kind != "hrtem":
        raise NanofindInputError(f"{source}: kind: must be hrtem or bright_field, got {kind!r}")
    if isinstance(data, dict) and "kind" in data:
        data = {k: v for k, v in data.items() if k != "kind"}
    return parse_simulation_recipe(data, source)


def load_simulation_recipe(path) -> tuple[Any, dict]:
    """Read a YAML simulation recipe of either kind; returns the model and the raw mapping (stored with datasets)."""
    data = read_recipe_yaml(path)
    return parse_any_simulation_recipe(data, str(path)), data


def _value(v: Any, rng: np.random.Generator) -> float:
    x = draw(v, rng)
    return float("inf") if x == "inf" else float(x)


def draw_scene_settings(recipe: SimulationRecipe, rng: np.random.Generator) -> dict:
    """Per-scene values: energy (eV), pixel size (Å), binning and the multislice settings."""
    m = recipe.multislice
    pixel = _value(recipe.detector.pixel_size_A, rng)
    binning = max(1, math.ceil(pixel / m.max_sampling_A - 1e-9))
    margin_px = math.ceil(m.margin_A / pixel)
    return {"energy_eV": _value(recipe.microscope.energy_keV, rng) * 1e3, "pixel_size_A": pixel,
            "binning": binning, "sampling_A": pixel / binning, "margin_px": margin_px,
            "multislice": MultisliceSettings(slice_thickness_A=m.slice_thickness_A,
                                             parametrization=m.parametrization, frozen_phonons=m.frozen_phonons,
                                             debye_waller_sigma_A=m.debye_waller_sigma_A,
                                             tilt_spread_mrad=m.tilt_spread_mrad, mode=m.mode)}


def draw_optics(spec: MicroscopeSpec, energy_eV: float, rng: np.random.Generator) -> Optics:
    """Draw one image's optics at a given beam energy."""
    Cs = _value(spec.Cs_A, rng)
    base = scherzer_defocus_A(Cs, energy_eV) if spec.defocus_A == "scherzer" else _value(spec.defocus_A, rng)
    return Optics(energy_eV=energy_eV, defocus_A=base + _value(spec.defocus_offset_A, rng), Cs_A=Cs,
                  C5_A=_value(spec.C5_A, rng), astigmatism_A=_value(spec.astigmatism_A, rng),
                  astigmatism_angle_deg=_value(spec.astigmatism_angle_deg, rng),
                  trefoil_A=_value(spec.trefoil_A, rng), trefoil_angle_deg=_value(spec.trefoil_angle_deg, rng),
                  coma_A=_value(spec.coma_A, rng), coma_angle_deg=_value(spec.coma_angle_deg, rng),
                  aperture_mrad=None if spec.aperture_mrad is None else _value(spec.aperture_mrad, rng),
                  focal_spread_A=_value(spec.focal_spread_A, rng),
                  angular_spread_mrad=_value(spec.angular_spread_mrad, rng), focal_points=spec.focal_points)


def draw_detector(spec: DetectorSpec, pixel_size_A: float, rng: np.random.Generator) -> Detector:
    """Draw one image's detector and exposure at a given pixel size."""
    return Detector(pixel_size_A=pixel_size_A, dose_e_per_A2=_value(spec.dose_e_per_A2, rng),
                    mtf_half_frequency=_value(spec.mtf_half_frequency, rng), mtf_floor=_value(spec.mtf_floor, rng),
                    gain=_value(spec.gain, rng), read_noise=_value(spec.read_noise, rng),
                    gradient=_value(spec.gradient, rng), gradient_angle_deg=float(rng.uniform(0, 360)),
                    drift_A=_value(spec.drift_A, rng), drift_angle_deg=float(rng.uniform(0, 360)),
                    distortion_A=_value(spec.distortion_A, rng),
                    distortion_correlation_A=_value(spec.distortion_correlation_A, rng),
                    xray_rate_per_megapixel=_value(spec.xray_rate_per_megapixel, rng),
                    xray_brightness=_value(spec.xray_brightness, rng))
