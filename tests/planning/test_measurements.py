"""Measurements against analytic answers: spheres at known gaps, concentric margins, areas."""

from __future__ import annotations

import numpy as np
import pytest

from planning.geometry import Grid
from planning.measurements import (
    angle_deg,
    measure_structure,
    mesh_area_cm2,
    mesh_volume_cc,
    minimum_distance,
    ruler_mm,
    surface_distances,
    vertex_areas,
)
from planning.structures import Mask, Structure
from planning.surfaces.build import surfaces_from_label_map
from planning.surfaces.mesh import Surface

GRID = Grid((60, 64, 96), (1.0, 1.0, 1.0), (-40.0, -30.0, 100.0))


def spheres(*balls) -> dict:
    """Surfaces of labelled balls [(centre LPS, radius mm), ...] on GRID."""
    z, y, x = np.indices(GRID.shape)
    points = GRID.index_to_patient(np.stack([x, y, z], -1).reshape(-1, 3).astype(float))
    labels = np.zeros(len(points), np.uint8)
    for value, (centre, radius) in enumerate(balls, start=1):
        labels[np.linalg.norm(points - np.asarray(centre), axis=1) <= radius] = value
    return surfaces_from_label_map(labels.reshape(GRID.shape), GRID)


@pytest.mark.parametrize("gap_mm", [4.0, 7.3])
def test_minimum_distance_between_two_spheres_at_a_known_gap(gap_mm):
    a_centre, a_radius, b_radius = np.array([-5.0, 2.0, 130.0]), 12.0, 9.0
    direction = np.array([0.8, 0.0, 0.6])
    b_centre = a_centre + direction * (a_radius + b_radius + gap_mm)
    surfaces = spheres((a_centre, a_radius), (b_centre, b_radius))
    closest = minimum_distance(surfaces[1], surfaces[2])
    assert not closest.overlapping
    assert closest.distance_mm == pytest.approx(gap_mm, abs=0.5)
    assert closest.distance_mm == pytest.approx(ruler_mm(closest.point_a, closest.point_b))
    # the closest points lie on the line of centres, on each sphere
    assert np.linalg.norm(closest.point_a - (a_centre + direction * a_radius)) < 1.5
    assert np.linalg.norm(closest.point_b - (b_centre - direction * b_radius)) < 1.5


def test_overlapping_structures_have_zero_distance():
    surfaces = spheres(([0.0, 0.0, 130.0], 10.0))
    inner = spheres(([3.0, 0.0, 130.0], 4.0))[1]
    closest = minimum_distance(surfaces[1], inner)
    assert closest.overlapping and closest.distance_mm == 0.0


def test_margin_map_of_concentric_spheres():
    outer = spheres(([0.0, 0.0, 130.0], 20.0))[1]
    inner = spheres(([0.0, 0.0, 130.0], 11.0))[1]
    margins = surface_distances(inner, outer, signed=True)
    assert np.all(margins < 0)  # inside
    assert np.abs(margins).mean() == pytest.approx(9.0, abs=0.4)
    assert np.abs(margins).max() - np.abs(margins).min() < 1.5


def test_volume_and_area_of_a_sphere():
    surface = spheres(([0.0, 0.0, 130.0], 18.0))[1]
    assert mesh_volume_cc(surface) == pytest.approx(4 / 3 * np.pi * 18**3 / 1000, rel=0.02)
    assert mesh_area_cm2(surface) == pytest.approx(4 * np.pi * 18**2 / 100, rel=0.04)
    mask = np.zeros(GRID.shape, bool)
    mask[10:20, 10:20, 10:20] = True
    box = Structure("Box", Mask.from_full(GRID, mask))
    cube = surfaces_from_label_map(mask.astype(np.uint8), GRID)[1]
    measures = measure_structure(box, cube)
    assert measures.voxel_volume_cc == pytest.approx(1.0)
    assert measures.mesh_volume_cc == pytest.approx(1.0, rel=0.05)


def test_ruler_and_angle_in_millimetres():
    assert ruler_mm([0, 0, 0], [3, 4, 12]) == pytest.approx(13.0)
    assert angle_deg([10, 0, 0], [0, 0, 0], [0, 5, 0]) == pytest.approx(90.0)
    assert angle_deg([1, 1, 0], [0, 0, 0], [1, 0, 0]) == pytest.approx(45.0)
    with pytest.raises(ValueError):
        angle_deg([0, 0, 0], [0, 0, 0], [1, 0, 0])


def test_each_vertex_stands_for_a_third_of_its_triangles():
    square = Surface("Square", [[0, 0, 0], [3, 0, 0], [3, 3, 0], [0, 3, 0]], [[0, 1, 2], [0, 2, 3]])
    assert vertex_areas(square) == pytest.approx([3.0, 1.5, 3.0, 1.5])  # mm²: 2 or 1 of 4.5 mm² / 3
    ball = spheres(([0.0, 0.0, 130.0], 10.0))[1]
    assert vertex_areas(ball).sum() == pytest.approx(100 * mesh_area_cm2(ball))
