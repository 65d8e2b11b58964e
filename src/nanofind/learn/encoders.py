"""Encoders (and their building blocks) under the decoders of :mod:`nanofind.learn.networks`.

Each encoder maps ``(N, in_channels, H, W)`` to a list of feature maps at falling resolution and has an
``out_channels`` attribute listing their channel counts. None loads pretrained weights.
"""

from __future__ import annotations

import torch
from monai.networks.nets import resnet18
from torch import nn

__all__ = ["InvertedResidual", "MobileNetV2Encoder", "ResNet18Encoder", "VGG16Encoder", "conv_bn_relu"]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> nn.Sequential:
    """Convolution (same padding, no bias), batch norm, ReLU."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without going more than 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, 3x3 depthwise (stride 1 or 2), linear 1x1 projection; ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


# (expansion t, channels c, repeats n, stride s) of the standard MobileNetV2 (Sandler et al. 2018, table 2)
_MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 feature extractor returning the maps at strides 2, 4, 8, 16 and 32.

    The stride-32 map is the output of the final 1x1 convolution (1280 channels at width 1.0), as in the
    classification network without its pooling and classifier.
    """

    def __init__(self, in_channels: int = 1, width_mult: float = 1.0) -> None:
        super().__init__()
        stem = _make_divisible(32 * width_mult)
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False),
                                                 nn.BatchNorm2d(stem), nn.ReLU6(inplace=True))]
        channels = stem
        for t, c, n, s in _MOBILENETV2_STAGES:
            out = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        last = _make_divisible(1280 * max(1.0, width_mult))
        layers.append(nn.Sequential(nn.Conv2d(channels, last, 1, bias=False), nn.BatchNorm2d(last),
                                    nn.ReLU6(inplace=True)))
        self.layers = nn.Sequential(*layers)
        # a feature is taken after the last layer at each stride (before the next stride-2 layer)
        strides, stride = [], 1
        for layer in layers:
            stride *= _layer_stride(layer)
            strides.append(stride)
        self.taps = [max(i for i, s in enumerate(strides) if s == target) for target in (2, 4, 8, 16, 32)]
        self.out_channels = [_out_channels(layers[i]) for i in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                features.append(x)
        return features


def _layer_stride(layer: nn.Module) -> int:
    """Product of the strides of the convolutions in ``layer``."""
    stride = 1
    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            stride *= m.stride[0]
    return stride


def _out_channels(layer: nn.Module) -> int:
    """Output channels of the last convolution in ``layer``."""
    return [m for m in layer.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class VGG16Encoder(nn.Module):
    """VGG16-BN feature extractor: 13 conv-BN-ReLU layers in 5 stages (64, 128, 256, 512, 512 channels).

    Returns each stage's output before its max-pool, i.e. at strides 1, 2, 4, 8 and 16.
    """

    stage_layout = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        stages = []
        channels = in_channels
        for width, repeats in self.stage_layout:
            convs = []
            for _ in range(repeats):
                convs.append(conv_bn_relu(channels, width))
                channels = width
            stages.append(nn.Sequential(*convs))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2)
        self.out_channels = [width for width, _ in self.stage_layout]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.pool(x)
            x = stage(x)
            features.append(x)
        return features


# --------------------------------------------------------------------------------------------------------------------
# ResNet-18 encoder (MONAI) for FPN and DeepLab


class ResNet18Encoder(nn.Module):
    """MONAI's 2D ResNet-18 returning the outputs of its 4 stages.

    MONAI's ``ResNet`` defaults to a stride-1 stem convolution (a 3D-video heritage); ``conv1_t_stride=2`` restores
    the usual ImageNet layout, so the stages are at strides 4, 8, 16, 32. Shortcuts are 1x1 conv + BN (type "B",
    without bias) like torchvision's ResNet-18. ``dilate_last`` stages (0-2) are turned into dilated convolutions
    with stride 1, for an output stride of 32 / 2**dilate_last.
    """

    out_channels = (64, 128, 256, 512)

    def __init__(self, dilate_last: int = 0, in_channels: int = 1) -> None:
        super().__init__()
        if dilate_last not in (0, 1, 2):
            raise ValueError(f"dilate_last must be 0, 1 or 2, got {dilate_last}")
        self.net = resnet18(pretrained=False, spatial_dims=2, n_input_channels=in_channels, conv1_t_stride=2,
                            feed_forward=False, shortcut_type="B", bias_downsample=False)
        dilation = 1
        for layer in (self.net.layer3, self.net.layer4)[2 - dilate_last :]:
            previous, dilation = dilation, dilation * 2
            _dilate_stage(layer, previous, dilation)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        x = net.maxpool(net.act(net.bn1(net.conv1(x))))
        features = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
            features.append(x)
        return features


def _dilate_stage(layer: nn.Sequential, previous: int, dilation: int) -> None:
    """Replace the stride-2 of a ResNet stage by dilation (the scheme of DeepLab / torchvision's ResNet).

    The first block's first convolution keeps the previous dilation; all later 3x3 convolutions use ``dilation``.
    """
    for i, block in enumerate(layer):
        for name in ("conv1", "conv2"):
            conv = getattr(block, name)
            d = previous if (i == 0 and name == "conv1") else dilation
            conv.stride, conv.dilation, conv.padding = (1, 1), (d, d), (d, d)
        if isinstance(block.downsample, nn.Sequential):
            block.downsample[0].stride = (1, 1)
