"""How networks run on this machine: the CPU's abilities, the precision and backend chosen, ONNX Runtime.

CPUs differ more than one default can serve. bfloat16 autocast with channels-last memory is about
3× faster than float32 on CPUs with native bf16 instructions (AVX-512 BF16 or AMX), and up to 8×
*slower* on CPUs without them (AVX2-only machines, most laptops), where PyTorch emulates it. ONNX
Runtime runs float32 networks faster than PyTorch's float32 on such CPUs. So with ``auto``:

- precision is bf16 when the CPU reports native bf16 (``avx512_bf16`` or ``amx_bf16`` in
  ``/proc/cpuinfo``), else fp32; fp32 is never slower than itself, so ``auto`` never loses to fp32;
- the backend is PyTorch for bf16 (ONNX Runtime has no fast bf16 path on CPUs) and ONNX Runtime for
  fp32 when ``onnxruntime`` is installed, else PyTorch.

The environment variable ``NANOFIND_CPU_FLAGS`` (comma-separated, e.g. ``avx2,fma``) replaces the
flags read from the CPU, to show or test the other machine's path; every record says when it was set.

ONNX files are exported from the network at first use (``torch.onnx.export``, TorchScript exporter,
opset 17) and cached in the user cache (``$NANOFIND_CACHE_DIR``, else ``$XDG_CACHE_HOME/nanofind``,
else ``~/.cache/nanofind``, else a per-user folder in the temporary directory), named by a hash of
the weights and the export settings, never beside the package. When no cache folder is writable the
export stays in memory. With an export cached, ONNX Runtime runs without importing PyTorch or MONAI.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.learn.heads import OutputHead

#: CPU flags that decide the precision and backend, recorded beside every time figure.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
#: Flags that mean the CPU computes bfloat16 natively.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
PRECISIONS = ("auto", "fp32", "bf16")
BACKENDS = ("auto", "torch", "onnx")
#: ONNX opset of exported networks.
ONNX_OPSET = 17
#: Bumped when the exported graph changes, so cached files from older exports are not reused.
ONNX_EXPORT_VERSION = 1
FLAGS_ENV = "NANOFIND_CPU_FLAGS"
CACHE_ENV = "NANOFIND_CACHE_DIR"


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """CPU model name and flags from /proc/cpuinfo (Linux); the platform's processor name elsewhere."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return model, flags
    names = [v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k.strip() == "model name"]
    lists = [v.split() for k, _, v in (line.partition(":") for line in text.splitlines())
             if k.strip() in ("flags", "Features")]
    return (names[0] if names else model), frozenset(lists[0] if lists else ())


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags, or those named in ``$NANOFIND_CPU_FLAGS`` when it is set."""
    override = os.environ.get(FLAGS_ENV)
    if override is not None:
        return frozenset(f.strip().lower() for f in override.split(",") if f.strip())
    return _cpuinfo()[1]


def has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def _package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # not installed (PackageNotFoundError) or broken metadata
        return None


def onnxruntime_version() -> str | None:
    """The installed ONNX Runtime's version, or None when it is not installed."""
    return _package_version("onnxruntime")


