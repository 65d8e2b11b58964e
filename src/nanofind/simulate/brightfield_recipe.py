"""Bright-field (low-magnification) simulation recipes and the samples they make.

A recipe with the top-level key ``kind: bright_field`` describes fields of particles on carbon film
imaged at 1–50 Å per pixel (docs/simulation.md, "Low-magnification bright field"). Every number
may be fixed or a distribution (:mod:`nanofind.scene.distributions`); a ``choice`` may mix numbers
and distributions. Names (shapes, materials, arrangement modes) are fixed or a ``choice``.

:func:`make_bright_field_sample` makes sample ``index`` from ``(recipe, seed, index)`` alone: the
field's settings, its particles, its film and its noise come from separate streams spawned from
``SeedSequence(seed, spawn_key=(index,))``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from nanofind.datasets.sample import Sample, footprint_facts
from nanofind.errors import NanofindInputError
from nanofind.scene.distributions import (
    Choice,
    LogNormal,
    Number,
    StrictModel,
    Uniform,
    as_choice,
    check_fraction,
    check_positive,
    checked_field,
    choice_options,
    draw,
)
from nanofind.simulate.brightfield import MATERIALS, BrightFieldOptics, Camera, bright_field_image
from nanofind.simulate.film import Film, film_thickness_A
from nanofind.simulate.optics import wavelength_A
from nanofind.simulate.particle_field import (
    ARRANGEMENTS,
    PLATE_SHAPES,
    ROD_SHAPES,
    SHAPES,
    FieldParticle,
    arrange,
    make_solid,
    random_orientation,
    relabel_instances,
    render_particles,
)
from nanofind.simulate.recipe import number_or_distribution

#: Pixel sizes the model is meant for, Å; a pinned diameter in pixels is met within them.
PIXEL_SIZE_RANGE_A = (1.0, 50.0)
#: Size spread cap of a dense monolayer (its particles are similar in size).
MONOLAYER_MAX_SIGMA = 0.1
#: Particle diameters are drawn within these multiples of the field's median.
DIAMETER_CLIP = (0.3, 3.0)


def _positive(value: Any) -> Any:
    value = number_or_distribution(value)
    for item in choice_options(value):
        check_positive(item, "")
    return value


def _non_negative(value: Any) -> Any:
    value = number_or_distribution(value)
    for item in choice_options(value):
        check_positive(item, "", allow_zero=True)
    return value


def _fraction(value: Any) -> Any:
    value = number_or_distribution(value)
    for item in choice_options(value):
        check_fraction(item)
    return value


def _names(allowed: tuple[str, ...], what: str):
    def check(value: Any) -> Any:
        value = as_choice(value)
        for item in choice_options(value):
            if item not in allowed:
                raise ValueError(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
        return value
    return check


_NameOrChoice = str | Choice


class ScaleSpec(StrictModel):
    """Particle sizes and pixel size: pin the median diameter in pixels, or give the pixel size."""

    median_diameter_nm: Number = Field(default_factory=lambda: LogNormal(lognormal={"median": 10, "sigma": 0.8},
                                                                         min=2, max=100))
    median_diameter_px: Number | None = None
    pixel_size_A: Number | None = None
    monolayer_median_diameter_px: Number | None = None  #: used instead of median_diameter_px for monolayers
    size_sigma: Number = Field(default_factory=lambda: Uniform(uniform=(0.05, 0.4)))

    _positive_values = checked_field(_positive, "median_diameter_nm", "median_diameter_px", "pixel_size_A",
                                     "monolayer_median_diameter_px", allow=(None,))
    _non_negative_values = checked_field(_non_negative, "size_sigma")

    @model_validator(mode="after")
    def _one_scale(self):
        if (self.median_diameter_px is None) == (self.pixel_size_A is None):
            raise ValueError("give exactly one of median_diameter_px and pixel_size_A")
        if self.monolayer_median_diameter_px is not None and self.median_diameter_px is None:
            raise ValueError("monolayer_median_diameter_px needs median_diameter_px (not pixel_size_A)")
        return self


class ParticlesSpec(StrictModel):
    """What the particles are; each field draws a palette of shapes and materials, each particle one of them."""

    shapes: _NameOrChoice = "sphere"
    shapes_per_field: Number = 1.0
    materials: _NameOrChoice = "Au"
    materials_per_field: Number = 1.0
    rod_aspect: Number = Field(default_factory=lambda: Uniform(uniform=(2.0, 5.0)))
    plate_aspect: Number = Field(default_factory=lambda: Uniform(uniform=(0.1, 0.35)))
    flat_plates: Number = 0.7
    diffraction_contrast: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 0.5)))

    _shapes = checked_field(_names(SHAPES, "shape"), "shapes")
    _materials = checked_field(_names(tuple(m for m in MATERIALS if m != "C"), "particle material"), "materials")
    _positive_values = checked_field(_positive, "shapes_per_field", "materials_per_field", "rod_aspect",
                                     "plate_aspect")
    _non_negative_values = checked_field(_non_negative, "diffraction_contrast")
    _fractions = checked_field(_fraction, "flat_plates")


class ArrangementSpec(StrictModel):
    """How particles are placed (see :func:`nanofind.simulate.particle_field.arrange`)."""

    mode: _NameOrChoice = "isolated"
    coverage: Number = Field(default_factory=lambda: Uniform(uniform=(0.02, 0.3)))
    monolayer_coverage: Number = Field(default_factory=lambda: Uniform(uniform=(0.3, 0.6)))
    chain_length: tuple[int, int] = (2, 6)
    cluster_size: tuple[int, int] = (3, 30)
    overlap: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 0.15)))
    jitter: Number = Field(default_factory=lambda: Uniform(uniform=(0.02, 0.08)))
    vacancies: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 0.1)))
    voids: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 0.3)))

    _mode = checked_field(_names(ARRANGEMENTS, "arrangement mode"), "mode")
    _fractions = checked_field(_fraction, "coverage", "monolayer_coverage", "overlap", "jitter", "vacancies",
                               "voids")

    @field_validator("chain_length", "cluster_size")
    @classmethod
    def _range(cls, v):
        if not 1 <= v[0] <= v[1]:
            raise ValueError(f"needs 1 <= low <= high, got {list(v)}")
        return v


class FilmSpec(StrictModel):
    """Amorphous carbon support film."""

    thickness_A: Number = Field(default_factory=lambda: Uniform(uniform=(50.0, 400.0)))
    density_g_cm3: Number = 2.0
    variation: Number = Field(default_factory=lambda: Uniform(uniform=(0.03, 0.3)))
    smoothing_A: Number = Field(default_factory=lambda: Uniform(uniform=(200.0, 2000.0)))
    granularity: Number = Field(default_factory=lambda: Uniform(uniform=(0.5, 1.5)))
    hole_probability: float = Field(default=0.15, ge=0, le=1)
    holes: Number = Field(default_factory=lambda: Choice(choice=[1, 2, 3]))
    hole_diameter: Number = Field(default_factory=lambda: Uniform(uniform=(0.15, 0.6)))  #: of the shorter side
    edge_probability: float = Field(default=0.1, ge=0, le=1)

    _positive_values = checked_field(_positive, "thickness_A", "density_g_cm3", "smoothing_A", "holes",
                                     "hole_diameter")
    _non_negative_values = checked_field(_non_negative, "variation", "granularity")


class BrightFieldMicroscopeSpec(StrictModel):
    """Objective lens; lengths in Å (1 µm = 1e4 Å, 1 mm = 1e7 Å). Defocus > 0 is underfocus."""

    energy_keV: Number = Field(default_factory=lambda: Choice(choice=[80.0, 120.0, 200.0, 300.0]))
    defocus_A: Number = Field(default_factory=lambda: Uniform(uniform=(-2.0e4, 3.0e4)))
    Cs_A: Number = 1.2e7
    illumination_semiangle_mrad: Number = Field(default_factory=lambda: Uniform(uniform=(0.02, 0.3)))
    focal_spread_A: Number = 50.0
    aperture_contrast: Number = Field(default_factory=lambda: Uniform(uniform=(0.7, 1.5)))
    #: |Δf| is clipped so that the Fresnel fringe width √(λ|Δf|) stays within this many pixels (None: no limit)
    max_fringe_px: float | None = Field(default=None, gt=0)

    _positive_values = checked_field(_positive, "energy_keV", "aperture_contrast")
    _non_negative_values = checked_field(_non_negative, "Cs_A", "illumination_semiangle_mrad", "focal_spread_A")
    _numbers = checked_field(number_or_distribution, "defocus_A")


class BrightFieldDetectorSpec(StrictModel):
    """Exposure and camera: the dose as electrons per pixel in vacuum, or in e/Å² (one of them)."""

    electrons_per_pixel: Number | None = None
    dose_e_per_A2: Number | None = None
    blur_px: Number = Field(default_factory=lambda: Uniform(uniform=(0.3, 1.2)))
    gain: Number = 1.0
    offset: Number = 0.0
    read_noise: Number = 0.0
    gradient: Number = Field(default_factory=lambda: Uniform(uniform=(0.0, 0.05)))

    _positive_values = checked_field(_positive, "electrons_per_pixel", "dose_e_per_A2", allow=(None,))
    _positive_gain = checked_field(_positive, "gain")
    _non_negative_values = checked_field(_non_negative, "blur_px", "read_noise")
    _numbers = checked_field(number_or_distribution, "offset")
    _fractions = checked_field(_fraction, "gradient")

    @model_validator(mode="after")
    def _one_dose(self):
        if self.electrons_per_pixel is not None and self.dose_e_per_A2 is not None:
            raise ValueError("give electrons_per_pixel or dose_e_per_A2, not both")
        if self.electrons_per_pixel is None and self.dose_e_per_A2 is None:
            self.electrons_per_pixel = LogNormal(lognormal={"median": 40, "sigma": 0.9}, min=5, max=300)
        return self


class BrightFieldRecipe(StrictModel):
    """A low-magnification bright-field simulation recipe (``kind: bright_field``)."""

    kind: Literal["bright_field"]
    size_px: int | tuple[int, int] = Field(default=512, validate_default=True)
    scale: ScaleSpec = Field(default_factory=lambda: ScaleSpec(median_diameter_px=LogNormal(
        lognormal={"median": 35, "sigma": 0.6}, min=10, max=120)))
    particles: ParticlesSpec = Field(default_factory=ParticlesSpec)
    arrangement: ArrangementSpec = Field(default_factory=ArrangementSpec)
    film: FilmSpec = Field(default_factory=FilmSpec)
    microscope: BrightFieldMicroscopeSpec = Field(default_factory=BrightFieldMicroscopeSpec)
    detector: BrightFieldDetectorSpec = Field(default_factory=BrightFieldDetectorSpec)

    #: One image per field: a field costs about as much as an image, so nothing is shared.
    images_per_scene: ClassVar[int] = 1

    @field_validator("size_px")
    @classmethod
    def _size(cls, v):
        shape = (v, v) if isinstance(v, int) else tuple(v)
        if min(shape) < 32 or max(shape) > 8192:
            raise ValueError(f"size_px must be 32…8192 pixels a side, got {list(shape)}")
        return shape


def _int(value: Any, rng: np.random.Generator) -> int:
    return max(1, int(round(float(draw(value, rng)))))


def _palette(value: Any, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct names drawn from a name or choice (fewer if it offers fewer)."""
    names: list[str] = []
    for _ in range(8 * count):
        name = draw(value, rng)
        if name not in names:
            names.append(name)
        if len(names) == count:
            break
    return names


