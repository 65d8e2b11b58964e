import json

import mrcfile
import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from nanofind.cli import main
from nanofind.errors import NanofindInputError
from nanofind.io import read_micrograph
from nanofind.learn.card import ModelCard, Normalisation
from nanofind.learn.model_file import save_model
from nanofind.learn.networks import build_network
from nanofind.learn.scale_guard import model_zoom, plan_scale
from nanofind.segment.inference import MAX_CONTEXT_WINDOW_PX, context_window, predict_normalised, predict_probability
from tests.learning_fixtures import disc_field


class Pointwise(torch.nn.Module):
    """A network without spatial context: logits depend on each pixel alone."""

    def forward(self, x):
        return torch.cat([-2 * x, 2 * x], dim=1)


def _card(**fields) -> ModelCard:
    """A segmentation card with the unflattened normalisation, plus ``fields``."""
    base = {"task": "segmentation", "architecture": "seed_unet", "pixel_size_A": 0.5, "threshold": 0.5,
            "normalisation": Normalisation(flatten_background=False)}
    return ModelCard(**{**base, **fields})


def test_small_image_is_one_pass():
    torch.manual_seed(0)
    model = build_network("seed_unet", width=8).eval()
    image = np.random.default_rng(0).normal(size=(70, 90)).astype(np.float32)
    prob = predict_normalised(model, image, window_px=128)
    with torch.no_grad():
        direct = torch.softmax(model(torch.from_numpy(image)[None, None]), 1)[0, 1].numpy()
    np.testing.assert_allclose(prob, direct, atol=1e-6)


def test_mirror_averaging_makes_any_network_mirror_equivariant():
    torch.manual_seed(0)
    model = build_network("seed_unet", width=8).eval()
    image = np.random.default_rng(2).normal(size=(96, 128)).astype(np.float32)
    plain = predict_normalised(model, image)
    averaged = predict_normalised(model, image, tta=True)
    # an untrained network is not mirror-symmetric; its mirror average is, whole-image and tiled alike
    assert np.abs(predict_normalised(model, image[:, ::-1].copy())[:, ::-1] - plain).max() > 1e-3
    for flip in (lambda a: a[:, ::-1], lambda a: a[::-1, :], lambda a: a[::-1, ::-1]):
        mirrored = predict_normalised(model, flip(image).copy(), tta=True)
        np.testing.assert_allclose(flip(mirrored), averaged, atol=1e-5)
    tiled = predict_normalised(model, image, window_px=64, overlap=0.5, tta=True)
    tiled_mirror = predict_normalised(model, image[::-1, ::-1].copy(), window_px=64, overlap=0.5,
                                      tta=True)
    np.testing.assert_allclose(tiled_mirror[::-1, ::-1], tiled, atol=1e-4)