def compute_threads() -> int:
    """Threads for network inference: PyTorch's, else ``OMP_NUM_THREADS``, else the CPUs this process may use.

    PyTorch's setting counts once it is imported; before, ``OMP_NUM_THREADS`` as PyTorch would take it
    (parallel workers get their share of the CPUs this way).
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> dict:
    """The CPU model, its relevant flags, threads and library versions: recorded beside every time figure."""
    flags = cpu_flags()
    return {"cpu_model": _cpuinfo()[0], "cpu_flags": [f for f in RELEVANT_FLAGS if f in flags],
            "cpu_flags_overridden": os.environ.get(FLAGS_ENV) is not None, "native_bf16": has_native_bf16(flags),
            "logical_cpus": os.cpu_count(), "threads": compute_threads(), "torch": _package_version("torch"),
            "onnxruntime": onnxruntime_version()}


@dataclass(frozen=True)
class Engine:
    """A resolved backend (``torch`` or ``onnx``) and precision (``fp32`` or ``bf16``), with why."""

    backend: str
    precision: str
    reason: str = ""
    machine: dict = field(default_factory=machine_info, compare=False)

    def record(self) -> dict:
        """JSON-able record for model cards, summaries, reports and benchmarks."""
        return {"backend": self.backend, "precision": self.precision, "reason": self.reason, **self.machine}

    def describe(self) -> str:
        """One line for the terminal."""
        return f"{self.backend} {self.precision} on {self.machine['cpu_model']} ({self.reason})"


def choose_engine(precision: str = "auto", backend: str = "auto", training: bool = False) -> Engine:
    """Resolve ``auto`` precision and backend for this machine (see the module docstring).

    Training always runs in PyTorch. Raises :class:`NanofindInputError` for an unknown value or a
    combination that cannot run (ONNX Runtime with bf16, or ONNX Runtime not installed).
    """
    if precision not in PRECISIONS:
        raise NanofindInputError(f"must be one of {', '.join(PRECISIONS)}, got {precision!r}", "--precision")
    if backend not in BACKENDS:
        raise NanofindInputError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}", "--backend")
    native = has_native_bf16()
    if precision == "auto":
        if backend == "onnx":
            precision, why = "fp32", "ONNX Runtime runs fp32"
        elif native:
            precision, why = "bf16", "the CPU has native bf16"
        else:
            precision, why = "fp32", "the CPU has no native bf16 (emulated bf16 is slower than fp32)"
    else:
        why = f"--precision {precision}"
    if training:
        if backend == "onnx":
            raise NanofindInputError("training runs in PyTorch; ONNX Runtime is for inference", "--backend")
        return Engine("torch", precision, why)
    have_ort = onnxruntime_version() is not None
    if backend == "auto":
        if precision == "fp32" and have_ort:
            backend, why = "onnx", why + "; ONNX Runtime is faster than PyTorch at fp32"
        else:
            backend = "torch"
            why += "; PyTorch (ONNX Runtime is not installed)" if precision == "fp32" else "; PyTorch for bf16"
    elif backend == "onnx":
        if precision == "bf16":
            raise NanofindInputError("ONNX Runtime runs fp32 only; use --precision fp32 or auto", "--backend")
        if not have_ort:
            raise NanofindInputError("ONNX Runtime is not installed (pip install onnxruntime onnx)", "--backend")
    return Engine(backend, precision, why)


# --- runners: a batch (N, C, H, W) of normalised images in, what the task needs out (nanofind.learn.heads), numpy ---


class TorchRunner:
    """Runs a PyTorch network in eval mode, in fp32 or under bf16 autocast with channels-last memory.

    ``head`` (default: particle segmentation) turns the network's raw outputs into what the
    model's task needs (:class:`~nanofind.learn.heads.OutputHead`).
    """

    def __init__(self, model, engine: Engine | None = None, head: OutputHead | None = None):
        import torch

        self.engine = engine or Engine("torch", "fp32", "PyTorch fp32 (given)")
        self.head = head or OutputHead()
        self.bf16 = self.engine.precision == "bf16"
        # channels-last pays only with bf16 kernels; in fp32 it is slower on AVX2 CPUs
        self.memory_format = torch.channels_last if self.bf16 else torch.contiguous_format
        self.model = model.eval().to(memory_format=self.memory_format)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(x, np.float32)).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.head(self.model(batch))
        return out.numpy()


def cache_dir() -> Path:
    """The user cache folder of nanofind (ONNX exports); see the module docstring."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "nanofind"
    try:
        return Path.home() / ".cache" / "nanofind"
    except (RuntimeError, KeyError):  # no home folder (a service account): a per-user temporary cache
        import tempfile

        return Path(tempfile.gettempdir()) / f"nanofind-cache-{os.getuid()}"


