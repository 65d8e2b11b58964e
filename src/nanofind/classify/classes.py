"""The five defect classes of seed 004, ch. 3, and how a simulated particle earns one.

- ``fault``: on a zone axis, with a planar defect the image can show (its plane within 5° of
  edge-on, as the particle's atoms say: ``visible_planar_defects`` of the particle record);
- ``no_fault``: on a zone axis, no visible planar defect;
- ``misoriented``: at least :data:`MISORIENTED_DEG` from the low-index zone it was drawn on
  (lattice planes, but no column contrast);
- ``agglomerate``: a segmented region holding two or more particles;
- ``empty``: a region without a particle (carbon, a false detection).

Particles tilted between :data:`ON_AXIS_DEG` and :data:`MISORIENTED_DEG` are left out of training
and scoring: neither on the axis nor clearly off it.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Class names, in the order of the probability columns.
CLASS_NAMES = ("fault", "no_fault", "misoriented", "agglomerate", "empty")
#: Tilt from the particle's low-index zone (or multiply twinned symmetry axis) within which it is on axis, degrees.
ON_AXIS_DEG = 1.0
#: Tilt from which a particle is misoriented, degrees.
MISORIENTED_DEG = 4.0


def tilt_from_zone_deg(record: Mapping, spec_particle: Mapping | None) -> float:
    """A particle's tilt from the zone it was drawn on (crystals) or its nearest symmetry axis (MTPs), degrees.

    The record's ``off_axis_tilt_deg`` is measured to the nearest of all zones with indices up to
    3, some of which show no columns; a crystal's drawn ``tilt_deg`` from its low-index zone is
    what decides whether columns are resolved.
    """
    if record.get("shape") in ("decahedron", "icosahedron") or spec_particle is None:
        return float(record.get("off_axis_tilt_deg", 0.0))
    return float(spec_particle.get("tilt_deg", 0.0))


def particle_class(record: Mapping, spec_particle: Mapping | None = None) -> str | None:
    """Class of one simulated particle from its record (docs/dataset-format.md), or None when unclear.

    Parameters
    ----------
    record : mapping
        The particle record (``source: "scene"``, with ``visible_planar_defects``).
    spec_particle : mapping, optional
        The drawn particle specification (``params.scene.spec.particles[object_id]``), for the
        tilt from its own zone axis.
    """
    if record.get("source") != "scene" or "visible_planar_defects" not in record:
        return None
    tilt = tilt_from_zone_deg(record, spec_particle)
    if tilt >= MISORIENTED_DEG:
        return "misoriented"
    if tilt > ON_AXIS_DEG:
        return None
    return "fault" if record["visible_planar_defects"] else "no_fault"
