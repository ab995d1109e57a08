"""Blending features and applying a network's pointwise last layer once (engine/head.py) gives
the logits that blending the logits gives."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from support.segmentation_models import one_thread  # noqa: F401  (fixture)

from segmentation.engine.head import SplitNetwork, deferred_head, split_unet
from segmentation.engine.predictor import Predictor
from segmentation.engine.tiling import sliding_window

pytestmark = pytest.mark.usefixtures("one_thread")


def unet(classes: int, seed: int):
    """A small nnU-Net-style PlainConvUNet (4 features at full resolution) with random weights."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(seed)
    network = PlainConvUNet(
        1,
        3,
        [4, 8, 16],
        torch.nn.Conv3d,
        3,
        [1, 2, 2],
        2,
        classes,
        2,
        conv_bias=True,
        norm_op=torch.nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=torch.nn.LeakyReLU,
        nonlin_kwargs={"inplace": True},
        deep_supervision=False,
    )
    for parameter in network.parameters():  # decisive logits, as trained networks give
        parameter.data.mul_(3.0)
    return network.eval()


def blended_logits(networks, mirror_axes=(), shape=(28, 44, 40)):
    image = torch.from_numpy(np.random.default_rng(0).normal(0, 1, shape).astype(np.float32))
    predictor = Predictor(networks, mirror_axes, torch.device("cpu"))
    accumulated = sliding_window(
        image,
        predictor,
        predictor.channels(12),
        (16, 24, 24),
        0.5,
        on_progress=lambda *a: None,
        cancel=None,
        head=predictor.head,
    )
    return predictor.head, accumulated.planes(0, shape[0])


@pytest.mark.parametrize("folds, mirror_axes", [(1, ()), (2, (0, 2))])
def test_blended_features_give_the_blended_logits(folds, mirror_axes):
    networks = [unet(12, seed) for seed in range(folds)]
    plain_head, plain = blended_logits(networks, mirror_axes)
    split = [split_unet(copy.deepcopy(n)) for n in networks]
    head, deferred = blended_logits(split, mirror_axes)
    assert plain_head is None and head is not None and head.in_channels == 4 * folds
    scale = float(plain.abs().max())
    assert scale > 1.0
    np.testing.assert_allclose(deferred.numpy(), plain.numpy(), atol=2e-3 * scale)
    assert float((deferred.argmax(0) == plain.argmax(0)).float().mean()) >= 0.999


def test_split_network_computes_what_the_network_did():
    network = unet(12, 0)
    tile = torch.randn(1, 1, 16, 24, 24)
    with torch.inference_mode():
        expected = network(tile)
        split = split_unet(copy.deepcopy(network))
        assert isinstance(split, SplitNetwork)
        np.testing.assert_allclose(split(tile).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_logits_are_blended_when_the_features_are_not_fewer():
    few_outputs = [split_unet(unet(3, 0))]  # 4 features, 3 outputs
    assert deferred_head(few_outputs) is None
    ensemble = [split_unet(unet(6, seed)) for seed in range(2)]  # 2 × 4 features, 6 outputs
    assert deferred_head(ensemble) is None
    assert deferred_head([split_unet(unet(6, 0))]) is not None
    # A swap of output channels after mirroring (left/right structures) needs the logits.
    swapped = Predictor(ensemble[:1], (2,), torch.device("cpu"), lateral_mirror=(2, tuple(range(6))))
    assert swapped.head is None