def weights_fingerprint(state: dict, head: OutputHead | None = None) -> str:
    """A hash (hex, 24 digits) of named weight arrays (numpy or torch), the output head and the exporter's settings.

    The same for a network in memory and for its safetensors file, so either finds the cached export.
    """
    head = head or OutputHead()
    h = hashlib.sha256(f"nanofind-onnx|{ONNX_OPSET}|{ONNX_EXPORT_VERSION}|{head.key()}".encode())
    for name in sorted(state):
        array = state[name]
        array = array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)
        h.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:24]


def _bare(model):
    """The network inside :class:`~nanofind.learn.networks.PadToMultiple` and the multiple it pads to."""
    from nanofind.learn.networks import PadToMultiple

    if isinstance(model, PadToMultiple):
        return model.net, model.multiple
    return model, 1


def _input_channels(net) -> int:
    """Input channels of a network: those of its first convolution."""
    import torch

    first = next((m for m in net.modules() if isinstance(m, torch.nn.Conv2d)), None)
    return first.in_channels if first is not None else 1


def export_onnx(model, head: OutputHead | None = None) -> bytes:
    """The network with the per-pixel part of its output ``head`` (default: particle probability) as ONNX bytes.

    The batch, height and width are dynamic; the output is named ``output`` (``probability`` for
    segmentation, as before heads existed).
    """
    import io
    import warnings

    import torch

    head = head or OutputHead()

    class HeadGraph(torch.nn.Module):  # the bare network and the task's head, no padding wrapper
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return head.dense(self.net(x))

    net, multiple = _bare(model)
    graph = HeadGraph(net).eval()
    side = max(64, multiple)
    name = "probability" if head.task == "segmentation" else "output"
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and instance-norm notices
        torch.onnx.export(graph, (torch.zeros(1, _input_channels(net), side, side),), buffer, dynamo=False,
                          opset_version=ONNX_OPSET, input_names=["image"], output_names=[name],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        name: {0: "batch", 2: "height", 3: "width"}})
    return buffer.getvalue()


def _cached_onnx(fingerprint: str, multiple: int) -> Path:
    """Where an export is cached; the name carries the size multiple the network needs, read without PyTorch."""
    return cache_dir() / "onnx" / f"{fingerprint}-m{multiple}.onnx"


def _find_cached_onnx(fingerprint: str) -> tuple[Path, int] | None:
    for path in sorted((cache_dir() / "onnx").glob(f"{fingerprint}-m*.onnx")):
        try:
            return path, int(path.stem.rsplit("-m", 1)[1])
        except ValueError:
            continue
    return None


def _store_onnx(fingerprint: str, multiple: int, data: bytes) -> str | None:
    """Keep an export in the user cache; its path, or None when no cache folder is writable."""
    from nanofind._files import atomic_path

    path = _cached_onnx(fingerprint, multiple)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return str(path)
    except OSError:  # read-only home or cache: keep the export in memory for this run
        return None


def onnx_model_bytes(model, head: OutputHead | None = None) -> tuple[bytes, str | None]:
    """ONNX bytes of ``model`` with ``head`` from the user cache, exported (and cached when possible) on first use.

    Returns the bytes and the cache file (None when the export could not be cached).
    """
    multiple = _bare(model)[1]
    fingerprint = weights_fingerprint(model.state_dict(), head)  # the keys of the model file
    path = _cached_onnx(fingerprint, multiple)
    try:
        return path.read_bytes(), str(path)
    except OSError:
        pass
    data = export_onnx(model, head)
    return data, _store_onnx(fingerprint, multiple, data)


