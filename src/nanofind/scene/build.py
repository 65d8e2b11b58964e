"""Turn a concrete scene specification (see :mod:`nanofind.scene.recipe`) into atoms.

Randomness: one master seed is split with ``numpy.random.SeedSequence`` into independent
streams for drawing the specification, the substrate, the placement and each particle, so
the same recipe and seed always give the same atoms.

:func:`build_scene` (recipe and seed) is what ``nanofind scene`` runs: its atoms carry their
provenance (recipe, seed, concrete specification, nanofind version) in ``info``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from nanofind import __version__
from nanofind.errors import NanofindInputError
from nanofind.scene.amorphous import AmorphousGenerator
from nanofind.scene.concrete import MULTIPLY_TWINNED_SHAPES, ConcreteParticle
from nanofind.scene.crystal import CrystalGenerator, GeneratedAtoms, PlanarDefect
from nanofind.scene.distributions import DISTRIBUTION_TYPES
from nanofind.scene.lattice import (
    close_packed_plane,
    equivalent_plane_normals,
    is_hexagonal,
    load_unit_cell,
    nearest_neighbour_distance,
)
from nanofind.scene.multiply_twinned import (
    DecahedronGenerator,
    IcosahedronGenerator,
    fcc_metal_parameters,
    icosahedron_vertices,
)
from nanofind.scene.orientation import (
    random_rotation,
    rotation_about_axis,
    rotation_to_z,
    tilt_rotation,
    zone_axis_rotation,
)
from nanofind.scene.placement import PlacementError, lateral_radius_A, rest_on, rest_touching, scatter_xy
from nanofind.scene.recipe import SceneRecipe, sample_scene_spec
from nanofind.scene.scene import Scene, SceneObject
from nanofind.scene.volumes import (
    ConvexPolyhedron,
    Sphere,
    equivalent_diameter_A,
    faceted_polyhedron,
    wulff_polyhedron,
)

#: A distribution recipe whose draw does not fit in the field is drawn again, up to this often.
MAX_DRAWS = 20
#: Height of the substrate's lower surface above z = 0, Å.
SUBSTRATE_BASE_A = 1.0
#: Substrates kept in memory per process: a spec that names its substrate ``seed`` (a substrate
#: pool in a simulation recipe) reuses the packed atoms instead of packing them again.
SUBSTRATE_CACHE_SIZE = 4
_SUBSTRATE_ATOMS: OrderedDict = OrderedDict()

_FCC_ENERGIES = {(1, 1, 1): 1.0, (1, 0, 0): 1.15, (1, 1, 0): 1.25}
_FLUORITE_ENERGIES = {(1, 1, 1): 1.0, (1, 1, 0): 1.25, (1, 0, 0): 1.45}
_HEXAGONAL_ENERGIES = {(1, 0, -1, 0): 1.0, (1, 1, -2, 0): 1.05, (0, 0, 0, 1): 1.1}


def parse_miller(text: str | tuple | list) -> tuple[int, ...]:
    """Parse Miller indices written as ``"111"``, ``"1-10"``, ``"10-10"``, ``"1 -1 0"`` or a list."""
    if isinstance(text, (tuple, list)):
        return tuple(int(v) for v in text)
    s = str(text).strip()
    parts = re.split(r"[\s,]+", s) if re.search(r"[\s,]", s) else re.findall(r"-?\d", s)
    if len(parts) not in (3, 4) or "".join(parts).replace("-", "") == "" or not all(re.fullmatch(r"-?\d+", p)
                                                                                    for p in parts):
        raise NanofindInputError(f"cannot read Miller indices {text!r}; write e.g. '111', '1-10' or '1 0 -1 0'",
                                 "facets")
    return tuple(int(p) for p in parts)


def default_surface_energies(unit_cell: Atoms) -> dict[tuple[int, ...], float]:
    """Relative surface energies used for Wulff shapes when the recipe gives none."""
    cell = np.asarray(unit_cell.cell)
    if is_hexagonal(cell):
        return dict(_HEXAGONAL_ENERGIES)
    if "O" in unit_cell.get_chemical_symbols():
        return dict(_FLUORITE_ENERGIES)
    return dict(_FCC_ENERGIES)


def defect_plane_hkl(unit_cell: Atoms, rotation: np.ndarray, choice, rng: np.random.Generator) -> tuple:
    """Miller indices of a particle's planar defects for the spec's ``defect_plane`` choice (draws from ``rng``)."""
    cell = np.asarray(unit_cell.cell)
    if isinstance(choice, (list, tuple)):
        return tuple(choice)
    normals = equivalent_plane_normals(cell, close_packed_plane(cell))
    normals = normals[np.argsort(-(normals @ np.ones(3)), kind="stable")]
    if choice == "edge_on":
        edge = normals[np.abs((normals @ rotation.T)[:, 2]) < 1e-6]
        normals = edge if len(edge) else normals
    n = normals[int(rng.integers(len(normals)))] if choice == "random" else normals[0]
    hkl = n @ cell.T
    hkl = hkl / np.abs(hkl[np.abs(hkl) > 1e-6]).min()
    return tuple(int(round(v)) for v in hkl)


def mtp_axis_rotation(shape: str, axis) -> np.ndarray:
    """Rotation putting a decahedron's or icosahedron's named symmetry axis (5fold, 3fold, 2fold) along the beam."""
    if axis == "5fold":
        return np.eye(3)
    if shape == "decahedron" and axis == "2fold":
        # view along local x: through an equatorial vertex, one of the five two-fold axes
        return rotation_about_axis([0, 1, 0], 90.0)
    if shape == "icosahedron" and axis in ("3fold", "2fold"):
        v = icosahedron_vertices()
        face = IcosahedronGenerator("Au", 1.0).faces()[0]
        target = v[face].sum(axis=0) if axis == "3fold" else v[face[0]] + v[face[1]]
        return rotation_to_z(target)
    raise NanofindInputError(f"zone axis {axis!r} is not available for a {shape}; use 5fold"
                             + (", 3fold or 2fold" if shape == "icosahedron" else " or 2fold"), "zone_axis")


@dataclass(frozen=True)
class ParticleFrame:
    """How a particle's crystal sits in the scene."""

    rotation: np.ndarray  #: crystal (or MTP) frame to lab frame (beam along z), acting on column vectors
    defect_plane_hkl: tuple[int, ...] | None  #: Miller indices of its planar defects; None without them