def draw_field_settings(recipe: BrightFieldRecipe, rng: np.random.Generator) -> dict:
    """Every per-field value: scale, palettes, arrangement, film, optics and camera (JSON-able)."""
    s, p, a, f = recipe.scale, recipe.particles, recipe.arrangement, recipe.film
    mode = draw(a.mode, rng)
    median_nm = float(draw(s.median_diameter_nm, rng))
    if s.pixel_size_A is not None:
        pixel = float(draw(s.pixel_size_A, rng))
    else:
        pinned = s.monolayer_median_diameter_px if mode == "monolayer" and s.monolayer_median_diameter_px else (
            s.median_diameter_px)
        pixel = float(np.clip(median_nm * 10 / float(draw(pinned, rng)), *PIXEL_SIZE_RANGE_A))
    if not 1.0 <= median_nm * 10 / pixel <= min(recipe.size_px):
        raise NanofindInputError(f"median particle diameter of {median_nm * 10 / pixel:.3g} px drawn: it must be "
                                 f"1…{min(recipe.size_px)} px (the image side); change median_diameter_nm or "
                                 "pixel_size_A", "scale")
    sigma = float(draw(s.size_sigma, rng))
    settings = {
        "mode": mode, "median_diameter_nm": median_nm, "pixel_size_A": pixel,
        "median_diameter_px": median_nm * 10 / pixel,
        "size_sigma": min(sigma, MONOLAYER_MAX_SIGMA) if mode == "monolayer" else sigma,
        "coverage": float(draw(a.monolayer_coverage if mode == "monolayer" else a.coverage, rng)),
        "shapes": _palette(p.shapes, _int(p.shapes_per_field, rng), rng),
        "materials": _palette(p.materials, _int(p.materials_per_field, rng), rng),
        "flat_plates": float(draw(p.flat_plates, rng)),
        "diffraction_contrast": float(draw(p.diffraction_contrast, rng)),
        "overlap": float(draw(a.overlap, rng)), "jitter": float(draw(a.jitter, rng)),
        "vacancies": float(draw(a.vacancies, rng)), "voids": float(draw(a.voids, rng)),
    }
    holes = _int(f.holes, rng) if rng.random() < f.hole_probability else 0
    settings["film"] = {"thickness_A": float(draw(f.thickness_A, rng)),
                        "density_g_cm3": float(draw(f.density_g_cm3, rng)),
                        "variation": float(draw(f.variation, rng)), "smoothing_A": float(draw(f.smoothing_A, rng)),
                        "granularity": float(draw(f.granularity, rng)),
                        "hole_diameters": [float(draw(f.hole_diameter, rng)) for _ in range(holes)],
                        "edge": bool(rng.random() < f.edge_probability)}
    m, d = recipe.microscope, recipe.detector
    energy_eV, defocus = float(draw(m.energy_keV, rng)) * 1e3, float(draw(m.defocus_A, rng))
    if m.max_fringe_px is not None:
        limit = (m.max_fringe_px * pixel) ** 2 / wavelength_A(energy_eV)
        defocus = min(max(defocus, -limit), limit)
    settings["optics"] = BrightFieldOptics(
        energy_eV=energy_eV, defocus_A=defocus,
        Cs_A=float(draw(m.Cs_A, rng)), illumination_semiangle_mrad=float(draw(m.illumination_semiangle_mrad, rng)),
        focal_spread_A=float(draw(m.focal_spread_A, rng)),
        aperture_contrast=float(draw(m.aperture_contrast, rng))).to_dict()
    dose = (float(draw(d.dose_e_per_A2, rng)) if d.dose_e_per_A2 is not None
            else float(draw(d.electrons_per_pixel, rng)) / pixel**2)
    settings["camera"] = Camera(dose_e_per_A2=dose, blur_px=float(draw(d.blur_px, rng)),
                                gain=float(draw(d.gain, rng)), offset=float(draw(d.offset, rng)),
                                read_noise=float(draw(d.read_noise, rng)), gradient=float(draw(d.gradient, rng)),
                                gradient_angle_deg=float(rng.uniform(0, 360))).to_dict()
    return settings


