"""Framing a box with the 3D view's camera, in perspective and parallel projection: its
projected corners fill the viewport's tighter direction but for the margin, never beyond."""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.vtkRenderingCore import vtkCamera

from workstation.view3d.camera import FILL, VIEWS, fit_box

BOXES = {
    "wide and thin": np.array([[-100.0, 100.0], [-5.0, 5.0], [-10.0, 10.0]]),
    "long spine": np.array([[-12.0, 12.0], [40.0, 70.0], [-300.0, 150.0]]),
    "cube": np.array([[10.0, 40.0], [-20.0, 10.0], [0.0, 30.0]]),
}


def projected_corners(camera: vtkCamera, bounds: np.ndarray, aspect: float) -> np.ndarray:
    """Normalised device (x, y) of the box's 8 corners: ±1 is the viewport's edge."""
    matrix = camera.GetCompositeProjectionTransformMatrix(aspect, -1, 1)
    m = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
    corners = np.array(np.meshgrid(*bounds, indexing="ij")).reshape(3, -1).T
    clip = np.c_[corners, np.ones(8)] @ m.T
    return clip[:, :2] / clip[:, 3:]


@pytest.mark.parametrize("parallel", [False, True], ids=["perspective", "parallel"])
@pytest.mark.parametrize("aspect", [0.5, 1.0, 2.2])
@pytest.mark.parametrize("direction", list(VIEWS))
@pytest.mark.parametrize("name", list(BOXES))
def test_a_box_fills_the_tighter_direction_of_the_viewport(name, direction, aspect, parallel):
    bounds = BOXES[name]
    camera = vtkCamera()
    camera.SetParallelProjection(parallel)
    fit_box(camera, bounds, *VIEWS[direction], aspect)
    ndc = projected_corners(camera, bounds, aspect)
    reach = np.abs(ndc).max(axis=0)  # how far toward the edges, in x and in y
    assert reach.max() == pytest.approx(FILL, abs=1e-6)
    assert np.all(reach <= FILL + 1e-6)
    assert ndc.max(axis=0) == pytest.approx(-ndc.min(axis=0), abs=1e-9)  # centred
    centre = bounds.mean(axis=1)
    assert camera.GetFocalPoint() == pytest.approx(centre)
    direction_of_projection = -np.asarray(VIEWS[direction][0], float)
    assert camera.GetDirectionOfProjection() == pytest.approx(direction_of_projection)


def test_a_wide_box_seen_from_the_front_fills_the_width_of_a_wide_viewport():
    camera = vtkCamera()
    bounds = BOXES["wide and thin"]
    fit_box(camera, bounds, *VIEWS["anterior"], 2.2)
    ndc = projected_corners(camera, bounds, 2.2)
    assert ndc[:, 0].max() - ndc[:, 0].min() == pytest.approx(2 * FILL)  # the whole width but the margin
    assert ndc[:, 0].max() == pytest.approx(-ndc[:, 0].min())  # centred


def test_the_horizontal_view_angle_and_a_box_without_extent_are_framed_too():
    camera = vtkCamera()
    camera.SetUseHorizontalViewAngle(True)
    bounds = BOXES["long spine"]
    fit_box(camera, bounds, *VIEWS["left"], 0.5)
    assert np.abs(projected_corners(camera, bounds, 0.5)).max() == pytest.approx(FILL)
    point = np.array([[5.0, 5.0], [1.0, 1.0], [2.0, 2.0]])
    fit_box(camera, point, *VIEWS["anterior"], 1.0)
    assert camera.GetFocalPoint() == pytest.approx((5.0, 1.0, 2.0))
    assert np.isfinite(camera.GetDistance()) and camera.GetDistance() > 0
