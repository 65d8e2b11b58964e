"""Prototype sources beside the built-in list: ASE's crystal builders and CIF files."""

import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.library.build import build_library
from nanofind.library.prototypes import ase_bulk_prototype, builtin_prototypes, cif_prototype
from nanofind.library.spec import LibrarySpec, load_spec
from nanofind.library.store import read_library
from nanofind.library.zones import project


def test_ase_bulk_copper_projects_like_the_builtin_fcc():
    # ase.build.bulk('Cu', 'fcc', cubic=True) is the same crystal as the built-in list's fcc at that a
    made = ase_bulk_prototype("Cu", "fcc", 3.615)
    builtin = builtin_prototypes(["fcc"], ["Cu"])[0]
    assert made.spacegroup == 225 and len(made.atoms) == 4
    for uvw in ((1, 0, 0), (1, 1, 0), (1, 1, 1)):
        a, b = project(made.atoms, uvw), project(builtin.atoms, uvw)
        assert np.allclose(np.abs(np.linalg.det(a.cell_A)), np.abs(np.linalg.det(b.cell_A)))
        assert np.isclose(a.min_column_distance_A, b.min_column_distance_A)
        assert np.isclose(a.atoms_per_A.sum(), b.atoms_per_A.sum())


def test_ase_bulk_hcp_is_hexagonal_and_unknown_structures_are_refused():
    mg = ase_bulk_prototype("Mg", "hcp", 3.209, 5.211)
    assert mg.hexagonal and mg.spacegroup == 194
    with pytest.raises(NanofindInputError, match="crystalstructure"):
        ase_bulk_prototype("Cu", "quasicrystal", 3.6)


def test_cif_and_ase_sources_build_into_one_library(tmp_path):
    from ase.io import write

    nacl = builtin_prototypes(["rocksalt"], ["NaCl"])[0]
    write(tmp_path / "halite.cif", nacl.atoms, format="cif")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("max_index: 1\nprototypes:\n  builtin: none\n  cif: [halite.cif]\n"
                         "  ase_bulk:\n    - {name: Si, crystalstructure: diamond, a_A: 5.431}\n")
    spec = load_spec(spec_path)
    summary = build_library(spec, tmp_path / "lib.h5", workers=1)
    library = read_library(tmp_path / "lib.h5")
    labels = {library.label(i) for i in range(len(library))}
    # the CIF is read without its symmetry, so its zones are not merged: [1 0 0], [0 1 0] and [0 0 1]
    # are separate entries, and Si's three cubic classes are [1 0 0], [1 1 0], [1 1 1]
    assert {"diamond Si [1 0 0]", "diamond Si [1 1 0]", "diamond Si [1 1 1]"} <= labels
    assert {"halite NaCl [1 0 0]", "halite NaCl [0 1 0]", "halite NaCl [0 0 1]"} <= labels
    assert summary["entries"] == len(library)
    assert cif_prototype(tmp_path / "halite.cif").prototype == "halite"


def test_a_cif_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("this is not a crystal\n")
    with pytest.raises(NanofindInputError, match="bad.cif"):
        cif_prototype(bad)
    spec = tmp_path / "spec.yaml"
    spec.write_text("prototypes:\n  cif: [missing.cif]\n")
    with pytest.raises(NanofindInputError, match=r"prototypes.cif\[0\]"):
        load_spec(spec)
    with pytest.raises(ValueError):
        LibrarySpec(prototypes={"ase_bulk": [{"name": "Cu", "crystalstructure": "fcc", "a_A": -1}]})