def particle_frame(p: ConcreteParticle, unit_cell: Atoms, rng: np.random.Generator) -> ParticleFrame:
    """The orientation and planar-defect plane of a particle, drawing from ``rng`` what building it draws first.

    :func:`particle_object` builds the particle in this frame; the ground-truth records
    (:mod:`nanofind.scene.particle_records`) repeat it from the particle's seed.
    """
    tilt = tilt_rotation(p.tilt_deg, p.tilt_azimuth_deg)
    in_plane = rotation_about_axis([0, 0, 1], p.in_plane_deg)
    axis = p.zone_axis
    if p.shape in MULTIPLY_TWINNED_SHAPES:
        base = random_rotation(rng) if axis == "random" else mtp_axis_rotation(p.shape, axis)
        return ParticleFrame(tilt @ in_plane @ base, None)
    cell = np.asarray(unit_cell.cell)
    if isinstance(axis, str) and axis != "random":
        raise NanofindInputError(f"zone axis {axis!r} applies to decahedra and icosahedra only", "zone_axis")
    if not isinstance(axis, str) and len(axis) == 4 and not is_hexagonal(cell):
        raise NanofindInputError(f"four-index zone axis {list(axis)} needs a hexagonal cell", "zone_axis")
    base = random_rotation(rng) if axis == "random" else zone_axis_rotation(cell, axis)
    rotation = tilt @ in_plane @ base
    plane = defect_plane_hkl(unit_cell, rotation, p.defect_plane, rng) if p.planar_defect else None
    return ParticleFrame(rotation, plane)


