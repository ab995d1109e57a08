"""A compact anisotropic 3D U-Net sized for training on a CPU.

Cost on a CPU is dominated by the channel width at full resolution, so the first level is narrow
(8 channels) and capacity sits in the coarser levels, which cost 1/4–1/8 as much per level. The
first down-sampling is in-plane only, matching CT voxels that are coarser in-plane than between
slices after resampling to e.g. 4 × 4 × 2.5 mm.

``net(x)`` takes x (B, C_in, Z, Y, X) of any size and returns logits (B, K, Z, Y, X): inputs are
padded internally to a multiple of the total stride and the output cropped back.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from segmentation.networks import register


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"unknown normalisation {kind!r}; expected batch or instance")


def _conv_block(channels_in: int, channels_out: int, stride, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        _norm(norm, channels_out),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(channels_out, channels_out, 3, padding=1, bias=False),
        _norm(norm, channels_out),
        nn.LeakyReLU(0.01, inplace=True),
    )


@register("delineo_unet3d")
class UNet3D(nn.Module):
    """U-Net with strided-convolution down-sampling and transposed-convolution up-sampling.

    channels: feature width per level, full resolution first.
    strides_zyx: down-sampling between consecutive levels (len(channels) − 1 triples).
    norm: "batch" (evaluation uses running statistics, so any tile size gives the same answer
        per voxel: large tiles at inference, no re-normalisation per tile) or "instance".
    deep_supervision: number of coarser decoder levels with their own output head, used only
        in training (`forward_levels`) to speed up learning.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 10,
        channels=(8, 16, 32, 64, 128),
        strides_zyx=((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
        norm: str = "batch",
        deep_supervision: int = 0,
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        strides = [tuple(int(s) for s in stride) for stride in strides_zyx]
        if len(strides) != len(channels) - 1 or any(len(s) != 3 for s in strides):
            raise ValueError("strides_zyx needs one (z, y, x) triple per level after the first")
        self.total_stride = tuple(math.prod(s[axis] for s in strides) for axis in range(3))
        self.encoder = nn.ModuleList([_conv_block(in_channels, channels[0], 1, norm)])
        self.encoder.extend(
            _conv_block(channels[i], channels[i + 1], strides[i], norm) for i in range(len(strides))
        )
        self.upsample = nn.ModuleList(
            nn.ConvTranspose3d(channels[i + 1], channels[i], strides[i], stride=strides[i], bias=False)
            for i in range(len(strides))
        )
        self.decoder = nn.ModuleList(
            _conv_block(2 * channels[i], channels[i], 1, norm) for i in range(len(strides))
        )
        self.head = nn.Conv3d(channels[0], out_channels, 1)
        if not 0 <= deep_supervision < len(strides):
            raise ValueError(f"deep_supervision must be in [0, {len(strides) - 1}], got {deep_supervision}")
        self.deep_heads = nn.ModuleList(
            nn.Conv3d(channels[level], out_channels, 1) for level in range(1, deep_supervision + 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_levels(x)[0]

    def forward_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits at full resolution, then (training aid) at the deep-supervision levels."""
        size = x.shape[-3:]
        padding = []
        for n, stride in zip(reversed(size), reversed(self.total_stride), strict=True):
            padding += [0, (-n) % stride]
        if any(padding):
            x = F.pad(x, padding, mode="replicate")
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x)
            if level < len(self.encoder) - 1:
                skips.append(x)
        coarse = []
        for level in reversed(range(len(self.decoder))):
            x = self.decoder[level](torch.cat([skips[level], self.upsample[level](x)], dim=1))
            if 1 <= level <= len(self.deep_heads) and self.training:
                coarse.insert(0, self.deep_heads[level - 1](x))
        logits = self.head(x)
        return [logits[..., : size[0], : size[1], : size[2]], *coarse]
