"""Local structure of atomic models (seed 004, chapter 2): per-atom classes, grains and defects.

:func:`analyze_structure` classifies every atom of an ``ase.Atoms`` (a nanofind scene, or a model
from tomography or molecular dynamics) by polyhedral template matching with the order parameter of
seed 004, Eq. 2.1 (fcc, hcp, rhcp, bcc, icosahedral, five-fold, surface, disordered), and finds
grains, twin planes, stacking faults and five-fold axes; :func:`summarize_structure` gives them per
particle, including which planar defects an image along the beam (z) would show.
``nanofind structure`` runs both on model files (:mod:`nanofind.structure.command`).

Units: Å, degrees. The beam runs along z.
"""

from nanofind.structure.analysis import StructureAnalysis, analyze_structure, summarize_structure
from nanofind.structure.defects import DefectAnalysis, FivefoldAxis, PlanarDefect, find_defects
from nanofind.structure.local import CLASSES, LocalStructure, local_structure
from nanofind.structure.matching import TemplateFit, fit_templates
from nanofind.structure.templates import TEMPLATE_NAMES, Template, template

__all__ = [
    "CLASSES", "DefectAnalysis", "FivefoldAxis", "LocalStructure", "PlanarDefect", "StructureAnalysis",
    "TEMPLATE_NAMES", "Template", "TemplateFit", "analyze_structure", "find_defects", "fit_templates",
    "local_structure", "summarize_structure", "template",
]
