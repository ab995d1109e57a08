"""Contouring as a clinician does it, in the real window: closing a freehand outline where it
started, painting a hidden structure, re-interpolating after editing a key slice..."""

import numpy as np
import pytest
from PyQt6.QtCore import QPoint
from support.app import drag, show_sample

pytestmark = pytest.mark.gui


def _dense(view, corners_zyx, steps: int = 8) -> list[QPoint]:
    """Widget points along the polyline through `corners_zyx`, `steps` per side."""
    points = [view.voxel_to_widget(np.asarray(c, float)) for c in corners_zyx]
    path = []
    for a, b in zip(points, points[1:], strict=False):
        for t in np.linspace(0.0, 1.0, steps, endpoint=False):
            path.append(QPoint(round(a.x() + (b.x() - a.x()) * t), round(a.y() + (b.y() - a.y()) * t)))
    path.append(QPoint(round(points[-1].x()), round(points[-1].y())))
    return path


@pytest.mark.parametrize("view_name", ["axial", "coronal"])
def test_a_freehand_outline_ending_where_it_started_is_closed_and_filled(window, view_name):
    """Drawing a closed loop by hand ends back at its start: the release lies within a click's
    reach of the press, yet it is a drag, and the outline is filled as one undo step."""
    case = show_sample(window)
    name = window.add_structure("Loop")
    window.tools.activate("draw")
    view = window.views[view_name]
    k = view.slice_index
    centre = np.array([20, 64, 64], float)
    centre[view.orientation.normal_axis] = k
    corners = []
    for d_row, d_col in [(-8, -8), (-8, 8), (8, 8), (8, -8), (-8, -8)]:
        display = view.orientation.from_voxel(centre)
        corners.append(view.orientation.to_voxel(k, display[1] + d_row, display[2] + d_col))
    steps = len(case.history.commands)
    drag(view, _dense(view, corners))
    drawn = case.structures[name].mask.full()
    plane = view.orientation.slice_of(drawn, k)
    assert 15 * 15 <= plane.sum() <= 17 * 17
    assert np.argwhere(drawn)[:, view.orientation.normal_axis].tolist() == [k] * int(drawn.sum())
    assert len(case.history.commands) == steps + 1 and case.history.undo_text == f"Draw {name}"
    assert not window.tools.tools["draw"]._points  # nothing left half-drawn
