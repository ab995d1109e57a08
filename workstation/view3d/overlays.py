"""What the 3D view draws over its surfaces to show a relation between structures: the minimum
distance (line, dots and label, in mm), margin maps (a surface coloured by each point's signed
distance in mm to another structure, with a colour bar) and the fading of every surface outside
a focus. Points are patient LPS millimetres.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

from planning.measurements import ClosestPoints, minimum_distance, surface_distances
from planning.structures import Structure
from workstation.view3d import scene

#: Opacity of the surfaces outside the focus (`set_focus`): what they hide shows through.
FADED_OPACITY = 0.12
#: Opacity of the reference of a margin map, so that the coloured surface inside shows.
REFERENCE_OPACITY = 0.25


class Overlays:
    """The minimum distance, margin maps and focus of `View3D`, which owns the state this part
    uses: `_overlay` (the distance's props), `_closest` and `_closest_between` (its points and
    structures), `_margin_maps` (coloured structure → (reference, max mm)), `_scalar_bar`,
    `_focus`, and the surfaces' `_actors` and `_surfaces`."""

    def set_focus(self, names: list[str] | None) -> None:
        """Fade every surface but those of `names`, so what they hide (a distance between two
        structures inside an organ, a resected part) shows, while one of them is visible; None
        shows them as usual again."""
        self._focus = set(names) if names else None
        for structure in list(self._actors):
            self._restyle(structure, render=False)
        self._render()

    @property
    def focus(self) -> frozenset[str] | None:
        """The names `set_focus` keeps unfaded; None while no surface is faded."""
        return None if self._focus is None else frozenset(self._focus)

    def clear_measurements(self) -> None:
        """Remove rulers, angles, the minimum distance, every margin map and the fading (the
        toolbar's Clear)."""
        self._remove_tools()
        self._clear_overlay()
        for structure in list(self._margin_maps):
            self._unmap(structure)
        self.set_focus(None)

    @property
    def shown_distance(self) -> ClosestPoints | None:
        """The minimum distance drawn, if any."""
        return self._closest

    def clear_distance(self) -> None:
        """Remove the minimum distance's line and label."""
        self._clear_overlay()
        self._render()

    def show_minimum_distance(self, first: str, second: str) -> None:
        """Compute (in the background) and draw the shortest segment between two structures;
        `measured("distance", mm)` follows."""
        a, b = self._require_surface(first), self._require_surface(second)
        self._run(
            minimum_distance,
            (a, b),
            lambda closest: self._draw_distance(closest, first, second),
        )

    def draw_minimum_distance(self, closest: ClosestPoints, first: str, second: str) -> None:
        """Draw closest points computed elsewhere (a job of the main window) like
        `show_minimum_distance` does."""
        self._draw_distance(closest, first, second)

    def show_margin_map(self, name: str, to: str, max_mm: float = 20.0) -> None:
        """Colour structure `name` by each point's distance to structure `to` (red: touching or
        inside, green: `max_mm` or more), computed in the background. `to` turns see-through,
        the coloured surface often lies inside it."""
        structure, target = self._by_name(name), self._by_name(to)
        surface, other = self._require_surface(name), self._require_surface(to)
        previous = self._margin_maps.get(structure, (target, max_mm))[0]
        self._margin_maps[structure] = (target, max_mm)
        for reference in {previous, target}:
            self._restyle(reference, render=False)
        self._run(
            surface_distances,
            (surface, other),
            lambda values: self._apply_margin_map(structure, surface, values, to, max_mm),
            signed=True,
        )

    def clear_margin_map(self, name: str) -> None:
        """Show structure `name` in its colour again, and its reference as usual."""
        self._unmap(self._by_name(name))
        self._render()

    def _unmap(self, structure: Structure | None) -> None:
        target, _ = self._margin_maps.pop(structure, (None, 0.0))
        if target is not None:
            self._restyle(target, render=False)
        actor = self._actors.get(structure)
        if actor is not None:
            scene.show_scalars(actor, None)
            self._restyle(structure, render=False)  # its mesh as the others'
        if not self._margin_maps and self._scalar_bar is not None:
            self.renderer.RemoveViewProp(self._scalar_bar)
            self._scalar_bar = None

    def margin_values(self, name: str) -> np.ndarray | None:
        """The distances (mm) shown on structure `name`'s surface, if a margin map is on."""
        actor = self._actors.get(self._by_name(name))
        if actor is None:
            return None
        scalars = actor.GetMapper().GetInput().GetPointData().GetScalars()
        if scalars is None:
            return None
        return vtk_to_numpy(scalars).copy()

    def _fading(self) -> bool:
        """Whether surfaces outside the focus are faded: while a structure of the focus shows."""
        return self._focus is not None and any(
            (structure := self._by_name(name)) is not None and structure.visible for name in self._focus
        )

    def _follow_visibility(self) -> None:
        """The minimum distance drawn shows while both its structures do; the margin maps' colour
        bar while a coloured structure does."""
        shown = all(structure is not None and structure.visible for structure in self._closest_between)
        for prop in self._overlay:
            prop.SetVisibility(shown)
        if self._scalar_bar is not None:
            self._scalar_bar.SetVisibility(any(structure.visible for structure in self._margin_maps))

    def _draw_distance(self, closest: ClosestPoints, first: str, second: str) -> None:
        self._clear_overlay()
        text = f"{closest.distance_mm:.1f} mm" + (" (overlap)" if closest.overlapping else "")
        self._overlay = scene.distance_overlay(closest.point_a, closest.point_b, text)
        self._closest, self._closest_between = closest, (self._by_name(first), self._by_name(second))
        for prop in self._overlay:
            self.renderer.AddViewProp(prop)
        self._follow_visibility()
        self._render()
        self.measured.emit("distance", closest.distance_mm)

    def _clear_overlay(self) -> None:
        for prop in self._overlay:
            self.renderer.RemoveViewProp(prop)
        self._overlay = []
        self._closest, self._closest_between = None, ()

    def _apply_margin_map(self, structure, surface, values, to: str, max_mm: float) -> None:
        actor = self._actors.get(structure)
        if (
            actor is None
            or self._surfaces.get(structure) is not surface
            or structure not in self._margin_maps
        ):
            return
        table = scene.margin_lookup_table(max_mm)
        if structure in self._mappers:  # the values are the full mesh's points
            actor.SetMapper(self._mappers[structure][0])
        scene.show_scalars(actor, values, table)
        if self._scalar_bar is None:
            self._scalar_bar = vtkScalarBarActor()
            self._scalar_bar.SetNumberOfLabels(5)
            self._scalar_bar.SetMaximumWidthInPixels(90)
            self.renderer.AddViewProp(self._scalar_bar)
        self._scalar_bar.SetLookupTable(table)
        self._scalar_bar.SetTitle(f"mm to {to}")
        self._follow_visibility()
        self._render()
        self.margin_map_shown.emit(structure.name)