def test_sliding_window_blending_equals_a_single_pass():
    # blended overlapping windows reproduce a single pass exactly when the output is local
    image = np.random.default_rng(1).normal(size=(300, 260)).astype(np.float32)
    tiled = predict_normalised(Pointwise(), image, window_px=64, overlap=0.25, batch=3)
    single = predict_normalised(Pointwise(), image, window_px=512)
    assert tiled.shape == image.shape
    np.testing.assert_allclose(tiled, single, atol=1e-5)
    np.testing.assert_allclose(single, 1 / (1 + np.exp(-4 * image)), atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(height=st.integers(20, 160), width=st.integers(20, 160), window_px=st.integers(16, 96),
       overlap=st.floats(0.0, 0.75), batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_sliding_windows_equal_a_single_pass_for_a_local_network(height, width, window_px, overlap, batch, seed):
    # the Gaussian blend is a weighted mean of windows that all agree where the output depends on each pixel
    # alone, whatever the image size, window, overlap and batch
    image = np.random.default_rng(seed).normal(size=(height, width)).astype(np.float32)
    tiled = predict_normalised(Pointwise(), image, window_px=window_px, overlap=overlap, batch=batch)
    assert tiled.shape == image.shape
    np.testing.assert_allclose(tiled, 1 / (1 + np.exp(-4 * image)), atol=1e-5)


def test_pixel_size_resampling_into_the_training_range():
    card = _card(pixel_size_range_A=[0.25, 0.7])
    assert model_zoom(None, card) == 1.0
    assert model_zoom(0.4, card) == 1.0  # inside the range: untouched
    assert model_zoom(1.4, card) == pytest.approx(2.0)  # coarser than trained: enlarged to 0.7 Å
    assert model_zoom(0.1, card) == pytest.approx(0.4)
    # a working range narrower than the training one takes precedence
    working = _card(pixel_size_range_A=[0.25, 0.7], working_pixel_size_range_A=[0.25, 0.35])
    assert model_zoom(0.3, working) == 1.0 and model_zoom(0.7, working) == pytest.approx(2.0)
    # the probability map comes back on the micrograph's own grid, and resampling keeps the geometry
    image = np.full((150, 170), 100.0, np.float32)
    image[40:100, 50:120] = 40.0
    prob = predict_probability(Pointwise(), card, -image, pixel_size_A=1.4)
    assert prob.shape == image.shape
    inside = (prob > 0.5)
    assert inside[45:95, 55:115].all() and not inside[:30].any()


def test_the_card_says_which_channel_is_the_particle_and_that_it_segments():
    image = np.random.default_rng(3).normal(size=(48, 64)).astype(np.float32) * 50 + 100
    prob = predict_probability(Pointwise(), _card(), image)
    flipped = predict_probability(Pointwise(), _card(classes=["particle", "background"]), image)
    np.testing.assert_allclose(flipped, 1 - prob, atol=1e-6)
    assert 0.2 < (prob >= 0.5).mean() < 0.8  # both classes present, so the flip is not trivially equal
    classifier = _card(task="classification", classes=["fcc", "icosahedron"], threshold=None)
    with pytest.raises(NanofindInputError, match="classification model cannot segment"):
        predict_probability(Pointwise(), classifier, image)


class WindowContrast(torch.nn.Module):
    """Logits of each pixel against its window's mean, as instance normalisation does; records window shapes."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        return torch.cat([-4 * centred, 4 * centred], dim=1)


def test_enlarged_bright_field_images_get_windows_of_the_original_field():
    bright = _card(imaging="bright_field", particle_diameter_px=[12.0, 30.0, 80.0], pixel_size_range_A=[1.0, 50.0])
    hrtem = _card(pixel_size_range_A=[0.25, 0.7])
    # a window covers as much of the original image as 512 px would, within the cap, batches hold no more pixels
    for zoom in (1.3, 2.0, 3.15, 6.0):
        side, batch = context_window(bright, zoom, 512, 4)
        assert side == min(round(512 * zoom), MAX_CONTEXT_WINDOW_PX)
        assert batch >= 1 and batch * side * side <= max(4 * 512 * 512, side * side)
    assert context_window(bright, 0.5, 512, 4) == (512, 4)  # shrunk images keep the plain windows
    assert context_window(hrtem, 3.0, 512, 4) == (512, 4)  # so do cards without trained particle sizes
    # a dense field enlarged 2x: the left 300 px are all particle, the right 100 px film. With plain 512 px
    # windows, those inside the particles see no film and call half of them background; one window of the
    # original field compares every pixel with the film
    image = np.full((200, 400), 60.0, np.float32)
    image[:, 300:] = 100.0
    image += np.random.default_rng(4).normal(0, 1, image.shape).astype(np.float32)
    plan = plan_scale(image.shape, None, bright, wanted_zoom=2.0)
    assert plan.zoom == 2.0
    network = WindowContrast()
    prob = predict_probability(network, bright, -image, plan=plan)
    assert {s[2:] for s in network.shapes} == {(400, 800)}
    assert (prob[:, :290] > 0.5).mean() > 0.99 and (prob[:, 310:] < 0.5).mean() > 0.99
    network = WindowContrast()
    plain = predict_probability(network, bright.model_copy(update={"particle_diameter_px": None}), -image, plan=plan)
    assert {s[2:] for s in network.shapes} == {(400, 512)}
    assert (plain[:, :290] > 0.5).mean() < 0.9


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    model = build_network("seed_unet", width=8)
    card = _card(options={"width": 8}, pixel_size_range_A=[0.4, 0.6])
    return save_model(tmp_path / "tiny-model", model, card)


def test_read_micrograph_formats_and_pixel_sizes(tmp_path):
    image, _ = disc_field()
    with mrcfile.new(tmp_path / "a.mrc") as mrc:
        mrc.set_data(image.astype(np.float32))
        mrc.voxel_size = 0.8
    m = read_micrograph(tmp_path / "a.mrc")
    assert m.pixel_size_A == pytest.approx(0.8) and m.array.dtype == np.float32 and m.array.shape == (96, 96)
    tifffile.imwrite(tmp_path / "b.tif", image.astype(np.uint16), resolution=(1e8 / 0.35,) * 2,
                     resolutionunit="CENTIMETER")
    t = read_micrograph(tmp_path / "b.tif")
    assert t.pixel_size_A == pytest.approx(0.35, rel=1e-4)
    np.testing.assert_array_equal(t.array, image.astype(np.float32))
    Image.fromarray(image).save(tmp_path / "c.png")
    assert read_micrograph(tmp_path / "c.png").pixel_size_A is None
    assert read_micrograph(tmp_path / "c.png", pixel_size_A=0.5).pixel_size_A == 0.5
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(NanofindInputError, match="d.txt"):
        read_micrograph(tmp_path / "d.txt")
    (tmp_path / "e.png").write_bytes(b"not a png")
    with pytest.raises(NanofindInputError, match="e.png"):
        read_micrograph(tmp_path / "e.png")


def test_segment_cli_writes_masks_and_probabilities(tmp_path, tiny_model, capsys):
    image, _ = disc_field(shape=(80, 100))
    Image.fromarray(image).save(tmp_path / "m1.png")
    with mrcfile.new(tmp_path / "m2.mrc") as mrc:
        mrc.set_data(image.astype(np.float32))
        mrc.voxel_size = 1.0
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "m1.png"), str(tmp_path / "m2.mrc"), "-o", str(out),
                 "--model", str(tiny_model), "--quiet"]) == 0
    for stem in ("m1", "m2"):
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        prob = tifffile.imread(out / f"{stem}_prob.tif")
        assert mask.shape == prob.shape == (80, 100)
        assert set(np.unique(mask)) <= {0, 255} and prob.dtype == np.float32
        np.testing.assert_array_equal(mask == 255, prob >= 0.5)
    # one bad file: the others are still written, exit status 1
    (tmp_path / "bad.png").write_bytes(b"junk")
    code = main(["segment", str(tmp_path / "bad.png"), str(tmp_path / "m1.png"), "-o", str(tmp_path / "o2"),
                 "--model", str(tiny_model), "--quiet"])
    assert code == 1 and (tmp_path / "o2" / "m1_mask.png").is_file()
    assert "bad.png" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "m1.png"), "-o", str(out), "--model", str(tmp_path / "nope")]) == 2


def test_train_and_evaluate_cli(tmp_path, labelled_folder, capsys):
    model_dir = tmp_path / "model"
    assert main(["train", str(labelled_folder), "--arch", "seed_unet", "-o", str(model_dir), "--epochs", "1",
                 "--steps", "2", "--batch", "2", "--crop", "64", "--fold", "0/3", "--fp32", "--quiet"]) == 0
    card = json.loads((model_dir / "card.json").read_text())
    # fold 0 of 3 (2 of the 6 images) is held out of training and validation alike; validation is
    # 15 % of the other 4, at least one
    assert card["training"]["train_data"]["real"]["images"] == 3
    assert card["training"]["validation_data"]["real"]["images"] == 1
    assert card["training"]["split"]["held_out_fold"] == "0/3"
    data = card["training"]
    assert len(set(data["train_data"]["real"]["sources"]) | set(data["validation_data"]["real"]["sources"])) == 4
    out = tmp_path / "eval"
    assert main(["evaluate", str(labelled_folder), "--model", str(model_dir), "-o", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"model", "otsu", "fourier", "bragg"}
    # Otsu finds dark discs on a flat background almost perfectly: an independent check of the scoring path
    assert summary["methods"]["otsu"]["dice"] > 0.9
    # and it finds the particles themselves: every field holds one or two discs of at least 200 px
    otsu = summary["methods"]["otsu"]["particles"]
    assert otsu["true"] >= 6 and otsu["recall"] >= 0.8
    assert otsu["matched"] <= min(otsu["true"], otsu["predicted"])
    for m in summary["methods"].values():
        c = m["confusion"]
        assert sum(c.values()) == 6 * 96 * 96
        assert m["dice"] == pytest.approx(2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]), abs=1e-5)
    assert (out / "pr_curve.png").is_file()
    assert len((out / "per_image.csv").read_text().splitlines()) == 1 + 6 * 4
    # with mirror averaging the run says so, and the baselines (which do not use the model) score the same
    assert main(["evaluate", str(labelled_folder), "--model", str(model_dir), "-o", str(tmp_path / "tta"), "--tta",
                 "--quiet"]) == 0
    mirrored = json.loads((tmp_path / "tta" / "summary.json").read_text())
    assert mirrored["tta"] is True and "tta" not in summary
    assert mirrored["methods"]["otsu"] == summary["methods"]["otsu"]
    assert main(["train", str(labelled_folder), "-o", str(tmp_path / "x"), "--fold", "3/3"]) == 2
    assert main(["train", str(labelled_folder), "--arch", "nonet", "-o", str(tmp_path / "y"), "--quiet"]) == 2
    assert "nonet" in capsys.readouterr().err


def test_sliding_window_blending_matches_monai():
    # the numpy blending reproduces MONAI's gaussian sliding_window_inference, window layout and weights alike
    from monai.inferers import sliding_window_inference

    from nanofind.learn.engine import TorchRunner
    from nanofind.segment.inference import windows_for

    torch.manual_seed(0)
    model = build_network("seed_unet", width=8).eval()
    runner = TorchRunner(model)
    cases = (((300, 260), 128, 0.25, 3), ((517, 129), 96, 0.5, 4), ((200, 90), 64, 0.1, 2))
    for shape, window, overlap, batch in cases:
        image = np.random.default_rng(shape[0]).normal(size=shape).astype(np.float32)
        ours = predict_normalised(runner, image, window_px=window, overlap=overlap, batch=batch)
        with torch.inference_mode():
            theirs = sliding_window_inference(
                torch.from_numpy(image)[None, None], (min(window, shape[0]), min(window, shape[1])), batch,
                lambda t: torch.from_numpy(runner(t.numpy())), overlap=overlap, mode="gaussian")[0, 0].numpy()
        np.testing.assert_allclose(ours, theirs, atol=2e-6)
        assert windows_for(shape, window, overlap) >= 2


def test_evaluate_picks_the_shipped_model_per_image_as_analyze_does(tmp_path):
    # bright-field fields without a pixel size (dark discs 24 px across, no lattice fringes): --model
    # auto, the default, gives them the bright-field model, which outlines clean discs closely
    folder = tmp_path / "bf"
    folder.mkdir()
    for k in range(2):
        rng = np.random.default_rng(10 + k)
        centres = [(int(r), int(c)) for r, c in rng.integers(20, 236, (6, 2))]
        image, mask = disc_field(shape=(256, 256), centres=centres, radius=12, seed=k)
        Image.fromarray(image).save(folder / f"img_{k:03d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"mask_{k:03d}.png")
    out = tmp_path / "eval"
    assert main(["evaluate", str(folder), "-o", str(out), "--no-baselines", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "auto" and summary["images_by_model"] == {"lowmag": 2}
    assert set(summary["model_threshold"]) == {"lowmag"} and set(summary["engine"]) == {"lowmag"}
    assert summary["methods"]["model"]["dice"] > 0.95
    rows = (out / "per_image.csv").read_text().splitlines()
    assert rows[0].split(",")[3] == "shipped_model" and all(r.split(",")[3] == "lowmag" for r in rows[1:])

