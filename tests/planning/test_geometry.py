import numpy as np
import pytest

from planning.errors import GeometryError
from planning.geometry import Grid
from planning.volume import Volume


def oblique_grid() -> Grid:
    angle = np.radians(20)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(angle), np.sin(angle)])
    return Grid(
        (5, 6, 7), (0.8, 0.9, 3.0), (10.0, -20.0, 30.0), np.column_stack([row, col, np.cross(row, col)])
    )


def test_index_patient_round_trip_on_oblique_grid():
    grid = oblique_grid()
    index = np.array([[0, 0, 0], [6, 5, 4], [1.5, 2.25, 3.5]])
    points = grid.index_to_patient(index)
    np.testing.assert_allclose(points[0], grid.origin_xyz)
    # one step along z moves spacing_z mm along the slice normal
    step = grid.index_to_patient([0, 0, 1]) - grid.index_to_patient([0, 0, 0])
    np.testing.assert_allclose(step, 3.0 * grid.slice_normal)
    np.testing.assert_allclose(grid.patient_to_index(points), index, atol=1e-12)
    np.testing.assert_allclose(grid.affine[:3, :3] @ index[2] + grid.affine[:3, 3], points[2])


def test_grid_rejects_bad_geometry():
    with pytest.raises(GeometryError, match="spacing"):
        Grid((2, 2, 2), (1.0, 0.0, 1.0))
    with pytest.raises(GeometryError, match="orthonormal"):
        Grid((2, 2, 2), (1.0, 1.0, 1.0), direction=np.diag([1.0, 2.0, 1.0]))


def test_same_as_and_with_shape():
    grid = oblique_grid()
    assert grid.same_as(Grid(grid.shape, grid.spacing_xyz, grid.origin_xyz, grid.direction))
    moved = Grid(grid.shape, grid.spacing_xyz, (10.0, -20.0, 30.01), grid.direction)
    assert not grid.same_as(moved)
    crop = grid.with_shape((2, 2, 2), offset_zyx=(1, 2, 3))
    np.testing.assert_allclose(crop.origin_xyz, grid.index_to_patient([3, 2, 1]))


def test_volume_sitk_round_trip_keeps_geometry_and_axis_order():
    grid = oblique_grid()
    array = np.arange(np.prod(grid.shape), dtype=np.int16).reshape(grid.shape)
    volume = Volume(array, grid, modality="CT")
    image = volume.to_sitk()
    assert image.GetSize() == (7, 6, 5)  # SimpleITK is (x, y, z)
    assert image.GetPixel(6, 0, 0) == array[0, 0, 6]
    back = Volume.from_sitk(image)
    np.testing.assert_array_equal(back.array, array)
    assert back.grid.same_as(grid, tolerance_mm=1e-9)


def test_volume_checks_shapes():
    with pytest.raises(GeometryError, match="does not match"):
        Volume(np.zeros((2, 3, 4)), Grid((2, 3, 5), (1, 1, 1)))
