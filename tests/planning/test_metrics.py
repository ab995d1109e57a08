"""Comparison metrics: equal to DeepMind's surface-distance and platipy, analytic checks."""

import math

import numpy as np
import pytest

from planning import metrics
from planning.geometry import Grid
from planning.structures import Mask

GRID = Grid((36, 70, 80), (0.9, 1.3, 2.5), (10.0, -20.0, 5.0))


def _points():
    z, y, x = np.meshgrid(*[np.arange(n) for n in GRID.shape], indexing="ij")
    return GRID.index_to_patient(np.stack([x, y, z], -1).reshape(-1, 3).astype(float)).reshape(*GRID.shape, 3)


POINTS = _points()
CENTRE = POINTS.reshape(-1, 3).mean(0)


def ellipsoid(offset, radii, holes=0.0, seed=0):
    inside = (((POINTS - CENTRE - offset) / np.asarray(radii)) ** 2).sum(-1) <= 1
    if holes:
        inside &= np.random.default_rng(seed).random(GRID.shape) > holes
    return inside


PAIRS = [
    (ellipsoid([0, 0, 0], [20, 15, 25]), ellipsoid([3, -2, 2.5], [18, 17, 22])),
    (
        ellipsoid([0, 0, 0], [12, 20, 18], holes=0.05, seed=1),
        ellipsoid([-4, 1, 0], [14, 18, 20], holes=0.05, seed=2),
    ),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_equal_to_deepmind_surface_distance(pair):
    sd = pytest.importorskip("surface_distance")
    a, b = PAIRS[pair]
    theirs = sd.compute_surface_distances(a, b, GRID.spacing_zyx)
    ours = metrics.surface_distances(Mask.from_full(GRID, a), Mask.from_full(GRID, b))
    assert np.allclose(ours.a_to_b, theirs["distances_gt_to_pred"], rtol=1e-9, atol=1e-9)
    assert np.allclose(ours.areas_b.sum(), theirs["surfel_areas_pred"].sum(), rtol=1e-9)
    for percent in (100, 95, 50):
        assert metrics.hausdorff(ours, percent) == pytest.approx(
            sd.compute_robust_hausdorff(theirs, percent), rel=1e-6
        )
    assert metrics.directed_mean_distances(ours) == pytest.approx(
        sd.compute_average_surface_distance(theirs), rel=1e-6
    )
    for tau in (0.5, 1, 2, 5):
        assert metrics.surface_dice(ours, tau) == pytest.approx(
            sd.compute_surface_dice_at_tolerance(theirs, tau), rel=1e-6
        )
    assert metrics.dice(Mask.from_full(GRID, a), Mask.from_full(GRID, b)) == pytest.approx(
        sd.compute_dice_coefficient(a, b), rel=1e-9
    )


def test_volume_metrics_equal_platipy_and_distances_differ_as_documented(monkeypatch):
    import matplotlib
    import matplotlib.cm

    # platipy 0.4.1 imports matplotlib.cm.get_cmap, removed in matplotlib 3.9
    monkeypatch.setattr(matplotlib.cm, "get_cmap", matplotlib.colormaps.get_cmap, raising=False)
    monkeypatch.setattr(np, "product", np.prod, raising=False)  # and numpy.product, gone in numpy 2
    comparison = pytest.importorskip("platipy.imaging.label.comparison")
    import SimpleITK as sitk

    a, b = PAIRS[0]
    images = []
    for array in (a, b):
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.SetSpacing(GRID.spacing_xyz)
        images.append(image)
    volume = comparison.compute_volume_metrics(*images)
    ours = metrics.compare(Mask.from_full(GRID, a), Mask.from_full(GRID, b))
    assert ours.dice == pytest.approx(volume["DSC"], rel=1e-9)
    assert ours.jaccard == pytest.approx(volume["fractionOverlap"], rel=1e-9)
    assert ours.sensitivity == pytest.approx(volume["truePositiveFraction"], rel=1e-9)
    assert ours.reference_cc == pytest.approx(comparison.compute_volume(images[0]), rel=1e-9)
    # platipy's Hausdorff is ITK's voxel-set distance: a different definition, within a voxel
    assert ours.hausdorff_mm == pytest.approx(
        comparison.compute_metric_hd(*images), abs=max(GRID.spacing_xyz)
    )


def test_offset_spheres_analytic():
    grid = Grid((60, 100, 100), (1.0, 1.0, 1.0))
    z, y, x = np.mgrid[0:60, 0:100, 0:100]
    r, shift = 15, 6
    a = (x - 50) ** 2 + (y - 50) ** 2 + (z - 30) ** 2 <= r * r
    b = (x - 50 - shift) ** 2 + (y - 50) ** 2 + (z - 30) ** 2 <= r * r
    result = metrics.compare(Mask.from_full(grid, a), Mask.from_full(grid, b), tolerance_mm=1.0)
    assert result.hausdorff_mm == pytest.approx(shift, abs=0.6)
    assert result.centroid_distance_mm == pytest.approx(shift, abs=1e-9)
    # lens volume of two spheres of radius r at distance d: π(4r + d)(2r − d)² / 12
    lens = math.pi * (4 * r + shift) * (2 * r - shift) ** 2 / 12
    assert result.dice == pytest.approx(lens / (4 / 3 * math.pi * r**3), abs=0.01)
    assert result.volume_difference_cc == pytest.approx(0, abs=1e-9)
    # per plane, A's circle is farther than 1 mm from B's circle on most of its length
    assert (
        0
        < result.added_path_length_mm
        < sum(2 * math.pi * math.sqrt(max(r * r - dz * dz, 0)) for dz in range(-r, r + 1))
    )


def test_added_path_length_of_shifted_square():
    grid = Grid((3, 60, 60), (0.5, 0.5, 3.0))
    a = np.zeros(grid.shape, bool)
    b = np.zeros(grid.shape, bool)
    a[1, 10:50, 10:50] = True  # 20 × 20 mm
    b[1, 10:50, 20:60] = True  # shifted 5 mm along x
    apl = metrics.added_path_length(Mask.from_full(grid, a), Mask.from_full(grid, b), tolerance_mm=2.0)
    # left edge 20 mm + top/bottom 2 × 3 mm + right edge inside B farther than 2 mm: 16 mm
    assert apl == pytest.approx(42.0, abs=2.0)
    assert metrics.added_path_length(Mask.from_full(grid, a), Mask.from_full(grid, a)) == 0.0


def test_empty_structures_have_documented_values():
    full = Mask.from_full(GRID, PAIRS[0][0])
    empty = Mask(GRID)
    both = metrics.compare(empty, empty)
    assert (both.dice, both.jaccard, both.surface_dice, both.sensitivity) == (1.0, 1.0, 1.0, 1.0)
    assert (both.hausdorff_mm, both.hd95_mm, both.mean_surface_distance_mm, both.added_path_length_mm) == (
        0,
        0,
        0,
        0,
    )
    one = metrics.compare(full, empty)
    assert (one.dice, one.jaccard, one.surface_dice, one.sensitivity, one.precision) == (0, 0, 0, 0, 0)
    assert math.isinf(one.hausdorff_mm) and math.isinf(one.hd95_mm) and math.isinf(one.centroid_distance_mm)
    assert one.added_path_length_mm > 0 and one.relative_volume_difference == -1.0
    other = metrics.compare(empty, full)
    assert other.added_path_length_mm == 0 and math.isinf(other.relative_volume_difference)
    for value in (*both.as_dict().values(), *one.as_dict().values(), *other.as_dict().values()):
        assert not math.isnan(value)


def test_area_table_matches_deepmind_table_and_2d_lengths():
    sd = pytest.importorskip("surface_distance")
    from surface_distance import lookup_tables

    for spacing in ((1.0, 1.0, 1.0), (2.5, 1.3, 0.9)):
        theirs = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
        kernel = lookup_tables.ENCODE_NEIGHBOURHOOD_3D_KERNEL
        ours = metrics._area_table(spacing)
        for code in range(256):
            cube = [(code >> (4 * dz + 2 * dy + dx)) & 1 for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)]
            their_code = sum(
                kernel[dz, dy, dx] * cube[4 * dz + 2 * dy + dx]
                for dz in (0, 1)
                for dy in (0, 1)
                for dx in (0, 1)
            )
            assert ours[code] == pytest.approx(theirs[their_code], rel=1e-12, abs=1e-12)
    assert sd is not None
