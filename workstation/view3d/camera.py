"""The 3D view's camera: looking from a patient direction at a box, the boxes it frames (visible
surfaces, or the whole volume), and the orientation cube in the corner. World coordinates are
patient LPS millimetres.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import vtkCamera, vtkRenderer

from planning.structures import Structure
from planning.surfaces.mesh import Surface
from planning.volume import Volume

#: Camera directions: where the camera looks from (LPS), and which way is up.
VIEWS = {
    "anterior": ((0, -1, 0), (0, 0, 1)),
    "posterior": ((0, 1, 0), (0, 0, 1)),
    "left": ((1, 0, 0), (0, 0, 1)),
    "right": ((-1, 0, 0), (0, 0, 1)),
    "superior": ((0, 0, 1), (0, -1, 0)),
    "inferior": ((0, 0, -1), (0, -1, 0)),
}


#: Share of the viewport's width or height that a framed box fills along its tighter direction;
#: the rest is a margin, half on each side.
FILL = 0.9


def look_from(renderer: vtkRenderer, direction: str, bounds: np.ndarray, aspect: float | None = None) -> None:
    """Point the renderer's camera from `direction` (a key of `VIEWS`) at the centre of `bounds`,
    (3, 2) LPS mm, and fit the box in the view: its projection fills `FILL` of the viewport's
    width or height, whichever is tighter, at `aspect` (width / height; by default the
    renderer's viewport). Perspective and parallel projection both fit."""
    where, up = VIEWS[direction]
    fit_box(
        renderer.GetActiveCamera(), bounds, where, up, viewport_aspect(renderer) if aspect is None else aspect
    )


def fit_box(camera, bounds: np.ndarray, where, up, aspect: float, fill: float = FILL) -> None:
    """Look at the centre of the box `bounds`, (3, 2) mm, from the side `where` (a vector from
    the box toward the camera) with `up` up, from just far enough (perspective; in parallel
    projection, with just the scale) that every corner of the box projects inside `fill` of a
    viewport of `aspect` (width / height), centred. A box without extent is framed as one of
    100 mm."""
    bounds = np.asarray(bounds, float)
    centre = bounds.mean(axis=1)
    where = np.asarray(where, float) / np.linalg.norm(where)
    up = np.asarray(up, float)
    up = up - up.dot(where) * where
    up /= np.linalg.norm(up)
    right = np.cross(-where, up)  # the screen's +x: the direction of projection × up
    half = (bounds[:, 1] - bounds[:, 0]) / 2
    if not np.any(half > 0):
        half = np.full(3, 50.0)
    corners = np.array(np.meshgrid(*[[-h, h] for h in half], indexing="ij")).reshape(3, -1).T
    x, y, z = np.abs(corners @ right), np.abs(corners @ up), corners @ where
    aspect = float(aspect) if aspect and np.isfinite(aspect) and aspect > 0 else 1.0
    angle = np.radians(camera.GetViewAngle()) / 2
    if camera.GetUseHorizontalViewAngle():
        tan_x = np.tan(angle)
        tan_y = tan_x / aspect
    else:
        tan_y = np.tan(angle)
        tan_x = tan_y * aspect
    # a corner at depth (distance - z) in front of the camera shows within the fill when
    # x <= fill · tan_x · (distance - z), and likewise in y
    distance = float(np.max(np.maximum(z + x / (fill * tan_x), z + y / (fill * tan_y))))
    distance = max(distance, float(z.max()) + 1.0)
    camera.SetFocalPoint(*centre)
    camera.SetPosition(*(centre + where * distance))
    camera.SetViewUp(*up)
    camera.SetParallelScale(max(float(y.max()), float(x.max()) / aspect) / fill)


def camera_for_shape(
    camera, aspect: float, shown_aspect: float, framing: tuple[str, np.ndarray] | None = None
) -> vtkCamera:
    """A copy of `camera`, which shows a viewport of `shown_aspect` (width / height), for an image
    of `aspect` (a snapshot of another shape). With `framing`, (direction, bounds) of the
    automatic framing the camera still is, it frames that box afresh for `aspect` (a tall image
    of a view framed wide would cut off its sides). Otherwise (the user's camera) it keeps the
    position and direction and widens the angle (or the parallel scale) just enough that all the
    viewport showed still shows: the image holds the view's, grown in one direction."""
    copy = vtkCamera()
    copy.DeepCopy(camera)
    if framing is not None:
        direction, bounds = framing
        where, up = VIEWS[direction]
        fit_box(copy, bounds, where, up, aspect)
        return copy
    if not (aspect > 0 and shown_aspect > 0):
        return copy
    # the angle is of the height (of the width with a horizontal view angle); the parallel scale
    # always of the height
    if copy.GetUseHorizontalViewAngle():
        angle_grows = max(1.0, aspect / shown_aspect)
    else:
        angle_grows = max(1.0, shown_aspect / aspect)
    if angle_grows > 1.0:
        half = np.radians(copy.GetViewAngle()) / 2
        copy.SetViewAngle(float(np.degrees(2 * np.arctan(np.tan(half) * angle_grows))))
    copy.SetParallelScale(copy.GetParallelScale() * max(1.0, shown_aspect / aspect))
    return copy


def viewport_aspect(renderer: vtkRenderer) -> float:
    """Width / height of the renderer's viewport in its window (1 without a sized window)."""
    window = renderer.GetRenderWindow()
    if window is None:
        return 1.0
    width, height = window.GetSize()
    left, bottom, right, top = renderer.GetViewport()
    width, height = width * (right - left), height * (top - bottom)
    return width / height if width > 0 and height > 0 else 1.0


def surface_bounds(surfaces: dict[Structure, Surface]) -> np.ndarray | None:
    """(3, 2) LPS bounds of the surfaces of visible structures, or None when none shows."""
    boxes = [
        np.stack([surface.points.min(0), surface.points.max(0)], 1)
        for structure, surface in surfaces.items()
        if structure.visible
    ]
    if not boxes:
        return None
    stacked = np.stack(boxes)
    return np.stack([stacked[:, :, 0].min(0), stacked[:, :, 1].max(0)], 1)


def volume_bounds(volume: Volume | None) -> np.ndarray | None:
    """(3, 2) LPS bounds of the volume, or None without one."""
    if volume is None:
        return None
    grid = volume.grid
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in grid.shape[::-1]], indexing="ij")).reshape(3, -1).T
    points = grid.index_to_patient(corners.astype(float))
    return np.stack([points.min(0), points.max(0)], 1)


#: Where the orientation cube is drawn: (x0, y0, x1, y1), fractions of the view from its lower left.
MARKER_VIEWPORT = (0.0, 0.0, 0.14, 0.14)


def orientation_cube() -> vtkAnnotatedCubeActor:
    """A cube labelled with the patient directions (L/R, A/P, S/I) on its faces, in LPS world."""
    cube = vtkAnnotatedCubeActor()
    # LPS world: +x is the patient's left, +y posterior, +z superior
    cube.SetXPlusFaceText("L")
    cube.SetXMinusFaceText("R")
    cube.SetYPlusFaceText("P")
    cube.SetYMinusFaceText("A")
    cube.SetZPlusFaceText("S")
    cube.SetZMinusFaceText("I")
    cube.SetFaceTextScale(0.6)
    cube.GetCubeProperty().SetColor(0.25, 0.3, 0.4)
    return cube


def orientation_marker() -> vtkOrientationMarkerWidget:
    """The orientation cube in the view's lower left corner (`MARKER_VIEWPORT`), turning with
    the camera."""
    marker = vtkOrientationMarkerWidget()
    marker.SetOrientationMarker(orientation_cube())
    marker.SetViewport(*MARKER_VIEWPORT)
    return marker