def build_seed(scene_seed: int, draw_attempt: int) -> int:
    """The seed :func:`build_scene` builds draw attempt ``draw_attempt`` of a scene with."""
    return int(np.random.SeedSequence(scene_seed).spawn(2 * MAX_DRAWS)[2 * draw_attempt + 1].generate_state(1)[0])


def particle_seeds(seed: int, n_particles: int) -> list[int]:
    """The seed of each particle of a scene that :func:`build_scene_from_spec` builds with ``seed``."""
    particles_ss = np.random.SeedSequence(seed).spawn(3)[2]
    return [int(s.generate_state(1)[0]) for s in particles_ss.spawn(n_particles)]


def particle_object(p: ConcreteParticle | Mapping, seed: int, priority: int = 0) -> SceneObject:
    """Build the scene object of one concrete particle, centred on the origin.

    ``p`` is a :class:`ConcreteParticle` or its mapping (a ``nanofind_spec`` particle entry; keys
    left out take the defaults of :class:`ConcreteParticle`).
    """
    p = ConcreteParticle.from_mapping(p)
    rng = np.random.default_rng(seed)
    unit_cell = load_unit_cell(p.material)
    shape, diameter = p.shape, p.diameter_A
    frame = particle_frame(p, unit_cell, rng)
    rotation = frame.rotation
    name = f"{p.material if isinstance(p.material, str) else unit_cell.get_chemical_formula()} {shape}"
    if shape in MULTIPLY_TWINNED_SHAPES:
        element, d_nn = fcc_metal_parameters(unit_cell)
        if shape == "decahedron":
            unit = DecahedronGenerator(element, d_nn, p.gap).bipyramid(1)
            n = max(1, int(round(diameter / equivalent_diameter_A(unit.volume_A3()))))
            gen = DecahedronGenerator(element, d_nn, p.gap, (n % 2) * d_nn / 2, rotation)
            volume = gen.bipyramid(n)
        else:
            unit = IcosahedronGenerator(element, d_nn).mackay(1)
            n = max(1, int(round(diameter / equivalent_diameter_A(unit.volume_A3()))))
            gen = IcosahedronGenerator(element, d_nn, rotation)
            volume = gen.mackay(n)
    else:
        cell = np.asarray(unit_cell.cell)
        defects = ()
        if frame.defect_plane_hkl is not None:
            kind = "twin" if p.planar_defect in ("twin", "lamellae") else p.planar_defect
            defects = tuple(PlanarDefect(kind, frame.defect_plane_hkl, x) for x in p.planar_positions_A)
        gen = CrystalGenerator(unit_cell, rotation, defects)
        if shape == "sphere":
            volume = Sphere(np.zeros(3), diameter / 2)
        elif shape == "wulff":
            energies = ({parse_miller(k): v for k, v in p.surface_energies.items()}
                        if p.surface_energies else default_surface_energies(unit_cell))
            volume = wulff_polyhedron(cell, energies, diameter, rotation)
        elif shape == "polyhedron":
            facets = {parse_miller(k): v for k, v in (p.facets or {}).items()}
            if not facets:
                raise NanofindInputError("shape 'polyhedron' needs facets", "facets")
            volume = faceted_polyhedron(cell, facets, rotation)
        else:
            raise NanofindInputError(f"unknown shape {shape!r}", "shape")
    obj = SceneObject(gen, volume, priority=priority, name=name, is_particle=True,
                      vacancy_fraction=p.vacancy_fraction, substitution=p.substitution,
                      seed=int(rng.integers(2**63)))
    if len(obj.local_atoms().numbers) == 0:
        raise NanofindInputError(f"the particle holds no atoms (diameter {diameter} Å is too small)", "diameter_A")
    return obj


