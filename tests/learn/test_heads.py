import numpy as np
import pytest
import torch

from nanofind.learn import engine as engine_module
from nanofind.learn.card import ModelCard, Normalisation
from nanofind.learn.engine import OnnxRunner, TorchRunner, load_runner
from nanofind.learn.heads import OutputHead
from nanofind.learn.model_file import save_model
from nanofind.learn.networks import build_network


def _logits(channels, seed=0, shape=(2, 5, 6)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape[0], channels, *shape[1:], generator=g) * 3


def test_segmentation_head_is_the_softmax_of_the_foreground_channel():
    for channels, index in ((2, 1), (2, 0), (3, 2), (4, 1)):
        logits = _logits(channels, seed=channels + index)
        prob = OutputHead("segmentation", index)(logits)
        # exp(l_i) / sum_j exp(l_j), written out
        e = torch.exp(logits.double())
        expected = (e[:, index:index + 1] / e.sum(dim=1, keepdim=True)).float()
        assert prob.shape == (2, 1, 5, 6)
        torch.testing.assert_close(prob, expected, atol=1e-6, rtol=1e-5)


def test_classification_and_column_height_heads():
    logits = _logits(3)
    probs = OutputHead("classification")(logits)
    assert probs.shape == (2, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))
    # the class with the largest image-averaged logit is the most probable
    assert torch.equal(probs.argmax(dim=1), logits.mean(dim=(2, 3)).argmax(dim=1))
    assert torch.equal(OutputHead("column_heights")(logits), logits)
    with pytest.raises(ValueError, match="unknown task"):
        OutputHead("detection")(logits)


def _card(task, classes, **extra):
    return ModelCard(task=task, architecture="seed_unet", options={"width": 8}, classes=classes,
                     normalisation=Normalisation(), pixel_size_A=None, **extra)


def test_runners_return_what_the_task_needs_in_torch_and_onnx(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOFIND_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build_network("seed_unet", width=8, out_channels=3).eval()
    x = np.random.default_rng(0).normal(size=(2, 1, 40, 72)).astype(np.float32)  # padded to 64 x 96 and back
    with torch.no_grad():
        raw = model(torch.from_numpy(x)).numpy()
    heights = OutputHead.of(_card("column_heights", ["a", "b", "c"]))
    classes = OutputHead.of(_card("classification", ["fcc", "deca", "ico"]))
    np.testing.assert_allclose(TorchRunner(model, head=heights)(x), raw, atol=1e-6)
    np.testing.assert_allclose(OnnxRunner(model, head=heights)(x), raw, atol=1e-4)
    probs = TorchRunner(model, head=classes)(x)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(OnnxRunner(model, head=classes)(x), probs, atol=1e-5)
    # each head has its own cached export
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2
    state = model.state_dict()
    assert engine_module.weights_fingerprint(state, heights) != engine_module.weights_fingerprint(state, classes)


def test_a_saved_model_of_another_task_loads_with_its_channels(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOFIND_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(1)
    model = build_network("seed_unet", width=8, out_channels=2).eval()
    card = _card("column_heights", ["height_atoms", "occupancy"])
    save_model(tmp_path / "m", model, card)
    x = np.random.default_rng(1).normal(size=(1, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        raw = model(torch.from_numpy(x)).numpy()
    for backend in ("torch", "onnx"):
        runner, loaded = load_runner(tmp_path / "m", "fp32", backend)
        assert loaded == card
        np.testing.assert_allclose(runner(x), raw, atol=1e-4)
    # segmentation with the foreground first: the runner reads channel 0
    flipped = _card("segmentation", ["particle", "background"], threshold=0.5)
    save_model(tmp_path / "f", model, flipped)
    runner, _ = load_runner(tmp_path / "f", "fp32", "torch")
    np.testing.assert_allclose(runner(x)[:, 0], 1 / (1 + np.exp(raw[:, 1] - raw[:, 0])), atol=1e-5)
