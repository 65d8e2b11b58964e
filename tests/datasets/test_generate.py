import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from nanofind.cli import main
from nanofind.datasets import DatasetReader, parts_dir
from nanofind.learn.preprocess import normalise

RECIPE = {
    "substrate": {"thickness_A": 8, "density_g_cm3": 2.0},
    "particles_per_field": {"choice": [0, 1]},
    "particles": [{"material": "Au", "diameter_A": {"uniform": [10, 14]}, "in_plane_deg": {"uniform": [0, 360]}}],
    "microscope": {"energy_keV": {"choice": [200, 300]}, "Cs_A": -1.5e5, "defocus_offset_A": {"uniform": [-50, 50]},
                   "focal_spread_A": 20},
    "detector": {"shape": [40, 40], "pixel_size_A": {"choice": [0.4, 0.5]}, "dose_e_per_A2": {"uniform": [150, 4000]},
                 "read_noise": 0.5, "xray_rate_per_megapixel": 300, "distortion_A": 0.3},
    "multislice": {"max_sampling_A": 0.25, "margin_A": 3},
    "images_per_scene": 2,
}
ARRAYS = ("image", "mask", "grain", "column_height", "columns", "columns_offset", "index", "params")


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


def _same(a: Path, b: Path) -> None:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in ARRAYS:
            assert np.array_equal(fa[name][()], fb[name][()]), name


def test_worker_count_does_not_change_the_data(recipe_file, tmp_path):
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    assert main([ "simulate", str(recipe_file), "-n", "6", "-o", str(one), "--seed", "11", "--workers", "1",
                 "--quiet"]) == 0
    assert main(["simulate", str(recipe_file), "-n", "6", "-o", str(two), "--seed", "11", "--workers", "2",
                 "--quiet"]) == 0
    _same(one, two)
    with DatasetReader(one) as r:
        assert list(r.indices) == list(range(6))
        s = r.sample(3)
        assert s.image.shape == (40, 40) and s.image.dtype == np.float32
        assert s.params["index"] == 3 and s.params["seed"] == 11
    assert not parts_dir(one).exists()


def test_dask_scheduler_gives_the_local_result(recipe_file, tmp_path, dask_cluster):
    local, remote = tmp_path / "local.h5", tmp_path / "dask.h5"
    assert main(["simulate", str(recipe_file), "-n", "4", "-o", str(local), "--seed", "5", "--workers", "1",
                 "--quiet"]) == 0
    assert main(["simulate", str(recipe_file), "-n", "4", "-o", str(remote), "--seed", "5",
                 "--scheduler", dask_cluster.scheduler_address, "--quiet"]) == 0
    _same(local, remote)


def test_killed_run_resumes_to_the_uninterrupted_result(recipe_file, tmp_path):
    full, cut = tmp_path / "full.h5", tmp_path / "cut.h5"
    assert main(["simulate", str(recipe_file), "-n", "8", "-o", str(full), "--seed", "4", "--workers", "1",
                 "--quiet"]) == 0
    cmd = [sys.executable, "-m", "nanofind", "simulate", str(recipe_file), "-n", "8", "-o", str(cut), "--seed", "4",
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts_dir(cut).glob("group-*.h5"))) < 1 and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(parts_dir(cut).glob("group-*.h5")))
    assert 1 <= written < 4 and not cut.exists(), "the run must be killed part-way"
    # without --resume the partial run is protected
    assert main(["simulate", str(recipe_file), "-n", "8", "-o", str(cut), "--seed", "4", "--quiet"]) == 2
    assert main(["simulate", str(recipe_file), "-n", "8", "-o", str(cut), "--seed", "4", "--resume",
                 "--quiet"]) == 0
    _same(full, cut)
    # a resume with another seed is refused and leaves the data alone
    assert main(["simulate", str(recipe_file), "-n", "8", "-o", str(cut), "--seed", "5", "--resume",
                 "--quiet"]) == 2
    _same(full, cut)


def _workers_of(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children if "multiprocessing-fork" in Path(f"/proc/{c}/cmdline").read_text()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_workers_end_when_the_run_is_killed(recipe_file, tmp_path):
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "nanofind", "simulate", str(recipe_file), "-n", "40", "-o", str(out), "--seed", "1",
           "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = _workers_of(proc.pid)
        time.sleep(0.05)
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "multiprocessing-fork" in Path(f"/proc/{w}/cmdline").read_text()]
    assert not alive, "orphaned simulation workers keep running after their run was killed"


