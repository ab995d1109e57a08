"""Sliding-window inference: tile positions, Gaussian blending, progress, cancel.

Tiles are placed like nnU-Net (`tile_starts`) and each tile's logits are weighted by a Gaussian
(σ = patch/8, so tile borders count little). Both the Gaussian and the sum of the weights of all
tiles at a voxel are separable (products of 1D profiles), so each tile's weight divided by that
sum is computed from 1D arrays before accumulating: the float16 accumulator holds blended logits
directly (nnU-Net sums tiny weighted values in float16, which underflow at the image's corners).
With a deferred pointwise head (`head.py`), tiles give features, blended in float32, and the
head makes logits of them as they are read.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planning.errors import Cancelled


def tile_starts(size: int, patch: int, step_fraction: float) -> list[int]:
    """Start indices of tiles of `patch` voxels covering `size` with steps ≤ patch·step_fraction."""
    if size <= patch:
        return [0]
    count = int(np.ceil((size - patch) / (patch * step_fraction))) + 1
    step = (size - patch) / (count - 1)
    return [int(np.round(step * i)) for i in range(count)]


def gaussian_1d(patch: int, sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """nnU-Net's importance weights along one axis (peak 1 at patch // 2)."""
    from scipy.ndimage import gaussian_filter1d

    delta = np.zeros(patch)
    delta[patch // 2] = 1.0
    weights = gaussian_filter1d(delta, patch * sigma_scale, mode="constant", cval=0.0)
    weights /= weights.max()
    return np.maximum(weights, weights[weights > 0].min())


@dataclass
class Accumulated:
    """Blended network outputs on the model grid, read as float32 logits, and the tiles run.

    `values` are logits (K, Z, Y, X) float16, or features (C, Z, Y, X) float32 with the `head`
    (`head.BlendedHead`) that makes logits of them as they are read: the K logit channels are
    then never stored whole.
    """

    values: object  # torch tensor
    tiles: int
    head: object = None

    @property
    def shape(self) -> tuple[int, ...]:
        """(K, Z, Y, X) of the logits."""
        channels = self.values.shape[0] if self.head is None else self.head.out_channels
        return (channels, *self.values.shape[1:])

    @property
    def device(self):
        """The torch device the blended values are on."""
        return self.values.device

    def crop(self, box: tuple[slice, ...], channels: list[int] | None = None) -> Accumulated:
        """The logits of `channels` (all when None) in `box` (Z, Y, X slices)."""
        channels = self._subset(channels)
        if self.head is None:
            return Accumulated(self.values[(slice(None) if channels is None else channels, *box)], self.tiles)
        head = self.head if channels is None else self.head.rows(channels)
        return Accumulated(self.values[(slice(None), *box)], self.tiles, head)

    def planes(self, start: int, stop: int, channels: list[int] | None = None):
        """Logits of planes [start, stop) (k, n, Y, X) float32, of `channels` (all when None)."""
        channels = self._subset(channels)
        if self.head is None:
            return self.values[slice(None) if channels is None else channels, start:stop].float()
        head = self.head if channels is None else self.head.rows(channels)
        return head(self.values[:, start:stop])

    def points(self, z, y, x):
        """Logits (K, n) float32 at the voxels of index tensors `z`, `y`, `x` (n each)."""
        values = self.values[:, z, y, x].float()
        return values if self.head is None else self.head(values)

    def mapped(self, start: int, stop: int, maps, activation: Callable | None = None):
        """Logits (K, n, y, x) float32 resampled by `maps` (AxisMaps for z, y, x) from model planes
        [start, stop), or with `activation` the resampled probabilities. Features fewer than the
        logits are resampled before the head: both are linear, and each map's weights sum to
        one, so the bias passes through unchanged (an activation is not linear: logits first)."""
        features_first = (
            activation is None and self.head is not None and self.head.in_channels < self.head.out_channels
        )
        values = self.values[:, start:stop].float() if features_first else self.planes(start, stop)
        if activation is not None:
            values = activation(values)
        values = maps[2].apply(maps[1].apply(maps[0].apply(values, 1), 2), 3)
        return self.head(values) if features_first else values

    def _subset(self, channels: list[int] | None) -> list[int] | None:
        """`channels`, or None when they are all of them in order (a view instead of a copy)."""
        return None if channels is None or list(channels) == list(range(self.shape[0])) else channels


def sliding_window(
    image,
    predict: Callable,
    channels: int,
    patch_zyx: tuple[int, int, int],
    overlap: float,
    *,
    on_progress: Callable[[str, float, float], None],
    cancel: threading.Event | None,
    stage: str = "Segmenting",
    head=None,
) -> Accumulated:
    """Run `predict` (B,1,pz,py,px) → (B,K,pz,py,px) over `image` (Z, Y, X, at least the patch);
    with `head` (a `BlendedHead`), `predict` gives C features, blended as they are, and the head
    makes logits of them when they are read."""
    import torch

    shape = tuple(image.shape)
    starts = [tile_starts(n, p, 1.0 - overlap) for n, p in zip(shape, patch_zyx, strict=True)]
    # Per axis and tile start: the Gaussian over the tile divided by the axis' summed weights.
    profiles = []
    for n, p, axis_starts in zip(shape, patch_zyx, starts, strict=True):
        g = gaussian_1d(p)
        total = np.zeros(n)
        for s in axis_starts:
            total[s : s + p] += g
        profiles.append({s: torch.as_tensor(g / total[s : s + p], dtype=torch.float32) for s in axis_starts})
    device = image.device
    blended = torch.zeros(
        (channels, *shape), dtype=torch.float16 if head is None else torch.float32, device=device
    )
    tiles = list(itertools.product(*starts))
    on_progress(stage, 0, len(tiles))
    with torch.inference_mode(), _cancel_hooks(predict, cancel):
        for done, (z, y, x) in enumerate(tiles, start=1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("segmentation cancelled")
            box = (slice(z, z + patch_zyx[0]), slice(y, y + patch_zyx[1]), slice(x, x + patch_zyx[2]))
            out = predict(image[box][None, None].contiguous())
            if out.shape[1] != channels:
                raise ValueError(
                    f"the network returned {out.shape[1]} channels, the model declares {channels}"
                )
            weight = (
                profiles[0][z].to(device)[:, None, None]
                * profiles[1][y].to(device)[None, :, None]
                * profiles[2][x].to(device)[None, None, :]
            )
            _blend_into(blended[(slice(None), *box)], out[0], weight)
            on_progress(stage, done, len(tiles))
    return Accumulated(blended, len(tiles), head)


def _blend_into(target, tile_logits, weight, channels_at_once: int = 4) -> None:
    """``target += tile_logits * weight`` for a `target` (K, z, y, x); a float16 one a few
    channels at a time in float32: no float32 copy of the whole tile, and 1.7× faster on CPUs
    than letting torch promote the float16 slice in one go."""
    if target.dtype == tile_logits.dtype:
        target.addcmul_(tile_logits, weight)
        return
    for k in range(0, target.shape[0], channels_at_once):
        part = target[k : k + channels_at_once]
        part.copy_(part.float().addcmul_(tile_logits[k : k + channels_at_once].float(), weight))


@contextlib.contextmanager
def _cancel_hooks(predict, cancel: threading.Event | None):
    """Check `cancel` before every layer of the networks behind `predict` (a tile on a CPU can
    take seconds; this keeps the reaction to a cancel within one layer)."""
    modules = getattr(predict, "networks", [])
    if cancel is None or not modules:
        yield
        return

    def check(module, inputs):
        if cancel.is_set():
            raise Cancelled("segmentation cancelled")

    handles = [m.register_forward_pre_hook(check) for net in modules for m in net.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