def _check_fixed_positions(particles: list[ConcreteParticle], fixed, radii, field) -> None:
    """Fixed positions must lie in the field and their projected footprints must not overlap."""
    for k in fixed:
        x, y = particles[k].position_A
        if not (0 <= x <= field[0] and 0 <= y <= field[1]):
            raise NanofindInputError(f"({x}, {y}) Å lies outside the {field[0]:g} x {field[1]:g} Å field",
                                     f"particles[{k}].position_A")
        for j in fixed:
            if j < k and not particles[k].touching:
                gap = np.hypot(x - particles[j].position_A[0], y - particles[j].position_A[1]) - radii[j] - radii[k]
                if gap < 0:
                    raise NanofindInputError(f"particle overlaps particle {j} in projection by {-gap:.1f} Å; "
                                             "move them apart", f"particles[{k}].position_A")


@contextmanager
def _field_context(prefix: str):
    """Prefix the field of input errors raised inside, e.g. ``material`` -> ``particles[1].material``."""
    try:
        yield
    except PlacementError:
        raise
    except NanofindInputError as err:
        field = f"{prefix}.{err.field}" if err.field else prefix
        raise NanofindInputError(err.message, field) from None


def _substrate_object(sub: Mapping, period: tuple[float, float], seed: int) -> SceneObject:
    """The substrate slab of a spec's ``substrate`` entry, its atoms reused from an earlier scene when equal."""
    lx, ly = period
    gen = AmorphousGenerator(sub["composition"], sub["density_g_cm3"], sub["min_distance_A"], period)
    box = ConvexPolyhedron.box([0, 0, SUBSTRATE_BASE_A], [lx, ly, SUBSTRATE_BASE_A + sub["thickness_A"]])
    fields = {"priority": 1_000_000, "name": "substrate", "is_particle": False, "seed": seed}
    key = (tuple(sorted(sub["composition"].items())), sub["density_g_cm3"], repr(sub["min_distance_A"]),
           lx, ly, sub["thickness_A"], seed)
    if key in _SUBSTRATE_ATOMS:
        _SUBSTRATE_ATOMS.move_to_end(key)
        return SceneObject.from_generated(_SUBSTRATE_ATOMS[key], gen, box, **fields)
    substrate = SceneObject(gen, box, **fields)
    _SUBSTRATE_ATOMS[key] = substrate.local_atoms()
    while len(_SUBSTRATE_ATOMS) > SUBSTRATE_CACHE_SIZE:
        _SUBSTRATE_ATOMS.popitem(last=False)
    return substrate


def build_scene_from_spec(spec: Mapping, seed: int) -> Atoms:
    """Atoms with label arrays for one concrete specification (see :func:`sample_scene_spec`)."""
    substrate_ss, placement_ss, _ = np.random.SeedSequence(seed).spawn(3)  # the third: particle_seeds
    lx, ly = (float(v) for v in spec["field_A"])
    scene = Scene((lx, ly, spec.get("height_A") or 1.0), clearance_A=spec.get("clearance_A", {}))
    period = (lx, ly)
    sub = spec.get("substrate")
    if sub:
        with _field_context("substrate"):
            sub_seed = int(sub["seed"]) if sub.get("seed") is not None else int(substrate_ss.generate_state(1)[0])
            substrate = _substrate_object(sub, period, sub_seed)
            support = substrate.atoms()
    else:
        substrate, support = None, GeneratedAtoms.empty()
    rng = np.random.default_rng(placement_ss)
    specs = []
    for k, p in enumerate(spec.get("particles", [])):
        with _field_context(f"particles[{k}]"):
            specs.append(ConcreteParticle.from_mapping(p))
    seeds = particle_seeds(seed, len(specs))
    objects = []
    for k, (p, s) in enumerate(zip(specs, seeds, strict=True)):
        with _field_context(f"particles[{k}]"):
            objects.append(particle_object(p, s, priority=k))
    radii = [lateral_radius_A(o) for o in objects]
    touching = [p.touching and k > 0 for k, p in enumerate(specs)]
    # a particle that touches the previous one reserves room beside it
    reserve = list(radii)
    for k in range(1, len(objects)):
        if touching[k]:
            reserve[k - 1] = radii[k - 1] + 2 * radii[k] + 3.0
    fixed = [k for k, p in enumerate(specs) if p.position_A is not None]
    _check_fixed_positions(specs, fixed, radii, (lx, ly))
    free = [k for k in range(len(objects)) if k not in fixed and not touching[k]]
    occupied = [(specs[k].position_A, reserve[k]) for k in fixed]
    centres = scatter_xy([reserve[k] for k in free], (lx, ly), rng, edge_cut=[specs[k].edge_cut for k in free],
                         occupied=occupied)
    xy = {k: np.asarray(specs[k].position_A, float) for k in fixed}
    xy.update({k: c for k, c in zip(free, centres, strict=True)})
    placed: list[SceneObject] = []
    for k, obj in enumerate(objects):
        if touching[k]:
            d_contact = max(nearest_neighbour_distance(load_unit_cell(specs[j].material)) for j in (k - 1, k))
            obj = rest_touching(obj, placed[k - 1], support, float(rng.uniform(0, 360)),
                                contact_A=d_contact, clearance_A=scene.clearance_A, lateral_period_A=period)
        else:
            obj = rest_on(obj, support, xy[k], clearance_A=scene.clearance_A,
                          lateral_period_A=period)
        obj.carves = False
        placed.append(obj)
        scene.add(obj)
    if substrate is not None:
        scene.add(substrate)
    atoms = scene.build()
    atoms.info["nanofind_seed"] = int(seed)
    return atoms