def _smooth(n: int) -> bool:
    for factor in (2, 3, 5):
        while n % factor == 0:
            n //= factor
    return n == 1


def margin_px(optics: BrightFieldOptics, blur_px: float, pixel_size_A: float, shape: tuple[int, int]) -> int:
    """Pixels simulated beyond each image edge: four Fresnel-fringe widths √(λ|Δf|) plus the blur (16…128).

    Rounded up so that both padded sides factor into 2, 3 and 5 (fast FFTs).
    """
    fringe = math.sqrt(wavelength_A(optics.energy_eV) * abs(optics.defocus_A)) / pixel_size_A
    margin = int(np.clip(math.ceil(4 * fringe + 4 * blur_px + 4), 16, 128))
    while not (_smooth(shape[0] + 2 * margin) and _smooth(shape[1] + 2 * margin)) and margin < 1024:
        margin += 1
    return margin


def _film(values: dict, padded: tuple[int, int], margin: int, rng: np.random.Generator) -> Film:
    side = min(padded) - 2 * margin
    holes = []
    for diameter in values["hole_diameters"]:
        a = diameter * side / 2
        holes.append((float(rng.uniform(0, padded[0])), float(rng.uniform(0, padded[1])), a,
                      a * float(rng.uniform(0.75, 1.0)), float(rng.uniform(0, 180))))
    edge = None
    if values["edge"]:
        edge = (float(rng.uniform(0, 360)), float(rng.uniform(-0.35, 0.35) * side), float(rng.uniform(0, 0.04) * side),
                float(rng.uniform(0.5, 2.0) * side))
    return Film(values["thickness_A"], values["density_g_cm3"], values["variation"], values["smoothing_A"],
                values["granularity"], tuple(holes), edge)


