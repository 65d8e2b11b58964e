"""HRTEM images of chiral particles: one pinwheel plate per small image, right- or left-handed.

Each image shows one crystalline :class:`~nanofind.scene.chiral.ChiralPrism` (a plate whose
outline has a handedness) resting on amorphous carbon, simulated with nanofind's own simulator in
its fast mode: the phase-object exit wave (:func:`~nanofind.simulate.multislice.simulate_exit_waves`
with ``mode="phase_object"``), the objective lens (:func:`~nanofind.simulate.optics.image_intensity`)
and the camera (:class:`~nanofind.simulate.detector.Detector`: binning, Poisson shot noise, MTF).

Why it is fast: the simulation cell is exactly the image field and the carbon is laterally
periodic, so no margin is simulated. The carbon comes from a small pool of patches whose
potentials are built once per process (:class:`~nanofind.simulate.multislice.SubstratePotentialCache`);
the particle lands at a random place on its patch and the periodic intensity is rolled so that
the particle sits near the image centre, so no two images share the same carbon behind the
particle. The crystal lattice (zone axis and in-plane angle) is drawn independently of the
outline, so only the outline carries the handedness.

Geometry: pixel ``image[row, col]`` covers ``x = col·p … (col + 1)·p``, ``y = row·p … (row + 1)·p``
(``p = pixel_size_A``). Shown with row 0 at the top, the image is the scene seen with y pointing
down, so a "right" outline (hooks counter-clockwise with y up) appears with its hooks clockwise;
both hands are affected alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from ase import Atoms

from nanofind._parallel import cached_in_process, run_tasks
from nanofind.scene.amorphous import AmorphousGenerator
from nanofind.scene.chiral import HANDS, ChiralPrism
from nanofind.scene.crystal import CrystalGenerator, GeneratedAtoms
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.orientation import rotation_about_axis, zone_axis_rotation
from nanofind.scene.placement import rest_shift_A
from nanofind.scene.volumes import ConvexPolyhedron
from nanofind.simulate.detector import Detector
from nanofind.simulate.multislice import MultisliceSettings, SubstratePotentialCache, simulate_exit_waves
from nanofind.simulate.optics import Optics, image_intensity

__all__ = ["chiral_particle_images"]

#: Height of the carbon's lower surface, Å (as in :mod:`nanofind.scene.build`).
SUBSTRATE_BASE_A = 1.0
#: Depth below the carbon's top within which support atoms can hold a resting particle, Å.
RESTING_LAYER_A = 4.0
_PHASE_OBJECT = MultisliceSettings(mode="phase_object")


def _per_item(value, n: int, name: str) -> np.ndarray:
    """``value`` as an (n,) float array: a scalar repeated, or an array of n values."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got shape {arr.shape}")
    return arr


def _size_ranges(size_A_range, size_A, n: int) -> np.ndarray:
    """(n, 2) per-item (low, high) sizes: exact ``size_A`` if given, else a (low, high) pair or (n, 2) ranges."""
    if size_A is not None:
        sizes = _per_item(size_A, n, "size_A")
        return np.column_stack([sizes, sizes])
    arr = np.asarray(size_A_range, dtype=float)
    if arr.shape == (2,):
        return np.tile(arr, (n, 1))
    if arr.shape == (n, 2):
        return arr
    raise ValueError(f"size_A_range must be a (low, high) pair or have shape ({n}, 2), got shape {arr.shape}")


def _pair(value: Sequence[float], name: str, positive: bool = False) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if hi < lo or (positive and lo <= 0):
        raise ValueError(f"{name} must be (low, high) with low <= high{' and low > 0' if positive else ''}, "
                         f"got {tuple(value)}")
    return lo, hi


@lru_cache(maxsize=16)
def _carbon_patch(period_A: float, thickness_A: float, density_g_cm3: float, seed: int) -> GeneratedAtoms:
    """Laterally periodic amorphous carbon slab ``period_A`` square, from z = 1 Å (kept per process)."""
    gen = AmorphousGenerator({"C": 1.0}, density_g_cm3, 1.3, (period_A, period_A))
    box = ConvexPolyhedron.box([0, 0, SUBSTRATE_BASE_A], [period_A, period_A, SUBSTRATE_BASE_A + thickness_A])
    return gen.generate(box, np.random.default_rng(seed))


