"""Fields of nanoparticles for low-magnification bright field: convex solids, placement, projected thickness, labels.

Geometry works in pixel units on the image grid: pixel ``[row, col]`` has its centre at
``x = col + 0.5``, ``y = row + 0.5`` (rows along y), the beam runs along z. Solids are built with
the volume of a sphere of a given diameter (:func:`make_solid`), turned (:meth:`ConvexSolid.rotated`,
rotations act on column vectors) and placed by one of the arrangement modes of :func:`arrange`.
:func:`render_particles` projects them: a ray along z through a pixel centre enters and leaves a
convex solid where its bounding planes ``n·r <= d`` (and, for spheres and cylinders, its quadric)
bound z, and the thickness is ``max(0, z_max - z_min)``. Only each particle's bounding box is
computed, in batches of particles of one shape and box size. :mod:`nanofind.simulate.film` draws the
amorphous carbon support.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from nanofind.scene.orientation import random_rotation, rotation_about_axis, tilt_rotation
from nanofind.simulate.film import smooth_random_field

#: Particle shapes (rods and plates take an ``aspect``: rod length / width, plate thickness / width).
SHAPES = ("sphere", "cube", "cuboctahedron", "octahedron", "rod", "square_rod", "triangular_plate",
          "hexagonal_plate", "tetrahedron")
PLATE_SHAPES = ("triangular_plate", "hexagonal_plate")
ROD_SHAPES = ("rod", "square_rod")
#: Arrangement modes of :func:`arrange`.
ARRANGEMENTS = ("isolated", "touching", "agglomerates", "monolayer")
#: Points on each rim of a cylinder used for its footprint's outline (circumscribed, so never too small).
RIM_POINTS = 32
#: Largest tilt of a plate lying on the film, degrees.
FLAT_PLATE_TILT_DEG = 10.0


@dataclass(frozen=True)
class ConvexSolid:
    """A convex solid centred on the origin: half-spaces ``normals · r <= offsets``, optionally a sphere or cylinder.

    Lengths are in whatever unit the solid was built in (pixels once placed). A sphere has no
    planes and ``round_radius > 0`` with a zero ``round_axis``; a cylinder has its two caps as
    planes plus ``round_radius`` about the unit ``round_axis`` and its ``round_length``.
    """

    shape: str
    normals: np.ndarray  #: (K, 3) unit outward normals
    offsets: np.ndarray  #: (K,) plane distances from the centre
    face_areas: np.ndarray  #: (K,) face areas (for the projected area)
    vertices: np.ndarray  #: (V, 3) points whose hull is the solid (a cylinder's rims sampled, circumscribed)
    volume: float
    round_radius: float = 0.0
    round_axis: tuple[float, float, float] = (0.0, 0.0, 0.0)
    round_length: float = 0.0

    @cached_property
    def is_sphere(self) -> bool:
        return self.round_radius > 0 and not any(self.round_axis)

    def rotated(self, rotation: np.ndarray) -> ConvexSolid:
        """The solid turned by a rotation matrix (acting on column vectors)."""
        r = np.asarray(rotation, float)
        axis = tuple((r @ np.asarray(self.round_axis, float)).tolist())
        return ConvexSolid(self.shape, self.normals @ r.T, self.offsets, self.face_areas, self.vertices @ r.T,
                           self.volume, self.round_radius, axis, self.round_length)

    def projected_area(self) -> float:
        """Area of the footprint along z: half the sum of face areas × |n_z| (Cauchy), plus a cylinder's side."""
        if self.is_sphere:
            return math.pi * self.round_radius**2
        area = 0.5 * float(np.sum(self.face_areas * np.abs(self.normals[:, 2])))
        if self.round_radius > 0:
            area += 2 * self.round_radius * self.round_length * math.sqrt(max(0.0, 1 - self.round_axis[2] ** 2))
        return area

    @cached_property
    def _radius(self) -> float:
        if self.is_sphere:
            return self.round_radius
        return float(np.sqrt((self.vertices[:, :2] ** 2).sum(axis=1)).max())

    def projected_radius(self) -> float:
        """Largest distance of the footprint from the centre."""
        return self._radius

    def support(self, direction_xy: np.ndarray) -> float:
        """Extent of the footprint along a unit direction (x, y): its support function."""
        if self.is_sphere:
            return self.round_radius
        return float((self._outline @ np.asarray(direction_xy, float)).max())

    @cached_property
    def _outline(self) -> np.ndarray:
        return np.ascontiguousarray(self.vertices[:, :2])