def test_resume_extends_a_finished_dataset(recipe_file, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    run = ["simulate", str(recipe_file), "--seed", "2", "--workers", "1", "--quiet"]
    assert main(run + ["-n", "3", "-o", str(a)]) == 0
    assert main(["simulate", str(recipe_file), "-n", "5", "-o", str(a), "--seed", "2", "--resume", "--workers", "1",
                 "--quiet"]) == 0
    assert main(run + ["-n", "5", "-o", str(b)]) == 0
    _same(a, b)


def test_show_and_export(recipe_file, tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert main(["simulate", str(recipe_file), "-n", "4", "-o", str(out), "--seed", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["dataset", "show", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 4 and info["complete"] and info["image_shape"] == [40, 40]
    assert 150 <= info["dose_e_per_A2"][0] <= info["dose_e_per_A2"][1] <= 4000
    export = tmp_path / "export"
    assert main(["dataset", "export", str(out), str(export)]) == 0
    import tifffile
    from PIL import Image

    names = sorted(p.name for p in export.iterdir())
    assert names[:3] == ["img_0000.tif", "img_0001.tif", "img_0002.tif"] and len(names) == 16
    img = tifffile.imread(export / "img_0002.tif")
    mask = np.asarray(Image.open(export / "mask_0002.png"))
    instance = np.asarray(Image.open(export / "instance_0002.png"))
    meta = json.loads((export / "meta_0002.json").read_text())
    with DatasetReader(out) as r:
        s = r.sample(2)
        n_records = sum(len(r.particles(k)) for k in range(len(r)))
    assert img.dtype == np.float32 and np.array_equal(img, s.image)
    assert set(np.unique(mask)) <= {0, 255} and np.array_equal(mask == 255, s.mask == 1)
    assert instance.dtype == np.uint16 and np.array_equal(instance, s.instance)
    assert {"pixel_size", "dose", "defocus", "seed"} <= set(meta) and meta["seed"] == 1
    assert meta["particles"] == s.particles
    assert info["format_version"] == 2
    assert info["particle_records"] == n_records and info["particle_records_from"] == (
        {"scene": n_records} if n_records else {})


@pytest.mark.parametrize("change,message", [
    ({"detector": {"shape": [40, 40], "pixel_size_A": -1}}, "detector.pixel_size_A"),
    ({"microscope": {"energy_kev": 300}}, "unknown key"),
    ({"field": {"size_A": [50, 50]}}, "field.size_A is set by detector"),
    ({"multislice": {"parametrization": "doyle"}}, "multislice.parametrization"),
])
def test_bad_recipe_is_one_line_exit_2(tmp_path, capsys, change, message):
    bad = dict(RECIPE) | change
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["simulate", str(path), "-n", "2", "-o", str(tmp_path / "x.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "bad.yaml" in err
    assert not (tmp_path / "x.h5").exists()


def test_unwritable_output_is_exit_2(recipe_file, tmp_path, capsys):
    assert main(["simulate", str(recipe_file), "-n", "2", "-o", str(tmp_path / "missing" / "x.h5"), "--quiet"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_full_disk_keeps_written_groups(recipe_file, tmp_path, monkeypatch, capsys):
    import nanofind.datasets.generate as gen

    out = tmp_path / "d.h5"
    real = gen.write_part
    calls = []

    def failing(path, group, samples, header):
        calls.append(group)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(path, group, samples, header)

    monkeypatch.setattr(gen, "write_part", failing)
    assert main(["simulate", str(recipe_file), "-n", "6", "-o", str(out), "--workers", "1", "--quiet"]) == 2
    assert "No space left" in capsys.readouterr().err
    with DatasetReader(out) as r:
        assert list(r.indices) == [0, 1]


def test_torch_dataset(recipe_file, tmp_path):
    torch = pytest.importorskip("torch")
    from nanofind.datasets.torch_dataset import SegmentationDataset

    out = tmp_path / "d.h5"
    assert main(["simulate", str(recipe_file), "-n", "4", "-o", str(out), "--quiet"]) == 0
    ds = SegmentationDataset(out)
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 1, 40, 40) and batch["mask"].shape == (2, 40, 40)
    assert batch["instance"].shape == (2, 40, 40)
    with DatasetReader(out) as r:
        s = r.sample(0)
    # the image is normalised exactly as every model trains, not by mean and standard deviation
    np.testing.assert_array_equal(batch["image"][0, 0].numpy(), normalise(s.image))
    # the instance map covers exactly the mask, and its ids are those of the particle records
    inst = batch["instance"][0].numpy()
    np.testing.assert_array_equal(inst > 0, s.mask > 0)
    assert set(np.unique(inst[inst > 0]).tolist()) == {p["id"] for p in s.particles}
