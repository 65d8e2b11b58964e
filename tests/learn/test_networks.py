import pytest
import torch
import torch.nn.functional as F

from nanofind.learn.networks import (
    ARCHITECTURES,
    SIZE_MULTIPLE,
    PadToMultiple,
    build_network,
    count_parameters,
)

# Parameter ranges (M) around the measured counts, tight enough to catch a wrong architecture.
PARAMETER_RANGES = {
    "seed_unet": (0.1, 0.3),  # measured 157,922
    "unet": (1.4, 1.9),  # measured 1,625,161
    "unet_resnet18": (12.5, 14.5),  # measured 13,539,458
    "unet_mobilenetv2": (6.0, 7.2),  # measured 6,628,514
    "unet_vgg16": (17.0, 20.0),  # measured 18,637,058
    "fpn_resnet18": (11.0, 12.5),  # measured 11,700,162
    "deeplab_resnet18": (12.5, 14.0),  # measured 13,302,082
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny convolutions are much faster single-threaded, especially on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_architecture_has_a_parameter_range():
    assert set(PARAMETER_RANGES) == set(ARCHITECTURES)


# odd sizes (not multiples of 32) for each output-channel count; the wrapper must pad and crop back exactly
SIZES_BY_CHANNELS = {1: (33, 47), 3: (35, 61), 5: (65, 37)}


@pytest.mark.parametrize("out_channels", sorted(SIZES_BY_CHANNELS))
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_any_number_of_output_channels_at_the_input_size(name, out_channels):
    torch.manual_seed(0)
    in_channels = 2 if out_channels == 3 else 1
    model = build_network(name, out_channels=out_channels, in_channels=in_channels).eval()
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == in_channels
    height, width = SIZES_BY_CHANNELS[out_channels]
    with torch.no_grad():
        y = model(torch.randn(2, in_channels, height, width))
        # the bare network needs multiples of SIZE_MULTIPLE (its total stride) and keeps them
        bare = model.net(torch.randn(1, in_channels, 2 * SIZE_MULTIPLE, 3 * SIZE_MULTIPLE))
    assert y.shape == (2, out_channels, height, width)
    assert bare.shape == (1, out_channels, 2 * SIZE_MULTIPLE, 3 * SIZE_MULTIPLE)
    assert torch.isfinite(y).all()
    if out_channels > 1:  # distinct heads, not one channel repeated
        assert (y[:, 0] - y[:, -1]).abs().max() > 1e-6


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_channel_counts_must_be_positive_whole_numbers(bad):
    for key in ("out_channels", "in_channels"):
        with pytest.raises(ValueError, match=key):
            build_network("seed_unet", **{key: bad})


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_output_shape_dtype_and_parameter_count(name):
    torch.manual_seed(0)
    model = build_network(name).eval()
    assert isinstance(model, PadToMultiple)
    low, high = PARAMETER_RANGES[name]
    assert low * 1e6 < count_parameters(model) < high * 1e6
    with torch.no_grad():
        for shape in [(2, 1, 64, 64), (1, 1, 72, 88)]:
            y = model(torch.randn(shape))
            assert y.shape == (shape[0], 2, *shape[2:])
            assert y.dtype == torch.float32
            assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_backward_gives_finite_gradients_on_all_parameters(name):
    torch.manual_seed(0)
    model = build_network(name).train()
    x = torch.randn(2, 1, 64, 64)
    target = torch.randint(0, 2, (2, 64, 64))
    F.cross_entropy(model(x), target).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, pname
            assert torch.isfinite(p.grad).all(), pname


def test_seed_unet_bottleneck_is_32_channels_at_32x32_for_512_input():
    model = build_network("seed_unet").eval()
    shapes = []
    model.net.bottleneck.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
    with torch.no_grad():
        y = model(torch.randn(1, 1, 512, 512))
    assert shapes == [(1, 32, 32, 32)]
    assert y.shape == (1, 2, 512, 512)


def test_seed_unet_options():
    model = build_network("seed_unet", width=16, dropout=0.0)
    assert count_parameters(model) < 0.1e6
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout2d))


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_output_stride(output_stride):
    model = build_network("deeplab_resnet18", output_stride=output_stride).eval()
    with torch.no_grad():
        features = model.net.encoder(torch.randn(1, 1, 64, 64))
    assert [f.shape[-1] for f in features] == [16, 8, 64 // output_stride, 64 // output_stride]


def test_mobilenetv2_feature_strides():
    encoder = build_network("unet_mobilenetv2").net.encoder.eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, 1, 64, 64))
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]
    assert [f.shape[1] for f in features] == [16, 24, 32, 96, 1280]


def test_padding_wrapper_crops_back_and_passes_multiples_through():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return x.repeat(1, 2, 1, 1)

    wrapper = PadToMultiple(Probe())
    x = torch.randn(1, 1, 33, 70)
    y = wrapper(x)
    assert seen == [(64, 96)]
    assert torch.equal(y[:, :1], x)  # padding is cropped off exactly
    wrapper(torch.randn(1, 1, 64, 32))
    assert seen[-1] == (64, 32)


def test_unknown_architecture_raises_and_lists_known_names():
    with pytest.raises(ValueError, match="nope") as info:
        build_network("nope")
    for name in ARCHITECTURES:
        assert name in str(info.value)
