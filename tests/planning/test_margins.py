"""Margins in mm: analytic spheres and boxes, directions through the direction matrix, limits."""

import numpy as np
import pytest

from planning import margin_distances
from planning.geometry import Grid
from planning.margins import Margins, expand, prv, prv_name, ring, shrink
from planning.structures import Mask, Structure


def _points(grid):
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    index = np.stack([x, y, z], -1).reshape(-1, 3).astype(float)
    return grid.index_to_patient(index).reshape(*grid.shape, 3)


def sphere(grid, radius_mm, centre=(0, 0, 0)):
    p = _points(grid)
    return Mask.from_full(grid, ((p - np.asarray(centre)) ** 2).sum(-1) <= radius_mm**2)


def box(grid, lo_mm, hi_mm):
    p = _points(grid)
    return Mask.from_full(grid, np.all((p >= lo_mm) & (p <= hi_mm), axis=-1))


GRID_113 = Grid((44, 110, 110), (1.0, 1.0, 3.0), (-55.0, -55.0, -66.0))


@pytest.mark.parametrize("radius", [20, 30])
@pytest.mark.parametrize("margin", [3, 5, 7, 10, 15])
def test_sphere_expansion_matches_analytic_volume_on_1x1x3_grid(radius, margin):
    centre = (0.3, -0.4, 1.1)
    grown = expand(sphere(GRID_113, radius, centre), margin)
    analytic_cc = 4 / 3 * np.pi * (radius + margin) ** 3 / 1000
    assert grown.volume_cc == pytest.approx(analytic_cc, rel=0.01)


@pytest.mark.parametrize("margin", [5, 7, 10])
def test_round_surface_between_slices_is_not_cut_short(margin):
    # A 15 mm sphere centred on a voxel: its last slices hold discs of 9 mm and one pixel. Placing
    # the surface between them by the in-plane distances joins them with a cone, ~0.6 mm inside
    # the sphere, and the grown sphere came out 1.4–2.3 % short; interpolating R² − ρ² keeps it.
    grown = expand(sphere(GRID_113, 15), margin)
    assert grown.volume_cc == pytest.approx(4 / 3 * np.pi * (15 + margin) ** 3 / 1000, rel=0.01)


@pytest.mark.parametrize("margin", [3, 7, 15])
def test_small_sphere_is_limited_by_slice_spacing(margin):
    # A 10 mm sphere on 3 mm slices: where its poles lie between slices is lost in the mask (up to
    # 3 mm); this centre puts both poles 2.1 and 2.9 mm past the last slice, the worst case.
    grown = expand(sphere(GRID_113, 10, (0.3, -0.4, 1.1)), margin)
    assert grown.volume_cc == pytest.approx(4 / 3 * np.pi * (10 + margin) ** 3 / 1000, rel=0.03)


def test_sphere_on_isotropic_grid_within_half_percent():
    grid = Grid((70, 70, 70), (1.0, 1.0, 1.0), (-35.0, -35.0, -35.0))
    grown = expand(sphere(grid, 10, (0.2, 0.1, -0.3)), 3)
    assert grown.volume_cc == pytest.approx(4 / 3 * np.pi * 13**3 / 1000, rel=0.005)


@pytest.mark.parametrize("margin", [3, 5, 10])
def test_contraction_of_sphere(margin):
    shrunk = shrink(sphere(GRID_113, 30, (0.3, -0.4, 1.1)), margin)
    assert shrunk.volume_cc == pytest.approx(4 / 3 * np.pi * (30 - margin) ** 3 / 1000, rel=0.015)


@pytest.mark.parametrize("margin_mm, width_px", [(0.4, 40), (0.9, 38), (1.9, 36), (3.0, 34), (4.9, 30)])
def test_contraction_of_a_flat_face_removes_the_voxels_within_the_margin(margin_mm, width_px):
    """A face lies half a voxel outside its outer voxel centres: a contraction removes the k-th
    layer once the margin passes k − ½ voxels (here within 0.15 voxel: see margins.py)."""
    grid = Grid((40, 80, 80), (1.0, 1.0, 1.0))
    box = np.zeros(grid.shape, bool)
    box[5:35, 20:60, 20:60] = True
    shrunk = shrink(Mask.from_full(grid, box), margin_mm)
    assert shrunk.array.shape[1:] == (width_px, width_px)


