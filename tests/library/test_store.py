"""Library files: build, read back, refuse what is not one; library specs."""

import shutil

import h5py
import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.library.build import build_library
from nanofind.library.descriptor import BINS
from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.spec import LibrarySpec, load_spec
from nanofind.library.store import FORMAT, FORMAT_VERSION, read_library
from nanofind.library.zones import project

from .conftest import AU_SPEC


def test_a_library_reads_back_what_was_built(au_library_path, au_library):
    lib = au_library
    spec = LibrarySpec(**AU_SPEC)
    # fcc up to index 1: [1 0 0], [1 1 0], [1 1 1] are its only distinct zones, all resolvable
    assert len(lib) == 3
    assert sorted(lib.label(i) for i in range(len(lib))) == ["fcc Au [1 0 0]", "fcc Au [1 1 0]", "fcc Au [1 1 1]"]
    assert lib.renderer == "haadf" and lib.variants == [None]
    assert lib.pixel_size_A == spec.pixel_size_A
    assert lib.images.shape == (3, 1, spec.image_px, spec.image_px)
    assert lib.descriptors.shape == (3, 1, BINS)
    assert np.all(np.isfinite(lib.images)) and np.all(np.isfinite(lib.descriptors))
    assert LibrarySpec.model_validate(lib.spec) == spec
    assert lib.source == str(au_library_path)
    assert list(lib.spacegroup) == [225] * 3 and not lib.hexagonal.any()
    (au,) = builtin_prototypes(["fcc"], ["Au"])
    for i in range(len(lib)):
        uvw = tuple(int(x) for x in lib.uvw[i])
        stored, fresh = lib.projection(i), project(au.atoms, uvw, merge_distance_A=spec.merge_distance_A)
        assert np.allclose(stored.cell_A, fresh.cell_A) and np.allclose(stored.positions_A, fresh.positions_A)
        assert np.array_equal(stored.numbers, fresh.numbers)
        assert np.allclose(stored.atoms_per_A, fresh.atoms_per_A)
        assert np.allclose(stored.z_weight_per_A, fresh.z_weight_per_A)
        assert stored.repeat_A == pytest.approx(fresh.repeat_A)


