"""Separable resampling maps, reorientation and tile placement against their references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segmentation.engine.orientation import Reorientation
from segmentation.engine.resample import apply_maps, coordinate_map, linear_map, zoom_map
from segmentation.engine.tiling import gaussian_1d, sliding_window, tile_starts
from segmentation.preprocessing import resample


def test_linear_maps_are_the_shared_resample_there_and_back():
    image = torch.from_numpy(np.random.default_rng(0).normal(size=(13, 21, 17)).astype(np.float32))
    spacing_in, spacing_out = (3.0, 0.8, 1.1), (2.0, 1.5, 1.5)
    expected = resample(image, spacing_in, spacing_out)
    maps = {
        d: linear_map(image.shape[d], expected.shape[d], spacing_out[d] / spacing_in[d]) for d in range(3)
    }
    np.testing.assert_allclose(apply_maps(image, maps), expected, atol=1e-5)
    back = resample(expected, spacing_out, spacing_in, size_zyx=image.shape)
    back_maps = [
        linear_map(expected.shape[d], image.shape[d], spacing_in[d] / spacing_out[d]) for d in range(3)
    ]
    # Slab by slab (what the engine does to stay within memory) equals the whole at once.
    slabs = []
    for start in range(0, image.shape[0], 4):
        stop = min(start + 4, image.shape[0])
        lo, hi = back_maps[0].source_range(start, stop)
        slab = back_maps[0].rows(start, stop).apply(expected[lo:hi], 0)
        slabs.append(back_maps[2].apply(back_maps[1].apply(slab, 1), 2))
    np.testing.assert_allclose(torch.cat(slabs), back, atol=1e-5)


@pytest.mark.parametrize("order", [1, 3])
def test_zoom_maps_equal_skimage_resize(order):
    from skimage.transform import resize

    image = np.random.default_rng(1).normal(size=(11, 19, 14))
    shape = (17, 12, 23)
    expected = resize(image, shape, order, mode="edge", anti_aliasing=False, clip=False)
    maps = {d: zoom_map(image.shape[d], shape[d], order) for d in range(3)}
    np.testing.assert_allclose(apply_maps(torch.from_numpy(image), maps).numpy(), expected, atol=1e-6)


def test_coordinate_map_equals_map_coordinates_nearest():
    from scipy.ndimage import map_coordinates

    signal = np.random.default_rng(2).normal(size=9)
    position = (np.arange(20) + 0.5) * (9 / 20) - 0.5
    expected = map_coordinates(signal, [position], order=0, mode="nearest")
    result = coordinate_map(9, 20, 0).apply(torch.from_numpy(signal), 0).numpy()
    np.testing.assert_allclose(result, expected)


def test_reorientation_follows_the_direction_matrix():
    array = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    same = Reorientation.between(np.eye(3), "LPS")
    assert same.is_identity
    to_lpi = Reorientation.between(np.eye(3), "LPI")
    assert torch.equal(to_lpi.forward(array), array.flip(0))
    to_ras = Reorientation.between(np.eye(3), "RAS")
    assert torch.equal(to_ras.forward(array), array.flip(1).flip(2))
    # Columns along patient y and rows along patient x (a transposed grid): axes swap.
    swapped = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    reorient = Reorientation.between(swapped, "LPS")
    assert reorient.order == (0, 2, 1) and not any(reorient.flip)
    for r in (to_lpi, to_ras, reorient):
        np.testing.assert_array_equal(r.backward(r.forward(array).numpy()), array.numpy())


def test_tiles_and_gaussian_match_nnunet():
    from nnunetv2.inference.sliding_window_prediction import (
        compute_gaussian,
        compute_steps_for_sliding_window,
    )

    assert [tile_starts(n, p, 0.5) for n, p in [(110, 64), (64, 64), (300, 128)]] == (
        compute_steps_for_sliding_window((110, 64, 300), (64, 64, 128), 0.5)
    )
    reference = compute_gaussian((32, 48, 40), device=torch.device("cpu"), dtype=torch.float32).numpy()
    ours = np.einsum("i,j,k->ijk", gaussian_1d(32), gaussian_1d(48), gaussian_1d(40))
    np.testing.assert_allclose(ours, reference / reference.max(), rtol=1e-5, atol=1e-7)


def test_blending_is_a_weighted_mean_even_in_the_corners():
    """A network answering a constant must give that constant everywhere (weights sum to one)."""
    image = torch.zeros(37, 50, 45)

    def constant(tile):
        return torch.full((1, 2, *tile.shape[2:]), 3.0)

    accumulated = sliding_window(
        image, constant, 2, (16, 24, 20), 0.5, on_progress=lambda *a: None, cancel=None
    )
    np.testing.assert_allclose(accumulated.planes(0, 37).numpy(), 3.0, rtol=3e-3)  # float16 sums
