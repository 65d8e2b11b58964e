"""Small structure libraries shared by the tests of nanofind.library (each builds in well under a second)."""

import pytest

from nanofind.library.build import build_library
from nanofind.library.spec import LibrarySpec
from nanofind.library.store import read_library

#: fcc Au along its three zones of index ≤ 1.
AU_SPEC = dict(max_index=1, prototypes={"builtin": ["fcc"], "formulas": ["Au"]})
#: Four structure types along every zone of index ≤ 2 (24 entries).
MIXED_SPEC = dict(max_index=2, prototypes={"builtin": ["fcc", "rocksalt", "fluorite", "bcc"],
                                           "formulas": ["Au", "MgO", "CeO2", "Fe"]})


@pytest.fixture(scope="session")
def au_library_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("au-library") / "lib.h5"
    build_library(LibrarySpec(**AU_SPEC), path, workers=1)
    return path


@pytest.fixture(scope="session")
def au_library(au_library_path):
    return read_library(au_library_path)


@pytest.fixture(scope="session")
def mixed_library(tmp_path_factory):
    path = tmp_path_factory.mktemp("mixed-library") / "lib.h5"
    build_library(LibrarySpec(**MIXED_SPEC), path, workers=1)
    return read_library(path)


@pytest.fixture(scope="session")
def cscl_library(tmp_path_factory):
    """CsCl up to index 3; its [3 2 1] projection is an oblique lattice of two columns: no mirror line."""
    path = tmp_path_factory.mktemp("cscl-library") / "lib.h5"
    build_library(LibrarySpec(max_index=3, min_column_distance_A=1.2,
                              prototypes={"builtin": ["CsCl"], "formulas": ["CsCl"]}), path, workers=1)
    return read_library(path)