def _touching(ids: np.ndarray) -> dict[int, set[int]]:
    """Ids whose footprints share a pixel edge in the image."""
    pairs: dict[int, set[int]] = {}
    for a, b in ((ids[:, 1:], ids[:, :-1]), (ids[1:, :], ids[:-1, :])):
        hit = (a != b) & (a > 0) & (b > 0)
        for i, j in set(zip(a[hit].tolist(), b[hit].tolist(), strict=True)):
            pairs.setdefault(i, set()).add(j)
            pairs.setdefault(j, set()).add(i)
    return pairs


def make_bright_field_sample(recipe: BrightFieldRecipe, seed: int, index: int,
                             recipe_record: dict | None = None) -> Sample:
    """Sample ``index`` of a bright-field recipe; depends only on (recipe, seed, index)."""
    root = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))
    settings_ss, particles_ss, film_ss, noise_ss = root.spawn(4)
    rng = np.random.default_rng(settings_ss)
    settings = draw_field_settings(recipe, rng)
    pixel, optics, camera = settings["pixel_size_A"], BrightFieldOptics(**settings["optics"]), Camera(
        **settings["camera"])
    rows, cols = recipe.size_px
    margin = margin_px(optics, camera.blur_px, pixel, recipe.size_px)
    padded = (rows + 2 * margin, cols + 2 * margin)
    crop = (slice(margin, margin + rows), slice(margin, margin + cols))
    prng = np.random.default_rng(particles_ss)
    p = recipe.particles
    median_px, sigma = settings["median_diameter_px"], settings["size_sigma"]

    def make(group: int) -> FieldParticle:
        shape = settings["shapes"][int(prng.integers(len(settings["shapes"])))]
        material = settings["materials"][int(prng.integers(len(settings["materials"])))]
        diameter = median_px * min(max(math.exp(prng.normal(0, sigma)), DIAMETER_CLIP[0]), DIAMETER_CLIP[1])
        aspect, flat = 1.0, False
        if shape in ROD_SHAPES:
            aspect = float(draw(p.rod_aspect, prng))
        elif shape in PLATE_SHAPES:
            aspect, flat = float(draw(p.plate_aspect, prng)), prng.random() < settings["flat_plates"]
        solid = make_solid(shape, diameter, aspect)
        if shape != "sphere":  # a sphere looks the same from everywhere
            solid = solid.rotated(random_orientation(shape, prng, flat_plate=flat))
        return FieldParticle(solid, (0.0, 0.0), material, diameter,
                             float(prng.uniform(0, settings["diffraction_contrast"])), group)

    a = recipe.arrangement
    placed = arrange(settings["mode"], make, padded, settings["coverage"], prng, chain_length=a.chain_length,
                     cluster_size=a.cluster_size, overlap=settings["overlap"], jitter=settings["jitter"],
                     vacancies=settings["vacancies"], voids=settings["voids"])
    rendered = render_particles(placed, padded, pixel)
    frng = np.random.default_rng(film_ss)
    film = _film(settings["film"], padded, margin, frng)
    thickness = {"C": film_thickness_A(film, padded, pixel, frng), **rendered.thickness_A}
    image = bright_field_image(thickness, pixel, optics, camera, np.random.default_rng(noise_ss),
                               density_g_cm3={"C": film.density_g_cm3},
                               bragg_thickness_A=rendered.bragg_thickness_A, crop=crop)
    ids, source = relabel_instances(rendered.owner[crop])
    group_size: dict[int, int] = {}
    for q in placed:
        group_size[q.group] = group_size.get(q.group, 0) + 1
    touching = _touching(ids)
    records = []
    for i, facts in footprint_facts(ids, pixel).items():
        q = placed[source[i - 1]]
        size = 1 if settings["mode"] == "monolayer" else group_size[q.group]
        records.append({"id": i, "source": "scene", "shape": q.solid.shape, "material": q.material,
                        "volume_equivalent_diameter_nm": q.diameter_px * pixel / 10, **facts,
                        "touching": i in touching, "touching_ids": sorted(touching.get(i, ())),
                        "agglomerate": size >= 2, "agglomerate_size": size})
    film_record = {k: v for k, v in settings["film"].items()} | {"holes": len(film.holes)}
    params = {"kind": "bright_field", "index": int(index), "seed": int(seed), "pixel_size_A": pixel,
              "shape": [rows, cols], "margin_px": margin, "dose_e_per_A2": camera.dose_e_per_A2,
              "electrons_per_pixel": camera.dose_e_per_A2 * pixel**2, "defocus_A": optics.defocus_A,
              "energy_eV": optics.energy_eV, "optics": optics.to_dict(), "camera": camera.to_dict(),
              "film": film_record, "arrangement": {
                  "mode": settings["mode"], "coverage": settings["coverage"], "overlap": settings["overlap"],
                  "jitter": settings["jitter"], "vacancies": settings["vacancies"], "voids": settings["voids"],
                  "particles_placed": len(placed),
                  "placed_coverage": float(sum(q.solid.projected_area() for q in placed) / (padded[0] * padded[1]))},
              "materials": settings["materials"], "shapes": settings["shapes"],
              "median_diameter_nm": settings["median_diameter_nm"], "median_diameter_px": median_px,
              "size_sigma": sigma, "flat_plates": settings["flat_plates"],
              "diffraction_contrast": settings["diffraction_contrast"], "particle_fraction": float(np.mean(ids > 0)),
              "recipe": recipe_record if recipe_record is not None else recipe.model_dump(mode="json")}
    rows_cols = (rows, cols)
    return Sample(int(index), image, (ids > 0).astype(np.uint8), np.full(rows_cols, -1, np.int16),
                  np.zeros(rows_cols, np.uint16), np.zeros((0, 4), np.float32), params, ids, records)