def build_scene(recipe: SceneRecipe, seed: int, substrate: Mapping | None = None,
                recipe_path: str | Path | None = None) -> tuple[Atoms, dict]:
    """Draw a specification from ``recipe`` with ``seed`` and build it: the atoms ``nanofind scene`` writes.

    Parameters
    ----------
    recipe : SceneRecipe
        The validated recipe.
    seed : int
        Master seed; the same recipe and seed give the same atoms.
    substrate : mapping, optional
        Replaces the drawn substrate specification (keys as in the spec's ``substrate`` entry,
        optionally with its own ``seed``).
    recipe_path : str or Path, optional
        The recipe's file, recorded as ``nanofind_recipe_path``.

    Returns
    -------
    atoms : ase.Atoms
        With label arrays and provenance in ``info``: ``nanofind_seed``, ``nanofind_recipe`` (the
        recipe as JSON-able data), ``nanofind_recipe_path`` (when given), ``nanofind_spec`` (the
        concrete specification) and ``nanofind_version``.
    spec : dict
        The concrete specification that was built (the object stored as ``nanofind_spec``).
    """
    streams = np.random.SeedSequence(seed).spawn(2 * MAX_DRAWS)
    for attempt in range(MAX_DRAWS):
        spec = sample_scene_spec(recipe, np.random.default_rng(streams[2 * attempt]))
        if substrate is not None:
            spec["substrate"] = dict(substrate)
        try:
            atoms = build_scene_from_spec(spec, build_seed(seed, attempt))
        except PlacementError:
            if attempt == MAX_DRAWS - 1 or _is_fixed(recipe):
                raise
            continue
        spec["draw_attempt"] = attempt
        # the key order is the order of the comment line of a written extended XYZ file
        atoms.info["nanofind_seed"] = int(seed)
        atoms.info["nanofind_recipe"] = recipe.model_dump(mode="json", exclude_none=True)
        if recipe_path is not None:
            atoms.info["nanofind_recipe_path"] = str(recipe_path)
        atoms.info["nanofind_spec"] = spec
        atoms.info["nanofind_version"] = __version__
        return atoms, spec
    raise AssertionError("unreachable")


def _is_fixed(recipe: SceneRecipe) -> bool:
    """Whether the recipe describes one scene (no distributions to redraw)."""
    def walk(v):
        if isinstance(v, DISTRIBUTION_TYPES):
            return False
        if isinstance(v, dict):
            return all(walk(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return all(walk(x) for x in v)
        if hasattr(v, "__dict__") and hasattr(v, "model_fields"):
            return all(walk(getattr(v, k)) for k in type(v).model_fields)
        return True

    return walk(recipe)
