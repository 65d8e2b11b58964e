"""Exit waves of a scene: abTEM multislice, frozen phonons, tilts, cached support, fast mode.

Geometry: abTEM sends the beam along +z, so atoms with small z are met first; nanofind scenes put
the substrate at the bottom (z from 1 Å), so the beam crosses the substrate, then the particles.
The exit wave is taken at the top of the scene cell (z = cell height).

Why a split potential: the projected potential is linear in the atoms, so the support's slices
are built once per support (and per frozen-phonon configuration) and added to the particles'
slices; the result equals the potential of the whole scene slice by slice (abTEM's "infinite"
projection puts each atom wholly into the slice holding its centre).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms

from nanofind.simulate.abtem_config import abtem_config

#: Room-temperature Debye–Waller σ (rms displacement along one axis, Å), from B = 8π²σ²
#: (B in Å² from Peng et al., Acta Cryst. A52 (1996) 456 and standard tables).
DEFAULT_DEBYE_WALLER_SIGMA_A = {
    "Au": 0.087, "Ag": 0.094, "Pt": 0.074, "Pd": 0.083, "Cu": 0.085, "Ni": 0.075, "Al": 0.105,
    "Ce": 0.065, "O": 0.085, "Cd": 0.110, "Se": 0.095, "Zn": 0.090, "Si": 0.075, "C": 0.080,
}
_FALLBACK_SIGMA_A = 0.08


@dataclass(frozen=True)
class MultisliceSettings:
    """How exit waves are computed.

    Parameters
    ----------
    slice_thickness_A : float
        Multislice slice thickness, Å.
    parametrization : {"lobato", "kirkland"}
        Atomic potential parametrisation.
    frozen_phonons : int
        Number of frozen-phonon configurations averaged incoherently; 0 for a static lattice.
    debye_waller_sigma_A : dict or None
        rms displacement per element along each axis, Å (defaults: :data:`DEFAULT_DEBYE_WALLER_SIGMA_A`).
    tilt_mrad : (float, float)
        Specimen tilt (x, y), mrad, applied as the equivalent beam tilt (valid for small tilts).
    tilt_spread_mrad : float
        Standard deviation of an extra random tilt drawn per configuration, mrad, so the phonon
        average is also an average over small tilts (beam wobble, specimen bending).
    mode : {"multislice", "phase_object"}
        ``phase_object`` is the fast approximation: the whole projected potential as one phase
        grating at the specimen's mean height, then Fresnel propagation to the exit plane. It
        ignores propagation inside the specimen, so it holds for thin specimens only.
    """

    slice_thickness_A: float = 2.0
    parametrization: str = "lobato"
    frozen_phonons: int = 0
    debye_waller_sigma_A: dict[str, float] | None = None
    tilt_mrad: tuple[float, float] = (0.0, 0.0)
    tilt_spread_mrad: float = 0.0
    mode: str = "multislice"

    def __post_init__(self):
        if not self.slice_thickness_A > 0:
            raise ValueError(f"slice_thickness_A must be > 0, got {self.slice_thickness_A}")
        if self.parametrization not in ("lobato", "kirkland"):
            raise ValueError(f"parametrization must be 'lobato' or 'kirkland', got {self.parametrization!r}")
        if self.mode not in ("multislice", "phase_object"):
            raise ValueError(f"mode must be 'multislice' or 'phase_object', got {self.mode!r}")
        if self.frozen_phonons < 0 or self.tilt_spread_mrad < 0:
            raise ValueError("frozen_phonons and tilt_spread_mrad must be >= 0")

    def sigma_A(self, symbol: str) -> float:
        """Debye–Waller σ for one element, Å."""
        table = DEFAULT_DEBYE_WALLER_SIGMA_A | dict(self.debye_waller_sigma_A or {})
        return float(table.get(symbol, _FALLBACK_SIGMA_A))

    def to_dict(self) -> dict:
        """JSON-able record."""
        return asdict(self)


@dataclass
class ExitWaves:
    """An ensemble of exit waves of one specimen (frozen phonons and tilts).

    ``array`` has shape (configurations, nx, ny) in abTEM's [x, y] order; vacuum has |ψ| = 1.
    """

    array: np.ndarray
    energy_eV: float
    sampling_A: tuple[float, float]
    tilts_mrad: list[tuple[float, float]] = field(default_factory=list)

    def as_abtem(self):
        """The ensemble as an ``abtem.Waves`` with one ensemble axis."""
        import abtem
        from abtem.core.axes import UnknownAxis

        return abtem.Waves(self.array, energy=self.energy_eV, sampling=self.sampling_A,
                           ensemble_axes_metadata=[UnknownAxis()])


class SubstratePotentialCache:
    """Least-recently-used store of support potentials, bounded in bytes.

    Keys are content hashes of the support atoms together with every setting that changes the
    potential, so a hit is the same potential by construction.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(a.nbytes for a in self._items.values())

    def get_or_build(self, key: str, build) -> np.ndarray:
        """Return the cached array for ``key`` or build, store and return it."""
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        array = build()
        if array.nbytes <= self.max_bytes:
            self._items[key] = array
            while self.nbytes > self.max_bytes:
                self._items.popitem(last=False)
        return array


def _content_key(atoms: Atoms, *extra) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(atoms.positions, np.float64).tobytes())
    h.update(np.ascontiguousarray(atoms.numbers, np.int64).tobytes())
    h.update(np.ascontiguousarray(atoms.cell.array, np.float64).tobytes())
    h.update(repr(extra).encode())
    return h.hexdigest()


