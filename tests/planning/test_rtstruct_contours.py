"""Mask ↔ planar contours: exactness of tracing and rasterising, winding, holes, keyholes."""

import numpy as np
import pytest
from scipy import ndimage

from planning.rtstruct.contours import (
    Loops,
    inside_any,
    keyhole,
    parents,
    rasterize,
    simplify,
    small_loops,
    touch_adjacent_planes,
    trace,
)


def filled(loops: Loops, shape) -> np.ndarray:
    array, offset = rasterize(loops, shape)
    full = np.zeros(shape, bool)
    if array.size:
        full[tuple(slice(o, o + n) for o, n in zip(offset, array.shape, strict=True))] = array
    return full


def test_random_masks_come_back_exactly_also_through_keyholes():
    rng = np.random.default_rng(7)
    for _ in range(150):
        shape = tuple(int(n) for n in rng.integers(1, 14, 3))
        mask = rng.random(shape) < rng.random()
        loops = trace(mask)
        np.testing.assert_array_equal(filled(loops, shape), mask)
        joined, failed = keyhole(loops)
        assert failed == 0
        np.testing.assert_array_equal(filled(joined, shape), mask)
        # Outer boundaries are counter-clockwise (positive area), holes clockwise: the signed
        # areas add up to the marching-squares area of the mask.
        assert np.all(loops.areas() != 0)


def test_single_pixel_is_a_diamond_through_the_edge_midpoints():
    mask = np.zeros((1, 5, 5), bool)
    mask[0, 2, 3] = True
    loops = trace(mask, offset_zyx=(4, 10, 20))
    assert len(loops) == 1 and loops.planes.tolist() == [4]
    points = {tuple(p) for p in loops.loop(0)}
    assert points == {(23.5, 12.0), (23.0, 12.5), (22.5, 12.0), (23.0, 11.5)}
    assert loops.areas()[0] == pytest.approx(0.5)


def test_ring_gives_outer_boundary_and_hole_with_opposite_winding():
    y, x = np.mgrid[:21, :21]
    r2 = (y - 10) ** 2 + (x - 10) ** 2
    ring = ((r2 <= 64) & (r2 > 16))[np.newaxis]
    loops = trace(ring)
    areas = loops.areas()
    assert len(loops) == 2 and (areas > 0).sum() == 1 and (areas < 0).sum() == 1
    hole = int(np.flatnonzero(areas < 0)[0])
    assert parents(loops)[hole] == int(np.flatnonzero(areas > 0)[0])
    joined, failed = keyhole(loops)
    assert failed == 0 and len(joined) == 1
    assert joined.areas()[0] == pytest.approx(areas.sum())
    np.testing.assert_array_equal(filled(joined, ring.shape), ring)


def test_island_inside_hole_and_several_holes_keyhole_exactly():
    mask = np.zeros((1, 30, 40), bool)
    mask[0, 2:28, 2:38] = True
    mask[0, 5:25, 5:15] = False  # hole 1 …
    mask[0, 10:20, 8:12] = True  # … with an island in it
    mask[0, 5:12, 20:35] = False  # holes 2 and 3, side by side
    mask[0, 15:25, 20:35] = False
    loops = trace(mask)
    assert len(loops) == 5
    joined, failed = keyhole(loops)
    assert failed == 0 and len(joined) == 2  # the outline with its 3 holes, and the island
    np.testing.assert_array_equal(filled(joined, mask.shape), mask)


def test_diagonal_pixels_join_into_one_polygon():
    mask = np.eye(6, dtype=bool)[np.newaxis]
    assert len(trace(mask)) == 1
    np.testing.assert_array_equal(filled(trace(mask), mask.shape), mask)


def test_rasterize_uses_pixel_centres_and_half_open_edges():
    # A 4×3 pixel rectangle drawn exactly through pixel centres: centres on the left/top edges are
    # inside, those on the right/bottom edges outside, so abutting polygons never share a pixel.
    square = Loops.from_list([np.array([[2.0, 1.0], [6.0, 1.0], [6.0, 4.0], [2.0, 4.0]])], [0])
    mask = filled(square, (1, 8, 10))
    expected = np.zeros((1, 8, 10), bool)
    expected[0, 1:4, 2:6] = True
    np.testing.assert_array_equal(mask, expected)


def test_rasterize_clips_to_the_grid_and_fills_even_odd():
    outer = np.array([[-5.0, -5.0], [20.0, -5.0], [20.0, 20.0], [-5.0, 20.0]])
    inner = np.array([[2.5, 2.5], [5.5, 2.5], [5.5, 5.5], [2.5, 5.5]])
    mask = filled(Loops.from_list([outer, inner], [1, 1]), (3, 8, 8))
    assert not mask[0].any() and not mask[2].any()
    assert mask[1].sum() == 64 - 9 and not mask[1, 3:6, 3:6].any()


def test_rasterize_keeps_the_part_inside_the_grid_of_loops_across_or_beyond_each_edge():
    """The clipped fill equals the fill on a grid 20 pixels wider each side, cropped; a loop
    wholly beyond the last column gave a box of width 1 at column nx, outside the grid."""
    rng = np.random.default_rng(3)
    shape, margin = (2, 12, 14), 20
    wider = (2, shape[1] + 2 * margin, shape[2] + 2 * margin)
    across = ([-6.0, 5.0], [19.0, 5.0], [7.0, -6.0], [7.0, 17.0])  # left, right, top, bottom edges
    for centre in (*across, [-30.0, 5.0], [40.0, 5.0], [7.0, 40.0]):
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(3, 9, 9)
        loop = np.asarray(centre) + np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])
        array, offset = rasterize(Loops.from_list([loop], [1]), shape)
        assert all(0 <= o and o + n <= size for o, n, size in zip(offset, array.shape, shape, strict=True))
        clipped = filled(Loops.from_list([loop], [1]), shape)
        wide = filled(Loops.from_list([loop + margin], [1]), wider)
        np.testing.assert_array_equal(clipped, wide[:, margin:-margin, margin:-margin], err_msg=str(centre))


