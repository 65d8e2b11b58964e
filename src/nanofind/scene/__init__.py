"""Atomic scenes: crystalline particles (twinned, faulted, multiply twinned) on amorphous substrates.

Generators say where atoms could be, volumes say where they are kept, a :class:`SceneObject`
is a generator inside a volume with a priority, and a :class:`Scene` resolves overlaps and
returns an ``ase.Atoms`` with per-atom labels (see :mod:`nanofind.scene.labels`). Recipes
(:mod:`nanofind.scene.recipe`) describe one scene or a distribution of scenes in YAML.

Units: Å for lengths, degrees for angles, g/cm³ for densities. The beam runs along z.
"""

from nanofind.scene.amorphous import AmorphousGenerator
from nanofind.scene.build import build_scene, build_scene_from_spec, particle_object
from nanofind.scene.chiral import ChiralPrism
from nanofind.scene.crystal import CrystalGenerator, GeneratedAtoms, PlanarDefect
from nanofind.scene.io import read_scene, write_cif, write_extxyz, write_prismatic
from nanofind.scene.labels import DefectFlag, LabelMaps, column_positions, project_labels
from nanofind.scene.lattice import MATERIALS, load_unit_cell
from nanofind.scene.multiply_twinned import DecahedronGenerator, IcosahedronGenerator
from nanofind.scene.orientation import rotation_about_axis, tilt_rotation, zone_axis_rotation
from nanofind.scene.placement import rest_on, rest_touching, scatter_xy
from nanofind.scene.recipe import SceneRecipe, load_recipe, parse_recipe, sample_scene_spec
from nanofind.scene.scene import Scene, SceneObject
from nanofind.scene.summary import summarize_scene
from nanofind.scene.volumes import (
    ConvexPolyhedron,
    Cylinder,
    Difference,
    Intersection,
    Sphere,
    Union,
    faceted_polyhedron,
    wulff_polyhedron,
)

__all__ = [
    "MATERIALS", "AmorphousGenerator", "ChiralPrism", "ConvexPolyhedron", "CrystalGenerator", "Cylinder",
    "DecahedronGenerator",
    "DefectFlag", "Difference", "GeneratedAtoms", "IcosahedronGenerator", "Intersection", "LabelMaps",
    "PlanarDefect", "Scene", "SceneObject", "SceneRecipe", "Sphere", "Union", "build_scene", "build_scene_from_spec",
    "column_positions", "faceted_polyhedron", "load_recipe", "load_unit_cell", "parse_recipe", "particle_object",
    "project_labels", "read_scene", "rest_on", "rest_touching", "rotation_about_axis", "sample_scene_spec",
    "scatter_xy", "summarize_scene", "tilt_rotation", "wulff_polyhedron", "write_cif", "write_extxyz",
    "write_prismatic", "zone_axis_rotation",
]