def test_stored_images_have_a_column_at_their_centre(au_library):
    # canonical placement: the cell origin (an Au column) at the image centre, a pixel corner
    for i in range(len(au_library)):
        image = au_library.images[i, 0].astype(np.float64)
        n = image.shape[0]
        centre = image[n // 2 - 1:n // 2 + 1, n // 2 - 1:n // 2 + 1]
        assert np.ptp(centre) < 0.01 * centre.mean()  # the four pixels round it alike
        assert centre.min() > image[n // 2 - 3:n // 2 + 3, n // 2 - 3:n // 2 + 3][[0, -1]].max()  # a peak
        # their centres are p/√2 off the column: exp(−p²/4σ²) of its weight, less the bilinear blur (≲ 5 %)
        p, sigma = au_library.pixel_size_A, au_library.spec["sigma_A"]
        weight = au_library.projection(i).z_weight_per_A[0]
        assert centre.mean() == pytest.approx(weight * np.exp(-p * p / (4 * sigma * sigma)), rel=0.06)
        # stored as float16: Σ Z^1.7 of an Au column per Å is a few hundred, well within its range
        assert image.max() == pytest.approx(weight, rel=0.05)


def test_hexagonal_zones_are_labelled_with_four_indices(tmp_path):
    path = tmp_path / "hcp.h5"
    build_library(LibrarySpec(max_index=1, prototypes={"builtin": ["hcp"], "formulas": ["Mg"]}), path, workers=1)
    lib = read_library(path)
    assert lib.hexagonal.all()
    for zone in lib.zone:
        u, v, t, w = (int(x) for x in zone.strip("[]").split())
        assert u + v + t == 0
    families = {tuple(sorted(abs(int(x)) for x in zone.strip("[]").split()[:3])) + (int(zone.split()[-1][:-1]),)
                for zone in lib.zone}
    assert (0, 0, 0, 1) in families  # [0 0 0 1]
    assert (1, 1, 2, 0) in families  # <2 -1 -1 0>
    assert (0, 1, 1, 0) in families  # <1 0 -1 0>


def test_the_same_spec_builds_the_same_library(tmp_path, au_library):
    path = tmp_path / "again.h5"
    summary = build_library(LibrarySpec(**AU_SPEC), path, workers=1)
    assert summary["entries"] == 3 and summary["structure_types"] == ["fcc"]
    again = read_library(path)
    assert list(again.zone) == list(au_library.zone)
    assert np.array_equal(again.images, au_library.images)
    assert np.array_equal(again.descriptors, au_library.descriptors)
    assert np.array_equal(again.xy_A, au_library.xy_A)
    assert not (tmp_path / "again.h5.parts").exists()  # the build's scratch parts are gone


def test_stale_parts_of_another_spec_are_not_reused(tmp_path, au_library):
    path = tmp_path / "lib.h5"
    parts = tmp_path / "lib.h5.parts"
    parts.mkdir()
    (parts / "spec.sha256").write_text("0123456789abcdef")
    shutil.copy(au_library.source, parts / "00000.h5")  # a finished part, but of a "different" spec
    with h5py.File(parts / "00000.h5", "a") as f:
        f["images"][...] = 0
    build_library(LibrarySpec(**AU_SPEC), path, workers=1)
    assert np.array_equal(read_library(path).images, au_library.images)


def test_a_folder_is_not_a_library_file(tmp_path):
    with pytest.raises(NanofindInputError) as error:
        build_library(LibrarySpec(**AU_SPEC), tmp_path, workers=1)
    assert str(tmp_path) in str(error.value)


def test_a_spec_that_leaves_no_zone_is_refused(tmp_path):
    spec = LibrarySpec(max_index=1, min_column_distance_A=3.0, prototypes={"builtin": ["fcc"], "formulas": ["Au"]})
    with pytest.raises(NanofindInputError, match="min_column_distance_A"):
        build_library(spec, tmp_path / "lib.h5", workers=1)
    spec = LibrarySpec(prototypes={"builtin": "none"})
    with pytest.raises(NanofindInputError, match="prototypes"):
        build_library(spec, tmp_path / "lib.h5", workers=1)


# ---- files that are not libraries --------------------------------------------------------------


def refused(path, *words):
    with pytest.raises(NanofindInputError) as error:
        read_library(path)
    message = str(error.value)
    assert str(path) in message
    for word in words:
        assert word in message
    return message


def test_a_missing_file_is_refused(tmp_path):
    refused(tmp_path / "nowhere.h5", "no such")


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not a library\n")
    refused(path)


def test_an_empty_hdf5_file_is_refused(tmp_path):
    path = tmp_path / "empty.h5"
    h5py.File(path, "w").close()
    refused(path, "not a nanofind structure library")


def rewritten(source, target, edit):
    shutil.copy(source, target)
    with h5py.File(target, "a") as f:
        edit(f)
    return target


def test_another_format_version_is_refused(tmp_path, au_library_path):
    path = rewritten(au_library_path, tmp_path / "v2.h5", lambda f: f.attrs.__setitem__("version", FORMAT_VERSION + 1))
    refused(path, "version", str(FORMAT_VERSION + 1))


def test_another_format_is_refused(tmp_path, au_library_path):
    path = rewritten(au_library_path, tmp_path / "other.h5", lambda f: f.attrs.__setitem__("format", "something"))
    assert FORMAT != "something"
    refused(path, "something")


def test_a_library_without_a_version_is_refused(tmp_path, au_library_path):
    path = rewritten(au_library_path, tmp_path / "noversion.h5", lambda f: f.attrs.__delitem__("version"))
    refused(path)


def test_a_library_missing_a_table_is_refused(tmp_path, au_library_path):
    path = rewritten(au_library_path, tmp_path / "cut.h5", lambda f: f.__delitem__("descriptors"))
    refused(path, "descriptors")


def test_tables_of_different_lengths_are_refused(tmp_path, au_library_path):
    def drop_a_descriptor(f):
        kept = f["descriptors"][:-1]
        del f["descriptors"]
        f.create_dataset("descriptors", data=kept)

    refused(rewritten(au_library_path, tmp_path / "short.h5", drop_a_descriptor), "length")


# ---- specs -------------------------------------------------------------------------------------


def spec_file(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def spec_error(path):
    with pytest.raises(NanofindInputError) as error:
        load_spec(path)
    return str(error.value)


def test_the_example_spec_loads(recipes_dir):
    spec = load_spec(recipes_dir / "library-default.yaml")
    assert spec.prototypes.builtin == "all" and spec.max_index == 3 and spec.renderer == "haadf"


def test_an_empty_spec_is_the_defaults(tmp_path):
    assert load_spec(spec_file(tmp_path, "")) == LibrarySpec()


def test_an_unknown_key_is_refused(tmp_path):
    path = spec_file(tmp_path, "max_index: 1\nmax_indx: 2\n")
    message = spec_error(path)
    assert str(path) in message and "max_indx" in message
    message = spec_error(spec_file(tmp_path, "prototypes:\n  builtin: [fcc]\n  colour: red\n", "nested.yaml"))
    assert "prototypes.colour" in message


def test_an_unknown_structure_type_is_refused(tmp_path):
    path = spec_file(tmp_path, "prototypes:\n  builtin: [fcc, quasicrystal]\n")
    message = spec_error(path)
    assert str(path) in message and "prototypes.builtin" in message and "quasicrystal" in message


@pytest.mark.parametrize("text, field", [("max_index: 9\n", "max_index"), ("pixel_size_A: 0\n", "pixel_size_A"),
                                         ("renderer: xray\n", "renderer"), ("image_px: 8\n", "image_px"),
                                         ("hrtem:\n  thickness_A: -1\n", "hrtem.thickness_A")])
def test_out_of_range_fields_are_refused(tmp_path, text, field):
    path = spec_file(tmp_path, text)
    message = spec_error(path)
    assert str(path) in message and field in message


def test_a_spec_that_is_not_yaml_is_refused(tmp_path):
    path = spec_file(tmp_path, "max_index: [1\n")
    assert str(path) in spec_error(path)


def test_cif_files_are_found_beside_the_spec(tmp_path):
    (tmp_path / "crystals").mkdir()
    (tmp_path / "crystals" / "x.cif").write_text("data_x\n")
    spec = load_spec(spec_file(tmp_path, "prototypes:\n  builtin: none\n  cif: [crystals/x.cif]\n"))
    assert spec.prototypes.cif == [str((tmp_path / "crystals" / "x.cif").resolve())]
    message = spec_error(spec_file(tmp_path, "prototypes:\n  cif: [missing.cif]\n", "missing.yaml"))
    assert "prototypes.cif[0]" in message and "missing.cif" in message


def test_an_unknown_builtin_type_is_refused_outside_specs_too():
    with pytest.raises(NanofindInputError, match="quasicrystal"):
        builtin_prototypes(["quasicrystal"])