def _substrate_variant(config: dict, variant: int) -> GeneratedAtoms:
    """Carbon patch ``variant`` of the pool; its thickness and density are seeded from the variant alone."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=2**31 + variant))
    lo, hi = config["substrate_thickness_A_range"]
    return _carbon_patch(config["field_A"], round(float(rng.uniform(lo, hi)), 3),
                         round(float(rng.uniform(1.9, 2.1)), 3), int(rng.integers(2**62)))


def _simulate_item(config: dict, index: int, item: dict, seed_seq: np.random.SeedSequence):
    """One image and its record (see :func:`chiral_particle_images`)."""
    rng = np.random.default_rng(seed_seq)
    p, binning = config["pixel_size_A"], config["binning"]
    field, gpts = config["field_A"], config["image_px"] * config["binning"]
    rotation_deg = float(rng.uniform(0, 360))
    size = float(item["size_lo"] + rng.uniform() * (item["size_hi"] - item["size_lo"]))
    thickness = float(rng.uniform(*config["thickness_A_range"]))
    zone = tuple(config["zone_axes"][int(rng.integers(len(config["zone_axes"])))])
    lattice_deg = float(rng.uniform(0, 360))
    dose = float(np.exp(rng.uniform(*np.log(config["dose_range_e_per_A2"]))))
    defocus = float(rng.uniform(*config["defocus_range_A"]))
    variant = int(rng.integers(config["substrate_pool"]))
    room = field / 2 - size / 2 - config["margin_A"]
    centre = field / 2 + rng.uniform(-room, room, 2)  # particle axis in the image, Å
    shift_px = rng.integers(0, gpts, 2)  # where on the periodic carbon patch the particle lands

    unit_cell = load_unit_cell(config["material"])
    lattice = rotation_about_axis([0, 0, 1], lattice_deg) @ zone_axis_rotation(np.asarray(unit_cell.cell), zone)
    prism = ChiralPrism(size, thickness, item["hand"], item["facet_strength"], config["n_sides"])
    prism = prism.transformed(rotation_about_axis([0, 0, 1], rotation_deg))
    particle = CrystalGenerator(unit_cell, lattice).generate(prism)
    support = _substrate_variant(config, variant)
    sampling = field / gpts
    xy = np.mod(particle.positions[:, :2] + centre + shift_px * sampling, field)
    moving = particle._replace(positions=np.column_stack([xy, particle.positions[:, 2]]))
    top = support.positions[:, 2].max()
    layer = support.select(support.positions[:, 2] > top - RESTING_LAYER_A)
    dz = rest_shift_A(moving, layer, lateral_period_A=(field, field))
    positions = np.vstack([support.positions, moving.positions + [0.0, 0.0, dz]])
    atoms = Atoms(numbers=np.concatenate([support.numbers, particle.numbers]), positions=positions,
                  cell=[field, field, config["height_A"]], pbc=(True, True, False))
    atoms.arrays["is_particle"] = np.arange(len(atoms)) >= len(support.numbers)

    cache = cached_in_process("chiral_substrate_potentials", (field, gpts), SubstratePotentialCache)
    waves = simulate_exit_waves(atoms, config["energy_eV"], (gpts, gpts), _PHASE_OBJECT, 0, cache)
    optics = Optics(energy_eV=config["energy_eV"], defocus_A=defocus, Cs_A=config["Cs_A"],
                    focal_spread_A=config["focal_spread_A"], angular_spread_mrad=config["angular_spread_mrad"],
                    focal_points=1)
    intensity = np.roll(image_intensity(waves, optics), (-int(shift_px[1]), -int(shift_px[0])), axis=(0, 1))
    detector = Detector(p, dose, mtf_half_frequency=config["mtf_half_frequency"])
    image = detector.record(intensity, binning, rng)
    local = particle.positions[:, :2] + centre
    record = {"index": index, "seed": config["seed"], "hand": item["hand"], "size_A": size,
              "thickness_A": thickness, "rotation_deg": rotation_deg, "facet_strength": item["facet_strength"],
              "dose_e_per_A2": dose, "defocus_A": defocus, "zone_axis": list(zone), "lattice_deg": lattice_deg,
              "center_A": [float(c) for c in centre], "substrate_variant": variant,
              "n_particle_atoms": len(particle.numbers), "pixel_size_A": p, "material": config["material"],
              "particle_bbox_A": [float(v) for v in (*local.min(axis=0), *local.max(axis=0))]}
    return image, record


def _simulate_chunk(config: dict, items: list[tuple[int, dict, np.random.SeedSequence]]):
    return [_simulate_item(config, i, item, ss) for i, item, ss in items]


def chiral_particle_images(n: int, *, hands: Sequence[str], seed: int, image_px: int = 64,
                           pixel_size_A: float = 0.8, size_A_range=(28.0, 40.0), size_A=None,
                           facet_strength=1.0,
                           thickness_A_range: Sequence[float] = (12.0, 24.0),
                           dose_range_e_per_A2: Sequence[float] = (150.0, 1500.0),
                           defocus_range_A: Sequence[float] = (-120.0, 0.0), material: str = "Au",
                           zone_axes: Sequence[Sequence[int]] = ((1, 1, 0), (1, 0, 0), (1, 1, 1)),
                           n_sides: int = 3, margin_A: float = 3.0, energy_eV: float = 300e3,
                           Cs_A: float = -1.5e5, focal_spread_A: float = 30.0, angular_spread_mrad: float = 0.1,
                           mtf_half_frequency: float = 0.8,
                           substrate_thickness_A_range: Sequence[float] = (20.0, 40.0), substrate_pool: int = 8,
                           max_sampling_A: float = 0.2, workers: int = 1) -> tuple[np.ndarray, list[dict]]:
    """Simulated HRTEM images of single chiral particles on amorphous carbon.

    Parameters
    ----------
    n : int
        Number of images.
    hands : sequence of {"right", "left"}
        Handedness of each particle (length ``n``).
    seed : int
        Master seed; item ``i`` uses ``np.random.SeedSequence(seed).spawn(n)[i]``, so the same seed
        gives the same images whatever ``workers`` is.
    image_px : int
        Image side, pixels.
    pixel_size_A : float
        Pixel size, Å (the field is ``image_px * pixel_size_A`` Å square).
    size_A_range : (low, high) or (n, 2) array
        Outline diameter (corner to corner, :class:`~nanofind.scene.chiral.ChiralPrism`), Å, drawn
        uniformly from one range or from one range per item.
    size_A : float or (n,) array, optional
        Exact outline diameters, Å, instead of drawing them from ``size_A_range``.
    facet_strength : float or (n,) array
        Depth of the chiral notches in [0, 1] (0: achiral rounded triangle).
    thickness_A_range : (low, high)
        Plate thickness along the beam, Å, drawn uniformly.
    dose_range_e_per_A2 : (low, high)
        Electron dose, e/Å², drawn log-uniformly.
    defocus_range_A : (low, high)
        Defocus, Å (``defocus = -C10``; with the default Cs of -15 µm the Scherzer value is -62 Å),
        drawn uniformly.
    material : str
        Particle material (a name of :data:`nanofind.scene.lattice.MATERIALS`).
    zone_axes : sequence of [uvw]
        Zone axes along the beam, one drawn per item; the lattice's in-plane angle is drawn
        independently of the outline's.
    n_sides : int
        Sides of the outline polygon.
    margin_A : float
        Smallest gap between the outline's circumscribed circle and the image edge, Å.
    energy_eV, Cs_A, focal_spread_A, angular_spread_mrad : float
        Microscope: beam energy (eV), spherical aberration (Å), focal spread (Å, as a
        quasi-coherent envelope) and illumination semi-angle spread (mrad).
    mtf_half_frequency : float
        Camera MTF half frequency as a fraction of Nyquist (:func:`nanofind.simulate.detector.mtf`).
    substrate_thickness_A_range : (low, high)
        Thickness of the carbon patches, Å.
    substrate_pool : int
        Number of distinct carbon patches (their potentials are built once per process, about 0.5 s
        each). The patches depend on the field and the thickness range only, not on ``seed``.
    max_sampling_A : float
        Largest simulation grid spacing, Å; the grid is binned to the pixel size.
    workers : int
        Local worker processes (1: this process). Each new process imports abTEM and builds its
        carbon pool first (several seconds); one process makes about 20 images/s.

    Returns
    -------
    images : ndarray of shape (n, image_px, image_px), float32
        Detector counts (vacuum expects ``dose * pixel_size_A**2`` per pixel), rows along y.
    records : list of dict
        Per image: ``index``, ``seed`` (the master seed), ``hand``, ``size_A``, ``thickness_A``,
        ``rotation_deg`` (outline rotation about the beam), ``facet_strength``, ``dose_e_per_A2``,
        ``defocus_A``, ``zone_axis``, ``lattice_deg``, ``center_A`` (particle axis (x, y) in the
        image), ``substrate_variant``, ``n_particle_atoms``, ``pixel_size_A``, ``material`` and
        ``particle_bbox_A`` (x min, y min, x max, y max of the particle's atoms in the image, Å).
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    hands = list(hands)
    if len(hands) != n:
        raise ValueError(f"hands must have length n = {n}, got {len(hands)}")
    bad = sorted({h for h in hands if h not in HANDS})
    if bad:
        raise ValueError(f"hands must be 'right' or 'left', got {bad}")
    strength = _per_item(facet_strength, n, "facet_strength")
    if np.any((strength < 0) | (strength > 1)):
        raise ValueError(f"facet_strength must lie in [0, 1], got values from {strength.min()} to {strength.max()}")
    sizes = _size_ranges(size_A_range, size_A, n)
    field = image_px * pixel_size_A
    if n and (np.any(sizes[:, 0] <= 0) or np.any(sizes[:, 1] < sizes[:, 0])):
        raise ValueError("size_A_range must hold sizes > 0 with low <= high")
    if n and sizes.max() / 2 + margin_A > field / 2:
        raise ValueError(f"particles up to {sizes.max():g} Å across do not fit a {field:g} Å field with a "
                         f"{margin_A:g} Å margin; use smaller sizes or a larger image_px * pixel_size_A")
    thickness = _pair(thickness_A_range, "thickness_A_range", positive=True)
    substrate = _pair(substrate_thickness_A_range, "substrate_thickness_A_range", positive=True)
    config = {"seed": int(seed), "image_px": int(image_px), "pixel_size_A": float(pixel_size_A),
              "binning": max(1, int(np.ceil(pixel_size_A / max_sampling_A - 1e-9))), "field_A": float(field),
              "thickness_A_range": thickness, "dose_range_e_per_A2": _pair(dose_range_e_per_A2,
                                                                            "dose_range_e_per_A2", positive=True),
              "defocus_range_A": _pair(defocus_range_A, "defocus_range_A"), "material": material,
              "zone_axes": [tuple(int(v) for v in z) for z in zone_axes], "n_sides": int(n_sides),
              "margin_A": float(margin_A), "energy_eV": float(energy_eV), "Cs_A": float(Cs_A),
              "focal_spread_A": float(focal_spread_A), "angular_spread_mrad": float(angular_spread_mrad),
              "mtf_half_frequency": float(mtf_half_frequency), "substrate_thickness_A_range": substrate,
              "substrate_pool": int(substrate_pool),
              # a fixed cell height keeps the carbon potential (one phase-object slice) the same for every item
              "height_A": SUBSTRATE_BASE_A + substrate[1] + thickness[1] + 6.0}
    if substrate_pool < 1:
        raise ValueError(f"substrate_pool must be >= 1, got {substrate_pool}")
    children = np.random.SeedSequence(seed).spawn(n)
    items = [(i, {"hand": hands[i], "size_lo": float(sizes[i, 0]), "size_hi": float(sizes[i, 1]),
                  "facet_strength": float(strength[i])}, children[i]) for i in range(n)]
    chunk = max(1, min(64, -(-n // max(1, 4 * workers))))
    tasks = [(config, items[k:k + chunk]) for k in range(0, n, chunk)]
    images = np.zeros((n, image_px, image_px), np.float32)
    records: list[dict] = [{} for _ in range(n)]
    for t, results in run_tasks(_simulate_chunk, tasks, workers=workers, threads_per_worker=1):
        for k, (image, record) in enumerate(results):
            images[t * chunk + k] = image
            records[t * chunk + k] = record
    return images, records