def test_simplify_keeps_every_vertex_within_tolerance():
    y, x = np.mgrid[:80, :80]
    disc = (((y - 40) ** 2 + (x - 40) ** 2) <= 900)[np.newaxis]
    loops = trace(disc)
    spacing = (0.8, 0.8)
    simple = simplify(loops, 0.5, spacing)
    assert len(simple.points) < 0.7 * len(loops.points)
    # Every original vertex lies within the tolerance of the simplified polygon.
    polygon = simple.loop(0) * spacing
    edges = np.stack([polygon, np.roll(polygon, -1, axis=0)], axis=1)
    for point in loops.loop(0) * spacing:
        a, b = edges[:, 0], edges[:, 1]
        t = np.clip(np.einsum("ij,ij->i", point - a, b - a) / np.einsum("ij,ij->i", b - a, b - a), 0, 1)
        assert np.min(np.linalg.norm(a + t[:, None] * (b - a) - point, axis=1)) <= 0.5 + 1e-9
    np.testing.assert_allclose(abs(simple.areas()[0]), abs(loops.areas()[0]), rtol=0.01)


def test_small_loops_are_the_islands_and_holes_below_the_area():
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 2:12, 2:12] = True
    mask[0, 6, 6] = False  # one-pixel hole
    mask[0, 16, 16] = True  # one-pixel island
    loops = trace(mask)
    small = small_loops(loops, min_area_mm2=1.0, spacing_xy=(1.0, 1.0))
    assert small.sum() == 2
    assert small_loops(loops, min_area_mm2=0.0, spacing_xy=(1.0, 1.0)).sum() == 0


def test_islands_touching_the_structure_on_a_neighbouring_plane():
    """End caps (also diagonally) and a one-voxel vessel's cross-sections touch the structure on a
    neighbouring plane (26-connectivity); a speck beside it or far from it does not."""
    mask = np.zeros((5, 20, 20), bool)
    mask[1:4, 4:10, 4:10] = True  # a box on planes 1-3
    mask[0, 6, 6] = mask[4, 10, 10] = True  # caps: straight above, diagonally below
    mask[2, 12, 12] = True  # beside the box, two pixels from it: a speck
    mask[0, 17, 2] = True  # far away: a speck
    for k in range(5):
        mask[k, 15 + k % 2, 15] = True  # a vessel, one voxel across, stepping sideways
    loops = trace(mask)
    outer = loops.areas() > 0
    touching = touch_adjacent_planes(loops, outer, mask)
    untouched = [
        np.argwhere(filled(loops.select(np.arange(len(loops)) == i), mask.shape)).tolist()
        for i in np.flatnonzero(outer & ~touching)
    ]
    assert sorted(untouched) == [[[0, 17, 2]], [[2, 12, 12]]]
    assert np.count_nonzero(touching) == 3 + 2 + 5  # the box's planes, the caps, the vessel


def test_touching_islands_match_a_3d_labelling_of_random_masks():
    rng = np.random.default_rng(3)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 12, 3))
        offset = tuple(int(n) for n in rng.integers(0, 4, 3))  # a mask cropped from a larger grid
        mask = rng.random(shape) < 0.2
        loops = trace(mask, offset)
        outer = loops.areas() > 0
        touching = touch_adjacent_planes(loops, outer, mask, offset)
        assert not touching[~outer].any()  # only the loops asked about
        grid_shape = tuple(o + n for o, n in zip(offset, shape, strict=True))
        for i in np.flatnonzero(outer):
            k = int(loops.planes[i]) - offset[0]
            enclosed = filled(loops.select(np.arange(len(loops)) == i), grid_shape)[
                tuple(slice(o, None) for o in offset)
            ][k]
            # The loop's piece: of the pixels it encloses, the 8-connected part holding the first
            # one in raster order (pieces in its holes never reach its top row).
            parts, _ = ndimage.label(enclosed & mask[k], np.ones((3, 3)))
            piece = parts == parts[tuple(np.argwhere(parts)[0])]
            near = ndimage.binary_dilation(piece, np.ones((3, 3), bool))
            expected = any((near & mask[j]).any() for j in (k - 1, k + 1) if 0 <= j < shape[0])
            assert touching[i] == expected, (shape, i)


def test_inside_any_finds_the_loops_inside_others_of_their_plane():
    mask = np.zeros((2, 12, 12), bool)
    mask[:, 1:11, 1:11] = True
    mask[0, 3:8, 3:8] = False  # a hole on plane 0 …
    mask[0, 5, 5] = True  # … with an island in it
    mask[1, 5, 5] = False  # a hole on plane 1 only
    loops = trace(mask)
    areas = loops.areas()
    island = (areas > 0) & (np.abs(areas) < 1)
    holes = areas < 0
    assert inside_any(loops, island, holes).tolist() == island.tolist()
    assert not inside_any(loops, island, holes & (loops.planes == 1)).any()
