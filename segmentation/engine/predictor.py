"""Step 4's tile function (see `segmentation.engine.pipeline`): a tile in, its logits out.

Tiles are (N, C, Z, Y, X) tensors on the run's device, in model orientation; the networks of all
folds run on every mirroring of the tile and their outputs are averaged in float32, under
autocast on GPUs. With a deferred pointwise head (`head.py`) it returns features instead.
"""

from __future__ import annotations

import itertools

from segmentation.engine import device as devices


class Predictor:
    """Callable tile → logits: folds × mirrorings averaged, under autocast on GPUs.

    When the networks end in a pointwise layer with more outputs than features (`head.py`),
    it returns their features instead (mirrorings averaged, networks side by side) and `head`
    turns the blended features into logits.

    `lateral_mirror`: see `Recipe.lateral_mirror`."""

    def __init__(self, networks: list, mirror_axes: tuple[int, ...], device, lateral_mirror=None):
        from segmentation.engine.head import deferred_head

        self.networks = networks
        self.device = device
        axes = [a + 2 for a in mirror_axes]
        self.flips = [()] + [c for n in range(1, len(axes) + 1) for c in itertools.combinations(axes, n)]
        self.lateral_dim, self.swapped = (None, None)
        if lateral_mirror is not None:
            self.lateral_dim, self.swapped = lateral_mirror[0] + 2, list(lateral_mirror[1])
        self.head = deferred_head(networks) if lateral_mirror is None else None

    def channels(self, outputs: int) -> int:
        """Channels of what a call returns, for a model with `outputs` logits."""
        return outputs if self.head is None else self.head.in_channels

    def __call__(self, tile):
        import torch

        if self.head is not None:
            features = [self._mean_over_flips(net.trunk, tile) for net in self.networks]
            return torch.cat(features, 1) if len(features) > 1 else features[0]
        total = None
        for net in self.networks:
            out = self._mean_over_flips(net, tile)
            total = out if total is None else total.add_(out)
        return total.div_(len(self.networks)) if len(self.networks) > 1 else total

    def _mean_over_flips(self, net, tile):
        total = None
        with devices.autocast(self.device):
            for dims in self.flips:
                out = net(tile.flip(dims) if dims else tile)
                if isinstance(out, (list, tuple)):
                    out = out[0]
                if dims:
                    out = out.flip(dims)
                    if self.lateral_dim in dims:
                        out = out[:, self.swapped]
                out = out.float()
                total = out if total is None else total.add_(out)
        # in place: a tile's logits can be a GB
        return total.div_(len(self.flips)) if len(self.flips) > 1 else total
