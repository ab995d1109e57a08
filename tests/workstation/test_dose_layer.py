"""The dose wash: sampled axis by axis when the dose grid's axes are parallel to the image's, with
the same doses as point-by-point trilinear sampling (`planning.dose.Dose.sample`)."""

import numpy as np
import pytest

from planning.dose import Dose
from planning.geometry import Grid
from workstation.app.dose_layer import DoseLayer
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
