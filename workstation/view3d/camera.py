"""The 3D view's camera: looking from a patient direction at a box, the boxes it frames (visible
surfaces, or the whole volume), and the orientation cube in the corner. World coordinates are
patient LPS millimetres.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import vtkRenderer

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


def look_from(renderer: vtkRenderer, direction: str, bounds: np.ndarray) -> None:
    """Point the renderer's camera from `direction` (a key of `VIEWS`) at the centre of `bounds`,
    (3, 2) LPS mm, and fit them in the view."""
    centre = (bounds[:, 0] + bounds[:, 1]) / 2
    size = float(np.linalg.norm(bounds[:, 1] - bounds[:, 0])) or 100.0
    where, up = VIEWS[direction]
    camera = renderer.GetActiveCamera()
    camera.SetFocalPoint(*centre)
    camera.SetPosition(*(centre + np.asarray(where, float) * size * 2))
    camera.SetViewUp(*up)
    renderer.ResetCamera(bounds.ravel())


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


def orientation_marker() -> vtkOrientationMarkerWidget:
    """A cube labelled with the patient directions (L/R, A/P, S/I), for a corner of the view."""
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
    marker = vtkOrientationMarkerWidget()
    marker.SetOrientationMarker(cube)
    marker.SetViewport(0.0, 0.0, 0.14, 0.14)
    return marker