def _displaced(atoms: Atoms, settings: MultisliceSettings, seed: int) -> Atoms:
    """One frozen-phonon configuration: Gaussian displacements with per-element σ."""
    import abtem

    if settings.frozen_phonons == 0 or len(atoms) == 0:
        return atoms
    sigmas = {s: settings.sigma_A(s) for s in set(atoms.get_chemical_symbols())}
    phonons = abtem.FrozenPhonons(atoms, num_configs=1, sigmas=sigmas, seed=int(seed) % (2**32))
    return phonons.randomize(atoms)


def _slice_potential(atoms: Atoms, gpts: tuple[int, int], settings: MultisliceSettings,
                     slice_thickness_A: float) -> np.ndarray:
    import abtem

    potential = abtem.Potential(atoms, gpts=gpts, slice_thickness=slice_thickness_A,
                                parametrization=settings.parametrization, projection="infinite")
    return np.asarray(potential.build().array, np.float32)


def simulate_exit_waves(atoms: Atoms, energy_eV: float, gpts: tuple[int, int], settings: MultisliceSettings,
                        seed: int, substrate_cache: SubstratePotentialCache | None = None) -> ExitWaves:
    """Exit waves of a labelled scene.

    Parameters
    ----------
    atoms : ase.Atoms
        Scene with an orthogonal cell; ``is_particle`` marks particle atoms, the rest is the support.
    energy_eV : float
        Beam energy, eV.
    gpts : (int, int)
        Simulation grid points along (x, y); the sampling is cell length / gpts, Å.
    settings : MultisliceSettings
        Slicing, parametrisation, phonons, tilts and mode.
    seed : int
        Seeds the particle displacements and tilts (the support's displacements are seeded from its
        content, so a cached support potential is reused exactly).
    substrate_cache : SubstratePotentialCache, optional
        Where support potentials are kept between calls.

    Returns
    -------
    ExitWaves

    abTEM runs with :data:`nanofind.simulate.abtem_config.ABTEM_CONFIG`; the caller's abTEM settings
    are restored on return.
    """
    cell = atoms.cell.array
    if not np.allclose(cell, np.diag(np.diag(cell))):
        raise ValueError("the scene cell must be orthogonal")
    with abtem_config():
        return _exit_waves(atoms, energy_eV, (int(gpts[0]), int(gpts[1])), settings, seed, substrate_cache)


def _exit_waves(atoms: Atoms, energy_eV: float, gpts: tuple[int, int], settings: MultisliceSettings, seed: int,
                substrate_cache: SubstratePotentialCache | None) -> ExitWaves:
    """:func:`simulate_exit_waves` after its checks, run inside nanofind's abTEM settings."""
    import abtem
    from abtem.potentials.iam import PotentialArray

    cell = atoms.cell.array
    extent = (float(cell[0, 0]), float(cell[1, 1]))
    height = float(cell[2, 2])
    sampling = (extent[0] / gpts[0], extent[1] / gpts[1])
    is_particle = np.asarray(atoms.arrays.get("is_particle", np.ones(len(atoms), bool)), bool)
    particle, support = atoms[is_particle], atoms[~is_particle]
    phase_object = settings.mode == "phase_object"
    dz = height if phase_object else settings.slice_thickness_A
    rng = np.random.default_rng(seed)
    n_configs = max(settings.frozen_phonons, 1)
    config_seeds = rng.integers(0, 2**63, size=n_configs)
    tilts = [tuple(float(t) for t in np.asarray(settings.tilt_mrad) + rng.normal(0, settings.tilt_spread_mrad, 2))
             if settings.tilt_spread_mrad > 0 else tuple(float(t) for t in settings.tilt_mrad)
             for _ in range(n_configs)]
    support_key = _content_key(support, gpts, dz, settings.parametrization) if len(support) else None
    if phase_object:
        # the phase grating sits at the specimen's mean height, then propagates to the exit plane
        z_mean = float(np.average(atoms.positions[:, 2], weights=atoms.numbers)) if len(atoms) else 0.0
        exit_distance = max(height - z_mean, 1e-3)
    waves = []
    for c in range(n_configs):
        potential = _slice_potential(_displaced(particle, settings, config_seeds[c]), gpts, settings, dz)
        if support_key is not None:
            key = f"{support_key}:{c if settings.frozen_phonons else 's'}:{settings.sigma_A('C')}"
            support_seed = int(key[:15], 16) + c

            def build(support_seed=support_seed):
                return _slice_potential(_displaced(support, settings, support_seed), gpts, settings, dz)

            potential = potential + (substrate_cache.get_or_build(key, build) if substrate_cache else build())
        if phase_object:
            array = PotentialArray(potential.sum(axis=0, keepdims=True), slice_thickness=(exit_distance,),
                                   sampling=sampling)
        else:
            array = PotentialArray(potential, slice_thickness=_slice_thicknesses(height, dz), sampling=sampling)
        wave = abtem.PlaneWave(energy=energy_eV, extent=extent, gpts=gpts, tilt=tilts[c]).multislice(array)
        waves.append(np.asarray(wave.array, np.complex64))
    return ExitWaves(np.stack(waves), float(energy_eV), sampling, tilts)


def _slice_thicknesses(height_A: float, dz_A: float) -> tuple[float, ...]:
    """The slice thicknesses abTEM uses for a cell of ``height_A`` cut into ``dz_A`` slices."""
    n = int(np.ceil(height_A / dz_A))
    return (height_A / n,) * n