class OnnxRunner:
    """Runs a network exported to ONNX in ONNX Runtime (fp32), padding inputs as the network's wrapper does.

    Made from a PyTorch network (``model``) or, without importing PyTorch, from ONNX bytes
    (``onnx_bytes``, exported with ``head``) and the size multiple the network needs.
    """

    def __init__(self, model=None, engine: Engine | None = None, threads: int | None = None,
                 onnx_bytes: bytes | None = None, multiple: int | None = None, onnx_path: str | None = None,
                 head: OutputHead | None = None):
        import onnxruntime as ort

        self.engine = engine or Engine("onnx", "fp32", "ONNX Runtime (given)")
        self.head = head or OutputHead()
        if onnx_bytes is None:
            onnx_bytes, onnx_path = onnx_model_bytes(model, self.head)
            multiple = _bare(model)[1]
        self.onnx_path = onnx_path
        self.multiple = multiple or 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or compute_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(x, np.float32)
        h, w = array.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        top, left = pad_h // 2, pad_w // 2  # as PadToMultiple: reflect, split as evenly as possible
        if pad_h or pad_w:
            array = np.pad(array, ((0, 0), (0, 0), (top, pad_h - top), (left, pad_w - left)), mode="reflect")
        out = self.session.run(None, {"image": array})[0]
        if out.ndim == 4:  # per-pixel outputs lose the padding; a classifier's (N, classes) logits have none
            out = np.ascontiguousarray(out[..., top:top + h, left:left + w])
        return self.head.pooled(out)


def _warm_up(runner, side: int | None, channels: int = 1):
    """Two calls on a window of ``side`` (ONNX Runtime's first calls at a new size are several times slower)."""
    if side:
        for _ in range(2):
            runner(np.zeros((1, channels, side, side), np.float32))
    return runner


def make_runner(model, precision: str = "auto", backend: str = "auto", warm_up_px: int | None = None,
                card=None, head: OutputHead | None = None):
    """A runner for the network ``model`` with the engine :func:`choose_engine` picks.

    ``card`` (a :class:`~nanofind.learn.card.ModelCard`) sets what the runner returns
    (:class:`~nanofind.learn.heads.OutputHead`), or ``head`` for networks without a card; without
    either, particle probabilities. ``warm_up_px``: see :func:`load_runner`.
    """
    engine = choose_engine(precision, backend)
    head = head or (OutputHead.of(card) if card is not None else None)
    channels = card.input_channels if card is not None else 1
    return _warm_up(_runner_for(model, engine, head), warm_up_px, channels)


def _runner_for(model, engine: Engine, head: OutputHead | None = None):
    return OnnxRunner(model, engine, head=head) if engine.backend == "onnx" else TorchRunner(model, engine, head)


def load_runner(model_dir=None, precision: str = "auto", backend: str = "auto", warm_up_px: int | None = None):
    """The runner and :class:`~nanofind.learn.card.ModelCard` of a model directory (``None``: the shipped model).

    ``"default"`` names the shipped model, too. The runner returns what the card's task needs
    (:mod:`nanofind.learn.heads`).

    With ONNX Runtime and an export already in the user cache, neither PyTorch nor MONAI is imported
    (seconds of start-up); otherwise the network is built and, for ONNX Runtime, exported and cached.
    ``warm_up_px`` runs the network twice on a window of that side first, so that ONNX Runtime's slow
    first calls at a new size stay out of the first micrograph's time.
    """
    from nanofind.learn.model_file import WEIGHTS, load_model, read_card, resolve_model_dir

    engine = choose_engine(precision, backend)
    directory = resolve_model_dir(model_dir)
    if engine.backend == "onnx":
        card = read_card(directory)
        head = OutputHead.of(card)
        try:
            from safetensors.numpy import load_file

            found = _find_cached_onnx(weights_fingerprint(load_file(str(directory / WEIGHTS)), head))
            data = None if found is None else found[0].read_bytes()
        except Exception:  # no cached export yet, or unreadable weights: load_model says which, below
            data = None
        if data is not None:
            try:
                runner = OnnxRunner(engine=engine, onnx_bytes=data, multiple=found[1], onnx_path=str(found[0]),
                                    head=head)
                return _warm_up(runner, warm_up_px, card.input_channels), card
            except Exception:  # a damaged cache file: export again below
                found[0].unlink(missing_ok=True)
    model, card = load_model(directory)
    runner = _runner_for(model, engine, OutputHead.of(card))
    return _warm_up(runner, warm_up_px, card.input_channels), card


def timed(runner, x: np.ndarray, repeats: int = 3) -> float:
    """Median seconds of ``runner(x)`` over ``repeats`` calls after one warm-up call (benchmarks)."""
    runner(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        runner(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))