def _prism(polygon_xy: np.ndarray, height: float, shape: str, volume: float) -> ConvexSolid:
    """A right prism along z over a convex polygon (counter-clockwise vertices)."""
    k = len(polygon_xy)
    edges = np.roll(polygon_xy, -1, axis=0) - polygon_xy
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    side_normals = np.column_stack([edges[:, 1], -edges[:, 0], np.zeros(k)]) / lengths[:, None]
    side_offsets = np.einsum("ij,ij->i", side_normals[:, :2], polygon_xy)
    x, y = polygon_xy[:, 0], polygon_xy[:, 1]
    base = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    normals = np.vstack([side_normals, [[0, 0, 1], [0, 0, -1]]])
    offsets = np.concatenate([side_offsets, [height / 2, height / 2]])
    areas = np.concatenate([lengths * height, [base, base]])
    vertices = np.vstack([np.column_stack([polygon_xy, np.full(k, z)]) for z in (-height / 2, height / 2)])
    return ConvexSolid(shape, normals, offsets, areas, vertices, volume)


def _regular_polygon(n: int, circumradius: float, first_deg: float) -> np.ndarray:
    a = np.radians(first_deg + 360.0 / n * np.arange(n))
    return circumradius * np.column_stack([np.cos(a), np.sin(a)])


@cache
def _unit_solid(shape: str) -> ConvexSolid:
    """The shape at a unit size parameter and aspect 1 (its volume follows)."""
    aspect = 1.0
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    axes = np.vstack([np.eye(3), -np.eye(3)])
    if shape == "sphere":
        empty = np.zeros((0, 3))
        return ConvexSolid(shape, empty, np.zeros(0), np.zeros(0), empty, 4 / 3 * math.pi, round_radius=1.0)
    if shape == "cube":  # edge 1
        return ConvexSolid(shape, axes, np.full(6, 0.5), np.ones(6), signs / 2, 1.0)
    if shape == "octahedron":  # |x| + |y| + |z| <= 1
        return ConvexSolid(shape, signs / math.sqrt(3), np.full(8, 1 / math.sqrt(3)), np.full(8, math.sqrt(3) / 2),
                           axes.copy(), 4 / 3)
    if shape == "cuboctahedron":  # cube |x_i| <= 1 cut through its edge midpoints by the octahedron |x|+|y|+|z| <= 2
        vertices = np.array([v for i in range(3) for a in (-1, 1) for b in (-1, 1)
                             for v in [np.roll([a, b, 0.0], i)]], float)
        return ConvexSolid(shape, np.vstack([axes, signs / math.sqrt(3)]),
                           np.concatenate([np.ones(6), np.full(8, 2 / math.sqrt(3))]),
                           np.concatenate([np.full(6, 2.0), np.full(8, math.sqrt(3) / 2)]), vertices, 20 / 3)
    if shape == "tetrahedron":  # vertices at alternate cube corners (±1, ±1, ±1) with an even number of minus signs
        vertices = signs[np.prod(signs, axis=1) > 0]
        return ConvexSolid(shape, -vertices / math.sqrt(3), np.full(4, 1 / math.sqrt(3)), np.full(4, 2 * math.sqrt(3)),
                           vertices, 8 / 3)
    if shape == "square_rod":  # width 1, length aspect along z
        return _prism(np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]), aspect, shape, aspect)
    if shape == "triangular_plate":  # side 1, thickness aspect
        return _prism(_regular_polygon(3, 1 / math.sqrt(3), 90.0), aspect, shape, math.sqrt(3) / 4 * aspect)
    if shape == "hexagonal_plate":  # side 1 (across corners 2), thickness aspect × 2
        return _prism(_regular_polygon(6, 1.0, 0.0), 2 * aspect, shape, 3 * math.sqrt(3) * aspect)
    if shape == "rod":  # cylinder of radius 1 and length 2 × aspect along z
        length = 2 * aspect
        rim = _regular_polygon(RIM_POINTS, 1 / math.cos(math.pi / RIM_POINTS), 0.0)
        vertices = np.vstack([np.column_stack([rim, np.full(RIM_POINTS, z)]) for z in (-length / 2, length / 2)])
        return ConvexSolid(shape, np.array([[0, 0, 1.0], [0, 0, -1.0]]), np.full(2, length / 2),
                           np.full(2, math.pi), vertices, math.pi * length, round_radius=1.0,
                           round_axis=(0.0, 0.0, 1.0), round_length=length)
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def make_solid(shape: str, diameter: float, aspect: float = 1.0) -> ConvexSolid:
    """A solid in its own frame with the volume of a sphere of ``diameter`` (same length unit).

    ``aspect`` is length / width for rods (the cylinder's width is its diameter), thickness / width
    for plates (a triangle's side, a hexagon's width across corners); other shapes ignore it.
    Plates have their large faces normal to z, rods their axis along z.
    """
    if not diameter > 0 or not aspect > 0:
        raise ValueError(f"diameter and aspect must be > 0, got {diameter}, {aspect}")
    unit = _unit_solid(shape)
    # rods and plates are prisms (or a cylinder) along z: the aspect stretches z, leaving the normals as they are
    stretch = float(aspect) if shape in ROD_SHAPES or shape in PLATE_SHAPES else 1.0
    f = (math.pi * diameter**3 / 6 / (unit.volume * stretch)) ** (1 / 3)
    cap = np.abs(unit.normals[:, 2]) > 0.5
    return ConvexSolid(shape, unit.normals, unit.offsets * np.where(cap, f * stretch, f),
                       unit.face_areas * np.where(cap, f * f, f * f * stretch), unit.vertices * [f, f, f * stretch],
                       unit.volume * stretch * f**3, unit.round_radius * f, unit.round_axis,
                       unit.round_length * f * stretch)


