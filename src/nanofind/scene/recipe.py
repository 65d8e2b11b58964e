"""YAML recipes: one scene, or a distribution of scenes.

Any value may be given fixed or as a distribution, which is drawn anew for every scene:

- ``{uniform: [low, high]}``
- ``{normal: {mean: m, std: s}}`` and ``{lognormal: {median: m, sigma: s}}``, with optional
  ``min`` / ``max`` clipping, e.g. ``{lognormal: {median: 45, sigma: 0.3}, min: 20, max: 90}``
- ``{choice: [a, b, c], weights: [0.5, 0.3, 0.2]}`` (weights optional; entries may be any value,
  including lists such as zone axes).

(The distribution models, checks and draws are in :mod:`nanofind.scene.distributions`.)

:func:`load_recipe` validates a file (unknown keys are rejected, every error names its field);
:func:`sample_scene_spec` draws one concrete scene specification, a plain JSON-able dict (each
particle a :class:`nanofind.scene.concrete.ConcreteParticle` as a dict) that
:func:`nanofind.scene.build.build_scene_from_spec` turns into atoms and that is stored with
the output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from nanofind.errors import NanofindInputError
from nanofind.scene.concrete import (
    DEFAULT_MTP_AXIS,
    DEFAULT_ZONE_AXIS,
    MULTIPLY_TWINNED_SHAPES,
    SHAPES,
    ConcreteParticle,
)
from nanofind.scene.distributions import (
    DISTRIBUTION_TYPES,
    Choice,
    Number,
    StrictModel,
    Uniform,
    as_choice,
    check_fraction,
    check_numeric,
    check_positive,
    checked_field,
    choice_options,
    draw,
    lower_bound,
)

#: Defaults of a particle's fields that a recipe shares with a concrete particle.
_DEFAULT = ConcreteParticle()


def _may_be_positive(value: Any) -> bool:
    """Whether a probability field can draw a value above zero."""
    if isinstance(value, (int, float)):
        return value > 0
    if isinstance(value, Uniform):
        return value.uniform[1] > 0
    if isinstance(value, Choice):
        return any(v > 0 for v in value.choice)
    return True


def _pair_table(table: dict[str, float]) -> dict[str, float]:
    """Check ``{"Au-C": 2.0}``-style keys (two known elements) and positive distances."""
    from ase.data import atomic_numbers

    for key, value in table.items():
        parts = key.split("-")
        if len(parts) != 2 or not all(p in atomic_numbers for p in parts):
            raise ValueError(f"pair {key!r} must be two element symbols joined by '-', like 'Au-C'")
        if not value > 0:
            raise ValueError(f"distance for {key} must be > 0 Å, got {value}")
    return table


def _check_axis(axis: Any) -> None:
    if axis == "random":
        return
    if isinstance(axis, str):
        raise ValueError(f"zone axis must be [u, v, w], [U, V, T, W] or 'random', got {axis!r} "
                         "(decahedra and icosahedra take 'mtp_axis')")
    arr = np.asarray(axis, dtype=float)
    if arr.shape not in ((3,), (4,)):
        raise ValueError(f"zone axis needs 3 (or 4 hexagonal) components, got {axis}")
    if not np.any(arr):
        raise ValueError(f"zone axis cannot be zero, got {axis}")
    if arr.shape == (4,) and abs(arr[2] + arr[0] + arr[1]) > 1e-9:
        raise ValueError(f"four-index axis {axis} needs its third index = -(first + second)")


class FieldSpec(StrictModel):
    """Field of view."""

    size_A: tuple[float, float] = (100.0, 100.0)
    height_A: float | None = Field(default=None, gt=0, description="cell height; default fits the atoms")

    @field_validator("size_A")
    @classmethod
    def _size(cls, v):
        if min(v) <= 0:
            raise ValueError(f"field size must be > 0 Å, got {list(v)}")
        return v


class SubstrateSpec(StrictModel):
    """Amorphous substrate slab spanning the field laterally."""

    composition: dict[str, float] = Field(default_factory=lambda: {"C": 1.0})
    thickness_A: Number = 30.0
    density_g_cm3: Number = 2.0
    min_distance_A: float | dict[str, float] = 1.3

    @field_validator("composition")
    @classmethod
    def _composition(cls, v):
        from ase.data import atomic_numbers

        if not v:
            raise ValueError("composition must name at least one element")
        for element, amount in v.items():
            if element not in atomic_numbers:
                raise ValueError(f"unknown element {element!r}")
            if amount <= 0:
                raise ValueError(f"amount of {element} must be > 0, got {amount}")
        return v

    _thick = checked_field(lambda v: check_positive(check_numeric(v), " Å"), "thickness_A")
    _dens = checked_field(lambda v: check_positive(check_numeric(v), " g/cm³"), "density_g_cm3")

    @field_validator("min_distance_A")
    @classmethod
    def _dmin(cls, v):
        if isinstance(v, dict):
            return _pair_table(v)
        if v <= 0:
            raise ValueError(f"must be > 0 Å, got {v}")
        return v


class DefectSpec(StrictModel):
    """Defect probabilities (planar defects are exclusive: at most one kind per particle)."""

    twin: Number = 0.0
    lamellae: Number = 0.0
    lamella_count: Number = Field(default_factory=lambda: Choice(choice=[2, 3]))
    intrinsic_fault: Number = 0.0
    extrinsic_fault: Number = 0.0
    plane: list[float] | Literal["edge_on", "random"] = _DEFAULT.defect_plane
    vacancy_fraction: Number = _DEFAULT.vacancy_fraction
    substitution: dict[str, Any] | None = None

    _prob = checked_field(lambda v: check_fraction(check_numeric(v)), "twin", "lamellae", "intrinsic_fault",
                          "extrinsic_fault", "vacancy_fraction")

    @field_validator("lamella_count")
    @classmethod
    def _lamellae(cls, v):
        low = lower_bound(check_numeric(v))
        if low is None or low < 1:
            raise ValueError(f"must be a whole number >= 1, got {low}")
        return v

    @field_validator("plane")
    @classmethod
    def _plane(cls, v):
        if isinstance(v, list):
            if len(v) not in (3, 4) or not any(v):
                raise ValueError(f"plane needs 3 (or 4 hexagonal) indices, not all zero, got {v}")
            if len(v) == 4 and abs(v[2] + v[0] + v[1]) > 1e-9:
                raise ValueError(f"four-index plane {v} needs its third index = -(first + second)")
        return v

    @field_validator("substitution")
    @classmethod
    def _sub(cls, v):
        if v is None:
            return v
        unknown = set(v) - {"element", "fraction", "host"}
        if unknown or "element" not in v or "fraction" not in v:
            raise ValueError("substitution needs 'element' and 'fraction' (and optional 'host')")
        from ase.data import atomic_numbers

        for key in ("element", "host"):
            if v.get(key) is not None and v[key] not in atomic_numbers:
                raise ValueError(f"unknown element {v[key]!r} for {key}")
        if not isinstance(v["fraction"], (int, float)) or not 0 <= v["fraction"] < 1:
            raise ValueError(f"substitution fraction must be in [0, 1), got {v['fraction']!r}")
        return v


class ParticleSpec(StrictModel):
    """One particle, or a particle type when ``particles_per_field`` is set."""

    material: Any = _DEFAULT.material
    shape: Any = _DEFAULT.shape
    diameter_A: Number = _DEFAULT.diameter_A
    zone_axis: Any = Field(default_factory=lambda: list(DEFAULT_ZONE_AXIS))
    mtp_axis: Any = DEFAULT_MTP_AXIS
    in_plane_deg: Number = _DEFAULT.in_plane_deg
    off_axis_fraction: Number = 0.0
    off_axis_tilt_deg: Number = Field(default_factory=lambda: Uniform(uniform=(3.0, 20.0)))
    facets: dict[str, float] | None = None
    surface_energies: dict[str, float] | None = None
    gap: Literal["strain", "closed"] = _DEFAULT.gap
    defects: DefectSpec = Field(default_factory=DefectSpec)
    position_A: tuple[float, float] | None = None
    edge_fraction: Number = 0.0
    touching_fraction: Number = 0.0
    weight: float = Field(default=1.0, gt=0)

    _diam = checked_field(lambda v: check_positive(check_numeric(v), " Å"), "diameter_A")
    _frac = checked_field(lambda v: check_fraction(check_numeric(v)), "off_axis_fraction", "edge_fraction",
                          "touching_fraction")
    _angle = checked_field(check_numeric, "in_plane_deg", "off_axis_tilt_deg")

    @field_validator("shape")
    @classmethod
    def _shape(cls, v):
        v = as_choice(v)
        for shape in choice_options(v):
            if not isinstance(shape, str) or shape not in SHAPES:
                raise ValueError(f"unknown shape {shape!r}; use one of {sorted(SHAPES)}")
        return v

    @field_validator("material")
    @classmethod
    def _material(cls, v):
        from nanofind.scene.lattice import MATERIALS, load_unit_cell

        v = as_choice(v)
        for material in choice_options(v):
            if isinstance(material, dict) and set(material) in ({"cif"}, {"bulk"}):
                load_unit_cell(material)  # a bad structure or a missing file is a field error now
                continue
            if isinstance(material, str) and (material in MATERIALS or material.lower().endswith(".cif")):
                continue
            raise ValueError(f"unknown material {material!r}; use one of {', '.join(MATERIALS)}, "
                             "{cif: path} or {bulk: {...}}")
        return v

    @field_validator("zone_axis")
    @classmethod
    def _axis(cls, v):
        v = as_choice(v)
        for axis in choice_options(v):
            _check_axis(axis)
        return v

    @field_validator("mtp_axis")
    @classmethod
    def _mtp_axis(cls, v):
        v = as_choice(v)
        for axis in choice_options(v):
            if axis not in ("5fold", "3fold", "2fold", "random"):
                raise ValueError(f"mtp_axis must be 5fold, 3fold, 2fold or random, got {axis!r}")
        return v

    @model_validator(mode="after")
    def _facets(self):
        if self.shape == "polyhedron" and not self.facets:
            raise ValueError("shape 'polyhedron' needs 'facets' ({'111': distance_A, ...})")
        return self

    @model_validator(mode="after")
    def _defects_possible(self):
        """Planar defects asked for must exist in every single-crystal material that may be drawn."""
        from nanofind.scene.crystal import supports_planar_defect
        from nanofind.scene.lattice import close_packed_plane, load_unit_cell

        d = self.defects
        kinds = [k for k, p in (("twin", d.twin), ("twin", d.lamellae), ("intrinsic", d.intrinsic_fault),
                                ("extrinsic", d.extrinsic_fault)) if _may_be_positive(p)]
        if not kinds or all(s in MULTIPLY_TWINNED_SHAPES for s in choice_options(self.shape)):
            return self
        for material in choice_options(self.material):
            cell = load_unit_cell(material)
            plane = tuple(d.plane) if isinstance(d.plane, list) else close_packed_plane(cell.cell)
            for kind in dict.fromkeys(kinds):
                if not supports_planar_defect(cell, kind, plane):
                    what = "twin" if kind == "twin" else f"{kind} stacking fault"
                    raise ValueError(f"{material} has no {what} on {plane} planes that keeps every atom's "
                                     "coordination; give it its own particle type without that defect")
        return self


class SceneRecipe(StrictModel):
    """A scene or a distribution of scenes."""

    name: str | None = None
    description: str | None = None
    field: FieldSpec = Field(default_factory=FieldSpec)
    substrate: SubstrateSpec | None = Field(default_factory=SubstrateSpec)
    particles: list[ParticleSpec] = Field(default_factory=list)
    particles_per_field: Number | None = None
    clearance_A: dict[str, float] = Field(default_factory=dict)

    _count = checked_field(lambda v: check_positive(check_numeric(v), "", allow_zero=True), "particles_per_field",
                           allow=(None,))

    @field_validator("clearance_A")
    @classmethod
    def _clearance(cls, v):
        return _pair_table(v)

    @model_validator(mode="after")
    def _needs_template(self):
        if self.particles_per_field is not None and not self.particles:
            raise ValueError("particles_per_field needs at least one particle type in 'particles'")
        return self


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    type_tags = {"float", "int", "str", "list", "dict", "bool", "tuple", "none", "literal", "function-after",
                 "function-before", "function-wrap", "list[float]", "dict[str,float]", "dict[str,any]"}
    parts = []
    for item in first["loc"]:
        text = str(item)
        if text.lower() in type_tags or text in {c.__name__ for c in DISTRIBUTION_TYPES} or "[" in text:
            continue
        parts.append(f"[{item}]" if isinstance(item, int) else text)
    loc = ".".join(parts).replace(".[", "[") or "recipe"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{source}: {loc}: {msg}"


def parse_recipe(data: Any, source: str = "recipe", model: type[SceneRecipe] | None = None) -> SceneRecipe:
    """Validate a recipe given as a mapping (parsed YAML or JSON) as ``model`` (default SceneRecipe)."""
    if not isinstance(data, dict):
        raise NanofindInputError(f"{source}: a recipe must be a mapping of keys, got {type(data).__name__}")
    try:
        return (model or SceneRecipe).model_validate(data)
    except ValidationError as err:
        raise NanofindInputError(_format_validation_error(err, source)) from None


def read_recipe_yaml(path: str | Path) -> Any:
    """The parsed contents of a YAML recipe file (safe loader), or one-line errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise NanofindInputError(f"{path}: cannot read recipe: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise NanofindInputError(f"{path}: not valid YAML{where}") from None


def load_recipe(path: str | Path) -> SceneRecipe:
    """Read and validate a YAML recipe file (safe loader; unknown keys are rejected)."""
    return parse_recipe(read_recipe_yaml(path), str(path))


# ---- sampling -------------------------------------------------------------------------------
def _draw_particle(p: ParticleSpec, rng: np.random.Generator) -> dict:
    """One concrete particle (as its stored dict) of a particle type; the draws happen in this order."""
    defects = p.defects
    kinds = [("twin", draw(defects.twin, rng)), ("lamellae", draw(defects.lamellae, rng)),
             ("intrinsic", draw(defects.intrinsic_fault, rng)), ("extrinsic", draw(defects.extrinsic_fault, rng))]
    u = rng.uniform()
    planar, acc = None, 0.0
    for kind, prob in kinds:
        acc += prob
        if planar is None and u < acc:
            planar = kind
    shape = draw(p.shape, rng)
    if shape in MULTIPLY_TWINNED_SHAPES:
        planar = None  # already multiply twinned; vacancies and alloying still apply
    count = {"twin": 1, "lamellae": max(1, int(round(draw(defects.lamella_count, rng)))), "intrinsic": 1,
             "extrinsic": 1}
    diameter = float(draw(p.diameter_A, rng))
    positions = []
    if planar is not None:
        # planes at least 6 Å apart, the set centred within ±10% of the diameter
        gaps = rng.uniform(6.0, max(8.0, 0.25 * diameter), size=count[planar] - 1)
        start = -gaps.sum() / 2 + rng.uniform(-0.1, 0.1) * diameter
        positions = [float(x) for x in start + np.concatenate([[0.0], np.cumsum(gaps)])]
    off_axis = rng.uniform() < draw(p.off_axis_fraction, rng)
    zone = draw(p.mtp_axis if shape in MULTIPLY_TWINNED_SHAPES else p.zone_axis, rng)
    return ConcreteParticle(
        material=draw(p.material, rng),
        shape=shape,
        diameter_A=diameter,
        zone_axis=zone if isinstance(zone, str) else [float(x) for x in zone],
        in_plane_deg=float(draw(p.in_plane_deg, rng)),
        tilt_deg=float(draw(p.off_axis_tilt_deg, rng)) if off_axis else 0.0,
        tilt_azimuth_deg=float(rng.uniform(0, 360)) if off_axis else 0.0,
        facets=p.facets,
        surface_energies=p.surface_energies,
        gap=p.gap,
        planar_defect=planar,
        planar_positions_A=positions,
        defect_plane=defects.plane,
        vacancy_fraction=float(draw(defects.vacancy_fraction, rng)),
        substitution=defects.substitution,
        position_A=p.position_A,
        edge_cut=bool(rng.uniform() < draw(p.edge_fraction, rng)),
        touching=bool(rng.uniform() < draw(p.touching_fraction, rng)),
    ).to_dict()


def sample_scene_spec(recipe: SceneRecipe, rng: np.random.Generator | int | None) -> dict:
    """Draw one concrete scene specification (JSON-serialisable) from a recipe."""
    rng = np.random.default_rng(rng)
    substrate = None
    if recipe.substrate is not None:
        s = recipe.substrate
        substrate = {"composition": dict(s.composition), "thickness_A": float(draw(s.thickness_A, rng)),
                     "density_g_cm3": float(draw(s.density_g_cm3, rng)), "min_distance_A": s.min_distance_A}
    if recipe.particles_per_field is None:
        templates = list(recipe.particles)
    else:
        n = int(round(draw(recipe.particles_per_field, rng)))
        w = np.array([p.weight for p in recipe.particles])
        templates = [recipe.particles[int(k)] for k in rng.choice(len(w), size=n, p=w / w.sum())]
    particles = [_draw_particle(p, rng) for p in templates]
    spec = {"field_A": [float(x) for x in recipe.field.size_A], "height_A": recipe.field.height_A,
            "substrate": substrate, "particles": particles, "clearance_A": dict(recipe.clearance_A)}
    json.dumps(spec)  # guarantees the spec can be stored with the output
    return spec