@pytest.mark.parametrize("margin, slices", [(1, 0), (2, 1), (4.5, 2), (5, 2), (7, 2), (8, 3)])
def test_flat_end_grows_by_the_slab_convention(margin, slices):
    # a cylinder contoured on 3 mm slices stands for slabs ±1.5 mm around them: a margin adds
    # the slices whose centres lie within 1.5 mm + margin of the last one (5 mm: two slices)
    grid = Grid((30, 40, 40), (1.0, 1.0, 3.0), (-20.0, -20.0, -45.0))
    p = _points(grid)
    cylinder = Mask.from_full(grid, (p[..., 0] ** 2 + p[..., 1] ** 2 <= 64) & (np.abs(p[..., 2]) <= 9.1))
    grown = expand(cylinder, margin).full().any(axis=(1, 2))
    assert grown.sum() == cylinder.full().any(axis=(1, 2)).sum() + 2 * slices
    shrunk = shrink(expand(cylinder, margin), margin).full().any(axis=(1, 2))
    assert shrunk.sum() == cylinder.full().any(axis=(1, 2)).sum()


def _extent_mm(mask):
    p = _points(mask.grid)[mask.full()]
    return p.min(0), p.max(0)


@pytest.mark.parametrize("flip", [False, True])
def test_anisotropic_box_expansion_gives_expected_box(flip):
    direction = np.diag([1.0, -1.0, -1.0]) if flip else np.eye(3)
    origin = (-40.0, 40.0, 60.0) if flip else (-40.0, -40.0, -60.0)
    grid = Grid((40, 80, 80), (1.0, 1.0, 3.0), origin, direction)
    lo, hi = np.array([-10.0, -8.0, -12.0]), np.array([12.0, 6.0, 15.0])
    margins = Margins(right=2, left=7, anterior=4, posterior=0, superior=9, inferior=3)
    grown = expand(box(grid, lo, hi), margins)
    expected = box(grid, lo - [2, 4, 3], hi + [7, 0, 9])
    got_lo, got_hi = _extent_mm(grown)
    exp_lo, exp_hi = _extent_mm(expected)
    spacing = np.array(grid.spacing_xyz)
    assert np.all(np.abs(got_lo - exp_lo) <= spacing + 1e-6)
    assert np.all(np.abs(got_hi - exp_hi) <= spacing + 1e-6)
    # the faces are flat: over the original box, each face slab is covered up to its last voxel
    full = grown.full()
    for axis in range(3):
        slab_lo, slab_hi = lo.copy(), hi.copy()
        slab_lo[axis], slab_hi[axis] = exp_lo[axis] + spacing[axis], exp_hi[axis] - spacing[axis]
        assert np.all(full[box(grid, slab_lo, slab_hi).full()])
    # directions are patient directions: superior grew 9 mm, inferior 3 mm (not swapped by the flip)
    assert got_hi[2] > hi[2] + 6 and got_lo[2] > lo[2] - 6


@pytest.mark.parametrize("operation", [expand, shrink])
def test_slabs_of_two_slices_give_the_mask_computed_in_one_piece(monkeypatch, operation):
    # two spheres, one cut by the grid's last slice, and a one-voxel line to the edge, on a flipped
    # grid with uneven spacing and six different margins
    grid = Grid((36, 40, 38), (1.0, 1.2, 2.5), (-19.0, 24.0, 45.0), np.diag([1.0, -1.0, -1.0]))
    full = sphere(grid, 9, (-6, 3, 10)).full() | sphere(grid, 6, (8, -5, -38)).full()
    full[20, 25, :] = True
    mask = Mask.from_full(grid, full)
    margins = Margins(right=2, left=6, anterior=0, posterior=3, superior=8, inferior=1)
    monkeypatch.setattr(margin_distances, "_SLAB_VOXELS", grid.shape[1] * grid.shape[2] * 2)
    in_slabs = operation(mask, margins)
    monkeypatch.setattr(margin_distances, "_SLAB_VOXELS", full.size)
    whole = operation(mask, margins)
    assert in_slabs.offset == whole.offset
    np.testing.assert_array_equal(in_slabs.array, whole.array)


