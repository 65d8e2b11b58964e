import numpy as np
from PIL import Image

from nanofind.learn.metrics import confusion, pooled_scores, segmentation_scores
from nanofind.learn.model_file import DEFAULT_MODEL_DIR, WEIGHTS, load_model
from nanofind.segment.inference import predict_probability
from tests.learning_fixtures import disc_field


def test_shipped_model_is_small_documented_and_finds_particles():
    assert (DEFAULT_MODEL_DIR / WEIGHTS).stat().st_size <= 20 * 2**20
    model, card = load_model()  # no name: the shipped model
    assert card.task == "segmentation" and card.architecture == "unet" and 0 < card.threshold < 1
    assert card.pixel_size_range_A[0] <= card.pixel_size_A <= card.pixel_size_range_A[1]
    lo, hi = card.working_pixel_size_range_A  # where it segments: inside what it was trained on
    assert card.pixel_size_range_A[0] <= lo < hi <= card.pixel_size_range_A[1]
    record = card.record()["training"]
    for key in ("config", "train_data", "reproduce", "stages"):
        assert key in record, key
    # a bright-field field it never saw: two dark particles on a noisy support, and the support alone
    image, mask = disc_field(shape=(256, 256), centres=((80, 90), (170, 180)), radius=30, seed=1)
    prob = predict_probability(model, card, image)
    assert segmentation_scores(prob >= card.threshold, mask)["dice"] > 0.8
    # with a known 0.6 A pixel the field is enlarged into the working range and the map comes back on its grid
    prob = predict_probability(model, card, image, pixel_size_A=0.6)
    assert prob.shape == image.shape and segmentation_scores(prob >= card.threshold, mask)["dice"] > 0.8
    blank = np.clip(150 + np.random.default_rng(2).normal(0, 8, (256, 256)), 0, 255)
    assert (predict_probability(model, card, blank) >= card.threshold).mean() < 0.01


def test_shipped_model_outlines_the_bundled_examples():
    # multislice micrographs with their true particle masks (analyze/examples): a model that reads the wrong
    # channel, the wrong normalisation or damaged weights falls far below this (measured pooled Dice 0.91)
    import json

    from nanofind.analyze.pipeline import EXAMPLES_DIR, expand_inputs
    from nanofind.io import read_micrograph

    model, card = load_model()
    kinds = {name: f.get("kind", "hrtem") for name, f in
             json.loads((EXAMPLES_DIR / "examples.json").read_text())["files"].items()}
    confs = []
    for path in expand_inputs([EXAMPLES_DIR]):
        if kinds[path.name] != "hrtem":  # the bright-field examples are the other shipped model's
            continue
        truth = np.asarray(Image.open(path.with_name(f"{path.stem}_truth.png"))) > 0
        prob = predict_probability(model, card, read_micrograph(path))
        confs.append(confusion(prob >= card.threshold, truth))
    assert len(confs) == 3 and pooled_scores(confs)["dice"] > 0.85


def test_shipped_bright_field_model_outlines_its_examples_at_their_own_scale():
    # simulated bright-field fields of the held-out recipe (isolated Au spheres at 2.5 Å per pixel; Cu plates and
    # tetrahedra at 10 Å; measured Dice 0.968 and 0.872): segmented as `--model lowmag` does, with its card's scale
    # and outline refinement and threshold outlines (both trim the faint rims that the simulated truth counts)
    import json

    from nanofind.analyze.pipeline import EXAMPLES_DIR
    from nanofind.io import read_micrograph
    from nanofind.segment.model_choice import content_plan
    from nanofind.segment.outline import outline_mask

    model, card = load_model("lowmag")
    assert card.imaging == "bright_field" and card.hysteresis_low is None and card.refine_outlines_below_px == 40
    smallest, typical, largest = card.particle_diameter_px
    assert 5 < smallest < typical < largest < 200 and card.pixel_size_range_A == [1.0, 50.0]
    files = json.loads((EXAMPLES_DIR / "examples.json").read_text())["files"]
    for name in (n for n, f in files.items() if f.get("kind") == "bright_field"):
        micrograph = read_micrograph(EXAMPLES_DIR / name)
        truth = np.asarray(Image.open(EXAMPLES_DIR / files[name]["truth_mask"])) > 0
        prob = predict_probability(model, card, micrograph,
                                   plan=content_plan(micrograph.array, micrograph.pixel_size_A, card))
        assert segmentation_scores(outline_mask(card, prob, micrograph.array), truth)["dice"] > 0.85, name
