import json

import mrcfile
import numpy as np
import pytest
import torch

from nanofind.cli import main
from nanofind.errors import NanofindInputError
from nanofind.io import read_micrograph
from nanofind.learn.card import ModelCard, Normalisation
from nanofind.learn.scale_guard import (
    BYTES_PER_IMAGE_PX,
    BYTES_PER_WORK_PX,
    ZOOM_LIMITS,
    estimate_bytes,
    max_image_pixels,
    plan_scale,
)
from nanofind.segment.inference import predict_probability
from tests.learning_fixtures import disc_field

CARD = ModelCard(task="segmentation", architecture="seed_unet", pixel_size_A=0.3, pixel_size_range_A=[0.2, 0.7],
                 working_pixel_size_range_A=[0.25, 0.35], threshold=0.5,
                 normalisation=Normalisation(flatten_background=False))


def write_mrc(path, image, pixel_size_A):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(image, np.float32))
        mrc.voxel_size = pixel_size_A
    return path


def test_inside_the_working_range_nothing_changes():
    plan = plan_scale((512, 512), 0.3, CARD)
    assert plan.zoom == 1 and plan.work_shape == (512, 512) and not plan.warnings
    plan = plan_scale((512, 512), 0.6, CARD)  # a modest enlargement is followed
    assert plan.zoom == pytest.approx(0.6 / 0.35) and not plan.warnings
    assert plan.working_pixel_size_A == pytest.approx(0.35)
    assert plan_scale((512, 512), None, CARD).zoom == 1  # unknown pixel size: own grid, no warning


def test_low_magnification_is_bounded_with_a_warning():
    plan = plan_scale((128, 128), 52.6, CARD, name="search.ser")
    assert plan.wanted_zoom == pytest.approx(52.6 / 0.35)
    assert plan.zoom == ZOOM_LIMITS[1] and plan.work_shape == (512, 512)
    (warning,) = plan.warnings
    assert "52.6 Å" in warning and "0.25–0.35 Å" in warning and "unreliable" in warning


@pytest.mark.parametrize("pixel", [1e-4, 1e4])
def test_implausible_header_pixel_sizes_do_not_blow_up(pixel):
    plan = plan_scale((1024, 1024), pixel, CARD)
    assert ZOOM_LIMITS[0] <= plan.zoom <= ZOOM_LIMITS[1] and plan.warnings
    assert plan.work_shape[0] * plan.work_shape[1] <= 16 * 1024 * 1024
    small = plan_scale((64, 80), pixel, CARD)  # never below the smallest working side
    assert min(small.work_shape) >= 64 and small.work_shape[0] * small.work_shape[1] <= 16 * 64 * 80


def test_memory_estimate_bounds_enlargement_and_refuses_huge_images():
    # 6000² at 1.2 Å wants 3.4x: about 0.8 + 1.8 + 6.6 GB; lowered to what fits in 4 GB
    plan = plan_scale((6000, 6000), 1.2, CARD, memory_limit_gb=4.0, job="segment")
    assert plan.zoom < 1.2 / 0.35 and plan.estimated_bytes <= 4e9
    assert any("4 GB" in w for w in plan.warnings)
    assert estimate_bytes((6000, 6000), plan.zoom + 0.05, "segment") > 4e9  # as large as fits, not smaller
    with pytest.raises(NanofindInputError, match="over the 4 GB limit"):
        plan_scale((20000, 20000), 0.3, CARD, memory_limit_gb=4.0, job="analyze", name="huge.mrc")
    # the pixel limit the commands pass to the reader is the one that fits on the image's own grid
    n = max_image_pixels(4.0, "analyze")
    assert estimate_bytes((n, 1), 1.0, "analyze") <= 4e9 < estimate_bytes((n + 10**6, 1), 1.0, "analyze")
    assert BYTES_PER_IMAGE_PX["analyze"] > BYTES_PER_IMAGE_PX["segment"] and BYTES_PER_WORK_PX > 0


