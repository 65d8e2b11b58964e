"""2D segmentation networks for particle/background segmentation of HRTEM micrographs.

Every network maps a float32 batch ``(N, in_channels, H, W)`` to raw outputs ``(N, out_channels, H, W)`` at the same
``H, W`` (by default 1 input channel and 2 outputs, the logits of background and particle; callers apply the softmax
or read regression channels as the model card's task says). The encoders downsample by up to
``SIZE_MULTIPLE = 32``; :func:`build_network` wraps every network in :class:`PadToMultiple`, which reflect-pads the
input to a multiple of 32 and crops the logits back, so any ``H, W >= 32`` works.

Registered architectures (parameter counts measured with the default options, 1 input channel, 2 classes):

=================== ========== =====================================================================
name                parameters description
=================== ========== =====================================================================
``seed_unet``           0.16 M light U-Net of the seed paper (Groschner et al.), width 32 at all levels
``unet``                1.63 M MONAI ``UNet``, channels 16-256, 2 residual units per level
``unet_resnet18``      13.54 M MONAI ``FlexibleUNet``, ResNet-18 encoder (MONAI/MedicalNet variant)
``unet_mobilenetv2``    6.63 M U-Net decoder on a MobileNetV2 encoder (width multiplier 1.0)
``unet_vgg16``         18.64 M U-Net decoder on a VGG16-BN encoder
``fpn_resnet18``       11.70 M FPN semantic head on a ResNet-18 encoder (pyramid 128, segmentation 64)
``deeplab_resnet18``   13.30 M DeepLabV3 (ASPP 6/12/18 + image pooling, 128 channels), output stride 16
=================== ========== =====================================================================

No pretrained weights are used anywhere (micrographs are single-channel and unlike ImageNet/medical images).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import FlexibleUNet, UNet
from torch import nn

from nanofind.learn.encoders import MobileNetV2Encoder, ResNet18Encoder, VGG16Encoder, conv_bn_relu

__all__ = ["ARCHITECTURES", "NUM_CLASSES", "SIZE_MULTIPLE", "PadToMultiple", "SeedUNet", "build_network",
           "count_parameters"]

SIZE_MULTIPLE = 32
"""The unwrapped networks need ``H`` and ``W`` to be multiples of this (total encoder stride)."""

NUM_CLASSES = 2
"""Default output channels: 0 = background, 1 = particle."""


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class PadToMultiple(nn.Module):
    """Reflect-pad the input to a multiple of ``multiple``, run ``net`` and crop its output back.

    The padding is split as evenly as possible between the two sides of each axis. Reflect padding needs the
    padding to be smaller than the image, which holds for any ``H, W >= multiple``.
    """

    def __init__(self, net: nn.Module, multiple: int = SIZE_MULTIPLE) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = -height % self.multiple
        pad_w = -width % self.multiple
        if pad_h == 0 and pad_w == 0:
            return self.net(x)
        top, left = pad_h // 2, pad_w // 2
        x = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="reflect")
        y = self.net(x)
        return y[..., top : top + height, left : left + width]


# --------------------------------------------------------------------------------------------------------------------
# seed_unet


class SeedUNet(nn.Module):
    """The light U-Net of the seed paper (Groschner et al.), with the same width at every level.

    Four down blocks (conv3x3-BN-ReLU, then 2x2 max-pool; the skip is taken before pooling), a bottleneck
    (conv-BN-ReLU twice), four up blocks (2x nearest upsampling, concatenation with the skip, conv-BN-ReLU, dropout,
    conv-BN-ReLU) and a 1x1 convolution to the classes. At a 512x512 input the bottleneck map is 32x32 with
    ``width`` channels.

    Parameters
    ----------
    width
        Number of feature channels at every level (32 in the paper).
    dropout
        Dropout rate inside the up blocks. The paper does not state it; 0.1 is a mild, common choice for a
        network this small.
    in_channels, out_channels
        Input channels and output channels (classes).
    """

    def __init__(self, width: int = 32, dropout: float = 0.1, in_channels: int = 1, out_channels: int = NUM_CLASSES):
        super().__init__()
        self.down = nn.ModuleList([conv_bn_relu(in_channels if i == 0 else width, width) for i in range(4)])
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = nn.Sequential(conv_bn_relu(width, width), conv_bn_relu(width, width))
        self.up = nn.ModuleList(
            [nn.Sequential(conv_bn_relu(2 * width, width), nn.Dropout2d(dropout), conv_bn_relu(width, width))
             for _ in range(4)]
        )
        self.head = nn.Conv2d(width, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def _build_seed_unet(in_channels: int, out_channels: int, width: int = 32, dropout: float = 0.1) -> nn.Module:
    return SeedUNet(width=width, dropout=dropout, in_channels=in_channels, out_channels=out_channels)


# --------------------------------------------------------------------------------------------------------------------
# MONAI networks


def _build_monai_unet(
    in_channels: int, out_channels: int, channels: Sequence[int] = (16, 32, 64, 128, 256), num_res_units: int = 2,
    dropout: float = 0.0
) -> nn.Module:
    return UNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, channels=tuple(channels),
                strides=(2,) * (len(channels) - 1), num_res_units=num_res_units, dropout=dropout)


def _build_flexible_unet_resnet18(in_channels: int, out_channels: int, dropout: float = 0.0) -> nn.Module:
    # Decoder: 5 up blocks (the last without a skip) return to full resolution for inputs that are multiples of 32;
    # other sizes fail inside MONAI's decoder despite ``is_pad=True``, hence the PadToMultiple wrapper.
    return FlexibleUNet(in_channels=in_channels, out_channels=out_channels, backbone="resnet18", pretrained=False,
                        spatial_dims=2, dropout=dropout)


# --------------------------------------------------------------------------------------------------------------------
# Plain-PyTorch encoders with a shared U-Net decoder


class UNetDecoder(nn.Module):
    """U-Net decoder for an encoder that returns feature maps ordered from shallow (high resolution) to deep.

    Each block upsamples (nearest) to the size of the next shallower skip, concatenates it and applies two
    conv-BN-ReLU. If ``final_size_upsample`` is set, a last block without a skip upsamples x2 (encoders whose
    shallowest feature map is at stride 2). A 3x3 convolution maps to the classes.
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int],
                 final_upsample: bool, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        n_skip = len(encoder_channels) - 1
        if len(decoder_channels) != n_skip + int(final_upsample):
            raise ValueError(f"need {n_skip + int(final_upsample)} decoder channels, got {len(decoder_channels)}")
        skips = list(encoder_channels[:-1])[::-1] + [0] * int(final_upsample)
        blocks = []
        in_channels = encoder_channels[-1]
        for skip_channels, out_channels in zip(skips, decoder_channels, strict=True):
            blocks.append(nn.Sequential(conv_bn_relu(in_channels + skip_channels, out_channels),
                                        conv_bn_relu(out_channels, out_channels)))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = list(features[:-1])[::-1]
        for i, block in enumerate(self.blocks):
            if i < len(skips):
                x = F.interpolate(x, size=skips[i].shape[-2:], mode="nearest")
                x = torch.cat([x, skips[i]], dim=1)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(x)
        return self.head(x)


