"""A small convolutional classifier of particle crops (``--method cnn``).

Each crop becomes three 96 × 96 channels, all independent of its size:

1. the whole crop, block-averaged down to 96 px (outline, agglomerates);
2. the central 96 × 96 window at full resolution (lattice fringes and their defects);
3. the log power spectrum of the whole crop under a radial Hann window, resampled to 96 × 96
   (spots, streaks; frequencies stay in proportion).

Each channel is normalised by the crop's outer ring, as the features are. The network is four
convolution blocks (16–128 channels, batch norm, ReLU, max-pool) and a linear layer on the
global average; it trains with class-balanced sampling weights, flips and quarter turns. Weights
are saved as safetensors beside the classifier card (never a pickle).
"""

from __future__ import annotations

import numpy as np

from nanofind.classify.classes import CLASS_NAMES

#: Side of each input channel, px.
INPUT_PX = 96
WEIGHTS_FILE = "classifier.safetensors"
#: Training epochs: 50 against 25 raised the network's balanced accuracy on two grouped folds of the
#: shipped classifier's training crops from 0.693 / 0.778 to 0.766 / 0.803, the mix's from 0.830 / 0.902 to
#: 0.866 / 0.909 (docs/benchmarks.md)
EPOCHS = 50
#: Quarter turns (0°, 90°, ...) whose probabilities are averaged at prediction: two halve the time of four and
#: scored the same within ±0.01 balanced accuracy on two held-out crop sets (docs/benchmarks.md)
TURNS = 2


def _block_mean(x: np.ndarray, size: int) -> np.ndarray:
    from scipy.ndimage import zoom

    return zoom(x, (size / x.shape[0], size / x.shape[1]), order=1, grid_mode=True, mode="nearest")


def crop_channels(crop: np.ndarray) -> np.ndarray:
    """The network's input (3, 96, 96) float32 for one crop."""
    from nanofind.classify.features import _normalised, _spectrum

    x = _normalised(crop)[0]
    whole = _block_mean(x, INPUT_PX) if min(x.shape) > INPUT_PX else _pad(x)
    cy, cx = x.shape[0] // 2, x.shape[1] // 2
    h = INPUT_PX // 2
    centre = _pad(x[max(cy - h, 0):cy + h, max(cx - h, 0):cx + h])
    spectrum = np.log10(np.maximum(_spectrum(x), 1e-12))
    spectrum = _block_mean(spectrum, INPUT_PX)
    spectrum = (spectrum - np.median(spectrum)) / max(spectrum.std(), 1e-6)
    return np.stack([np.clip(whole, -8, 8), np.clip(centre, -8, 8), np.clip(spectrum, -8, 8)]).astype(np.float32)


def network_inputs(crops) -> np.ndarray:
    """The network's inputs (n, 3, 96, 96) float32 of many crops (large batches on worker processes)."""
    from nanofind.classify.crop_pool import map_crops

    crops = list(crops)
    if not crops:
        return np.zeros((0, 3, INPUT_PX, INPUT_PX), np.float32)
    return np.stack(map_crops(crop_channels, crops))


def _pad(x: np.ndarray) -> np.ndarray:
    out = np.zeros((INPUT_PX, INPUT_PX), dtype=np.float64)
    h, w = min(x.shape[0], INPUT_PX), min(x.shape[1], INPUT_PX)
    top, left = (INPUT_PX - h) // 2, (INPUT_PX - w) // 2
    out[top:top + h, left:left + w] = x[:h, :w]
    return out


def build_network():
    """The network (PyTorch), untrained."""
    import torch.nn as nn

    def block(a, b):
        return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                             nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                             nn.MaxPool2d(2))

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 128),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, len(CLASS_NAMES)))