def random_orientation(shape: str, rng: np.random.Generator, flat_plate: bool = False) -> np.ndarray:
    """A random 3D rotation; a plate lying on the film (``flat_plate``) turns freely about z and tilts a little."""
    if flat_plate and shape in PLATE_SHAPES:
        tilt = tilt_rotation(rng.uniform(0, FLAT_PLATE_TILT_DEG), rng.uniform(0, 360))
        return tilt @ rotation_about_axis([0, 0, 1], rng.uniform(0, 360))
    return random_rotation(rng)


def _thickness_batch(solids: list[ConvexSolid], centres_rc: np.ndarray, corners_rc: np.ndarray,
                     box: tuple[int, int]) -> np.ndarray:
    """Thickness (N, h, w) of solids of one kind over boxes whose first pixel is ``corners_rc`` (same length unit)."""
    n, (h, w) = len(solids), box
    x = (corners_rc[:, 1] - centres_rc[:, 1])[:, None, None] + (np.arange(w) + 0.5)[None, None, :]
    y = (corners_rc[:, 0] - centres_rc[:, 0])[:, None, None] + (np.arange(h) + 0.5)[None, :, None]
    x, y = x.astype(np.float32), y.astype(np.float32)
    upper = np.full((n, h, w), np.inf, np.float32)
    lower = np.full((n, h, w), -np.inf, np.float32)
    normals = np.stack([s.normals for s in solids]).astype(np.float32)
    offsets = np.stack([s.offsets for s in solids]).astype(np.float32)
    for k in range(normals.shape[1]):
        nx, ny, nz = (normals[:, k, i][:, None, None] for i in range(3))
        # a plane containing z bounds nothing, or everything: a tiny positive n_z makes it do exactly that
        nz = np.where(np.abs(nz) < 1e-6, np.float32(1e-6), nz)
        bound = (offsets[:, k][:, None, None] - nx * x - ny * y) / nz
        np.minimum(upper, np.where(nz > 0, bound, np.inf), out=upper)
        np.maximum(lower, np.where(nz > 0, -np.inf, bound), out=lower)
    if solids[0].round_radius > 0:
        # |q|² − (q·a)² <= R² along the ray q = (x, y, z): A z² + B z + C <= 0 (a = 0 for a sphere)
        axis = np.array([s.round_axis for s in solids], np.float32)
        radius = np.array([s.round_radius for s in solids], np.float32)[:, None, None]
        ax, ay, az = (axis[:, i][:, None, None] for i in range(3))
        s = ax * x + ay * y
        a2, b = 1 - az**2, -2 * s * az
        c = x**2 + y**2 - s**2 - radius**2
        disc = b**2 - 4 * a2 * c
        along_z = a2 < 1e-9
        root = np.sqrt(np.maximum(disc, 0))
        a_safe = np.where(along_z, np.float32(1), a2)
        inside = np.where(along_z, c <= 0, disc >= 0)
        np.maximum(lower, np.where(inside, np.where(along_z, -np.inf, (-b - root) / (2 * a_safe)), np.inf), out=lower)
        np.minimum(upper, np.where(along_z, np.inf, (-b + root) / (2 * a_safe)), out=upper)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.clip(upper - lower, 0, None), nan=0.0, posinf=0.0)


