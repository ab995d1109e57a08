"""Interpolation between contoured slices."""

import numpy as np
import pytest

from planning.geometry import Grid
from planning.interpolation import contoured_planes, interpolate
from planning.structures import Mask

GRID = Grid((21, 64, 64), (1.0, 1.0, 2.0))


def disc_planes(radius_of_plane: dict[int, float], centre_of_plane=None):
    y, x = np.mgrid[0:64, 0:64]
    full = np.zeros(GRID.shape, bool)
    for k, r in radius_of_plane.items():
        cy, cx = (centre_of_plane or {}).get(k, (32, 32))
        full[k] = (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    return Mask.from_full(GRID, full)


def test_radius_blends_linearly_between_drawn_planes():
    mask = disc_planes({0: 6.0, 10: 16.0})
    result = interpolate(mask)
    assert contoured_planes(result) == list(range(11))
    for k in range(1, 10):
        expected = np.pi * (6 + k) ** 2
        assert result.slice_z(k).sum() == pytest.approx(expected, rel=0.06)
    assert np.array_equal(result.slice_z(0), mask.slice_z(0))  # drawn planes untouched


def test_moving_shape_follows_its_centre_and_holes_survive():
    mask = disc_planes({2: 8.0, 8: 8.0}, {2: (32, 20), 8: (32, 44)})
    middle = interpolate(mask).slice_z(5)
    ys, xs = np.nonzero(middle)
    assert xs.mean() == pytest.approx(32, abs=0.5) and middle.sum() == pytest.approx(np.pi * 64, rel=0.1)
    ring = disc_planes({0: 15.0, 4: 15.0}).full() & ~disc_planes({0: 6.0, 4: 6.0}).full()
    filled = interpolate(Mask.from_full(GRID, ring))
    assert not filled.slice_z(2)[32, 32] and filled.slice_z(2)[32, 32 + 10]


def test_gap_limit_and_nothing_to_do():
    mask = disc_planes({0: 5.0, 20: 5.0})
    assert contoured_planes(interpolate(mask, max_gap_mm=10)) == [0, 20]
    assert interpolate(disc_planes({3: 5.0})).voxel_count == disc_planes({3: 5.0}).voxel_count


def test_interpolating_again_after_editing_a_drawn_plane_redoes_the_planes_between():
    """The planes an interpolation filled are not drawn planes the next time (unless edited):
    enlarging the disc drawn on plane 10 grows the planes between on the next interpolation."""
    from planning.interpolation import key_planes, plane_digests

    first = interpolate(disc_planes({0: 6.0, 10: 6.0}))
    filled = plane_digests(first, range(1, 10))
    assert key_planes(first, filled) == [0, 10]
    edited = first.copy()
    bigger = disc_planes({10: 16.0})
    edited.replace_region((slice(10, 11), slice(0, 64), slice(0, 64)), bigger.slice_z(10)[None])
    hand = edited.copy()  # plane 5 touched by hand: it counts as drawn from now on
    hand.replace_region((slice(5, 6), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool))
    assert key_planes(hand, filled) == [0, 5, 10]
    again = interpolate(edited, planes=key_planes(edited, filled))
    areas = [int(again.slice_z(k).sum()) for k in range(11)]
    assert areas == sorted(areas) and areas[5] == pytest.approx(np.pi * 11**2, rel=0.08)
    assert interpolate(edited).slice_z(5).sum() == first.slice_z(5).sum()  # every plane taken as drawn