def test_directional_margin_edges_are_rounded_not_square():
    grid = Grid((30, 60, 60), (1.0, 1.0, 1.0), (-30.0, -30.0, -15.0))
    grown = expand(box(grid, [-5, -5, -5], [5, 5, 5]), 8)
    full = grown.full()
    p = _points(grid)
    corner = np.argmin(((p - [12.9, 12.9, 0]) ** 2).sum(-1))  # 8 mm diagonally from the edge: out
    assert not full.ravel()[corner]
    assert full.ravel()[np.argmin(((p - [12.9, 0, 0]) ** 2).sum(-1))]


def test_margin_limited_to_body_never_leaves_it():
    grid = Grid((30, 80, 80), (1.0, 1.0, 2.5), (-40.0, -40.0, -37.5))
    body = sphere(grid, 30)
    target = sphere(grid, 8, (20, 0, 0))  # near the body's edge
    grown = expand(target, 15, within=body)
    assert not np.any(grown.full() & ~body.full())
    assert grown.volume_cc < expand(target, 15).volume_cc


def test_ring_and_prv():
    grid = Grid((40, 80, 80), (1.0, 1.0, 1.0), (-40.0, -40.0, -20.0))
    organ = Structure("SpinalCord", sphere(grid, 5))
    shell = ring(organ.mask, 2, 6)
    assert not np.any(shell.full() & expand(organ.mask, 1.5).full())
    analytic = 4 / 3 * np.pi * (11**3 - 7**3) / 1000
    assert shell.volume_cc == pytest.approx(analytic, rel=0.05)
    cord_prv = prv(organ, 5)
    assert cord_prv.name == "SpinalCord_PRV05"
    assert [prv_name("Lens_L", mm) for mm in (2.5, 3.5, 0.4, 12)] == [
        "Lens_L_PRV03",
        "Lens_L_PRV04",
        "Lens_L_PRV00",
        "Lens_L_PRV12",
    ]
    assert cord_prv.recipe["op"] == "expand"
    assert cord_prv.volume_cc == pytest.approx(4 / 3 * np.pi * 10**3 / 1000, rel=0.05)

    # kept inside the body, and the recipe says so: a rebuild keeps the limit
    half = np.zeros(grid.shape, bool)
    half[:, :, :40] = True  # the body ends at the cord's centre plane (x = 0)
    body = Structure("BODY", Mask.from_full(grid, half))
    limited = prv(organ, 5, within=body)
    assert limited.recipe["within"] == "BODY" and "∩ BODY" in limited.description
    assert not (limited.mask.full() & ~half).any()
    assert limited.volume_cc == pytest.approx(cord_prv.volume_cc / 2, rel=0.1)


def test_empty_and_zero_margins():
    grid = Grid((5, 5, 5), (1.0, 1.0, 1.0))
    empty = Mask(grid)
    assert expand(empty, 5).is_empty and shrink(empty, 5).is_empty
    one = sphere(grid, 0.5, (2, 2, 2))
    assert expand(one, 0).voxel_count == one.voxel_count
    with pytest.raises(ValueError):
        Margins(right=-1)


@pytest.mark.parametrize(("direction_z", "side"), [(1.0, "superior"), (-1.0, "inferior")])
def test_an_expansion_cut_by_the_end_of_the_images_is_named(caplog, direction_z, side):
    """A PTV grown past the last slice is cut there: planners must know which side."""
    grid = Grid((20, 60, 60), (1.0, 1.0, 3.0), (-30.0, -30.0, 0.0), np.diag([1.0, 1.0, direction_z]))
    last_slice_z = 19 * 3.0 * direction_z
    near_end = sphere(grid, 8, (0, 0, last_slice_z - 6 * direction_z))
    with caplog.at_level("WARNING", logger="planning.margins"):
        expand(near_end, 5)
    assert [r.getMessage() for r in caplog.records] == [
        f"expansion by 5 mm reaches the edge of the images on the {side} side and is cut there: the "
        "images end before the margin does"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="planning.margins"):
        expand(sphere(grid, 8, (0, 0, 10 * 3.0 * direction_z)), 5)
        expand(near_end, Margins(superior=0, inferior=0, right=5, left=5, anterior=5, posterior=5))
    assert caplog.records == []
