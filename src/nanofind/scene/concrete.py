"""A concrete particle: one particle as drawn from a recipe, with the defaults of every field.

:func:`nanofind.scene.recipe.sample_scene_spec` draws these (stored as plain dicts in the scene's
``nanofind_spec`` and in dataset parameters, see :meth:`ConcreteParticle.to_dict`), and
:func:`nanofind.scene.build.particle_object` builds them. The recipe's particle section
(:class:`nanofind.scene.recipe.ParticleSpec`) takes its defaults from here, so a field left out
of a recipe and a field left out of a hand-written specification mean the same particle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from nanofind.errors import NanofindInputError

#: Shapes a particle may take.
SHAPES = ("sphere", "wulff", "polyhedron", "decahedron", "icosahedron")
#: Shapes that are multiply twinned: their zone axis is a symmetry axis ("5fold", "3fold", "2fold").
MULTIPLY_TWINNED_SHAPES = ("decahedron", "icosahedron")
#: Zone axis [uvw] of single-crystal shapes when none is given.
DEFAULT_ZONE_AXIS = (1, 1, 0)
#: Symmetry axis along the beam of multiply twinned shapes when none is given.
DEFAULT_MTP_AXIS = "5fold"

_FLOATS = ("diameter_A", "in_plane_deg", "tilt_deg", "tilt_azimuth_deg", "vacancy_fraction")


@dataclass(frozen=True)
class ConcreteParticle:
    """One particle with every value fixed (lengths in Å, angles in degrees).

    Parameters
    ----------
    material : str or mapping
        A name in :data:`nanofind.scene.lattice.MATERIALS`, a ``.cif`` path, ``{cif: path}`` or
        ``{bulk: {...}}``.
    shape : str
        One of :data:`SHAPES`.
    diameter_A : float
        Equivalent-sphere diameter, Å (> 0).
    zone_axis : sequence of 3 or 4 numbers, or str
        Crystal direction along the beam, ``"random"``, or for multiply twinned shapes
        ``"5fold"``/``"3fold"``/``"2fold"``. None: :data:`DEFAULT_ZONE_AXIS`, or
        :data:`DEFAULT_MTP_AXIS` for multiply twinned shapes.
    in_plane_deg : float
        Rotation about the beam, degrees.
    tilt_deg, tilt_azimuth_deg : float
        Off-axis tilt and the azimuth of its tilt axis from x, degrees.
    facets : mapping, optional
        ``{"111": distance_A, ...}`` for ``polyhedron``.
    surface_energies : mapping, optional
        Relative surface energies for ``wulff`` (default: by structure).
    gap : {"strain", "closed"}
        How a decahedron closes its 7.35° gap.
    planar_defect : {"twin", "lamellae", "intrinsic", "extrinsic"} or None
        Planar defect kind.
    planar_positions_A : sequence of float
        Offsets of the defect planes from the centre, Å. None: one plane through the centre
        when there is a planar defect, otherwise none.
    defect_plane : sequence of 3 or 4 numbers, or {"edge_on", "random"}
        Miller indices of the defect planes, or how to pick a close-packed one.
    vacancy_fraction : float
        Fraction of atoms removed.
    substitution : mapping, optional
        ``{"element": ..., "fraction": ..., "host": ...}``.
    position_A : (float, float), optional
        Fixed lateral centre, Å; None: placed at random.
    edge_cut : bool
        Whether the particle is placed across the field's edge.
    touching : bool
        Whether it rests touching the previous particle.
    """

    material: str | Mapping = "Au"
    shape: str = "sphere"
    diameter_A: float = 50.0
    zone_axis: tuple | str | None = None
    in_plane_deg: float = 0.0
    tilt_deg: float = 0.0
    tilt_azimuth_deg: float = 0.0
    facets: Mapping[str, float] | None = None
    surface_energies: Mapping[str, float] | None = None
    gap: str = "strain"
    planar_defect: str | None = None
    planar_positions_A: tuple[float, ...] | None = None
    defect_plane: tuple | str = "edge_on"
    vacancy_fraction: float = 0.0
    substitution: Mapping[str, Any] | None = None
    position_A: tuple[float, float] | None = None
    edge_cut: bool = False
    touching: bool = False

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in _FLOATS:
            value = getattr(self, name)
            try:
                put(name, float(value))
            except (TypeError, ValueError):
                raise NanofindInputError(f"must be a number, got {value!r}", name) from None
        if not self.diameter_A > 0:
            raise NanofindInputError(f"must be > 0 Å, got {self.diameter_A}", "diameter_A")
        if self.zone_axis is None:
            put("zone_axis", DEFAULT_MTP_AXIS if self.shape in MULTIPLY_TWINNED_SHAPES else DEFAULT_ZONE_AXIS)
        if self.planar_positions_A is None:
            put("planar_positions_A", (0.0,) if self.planar_defect else ())
        for name in ("zone_axis", "planar_positions_A", "defect_plane", "position_A"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                put(name, tuple(value))
        put("edge_cut", bool(self.edge_cut))
        put("touching", bool(self.touching))

    @classmethod
    def from_mapping(cls, spec: Mapping | ConcreteParticle) -> ConcreteParticle:
        """The particle of a specification mapping (a stored ``nanofind_spec`` entry); missing keys take defaults."""
        if isinstance(spec, ConcreteParticle):
            return spec
        if not isinstance(spec, Mapping):
            raise NanofindInputError(f"a particle must be a mapping of keys, got {type(spec).__name__}")
        known = {f.name for f in fields(cls)}
        for key in spec:
            if key not in known:
                raise NanofindInputError(f"unknown key; use one of {', '.join(sorted(known))}", str(key))
        return cls(**spec)

    def to_dict(self) -> dict:
        """The plain, JSON-able specification (sequences as lists), keys in field order."""
        def plain(value):
            if isinstance(value, tuple):
                return list(value)
            if isinstance(value, Mapping):
                return dict(value)
            return value

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}