def projected_thickness(solid: ConvexSolid, centre_rc: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """Thickness map (``shape``, solid's length unit) of one solid centred at ``centre_rc`` (pixels, [row, col])."""
    out = np.zeros(shape, np.float32)
    r = solid.projected_radius() + 1
    r0, r1 = max(0, math.floor(centre_rc[0] - r)), min(shape[0], math.ceil(centre_rc[0] + r))
    c0, c1 = max(0, math.floor(centre_rc[1] - r)), min(shape[1], math.ceil(centre_rc[1] + r))
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = _thickness_batch([solid], np.array([centre_rc], float), np.array([[r0, c0]]),
                                             (r1 - r0, c1 - c0))[0]
    return out


@dataclass
class FieldParticle:
    """One placed particle: its solid in pixels (already turned), where it is and what it is."""

    solid: ConvexSolid
    centre_rc: tuple[float, float]  #: pixels, [row, col] on the grid it was placed on
    material: str
    diameter_px: float  #: volume-equivalent diameter
    bragg: float = 0.0  #: extra scattering for diffraction contrast, as a fraction of its mass thickness
    group: int = 0  #: chain or agglomerate it belongs to (its own for isolated particles)


@dataclass
class RenderedParticles:
    """Projected particles on a grid: thickness per material (Å) and the particle seen at each pixel."""

    thickness_A: dict[str, np.ndarray]
    bragg_thickness_A: dict[str, np.ndarray]  #: Σ bragg × thickness, per material, Å
    owner: np.ndarray  #: int32 index + 1 of the particle with the largest thickness at the pixel, 0 = none


def render_particles(particles: list[FieldParticle], shape: tuple[int, int], pixel_size_A: float) -> RenderedParticles:
    """Sum the particles' projected thickness per material and find the thickest particle at each pixel centre."""
    rows, cols = shape
    pad = 2 + max((math.ceil(p.solid.projected_radius()) for p in particles), default=0)
    canvas = (rows + 2 * pad, cols + 2 * pad)
    materials = sorted({p.material for p in particles})
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(particles):
        side = 4 * math.ceil((2 * p.solid.projected_radius() + 3) / 4)  # boxes bucketed to multiples of 4 px
        groups.setdefault((p.solid.shape, side), []).append(i)
    pixel_ids, values, owners = [], [], []
    for (_, side), members in groups.items():
        for start in range(0, len(members), max(1, 2_000_000 // side**2)):  # bounded memory per batch
            chunk = members[start:start + max(1, 2_000_000 // side**2)]
            centres = np.array([particles[i].centre_rc for i in chunk], float)
            corners = np.floor(centres - side / 2).astype(np.int64)
            t = _thickness_batch([particles[i].solid for i in chunk], centres, corners, (side, side))
            k, r, c = np.nonzero(t > 0)
            rr, cc = corners[k, 0] + r + pad, corners[k, 1] + c + pad
            keep = (rr >= 0) & (rr < canvas[0]) & (cc >= 0) & (cc < canvas[1])
            pixel_ids.append((rr * canvas[1] + cc)[keep])
            values.append(t[k, r, c][keep] * pixel_size_A)
            owners.append(np.asarray(chunk, np.int64)[k[keep]])
    size = canvas[0] * canvas[1]
    pix = np.concatenate(pixel_ids) if pixel_ids else np.zeros(0, np.int64)
    val = np.concatenate(values) if values else np.zeros(0, np.float32)
    own = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    material_of = np.array([materials.index(p.material) for p in particles], np.int64)
    bragg_of = np.array([p.bragg for p in particles], float)
    crop = (slice(pad, pad + rows), slice(pad, pad + cols))

    def per_material(weights):
        sums = np.bincount(material_of[own] * size + pix, weights=weights, minlength=len(materials) * size)
        return {m: sums[j * size:(j + 1) * size].reshape(canvas)[crop].astype(np.float32)
                for j, m in enumerate(materials)}

    owner = np.zeros(size, np.int32)
    if len(pix):
        thickest = np.zeros(size, np.float32)
        np.maximum.at(thickest, pix, val)
        top = val >= thickest[pix]
        owner[pix[top][::-1]] = own[top][::-1] + 1  # ties: the last write, the lower particle index, wins
    return RenderedParticles(per_material(val), per_material(val * bragg_of[own]), owner.reshape(canvas)[crop])


def relabel_instances(owner: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Instance ids 1…n in order of particle index, and the particle index of each id (owner = index + 1)."""
    present = np.flatnonzero(np.bincount(owner.ravel()))
    present = present[present > 0]
    lookup = np.zeros(int(owner.max(initial=0)) + 1, np.int32)
    lookup[present] = np.arange(1, len(present) + 1)
    return lookup[owner], [int(v) - 1 for v in present]


class _Layout:
    """Placed particles with fast footprint overlap tests (support functions along the line between centres).

    A uniform grid of cells, each listing the particles whose bounding circle (plus 1 px) reaches
    it, limits every test to the neighbours.
    """

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.particles: list[FieldParticle] = []
        self.centres: list[tuple[float, float]] = []
        self.radius: list[float] = []
        self.cells: dict[tuple[int, int], list[int]] = {}
        self.cell = 0.0
        self.area = 0.0

    def _cells(self, centre, reach: float):
        r0, r1 = int((centre[0] - reach) // self.cell), int((centre[0] + reach) // self.cell)
        c0, c1 = int((centre[1] - reach) // self.cell), int((centre[1] + reach) // self.cell)
        return [(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def add(self, p: FieldParticle) -> None:
        radius = p.solid.projected_radius()
        if not self.cell:
            self.cell = max(4.0, 2 * radius + 2)
        index = len(self.particles)
        self.particles.append(p)
        self.centres.append(p.centre_rc)
        self.radius.append(radius)
        for key in self._cells(p.centre_rc, radius + 1):
            self.cells.setdefault(key, []).append(index)
        self.area += p.solid.projected_area()

    def clear(self, solid: ConvexSolid, centre: np.ndarray, gap: float, own_group: int = -1,
              own_factor: float = 1.0, skip: int = -1) -> bool:
        """Whether the footprint fits: ``gap`` px (at most 1) to other groups, ``own_factor`` × contact to its own."""
        if not (0 <= centre[0] < self.shape[0] and 0 <= centre[1] < self.shape[1]):
            return False
        if not self.particles:
            return True
        radius = solid.projected_radius()
        near = set()
        for key in self._cells(centre, radius + gap):
            near.update(self.cells.get(key, ()))
        near.discard(skip)
        for i in near:
            dy, dx = centre[0] - self.centres[i][0], centre[1] - self.centres[i][1]
            dist = math.hypot(dy, dx)
            if dist >= self.radius[i] + radius + gap:
                continue
            if dist < 1e-9:
                return False
            u = np.array([dx / dist, dy / dist])  # (x, y) from particle i towards the candidate
            other = self.particles[i]
            contact = other.solid.support(u) + solid.support(-u)
            if dist < (contact * own_factor if other.group == own_group else contact + gap):
                return False
        return True


def _attached(layout: _Layout, anchor: FieldParticle, solid: ConvexSolid, angle: float, factor: float) -> np.ndarray:
    """Centre ([row, col]) that puts ``solid`` at ``factor`` × contact distance from ``anchor`` along ``angle``."""
    u = np.array([math.cos(angle), math.sin(angle)])  # (x, y)
    distance = (anchor.solid.support(u) + solid.support(-u)) * factor
    return np.asarray(anchor.centre_rc) + distance * u[::-1]


def arrange(mode: str, make: Callable[[int], FieldParticle], shape: tuple[int, int], coverage: float,
            rng: np.random.Generator, *, chain_length: tuple[int, int] = (2, 6),
            cluster_size: tuple[int, int] = (3, 30), overlap: float = 0.1, jitter: float = 0.05,
            vacancies: float = 0.05, voids: float = 0.0, max_particles: int = 20_000) -> list[FieldParticle]:
    """Place particles drawn by ``make(group)`` (centre ignored) until their footprints cover ``coverage`` of ``shape``.

    Modes: ``isolated`` (random sequential adsorption, footprints at least 1 px apart),
    ``touching`` (pairs and chains of ``chain_length`` particles in contact, bent at random),
    ``agglomerates`` (clusters of ``cluster_size`` grown by attaching each particle to a random
    member at 1 − ``overlap``…1 × the contact distance), ``monolayer`` (a hexagonal lattice whose
    spacing gives the coverage, with ``jitter`` × spacing rms displacement, ``vacancies`` empty
    sites and ``voids`` of the area left empty in smooth patches). Contact distances are measured
    between the footprints' support functions along the line of centres. Jammed fields stop short.
    """
    layout = _Layout(shape)
    target = coverage * shape[0] * shape[1]
    if target <= 0:
        return []
    if mode == "monolayer":
        return _monolayer(make, shape, coverage, rng, jitter, vacancies, voids, max_particles)
    failures, group, tries = 0, 0, 0
    while layout.area < target and failures < 40 and len(layout.particles) < max_particles:
        group += 1
        first = make(group)
        # near jamming, random sequential adsorption slows without bound: a budget of tries per particle
        if tries > 2000 + 10 * target / first.solid.projected_area():
            break
        for _ in range(25):
            tries += 1
            centre = rng.uniform((0, 0), shape)
            if layout.clear(first.solid, centre, gap=1.0):
                first.centre_rc = (float(centre[0]), float(centre[1]))
                layout.add(first)
                break
        else:
            failures += 1
            continue
        failures = 0
        members = [len(layout.particles) - 1]
        if mode == "isolated":
            continue
        size = int(rng.integers(*(chain_length if mode == "touching" else cluster_size), endpoint=True))
        heading = rng.uniform(0, 2 * math.pi)
        while len(members) < size and layout.area < target:
            new = make(group)
            for _ in range(12):
                tries += 1
                if mode == "touching":
                    anchor, heading_try = members[-1], heading + rng.normal(0, 0.6)
                    factor, own = rng.uniform(0.93, 1.0), 1.0
                else:
                    anchor, heading_try = members[int(rng.integers(len(members)))], rng.uniform(0, 2 * math.pi)
                    factor, own = rng.uniform(1 - overlap, 1.0), 1 - overlap
                centre = _attached(layout, layout.particles[anchor], new.solid, heading_try, factor)
                if layout.clear(new.solid, centre, gap=1.0, own_group=group, own_factor=own, skip=anchor):
                    new.centre_rc = (float(centre[0]), float(centre[1]))
                    layout.add(new)
                    members.append(len(layout.particles) - 1)
                    heading = heading_try
                    break
            else:
                break
    return layout.particles


def _monolayer(make, shape, coverage, rng, jitter, vacancies, voids, max_particles) -> list[FieldParticle]:
    """Near-hexagonal packing: lattice spacing from the mean footprint area and the coverage."""
    samples = [make(0) for _ in range(16)]
    mean_area = float(np.mean([p.solid.projected_area() for p in samples]))
    occupied = coverage / max((1 - vacancies) * (1 - voids), 0.2)  # what the occupied sites must cover
    spacing = max(math.sqrt(2 * mean_area / (math.sqrt(3) * occupied)), math.sqrt(4 * mean_area / math.pi))
    angle = rng.uniform(0, math.pi / 3)
    a1 = spacing * np.array([math.sin(angle), math.cos(angle)])  # [row, col]
    a2 = spacing * np.array([math.sin(angle + math.pi / 3), math.cos(angle + math.pi / 3)])
    reach = int(math.ceil(math.hypot(*shape) / spacing)) + 2
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    origin = rng.uniform((0, 0), shape)
    sites = origin + i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    sites += rng.normal(0, jitter * spacing, sites.shape)
    inside = (sites[:, 0] >= 0) & (sites[:, 0] < shape[0]) & (sites[:, 1] >= 0) & (sites[:, 1] < shape[1])
    keep = inside & (rng.random(len(sites)) >= vacancies)
    if voids > 0:
        patches = smooth_random_field(shape, 3 * spacing, rng)
        level = np.quantile(patches, voids)
        rc = np.clip(sites.astype(np.int64), 0, np.array(shape) - 1)
        keep &= patches[rc[:, 0], rc[:, 1]] >= level
    sites = sites[keep][:max_particles]
    out = []
    for k, site in enumerate(sites):
        p = samples[k] if k < len(samples) else make(0)
        p.centre_rc, p.group = (float(site[0]), float(site[1])), k + 1
        out.append(p)
    return out