class EncoderUNet(nn.Module):
    """An encoder returning a list of feature maps (with an ``out_channels`` attribute) plus a :class:`UNetDecoder`."""

    def __init__(self, encoder: nn.Module, decoder_channels: Sequence[int], final_upsample: bool,
                 out_channels: int = NUM_CLASSES) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.out_channels, decoder_channels, final_upsample, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _build_unet_mobilenetv2(in_channels: int, out_channels: int, width_mult: float = 1.0,
                            decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)) -> nn.Module:
    return EncoderUNet(MobileNetV2Encoder(in_channels, width_mult), decoder_channels, final_upsample=True,
                       out_channels=out_channels)


def _build_unet_vgg16(in_channels: int, out_channels: int,
                      decoder_channels: Sequence[int] = (256, 128, 64, 32)) -> nn.Module:
    return EncoderUNet(VGG16Encoder(in_channels), decoder_channels, final_upsample=False, out_channels=out_channels)


class FPNSegmentation(nn.Module):
    """Feature Pyramid Network with the semantic ("panoptic FPN") segmentation head on a ResNet-18.

    Lateral 1x1 convolutions bring the stage outputs C2..C5 to ``pyramid_channels``; the top-down path adds the
    2x-upsampled coarser level. Each level P_k then gets conv3x3-BN-ReLU blocks, each followed by a 2x bilinear
    upsampling, until stride 4 (one block without upsampling for P2); the levels are summed, a 1x1 convolution gives
    the classes and a 4x bilinear upsampling the input resolution.
    """

    def __init__(self, pyramid_channels: int = 128, segmentation_channels: int = 64, dropout: float = 0.1,
                 in_channels: int = 1, out_channels: int = NUM_CLASSES) -> None:
        super().__init__()
        self.encoder = ResNet18Encoder(in_channels=in_channels)
        self.lateral = nn.ModuleList([nn.Conv2d(c, pyramid_channels, 1) for c in self.encoder.out_channels])
        self.seg_blocks = nn.ModuleList()
        for level in range(4):  # P2 (stride 4) .. P5 (stride 32)
            convs = [conv_bn_relu(pyramid_channels if i == 0 else segmentation_channels, segmentation_channels)
                     for i in range(max(level, 1))]
            self.seg_blocks.append(nn.ModuleList(convs))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(segmentation_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        pyramid = [self.lateral[3](features[3])]
        for level in (2, 1, 0):
            top = F.interpolate(pyramid[0], size=features[level].shape[-2:], mode="nearest")
            pyramid.insert(0, self.lateral[level](features[level]) + top)
        size = pyramid[0].shape[-2:]
        merged = 0
        for level, (p, convs) in enumerate(zip(pyramid, self.seg_blocks, strict=True)):
            for conv in convs:
                p = conv(p)
                if level > 0:
                    p = F.interpolate(p, scale_factor=2.0, mode="bilinear", align_corners=False)
            if p.shape[-2:] != size:  # only for sizes that are not multiples of 32
                p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
            merged = merged + p
        logits = self.classifier(self.dropout(merged))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of DeepLabV3.

    A 1x1 branch, three 3x3 branches dilated by ``rates`` and an image-pooling branch (global average, 1x1 conv with
    bias and ReLU, no batch norm so batches of one train), concatenated and projected by 1x1 conv-BN-ReLU.
    MONAI's ``SimpleASPP`` has no image pooling and no per-branch normalisation, hence this module.
    """

    def __init__(self, in_channels: int, channels: int, rates: Sequence[int] = (6, 12, 18),
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, channels, kernel_size=1)]
                                      + [conv_bn_relu(in_channels, channels, dilation=r) for r in rates])
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1),
                                     nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn_relu(channels * (len(rates) + 2), channels, kernel_size=1),
                                     nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        outputs.append(self.pooling(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outputs, dim=1))


class DeepLabV3(nn.Module):
    """DeepLabV3 on a dilated ResNet-18: ASPP, conv3x3-BN-ReLU, 1x1 classifier, bilinear upsampling to the input.

    ``output_stride`` 16 dilates the last stage (ASPP rates 6, 12, 18); 8 dilates the last two stages and doubles
    the rates, as in the DeepLabV3 paper.
    """

    def __init__(self, output_stride: int = 16, aspp_channels: int = 128, dropout: float = 0.1,
                 in_channels: int = 1, out_channels: int = NUM_CLASSES) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        self.encoder = ResNet18Encoder(dilate_last=1 if output_stride == 16 else 2, in_channels=in_channels)
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        self.aspp = ASPP(self.encoder.out_channels[-1], aspp_channels, rates, dropout)
        self.head = conv_bn_relu(aspp_channels, aspp_channels)
        self.classifier = nn.Conv2d(aspp_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.classifier(self.head(self.aspp(self.encoder(x)[-1])))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _build_fpn_resnet18(in_channels: int, out_channels: int, pyramid_channels: int = 128,
                        segmentation_channels: int = 64, dropout: float = 0.1) -> nn.Module:
    return FPNSegmentation(pyramid_channels, segmentation_channels, dropout, in_channels, out_channels)


def _build_deeplab_resnet18(in_channels: int, out_channels: int, output_stride: int = 16, aspp_channels: int = 128,
                            dropout: float = 0.1) -> nn.Module:
    return DeepLabV3(output_stride, aspp_channels, dropout, in_channels, out_channels)


# --------------------------------------------------------------------------------------------------------------------
# registry

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "seed_unet": _build_seed_unet,
    "unet": _build_monai_unet,
    "unet_resnet18": _build_flexible_unet_resnet18,
    "unet_mobilenetv2": _build_unet_mobilenetv2,
    "unet_vgg16": _build_unet_vgg16,
    "fpn_resnet18": _build_fpn_resnet18,
    "deeplab_resnet18": _build_deeplab_resnet18,
}
"""Architecture name -> builder of the bare network, called as ``builder(in_channels, out_channels, **options)``
(needs ``H, W`` multiples of ``SIZE_MULTIPLE``)."""


def build_network(name: str, out_channels: int = NUM_CLASSES, in_channels: int = 1, **options: object) -> nn.Module:
    """Build the architecture ``name`` with builder ``options``, wrapped in :class:`PadToMultiple`.

    The returned module maps ``(N, in_channels, H, W)`` float32 to raw outputs ``(N, out_channels, H, W)`` for any
    ``H, W >= 32``; the bare network is its ``.net`` attribute.

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`ARCHITECTURES` or a channel count is below 1.
    """
    try:
        builder = ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown network architecture {name!r}; known: {known}") from None
    for label, count in (("out_channels", out_channels), ("in_channels", in_channels)):
        if isinstance(count, bool) or not (isinstance(count, int) and count >= 1):
            raise ValueError(f"{label} must be a whole number of at least 1, got {count!r}")
    return PadToMultiple(builder(in_channels, out_channels, **options), SIZE_MULTIPLE)
