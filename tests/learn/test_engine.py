import json

import numpy as np
import pytest
import torch

from nanofind.cli import main
from nanofind.errors import NanofindInputError
from nanofind.learn import engine as engine_module
from nanofind.learn.engine import (
    OnnxRunner,
    TorchRunner,
    choose_engine,
    has_native_bf16,
    machine_info,
    make_runner,
)
from nanofind.learn.model_file import load_model
from nanofind.learn.networks import build_network
from nanofind.segment.inference import predict_normalised

AVX2_ONLY = "avx2,fma"
WITH_BF16 = "avx2,fma,avx512f,avx512_bf16"


def test_auto_picks_fp32_and_onnx_when_bf16_is_absent(monkeypatch):
    monkeypatch.setenv("NANOFIND_CPU_FLAGS", AVX2_ONLY)
    assert not has_native_bf16()
    e = choose_engine()
    assert (e.backend, e.precision) == ("onnx", "fp32")
    assert choose_engine(backend="torch").precision == "fp32"
    assert choose_engine(training=True).precision == "fp32"
    record = e.record()
    assert record["cpu_flags_overridden"] and record["cpu_flags"] == ["avx2", "fma"] and not record["native_bf16"]
    assert record["cpu_model"] and record["precision"] == "fp32" and record["backend"] == "onnx"


def test_auto_picks_bf16_in_torch_when_the_cpu_has_it(monkeypatch):
    for flags in (WITH_BF16, "avx2,amx_tile,amx_bf16"):
        monkeypatch.setenv("NANOFIND_CPU_FLAGS", flags)
        e = choose_engine()
        assert (e.backend, e.precision) == ("torch", "bf16")
    # fp32 asked for: ONNX Runtime is the faster fp32 backend
    assert choose_engine(precision="fp32").backend == "onnx"
    assert choose_engine(backend="onnx").precision == "fp32"


def test_impossible_combinations_are_input_errors(monkeypatch):
    monkeypatch.setenv("NANOFIND_CPU_FLAGS", WITH_BF16)
    with pytest.raises(NanofindInputError, match="--backend"):
        choose_engine(precision="bf16", backend="onnx")
    with pytest.raises(NanofindInputError, match="--backend"):
        choose_engine(backend="onnx", training=True)
    with pytest.raises(NanofindInputError, match="--precision"):
        choose_engine(precision="fp16")
    monkeypatch.setattr(engine_module, "onnxruntime_version", lambda: None)
    assert choose_engine(precision="fp32").backend == "torch"  # falls back without ONNX Runtime
    with pytest.raises(NanofindInputError, match="not installed"):
        choose_engine(backend="onnx")


def test_machine_info_reads_the_real_cpu(monkeypatch):
    monkeypatch.delenv("NANOFIND_CPU_FLAGS", raising=False)
    info = machine_info()
    assert not info["cpu_flags_overridden"] and info["logical_cpus"] >= 1
    assert set(info["cpu_flags"]) <= set(engine_module.RELEVANT_FLAGS)
    assert info["native_bf16"] == any(f in info["cpu_flags"] for f in ("avx512_bf16", "amx_bf16"))
    json.dumps(info)


