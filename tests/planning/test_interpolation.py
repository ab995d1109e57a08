"""Interpolation between contoured slices."""

import numpy as np
import pytest

from planning.geometry import Grid
from planning.interpolation import axes_with_gaps, contoured_planes, interpolate
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


def _discs(planes: dict[int, list[tuple[int, int, float]]]) -> Mask:
    """Discs (centre y, centre x, radius in pixels) drawn on each plane of GRID."""
    y, x = np.mgrid[0:64, 0:64]
    full = np.zeros(GRID.shape, bool)
    for k, discs in planes.items():
        for cy, cx, r in discs:
            full[k] |= (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    return Mask.from_full(GRID, full)


def test_a_piece_that_ends_between_drawn_planes_leaves_the_other_pieces_where_they_are():
    """Two pieces drawn on plane 0 (say the two parotids), one of them again on plane 8: the
    one drawn on both keeps its place and size; the other tapers away. (Aligning the whole
    planes on their centroids moved the kept piece's two copies apart until it vanished.)"""
    mask = _discs({0: [(32, 14, 8.0), (32, 50, 8.0)], 8: [(32, 14, 8.0)]})
    result = interpolate(mask)
    for k in range(1, 8):
        plane = result.slice_z(k)
        kept = mask.slice_z(8)
        assert (plane & kept).sum() >= 0.95 * kept.sum(), k  # the piece drawn on both planes
        assert not plane[:, 24:40].any(), k  # nothing drawn between the two pieces
    right = [result.slice_z(k)[:, 32:].sum() for k in range(9)]
    assert right == sorted(right, reverse=True) and right[4] > 0 and right[7] < right[1]


def test_a_piece_that_splits_blends_into_both_parts():
    mask = _discs({0: [(32, 32, 10.0)], 6: [(32, 22, 6.0), (32, 42, 6.0)]})
    middle = interpolate(mask).slice_z(3)
    assert middle[32, 22] and middle[32, 42] and middle[32, 32]
    assert middle.sum() < 1.5 * np.pi * 100


def test_two_pieces_that_each_move_follow_their_own_centres():
    mask = _discs({0: [(20, 10, 5.0), (44, 40, 5.0)], 6: [(20, 24, 5.0), (44, 54, 5.0)]})
    middle = interpolate(mask).slice_z(3)
    assert middle[20, 17] and middle[44, 47]
    assert middle.sum() == pytest.approx(2 * np.pi * 25, rel=0.15)


def test_a_gap_far_longer_than_the_others_separates_parts_of_a_structure():
    """Two nodes drawn on planes 8/10 and 50/52 (3 mm slices) are two parts, not one tube; planes
    drawn every few slices, or just two planes, are bridged whatever the gap."""
    from planning.interpolation import bridging_limit_mm

    assert bridging_limit_mm([8, 10, 50, 52], 3.0) == 30.0  # 40 slices = 120 mm: not bridged
    assert bridging_limit_mm([0, 5, 10, 20], 3.0) == 60.0  # every 5th slice: 30 mm is bridged
    assert bridging_limit_mm([8, 50], 3.0) is None
    nodes = _discs({0: [(20, 20, 5.0)], 2: [(20, 20, 5.0)], 18: [(40, 40, 5.0)], 20: [(40, 40, 5.0)]})
    result = interpolate(nodes, max_gap_mm=bridging_limit_mm(contoured_planes(nodes), 2.0))  # 32 mm apart
    assert contoured_planes(result) == [0, 1, 2, 18, 19, 20]


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


# -- coronal and sagittal planes: the same interpolation across the y or x axis -------------------

#: x 2 mm, y 1 mm, z 1.5 mm: each axis its own spacing, so one taken for another shows.
TALL = Grid((40, 48, 33), (2.0, 1.0, 1.5))


def sagittal_discs(radius_mm_of_plane: dict[int, float], centre_zy_of_plane=None) -> Mask:
    """Discs (radius in mm) drawn on sagittal planes x = k of TALL, centred at (z, y) voxels."""
    z, y = np.mgrid[0:40, 0:48]
    full = np.zeros(TALL.shape, bool)
    for k, r in radius_mm_of_plane.items():
        cz, cy = (centre_zy_of_plane or {}).get(k, (20, 24))
        full[:, :, k] = ((z - cz) * 1.5) ** 2 + ((y - cy) * 1.0) ** 2 <= r * r
    return Mask.from_full(TALL, full)


def test_a_tube_drawn_on_every_fourth_sagittal_plane_is_filled_between():
    """A cord-like tube drawn every 4th sagittal plane: every plane from the first to the last
    drawn one holds the same disc; the volume is that of the tube; nothing beyond the ends."""
    drawn = {k: 7.0 for k in range(4, 29, 4)}
    mask = sagittal_discs(drawn)
    assert axes_with_gaps(mask) == [2]
    result = interpolate(mask, axis=2)
    full = result.full()
    assert contoured_planes(result, axis=2) == list(range(4, 29))
    assert all(np.array_equal(full[:, :, k], full[:, :, 4]) for k in range(4, 29))
    disc_mm2 = full[:, :, 4].sum() * 1.5 * 1.0
    assert result.volume_cc * 1000 == pytest.approx(25 * disc_mm2 * 2.0)
    assert axes_with_gaps(result) == []


def test_a_growing_shape_blends_linearly_across_sagittal_planes_with_in_plane_spacing():
    """Radius 5 mm at x = 4 and 13 mm at x = 12: half-way the area is that of a 9 mm disc, in mm²
    measured with the sagittal plane's own spacing (z 1.5 mm, y 1 mm)."""
    result = interpolate(sagittal_discs({4: 5.0, 12: 13.0}), axis=2)
    full = result.full()
    for k in range(5, 12):
        radius = 5.0 + (k - 4)
        assert full[:, :, k].sum() * 1.5 == pytest.approx(np.pi * radius**2, rel=0.08)


def test_the_gap_limit_is_in_mm_along_the_axis_interpolated():
    """Planes x = 2 and x = 12 are 20 mm apart (x spacing 2 mm; along z they would be 15 mm)."""
    mask = sagittal_discs({2: 6.0, 12: 6.0})
    assert contoured_planes(interpolate(mask, axis=2, max_gap_mm=18.0), axis=2) == [2, 12]
    assert contoured_planes(interpolate(mask, axis=2, max_gap_mm=20.0), axis=2) == list(range(2, 13))


@pytest.mark.parametrize(("axis", "filled"), [(1, list(range(3, 14))), (2, [3, *range(9, 14)])])
def test_interpolating_across_y_or_x_agrees_with_the_axial_path_on_the_transposed_grid(axis, filled):
    """A ring that moves and grows, drawn on planes 3, 9 and 13 across `axis`, gives exactly what
    the axial interpolation gives once that axis is made the first one (grid and spacing
    transposed too). At most 10 mm is bridged: across x (2 mm) the gap 3–9 is 12 mm, and stays."""
    shape = TALL.shape
    sizes = [n for a, n in enumerate(shape) if a != axis]
    u, v = np.mgrid[0 : sizes[0], 0 : sizes[1]]
    full = np.zeros(shape, bool)
    for k, (cu, cv, r) in {3: (14, 12, 6), 9: (20, 16, 9), 13: (24, 18, 8)}.items():
        distance = np.hypot(u - cu, v - cv)
        np.moveaxis(full, axis, 0)[k] = (distance <= r) & (distance > r / 2)
    mask = Mask.from_full(TALL, full)
    spacing_zyx = np.array(TALL.spacing_zyx)[[axis, *(a for a in range(3) if a != axis)]]
    moved = Grid(np.moveaxis(full, axis, 0).shape, tuple(spacing_zyx[::-1]))
    axial = interpolate(Mask.from_full(moved, np.moveaxis(full, axis, 0)), max_gap_mm=10.0).full()
    result = interpolate(mask, axis=axis, max_gap_mm=10.0)
    assert np.array_equal(result.full(), np.moveaxis(axial, 0, axis))
    assert contoured_planes(result, axis=axis) == filled
    between = np.moveaxis(result.full(), axis, 0)[11]
    assert between[22, 17 + 7] and not between[22, 17]  # a ring still: the hole survives


def test_interpolating_again_after_editing_a_drawn_coronal_plane_redoes_the_planes_between():
    """Across y (coronal planes): the filled planes are told from the drawn ones by their digests
    along y, so enlarging the disc drawn on plane y = 20 grows the planes between."""
    from planning.interpolation import key_planes, plane_digests

    z, x = np.mgrid[0:40, 0:33]
    full = np.zeros(TALL.shape, bool)
    for k, r in {10: 6.0, 20: 6.0}.items():
        full[:, k, :] = ((z - 20) * 1.5) ** 2 + ((x - 16) * 2.0) ** 2 <= r * r
    first = interpolate(Mask.from_full(TALL, full), axis=1)
    filled = plane_digests(first, range(11, 20), axis=1)
    assert key_planes(first, filled, axis=1) == [10, 20]
    assert key_planes(first, filled) == contoured_planes(first)  # digests along y mean nothing along z
    bigger = ((z - 20) * 1.5) ** 2 + ((x - 16) * 2.0) ** 2 <= 14.0**2
    edited = first.copy()
    edited.replace_region((slice(0, 40), slice(20, 21), slice(0, 33)), bigger[:, None, :])
    again = interpolate(edited, axis=1, planes=key_planes(edited, filled, axis=1)).full()
    areas = [int(again[:, k, :].sum()) for k in range(10, 21)]
    assert areas == sorted(areas) and areas[0] < areas[5] < areas[10]
    assert np.array_equal(again[:, 10, :], full[:, 10, :])


def test_sagittal_interpolation_reports_progress_per_gap_and_can_be_cancelled():
    import threading

    from planning.errors import Cancelled

    mask = sagittal_discs({4: 6.0, 8: 6.0, 12: 6.0})
    calls = []
    interpolate(mask, axis=2, on_progress=lambda stage, done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        interpolate(mask, axis=2, cancel=cancel)