def test_reader_refuses_what_the_memory_limit_cannot_hold(tmp_path):
    path = write_mrc(tmp_path / "big.mrc", np.random.default_rng(0).normal(size=(300, 400)), 0.3)
    with pytest.raises(NanofindInputError, match="--max-memory"):
        read_micrograph(path, max_pixels=100_000)
    assert read_micrograph(path, max_pixels=120_000).array.shape == (300, 400)


def test_probability_comes_back_on_the_image_grid_under_the_guard():
    image, mask = disc_field(shape=(128, 128), centres=((64, 64),), radius=30)

    class Dark(torch.nn.Module):  # particle where the normalised image is well below the background
        def forward(self, x):
            return torch.cat([x + 0.9, -(x + 0.9)], dim=1) * 4

    plan = plan_scale(image.shape, 52.6, CARD)
    prob = predict_probability(Dark(), CARD, image.astype(np.float32), 52.6, plan=plan)
    assert prob.shape == image.shape
    assert ((prob > 0.5) == mask).mean() > 0.97


def test_analyze_batch_with_questionable_and_broken_files(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image, _ = disc_field(shape=(128, 128), centres=((64, 64),), radius=20)
    write_mrc(folder / "search_50A.mrc", image, 50.0)
    write_mrc(folder / "tiny_pixel.mrc", image, 1e-4)
    write_mrc(folder / "huge_pixel.mrc", image, 1e4)
    good, _ = disc_field(shape=(256, 256), centres=((100, 120),), radius=40, seed=2)
    write_mrc(folder / "good.mrc", good, 0.3)
    (folder / "corrupt.mrc").write_bytes(b"\x00\x10\x00\x00" * 300)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "-o", str(out), "--quiet"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert [f["file"].rsplit("/", 1)[1] for f in summary["failed"]] == ["corrupt.mrc"]
    warned = {w["file"].rsplit("/", 1)[1]: w["warning"] for w in summary["warnings"]}
    # --model auto: 50 Å is the bright-field model's (no warning); 1e-4 Å is far below the HRTEM model's range,
    # 1e4 Å far above the bright-field model's
    assert set(warned) == {"tiny_pixel.mrc", "huge_pixel.mrc"}
    assert "far outside" in warned["tiny_pixel.mrc"] and "outside the 1–50 Å" in warned["huge_pixel.mrc"]
    models = {i["file"].rsplit("/", 1)[1]: i["model"]["model"] for i in summary["per_image"]}
    assert models == {"search_50A.mrc": "lowmag", "tiny_pixel.mrc": "hrtem", "huge_pixel.mrc": "lowmag",
                      "good.mrc": "hrtem"}
    # their particles stay in the table but not in the batch's size statistics
    assert {e["file"].rsplit("/", 1)[1] for e in summary["size_distribution_excludes"]} == set(warned)
    for image_record in summary["per_image"]:
        assert image_record["zoom"] <= ZOOM_LIMITS[1]
    assert summary["engine"]["backend"] in ("torch", "onnx") and summary["engine"]["cpu_model"]
    err = capsys.readouterr().err
    assert "warning:" in err and "huge_pixel.mrc" in err and "corrupt.mrc" in err and "Traceback" not in err
    html = (out / "report.html").read_text()
    assert "Questionable images" in html and "far outside" in html and "cpu_model" in html
    assert "not in the size statistics" in html


def test_segment_warns_and_refuses_by_the_memory_limit(tmp_path, capsys):
    image, _ = disc_field(shape=(128, 128), centres=((64, 64),), radius=20)
    low = write_mrc(tmp_path / "low.mrc", image, 50.0)  # far outside the HRTEM model's pixel sizes
    assert main(["segment", str(low), "-o", str(tmp_path / "out"), "--model", "hrtem"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "far outside" in err and "running" in err
    big = write_mrc(tmp_path / "big.mrc", np.random.default_rng(1).normal(size=(2000, 2000)), 0.3)
    assert main(["segment", str(big), "-o", str(tmp_path / "out"), "--max-memory", "1", "--quiet"]) == 1
    assert "--max-memory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # below what the process itself needs: a usage error
        main(["segment", str(big), "-o", str(tmp_path / "out"), "--max-memory", "0.6"])
    assert usage.value.code == 2