def train_network(inputs: np.ndarray, labels, *, seed: int = 0, epochs: int = EPOCHS, progress=None):
    """Fit the network on inputs (n, 3, 96, 96) and class names; returns the trained network (eval mode)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.array([CLASS_NAMES.index(c) for c in labels])
    counts = np.bincount(y, minlength=len(CLASS_NAMES)).astype(float)
    weight = torch.tensor(np.where(counts > 0, len(y) / (len(CLASS_NAMES) * np.maximum(counts, 1)), 0.0),
                          dtype=torch.float32)
    net = build_network()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=epochs * ((len(y) + 31) // 32))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    data = torch.from_numpy(inputs)
    target = torch.from_numpy(y)
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(y))
        for start in range(0, len(y), 32):
            idx = order[start:start + 32]
            batch = data[idx]
            k = int(rng.integers(0, 4))
            batch = torch.rot90(batch, k, dims=(2, 3))
            if rng.uniform() < 0.5:
                batch = torch.flip(batch, dims=(3,))
            optimiser.zero_grad()
            loss = loss_fn(net(batch), target[idx])
            loss.backward()
            optimiser.step()
            schedule.step()
        if progress is not None:
            progress()
    net.eval()
    return net


def predict_network(net, inputs: np.ndarray, runner=None) -> np.ndarray:
    """Class probabilities (n, 5) of inputs (n, 3, 96, 96), averaged over :data:`TURNS` quarter turns.

    ``runner``: a :mod:`nanofind.learn.engine` runner of ``net`` with a classification head;
    by default :func:`network_runner`'s, made once per network.
    """
    runner = runner or network_runner(net)
    out = np.zeros((len(inputs), len(CLASS_NAMES)))
    for start in range(0, len(inputs), 128):
        batch = np.asarray(inputs[start:start + 128], np.float32)
        for k in range(TURNS):
            out[start:start + len(batch)] += runner(np.ascontiguousarray(np.rot90(batch, k, axes=(2, 3)))) / TURNS
    return out


def fold_batch_norm(net):
    """A copy of ``net`` for inference, each convolution followed by batch norm merged into one convolution.

    In eval mode batch norm is a fixed per-channel scale and shift, which the convolution's weights
    and bias can carry: the same outputs (within float rounding) for one pass less over every
    feature map (the network's time per crop fell by about a sixth, PyTorch bf16, AMD EPYC).
    """
    import copy

    import torch
    import torch.nn as nn

    def fold(sequence: nn.Sequential) -> nn.Sequential:
        layers, out = list(sequence.children()), []
        while layers:
            layer = layers.pop(0)
            if isinstance(layer, nn.Sequential):
                out.append(fold(layer))
            elif isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
                norm = layers.pop(0)
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv = copy.deepcopy(layer)
                bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
                conv.weight = nn.Parameter(layer.weight * scale[:, None, None, None])
                conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
                out.append(conv)
            else:
                out.append(layer)
        return nn.Sequential(*out)

    with torch.no_grad():
        return fold(net).eval()


def network_runner(net):
    """The runner of ``net``'s class probabilities, made once per network.

    It runs :func:`fold_batch_norm`'s copy of the network, with the engine that
    :func:`~nanofind.learn.engine.choose_engine` picks for this machine, and is kept on the network
    so that an ONNX export and session are made only once. For 446 crops on an AMD EPYC with
    avx512_bf16 (2 threads): ONNX Runtime at fp32 0.37 s, PyTorch at fp32 1.56 s and at bf16 0.47 s
    (docs/benchmarks.md, "Trees and network together").
    """
    runner = getattr(net, "_nanofind_runner", None)
    if runner is None:
        from nanofind.learn.engine import make_runner
        from nanofind.learn.heads import OutputHead

        runner = make_runner(fold_batch_norm(net), head=OutputHead("classification", 0))
        object.__setattr__(net, "_nanofind_runner", runner)  # not a submodule: no weights, not in state_dict
    return runner


def save_network(net, path) -> None:
    """Weights as safetensors."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def load_network(path):
    """The network with weights from a safetensors file (eval mode)."""
    from safetensors.torch import load_file

    net = build_network()
    net.load_state_dict(load_file(str(path)))
    net.eval()
    return net
