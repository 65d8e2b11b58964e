"""Dataset format version 2 (instance maps, particle records) and reading version-1 files."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.ndimage import label

from nanofind.cli import main
from nanofind.datasets import DatasetReader, Sample, describe_dataset
from nanofind.datasets.store import FORMAT_VERSION, write_samples_file
from nanofind.errors import NanofindInputError

DATA = Path(__file__).parent / "data"
V1 = DATA / "v1-small.h5"  # written by format version 1 from v1-small.yaml, seed 0, two samples
V1_ARRAYS = ("image", "mask", "grain", "column_height", "columns", "columns_offset", "index")


def test_version_1_file_reads_with_instances_derived_from_the_mask():
    with h5py.File(V1) as h5:
        assert h5.attrs["format_version"] == 1 and "instance" not in h5 and "particles" not in h5
        masks = h5["mask"][()]
    with DatasetReader(V1) as r:
        assert len(r) == 2 and r.format_version(0) == 1
        for k in range(2):
            s = r.sample(k)
            np.testing.assert_array_equal(s.mask, masks[k])
            # two Au particles, far apart: two 8-connected components of the mask
            components, n = label(masks[k] > 0, structure=np.ones((3, 3)))
            assert n == 2 and s.instance.dtype == np.int32
            np.testing.assert_array_equal(s.instance, components)
            assert [p["id"] for p in s.particles] == [1, 2]
            assert all(p["source"] == "mask" for p in s.particles)
            assert sum(p["area_px"] for p in s.particles) == int(masks[k].sum())
            big = max(s.particles, key=lambda p: p["area_px"])
            assert big["equivalent_diameter_nm"] == pytest.approx(np.sqrt(4 * big["area_px"] / np.pi) * 0.05)
            np.testing.assert_array_equal(r.instance(k), s.instance)
            assert r.particles(k) == s.particles
    info = describe_dataset(V1)
    assert info["format_version"] == 1 and info["particle_records_from"] == {"mask": 4}


def test_version_2_reproduces_the_version_1_arrays_and_adds_scene_records(tmp_path):
    out = tmp_path / "v2.h5"
    assert main(["simulate", str(DATA / "v1-small.yaml"), "-n", "2", "-o", str(out), "--seed", "0",
                 "--workers", "1", "--quiet"]) == 0
    with h5py.File(V1) as old, h5py.File(out) as new:
        assert new.attrs["format_version"] == FORMAT_VERSION == 2
        for name in V1_ARRAYS:
            np.testing.assert_array_equal(new[name][()], old[name][()], err_msg=name)
        assert [json.loads(p) for p in new["params"][()]] == [json.loads(p) for p in old["params"][()]]
        assert new["instance"].dtype == np.int32 and new["instance"].compression == "gzip"
    with DatasetReader(out) as r:
        for k in range(2):
            s = r.sample(k)
            ids = set(np.unique(s.instance).tolist()) - {0}
            assert ids == {p["id"] for p in s.particles} == {1, 2}  # one id per recipe particle
            np.testing.assert_array_equal(s.instance > 0, s.mask > 0)
            for p in s.particles:
                assert p["source"] == "scene" and p["material"] == "Au" and p["shape"] == "sphere"
                assert p["area_px"] == int(np.sum(s.instance == p["id"]))
                assert p["zone_axis"] == [1, 1, 0] and p["on_zone_axis"]
            diameters = {p["id"]: p["volume_equivalent_diameter_nm"] for p in s.particles}
            # the recipe's diameters: 14 Å and 12 Å
            assert diameters[1] == pytest.approx(1.4, rel=0.1) and diameters[2] == pytest.approx(1.2, rel=0.1)


def test_round_trip_keeps_instances_and_records(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[2:6, 2:6] = 1
    instance = mask.astype(np.int32) * 7
    records = [{"id": 7, "source": "scene", "defects": ["twin"], "zone_axis": [1, 1, 0], "area_px": 16}]
    s = Sample(3, np.ones((16, 16), np.float32), mask, np.where(mask, 0, -1).astype(np.int16),
               np.zeros((16, 16), np.uint16), np.zeros((0, 4), np.float32), {"pixel_size_A": 0.5}, instance,
               records)
    header = {"format": "nanofind-dataset", "format_version": 2, "seed": 0, "images_per_scene": 1,
              "recipe": "{}", "recipe_source": "test"}
    write_samples_file(tmp_path / "d.h5", [s], header)
    with DatasetReader(tmp_path / "d.h5") as r:
        back = r.sample(0)
    np.testing.assert_array_equal(back.instance, instance)
    assert back.particles == records and back.params == {"pixel_size_A": 0.5}


def test_labelled_defaults_come_from_the_mask():
    mask = np.zeros((10, 12), np.uint8)
    mask[0:3, 0:3] = 1  # touches the image edge
    mask[5:8, 6:10] = 1
    mask[8, 10] = 1  # meets the second block only at a corner: the same particle
    s = Sample(0, np.zeros(mask.shape, np.float32), mask, np.zeros(mask.shape, np.int16),
               np.zeros(mask.shape, np.uint16), np.zeros((0, 4), np.float32), {"pixel_size_A": 2.0})
    assert s.instance.max() == 2
    first, second = s.particles
    assert first["area_px"] == 9 and first["cut_by_edge"] and first["centroid_px"] == [1.0, 1.0]
    assert second["area_px"] == 13 and not second["cut_by_edge"]
    assert first["equivalent_diameter_nm"] == pytest.approx(np.sqrt(4 * 9 / np.pi) * 0.2)


def test_resuming_a_version_1_run_is_refused(tmp_path, capsys):
    copy = tmp_path / "v1.h5"
    shutil.copy(V1, copy)
    assert main(["simulate", str(DATA / "v1-small.yaml"), "-n", "4", "-o", str(copy), "--seed", "0", "--resume",
                 "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "format version 1" in err and "cannot resume" in err
    with h5py.File(copy) as h5:
        assert h5.attrs["format_version"] == 1 and len(h5["index"]) == 2  # untouched


def test_newer_versions_are_refused(tmp_path):
    newer = tmp_path / "v9.h5"
    shutil.copy(V1, newer)
    with h5py.File(newer, "a") as h5:
        h5.attrs["format_version"] = 9
    with pytest.raises(NanofindInputError, match="version 9 is newer"):
        DatasetReader(newer)
