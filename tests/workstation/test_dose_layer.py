"""The dose wash: sampled axis by axis when the dose grid's axes are parallel to the image's, with
the same doses as point-by-point trilinear sampling (`planning.dose.Dose.sample`)."""

import numpy as np
import pytest

from planning.dose import Dose
from planning.geometry import Grid
from workstation.app.dose_layer import _STOPS, WASH_ALPHA, DoseLayer
from workstation.app.slicing import orientation_for

IMAGE = Grid((40, 128, 120), (0.9, 0.9, 2.5), (-50.0, -60.0, -40.0))


def point_by_point(layer: DoseLayer, orientation, index: int) -> np.ndarray:
    maps, layer._axis_maps = layer._axis_maps, None
    try:
        return layer.values(orientation, index)
    finally:
        layer._axis_maps = maps


@pytest.mark.parametrize(
    ("direction", "origin"),
    [(np.eye(3), (-40.3, -55.1, -37.0)), (np.diag([1.0, -1.0, -1.0]), (-40.3, 60.1, 40.0))],
    ids=["same", "flipped"],
)
def test_parallel_grids_are_sampled_axis_by_axis_with_the_same_doses(direction, origin):
    # a coarser dose grid, offset by fractions of a voxel and reaching beyond the image on one side
    dose_grid = Grid((30, 50, 45), (2.5, 2.5, 3.0), origin, direction)
    doses = np.random.default_rng(0).random(dose_grid.shape).astype(np.float32) * 60
    layer = DoseLayer(Dose(doses, dose_grid), IMAGE)
    assert layer._axis_maps is not None
    shown = []
    for view in ("axial", "coronal", "sagittal"):
        orientation = orientation_for(IMAGE, view)
        for index in (0, 7, 20, orientation.shape[0] - 1):
            fast = layer.values(orientation, index)
            np.testing.assert_allclose(fast, point_by_point(layer, orientation, index), atol=1e-4)
            shown.append(fast.ravel())
    shown = np.concatenate(shown)
    assert (shown == 0).mean() > 0.1 and (shown > 0).mean() > 0.1  # inside and beyond the dose


def test_a_rotated_dose_grid_is_sampled_point_by_point():
    angle = np.radians(10)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    dose_grid = Grid((30, 50, 45), (2.5, 2.5, 3.0), (-40.0, -55.0, -37.0), rotation)
    layer = DoseLayer(Dose(np.ones(dose_grid.shape, np.float32), dose_grid), IMAGE)
    assert layer._axis_maps is None
    assert layer.values(orientation_for(IMAGE, "axial"), 5).max() == pytest.approx(1.0)


def whole_dose_reference(layer: DoseLayer, orientation, index: int) -> np.ndarray:
    """The earlier axis-by-axis sampling, for comparison: z, y, x in turn over the whole float64
    dose, so that coronal and sagittal slices interpolate a 3D array at full image size."""
    rows, cols = orientation.shape[1:]
    r, c = np.arange(rows, dtype=float), np.arange(cols, dtype=float)
    image_index = {
        orientation.normal_axis: np.array([float(index)]),
        orientation.row_axis: rows - 1 - r if orientation.flip_rows else r,
        orientation.col_axis: cols - 1 - c if orientation.flip_cols else c,
    }
    values = layer.dose.array.astype(np.float64)
    inside = np.ones((1, 1, 1), bool)
    for axis, (scale, offset) in enumerate(layer._axis_maps):
        t = scale * image_index[axis] + offset
        n = values.shape[axis]
        low = np.floor(t).astype(int)
        weight = (t - low).reshape([-1 if a == axis else 1 for a in range(3)])
        below = np.take(values, np.clip(low, 0, n - 1), axis=axis)
        above = np.take(values, np.clip(low + 1, 0, n - 1), axis=axis)
        values = below + weight * (above - below)
        inside = inside & ((t >= -0.5) & (t <= n - 0.5)).reshape(weight.shape)
    plane = np.squeeze(np.where(inside, values, 0.0), axis=orientation.normal_axis)
    return plane if orientation.row_axis < orientation.col_axis else plane.T


def reference_wash(layer: DoseLayer, values: np.ndarray) -> np.ndarray:
    """The earlier colouring of a slice's doses into premultiplied ARGB32 pixels."""
    fraction = values / layer.maximum
    colours = _STOPS[np.clip((fraction * 10).astype(int) - 1, 0, 9)] * WASH_ALPHA
    packed = (
        (int(255 * WASH_ALPHA) << 24)
        | (colours[..., 0].astype(np.uint32) << 16)
        | (colours[..., 1].astype(np.uint32) << 8)
        | colours[..., 2].astype(np.uint32)
    )
    return np.where(fraction >= layer.threshold, packed, 0)


def test_every_view_of_an_oblique_uneven_grid_has_the_doses_and_colours_of_the_whole_dose_sampling():
    # image axes 25° off the patient axes, uneven spacing and sizes; the dose grid shares the
    # axes but runs the other way along y, is offset by fractions of a voxel and overhangs the image
    angle = np.radians(25)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    image = Grid((23, 41, 37), (1.3, 0.7, 2.1), (-20.0, -12.0, -25.0), tilt)
    dose_direction = tilt @ np.diag([1.0, -1.0, 1.0])
    dose_origin = image.index_to_patient(np.array([[-2.35, 44.6, 3.4]]))[0]
    dose_grid = Grid((9, 17, 14), (2.9, 2.2, 3.3), tuple(dose_origin), dose_direction)
    doses = np.random.default_rng(1).random(dose_grid.shape).astype(np.float32) * 70
    layer = DoseLayer(Dose(doses, dose_grid), image, threshold=0.2)
    assert layer._axis_maps is not None
    shown = []
    for view in ("axial", "coronal", "sagittal"):
        orientation = orientation_for(image, view)
        for index in range(orientation.n_slices):
            expected = whole_dose_reference(layer, orientation, index)
            np.testing.assert_allclose(layer.values(orientation, index), expected, rtol=1e-12, atol=1e-12)
            layer.image(orientation, index)
            np.testing.assert_array_equal(layer._planes[(view, index)][1], reference_wash(layer, expected))
            shown.append(expected.ravel())
    shown = np.concatenate(shown)
    assert (shown == 0).mean() > 0.1 and (shown > 0).mean() > 0.1  # inside and beyond the dose


def wash_pixels(image) -> np.ndarray:
    """The pixels of a wash QImage as drawn: (height, width) premultiplied ARGB32 values."""
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    rows = np.frombuffer(bits, np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    return rows[:, : image.width()].copy()


def test_the_wash_drawn_in_a_view_whose_rows_follow_a_later_array_axis_is_its_doses():
    # index x runs along patient y and index y along patient x (as a sagittal acquisition may
    # store it): the axial view's rows follow array axis 2 and its columns array axis 1
    swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image = Grid((6, 30, 20), (1.0, 1.5, 2.0), (-10.0, -15.0, -6.0), swap)
    doses = np.random.default_rng(2).random(image.shape).astype(np.float32) * 60
    layer = DoseLayer(Dose(doses, image), image)
    orientation = orientation_for(image, "axial")
    assert orientation.row_axis > orientation.col_axis
    drawn = wash_pixels(layer.image(orientation, 3))
    np.testing.assert_array_equal(drawn, reference_wash(layer, layer.values(orientation, 3)))