def test_onnx_runtime_agrees_with_torch_fp32(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOFIND_CACHE_DIR", str(tmp_path / "cache"))
    model, _ = load_model("default")
    rng = np.random.default_rng(0)
    image = rng.normal(size=(150, 170)).astype(np.float32)  # not a multiple of 32: the runner pads like the net
    torch_prob = predict_normalised(TorchRunner(model), image)
    onnx_runner = OnnxRunner(model)
    onnx_prob = predict_normalised(onnx_runner, image)
    assert np.abs(onnx_prob - torch_prob).max() < 1e-4
    # sliding windows and mirror averaging through ONNX Runtime, too
    big = rng.normal(size=(200, 260)).astype(np.float32)
    np.testing.assert_allclose(predict_normalised(onnx_runner, big, window_px=128, tta=True),
                               predict_normalised(TorchRunner(model), big, window_px=128, tta=True), atol=1e-4)
    # exported once, then taken from the cache
    (cached,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    assert onnx_runner.onnx_path == str(cached)
    monkeypatch.setattr(engine_module, "export_onnx", lambda m: pytest.fail("exported again"))
    assert OnnxRunner(model).onnx_path == str(cached)


def test_onnx_cache_follows_the_weights_and_survives_an_unwritable_cache(tmp_path, monkeypatch):
    torch.manual_seed(0)
    a = build_network("seed_unet", width=8)
    torch.manual_seed(1)
    b = build_network("seed_unet", width=8)
    assert engine_module.weights_fingerprint(a.state_dict()) != engine_module.weights_fingerprint(b.state_dict())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NANOFIND_CACHE_DIR", str(blocker / "cache"))
    runner = OnnxRunner(a)
    assert runner.onnx_path is None  # kept in memory
    image = np.random.default_rng(3).normal(size=(64, 96)).astype(np.float32)
    assert np.abs(predict_normalised(runner, image) - predict_normalised(a, image)).max() < 1e-4


def test_cached_export_runs_without_importing_torch_or_monai(tmp_path, monkeypatch):
    import subprocess
    import sys

    from safetensors.numpy import load_file

    from nanofind.learn.model_file import DEFAULT_MODEL_DIR

    monkeypatch.setenv("NANOFIND_CACHE_DIR", str(tmp_path / "cache"))
    model, _ = load_model("default")
    OnnxRunner(model)  # exports into the cache
    # the file's weights find the export made from the network in memory
    assert engine_module.weights_fingerprint(load_file(str(DEFAULT_MODEL_DIR / "model.safetensors"))) == \
        engine_module.weights_fingerprint(model.state_dict())
    code = ("import sys, numpy as np\n"
            "from nanofind.learn.engine import load_runner\n"
            "from nanofind.segment.inference import predict_normalised\n"
            "runner, card = load_runner('default', 'fp32', 'onnx', warm_up_px=64)\n"
            "p = predict_normalised(runner, np.random.default_rng(0).normal(size=(600, 700)).astype(np.float32))\n"
            "print(p.shape, 'torch' in sys.modules, 'monai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "NANOFIND_CACHE_DIR": str(tmp_path / "cache")})
    assert out.stdout.split() == ["(600,", "700)", "False", "False"], out.stdout + out.stderr


def test_bf16_runner_stays_close_to_fp32():
    model, _ = load_model("default")
    image = np.random.default_rng(4).normal(size=(128, 128)).astype(np.float32)
    fp32 = predict_normalised(TorchRunner(model), image)
    bf16 = predict_normalised(make_runner(model, precision="bf16", backend="torch"), image)
    assert np.abs(bf16 - fp32).max() < 0.05 and np.abs(bf16 - fp32).mean() < 5e-3


def test_training_records_the_engine(tmp_path, labelled_folder, monkeypatch):
    monkeypatch.setenv("NANOFIND_CPU_FLAGS", AVX2_ONLY)
    out = tmp_path / "model"
    assert main(["train", str(labelled_folder), "--arch", "seed_unet", "-o", str(out), "--epochs", "1",
                 "--steps", "1", "--batch", "2", "--crop", "64", "--quiet"]) == 0
    card = json.loads((out / "card.json").read_text())
    engine = card["training"]["engine"]
    assert engine["precision"] == "fp32" and engine["backend"] == "torch" and engine["cpu_flags_overridden"]
    assert card["training"]["config"]["precision"] == "auto"


def test_auto_masks_agree_with_fp32_on_the_bundled_examples():
    # the acceptance figure (pooled pixel Dice >= 0.999) is measured by benchmarks/bench_engines.py on each
    # kind of CPU; here a margin for other bf16 implementations: at most 0.2 % of mask pixels change
    from nanofind.analyze.pipeline import EXAMPLES_DIR, expand_inputs
    from nanofind.io import read_micrograph
    from nanofind.learn.engine import load_runner
    from nanofind.segment.inference import predict_probability

    auto, card = load_runner("default")
    fp32, _ = load_runner("default", precision="fp32", backend="torch")
    same = total = 0
    for path in expand_inputs([EXAMPLES_DIR]):
        m = read_micrograph(path)
        a = predict_probability(auto, card, m) >= card.threshold
        b = predict_probability(fp32, card, m) >= card.threshold
        same, total = same + 2 * int((a & b).sum()), total + int(a.sum() + b.sum())
    assert total > 0 and same / total >= 0.998


def test_a_damaged_cached_export_is_made_again(tmp_path, monkeypatch):
    from nanofind.learn.engine import load_runner

    monkeypatch.setenv("NANOFIND_CACHE_DIR", str(tmp_path / "cache"))
    runner, card = load_runner("default", "fp32", "onnx")  # first use: exported and cached
    (cached,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    cached.write_bytes(b"not an onnx model")
    again, _ = load_runner("default", "fp32", "onnx")
    image = np.random.default_rng(5).normal(size=(64, 64)).astype(np.float32)
    np.testing.assert_allclose(predict_normalised(again, image), predict_normalised(runner, image), atol=1e-6)
    assert cached.read_bytes() != b"not an onnx model"
