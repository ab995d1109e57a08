"""Rulers and angles of the 3D view: the VTK widgets the user places with clicks (their points
snap onto the surfaces) or the code places at given points, and their copies for snapshots.

Points are patient LPS millimetres; rulers measure mm, angles degrees.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkInteractionWidgets import (
    vtkAngleRepresentation3D,
    vtkAngleWidget,
    vtkDistanceRepresentation3D,
    vtkDistanceWidget,
    vtkPointHandleRepresentation3D,
)

from planning.measurements import angle_deg, ruler_mm
from workstation.view3d import scene


class MeasurementTools:
    """The rulers and angles of `View3D`, which owns the state this part uses: `_rulers`,
    `_angles` (their VTK widgets), `_placer` (the surfaces points snap onto), `_vtk` (the
    interactor), the `measured` signal and `_render`."""

    def set_ruler_enabled(self, enabled: bool) -> None:
        """Let the user place a ruler with two clicks (points snap onto surfaces)."""
        self._toggle_tool(self._rulers, enabled, self._new_ruler)

    def set_angle_enabled(self, enabled: bool) -> None:
        """Let the user place an angle with three clicks (points snap onto surfaces)."""
        self._toggle_tool(self._angles, enabled, self._new_angle)

    def add_ruler(self, start, end) -> float:
        """Place a ruler between two LPS points (mm); returns its length in mm."""
        widget = self._new_ruler(snap=False)
        representation = widget.GetRepresentation()
        representation.SetPoint1WorldPosition(list(map(float, start)))
        representation.SetPoint2WorldPosition(list(map(float, end)))
        widget.SetWidgetStateToManipulate()
        widget.On()
        self._render()
        length = _ruler_mm(widget)
        self.measured.emit("ruler", length)
        return length

    def add_angle(self, first, vertex, second) -> float:
        """Place an angle at `vertex` between rays to `first` and `second`; returns degrees."""
        widget = self._new_angle(snap=False)
        representation = widget.GetRepresentation()
        representation.SetPoint1WorldPosition(list(map(float, first)))
        representation.SetCenterWorldPosition(list(map(float, vertex)))
        representation.SetPoint2WorldPosition(list(map(float, second)))
        widget.SetWidgetStateToManipulate()
        widget.On()
        self._render()
        angle = _angle_deg(widget)
        self.measured.emit("angle", angle)
        return angle

    def measurements(self) -> list[tuple[str, float]]:
        """Every placed ruler (mm) and angle (degrees)."""
        result = [("ruler", w.GetRepresentation().GetDistance()) for w in self._rulers if _placed(w)]
        result += [
            ("angle", float(np.degrees(w.GetRepresentation().GetAngle()))) for w in self._angles if _placed(w)
        ]
        return result

    def _remove_tools(self) -> None:
        """Remove every ruler and angle (renders nothing itself)."""
        for widget in self._rulers + self._angles:
            widget.Off()
            widget.SetInteractor(None)
        self._rulers.clear()
        self._angles.clear()

    def _measurement_overlays(self) -> list:
        """The placed rulers and angles as distance overlays (lines, dots, labels) for a snapshot."""
        props = []
        for widget in self._rulers:
            if _placed(widget):
                r = widget.GetRepresentation()
                p, q = _world(r.GetPoint1WorldPosition), _world(r.GetPoint2WorldPosition)
                props += scene.distance_overlay(p, q, f"{_ruler_mm(widget):.1f} mm")
        for widget in self._angles:
            if _placed(widget):
                r = widget.GetRepresentation()
                vertex = _world(r.GetCenterWorldPosition)
                label = f"{_angle_deg(widget):.1f}°"
                props += scene.distance_overlay(vertex, _world(r.GetPoint1WorldPosition), label)
                props += scene.distance_overlay(vertex, _world(r.GetPoint2WorldPosition), "")
        return props

    def _toggle_tool(self, widgets: list, enabled: bool, make) -> None:
        if enabled:
            widget = make()
            widget.On()
        else:
            for widget in widgets:
                if not _placed(widget):
                    widget.Off()
        self._render()

    def _new_ruler(self, snap: bool = True):
        representation = vtkDistanceRepresentation3D()
        self._set_handles(representation, snap, ("Point1", "Point2"))
        representation.SetLabelFormat("%-#6.1f mm")
        widget = vtkDistanceWidget()
        widget.SetInteractor(self._vtk)
        widget.SetRepresentation(representation)
        widget.AddObserver(
            "EndInteractionEvent", lambda *_: self.measured.emit("ruler", representation.GetDistance())
        )
        self._rulers.append(widget)
        return widget

    def _new_angle(self, snap: bool = True):
        representation = vtkAngleRepresentation3D()
        self._set_handles(representation, snap, ("Point1", "Center", "Point2"))
        widget = vtkAngleWidget()
        widget.SetInteractor(self._vtk)
        widget.SetRepresentation(representation)
        widget.AddObserver("EndInteractionEvent", lambda *_: self.measured.emit("angle", _angle_deg(widget)))
        self._angles.append(widget)
        return widget

    def _set_handles(self, representation, snap: bool, names) -> None:
        """Give a ruler or angle its handles; with `snap`, their points go onto the surfaces."""
        handle = vtkPointHandleRepresentation3D()
        handle.GetProperty().SetColor(1.0, 0.9, 0.1)
        representation.SetHandleRepresentation(handle)
        representation.InstantiateHandleRepresentation()
        if snap:  # the copies made from the prototype do not keep its point placer
            for name in names:
                getattr(representation, f"Get{name}Representation")().SetPointPlacer(self._placer)


def _placed(widget) -> bool:
    """Whether a ruler or angle widget has all its points (its Manipulate state)."""
    return widget.GetWidgetState() == vtkDistanceWidget.Manipulate


def _world(getter) -> list[float]:
    """A world position from a VTK getter, whichever of its two signatures it has."""
    point = [0.0, 0.0, 0.0]
    getter(point)
    return point


def _ruler_mm(widget) -> float:
    r = widget.GetRepresentation()
    return ruler_mm(_world(r.GetPoint1WorldPosition), _world(r.GetPoint2WorldPosition))


def _angle_deg(widget) -> float:
    r = widget.GetRepresentation()
    try:
        return angle_deg(
            _world(r.GetPoint1WorldPosition),
            _world(r.GetCenterWorldPosition),
            _world(r.GetPoint2WorldPosition),
        )
    except ValueError:
        return 0.0
