"""nanofind: machine-learning analysis of atomic-resolution TEM micrographs of nanoparticles.

Stages (see ``docs/architecture.md``):

- :mod:`nanofind.scene` builds atomic scenes (``ase.Atoms`` with per-atom labels).
"""

from nanofind._version import __version__

__all__ = ["__version__"]
