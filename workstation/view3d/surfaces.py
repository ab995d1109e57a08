"""The 3D view's structure surfaces, in patient LPS millimetres, and their styling (colour,
opacity, a wireframe while awaiting review, visibility).

Surfaces follow a `StructureSet`: its `added`, `removed` and `changed` events rebuild, drop or
restyle the structure's surface. Geometry edits are gathered for a short while (a brush stroke
sends many) and rebuilt in a worker thread (superqt) from copy-on-write copies of the masks, never
on the GUI thread; a result that an edit has overtaken is dropped. Surfaces show as soon as they
are built; their closed coarse meshes (drawn while the view changes) are made afterwards in
another worker and swapped in as each is ready; until then a rough stand-in made with the surface
(vertex clustering) is drawn in their place, not the full mesh (117 surfaces on software OpenGL:
0.6-0.8 s a frame while the camera moved).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from superqt.utils import create_worker

from planning.errors import Cancelled
from planning.structures import RoiType, Structure
from planning.surfaces.build import build_surfaces
from planning.surfaces.mesh import Surface
from workstation.view3d import scene
from workstation.view3d.camera import surface_bounds
from workstation.view3d.overlays import FADED_OPACITY, REFERENCE_OPACITY
from workstation.view3d.rendering import FULL_DETAIL_BUDGET_MS

#: Opacity of the body outline, so what is inside stays visible.
EXTERNAL_OPACITY = 0.15
#: Triangles per surface drawn while the camera moves (full detail returns when it stops), so
#: rotation stays fluid with dozens of surfaces, even on software OpenGL.
INTERACTIVE_TRIANGLES = 1500
#: How many times slower a frame may be drawn while coarse meshes are made on every core.
BUSY_SLOWDOWN = 3


class SurfaceSync:
    """The surfaces of `View3D`, which owns the state this part uses: `_structures`, `_actors`,
    `_mappers` ((full, coarse) per structure), `_surfaces`, `_opacity` (chosen by the user),
    `_generation` (edits per structure, so a build an edit has overtaken is dropped), `_pending`
    (structures to build), `_timer` (gathers edits), `_build_worker`, `_cancel`,
    `_coarse_waiting` (structures whose coarse meshes wait for a frame), `_coarse_jobs` (cancel
    event per coarse-mesh worker), `_placer`, `_camera_set` and `_framing` (the camera's
    framing, `set_view`), `options` and the `building` and `surfaces_changed` signals."""

    def _on_added(self, structure) -> None:
        self._structure_event.emit("added", structure, None)

    def _on_removed(self, structure) -> None:
        self._structure_event.emit("removed", structure, None)

    def _on_changed(self, structure, box) -> None:
        self._structure_event.emit("changed", structure, box)

    def _on_structure_event(self, kind: str, structure, box) -> None:
        if kind == "removed":
            self._drop(structure)
        elif kind == "changed" and box is None:
            shown_focus = self._focus is not None and structure.name in self._focus
            for restyled in list(self._actors) if shown_focus else [structure]:
                self._restyle(restyled, render=False)
            self._follow_visibility()
            self._render_coarse()
        else:
            if structure in self._closest_between:  # edited: the distance drawn is out of date
                self.clear_distance()
            if self._detail_timer.isActive():  # still editing: full detail waits until it pauses
                self._detail_timer.start()
            self._generation[structure] = self._generation.get(structure, 0) + 1
            self._pending.add(structure)
            self._timer.start()

    def _disconnect(self) -> None:
        if self._structures is not None:
            for signal, slot in (
                (self._structures.added, self._on_added),
                (self._structures.removed, self._on_removed),
                (self._structures.changed, self._on_changed),
            ):
                signal.disconnect(slot)

    # -- surface building ------------------------------------------------------------------

    def _start_build(self) -> None:
        if self._build_worker is not None or not self._pending or self._structures is None:
            return
        present = set(self._structures)
        todo = [s for s in self._structures if s in self._pending and s in present]
        self._pending.clear()
        if not todo:
            return
        # copy-on-write: the worker must not see the edits the GUI thread makes meanwhile
        copies = [Structure(s.name, s.mask.shared(), s.color, s.roi_type, s.algorithm) for s in todo]
        generations = [self._generation.get(s, 0) for s in todo]
        self._cancel = threading.Event()
        cancel = self._cancel

        options, progress = self.options, self.building.emit

        def job():
            try:
                surfaces = build_surfaces(copies, options, on_progress=progress, cancel=cancel)
            except Cancelled:
                return None
            return {name: _with_polydata(surface) for name, surface in surfaces.items()}

        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda surfaces: self._on_built(todo, generations, copies, surfaces))
        worker.errored.connect(self._on_error)
        worker.finished.connect(lambda: self._on_build_finished(worker))
        self._build_worker = worker
        self._keep(worker)
        worker.start()

    def _on_built(self, todo, generations, copies, surfaces) -> None:
        if self._structures is None or surfaces is None:
            return
        present = set(self._structures)
        for structure, generation, copy in zip(todo, generations, copies, strict=True):
            if structure not in present or self._generation.get(structure, 0) != generation:
                continue  # removed or edited since: a newer build follows
            self._replace_actor(structure, *surfaces.get(copy.name, (None, None)))
        self._frame_arrivals()
        self._coarse_waiting += [s for s in todo if s in self._surfaces]
        editing = self._detail_timer.isActive()
        self._render_coarse()
        if not editing:  # no edit to wait for: full detail by batches from the first frame on
            self._detail_timer.stop()
            self._settle_detail()
        self.surfaces_changed.emit()

    def _frame_arrivals(self) -> None:
        """Frame the first surfaces built, and frame all of them again when later ones reach
        out of the framed box (built in another pass: a structure added during the first
        build, a contour grown past it) while the camera is still that framing; a camera the
        user moved is kept."""
        if not self._camera_set:
            self.set_view("anterior")
            return
        if self._framing is None:  # the user's camera
            return
        direction, framed, _ = self._framing
        bounds = surface_bounds(self._surfaces)
        if bounds is None:
            return
        if (bounds[:, 0] < framed[:, 0]).any() or (bounds[:, 1] > framed[:, 1]).any():
            self.set_view(direction)

    def _start_coarse(self) -> None:
        """Make the coarse meshes of the surfaces of `_coarse_waiting` in a worker, largest
        first, one per core (mostly VTK's decimation, which leaves the GIL free); each is
        swapped in as it comes. Called once the surfaces' first frame is drawn: made meanwhile,
        they slowed that frame (117 surfaces on software OpenGL: 2.0 s instead of 1.3 s)."""
        waiting, self._coarse_waiting = self._coarse_waiting, []
        present = [s for s in dict.fromkeys(waiting) if s in self._surfaces]
        surfaces = sorted(((s, self._surfaces[s]) for s in present), key=lambda p: -len(p[1].triangles))
        if not surfaces:
            return
        cancel = threading.Event()

        def coarse(surface: Surface):
            if cancel.is_set():
                return None
            low = surface.level_of_detail(INTERACTIVE_TRIANGLES)
            return None if low is surface else low.to_polydata()

        def job():
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                made = {pool.submit(coarse, surface): (structure, surface) for structure, surface in surfaces}
                for future in as_completed(made):
                    yield (*made[future], future.result())

        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(lambda made: self._on_coarse(*made))
        worker.errored.connect(self._on_error)
        worker.finished.connect(lambda: self._on_coarse_finished(worker))
        self._coarse_jobs[worker] = cancel
        self._keep(worker)
        worker.start()

    def _on_coarse(self, structure: Structure, surface: Surface, coarse) -> None:
        """A coarse mesh made: drawn from the next frame on while the view changes, unless its
        surface was rebuilt or dropped meanwhile (in place of its stand-in). Not rendered now:
        they are drawn once, when all are in (`_on_coarse_finished`). Dropped once the view is
        shut down (a worker may finish after it)."""
        if self._closed:
            return
        actor = self._actors.get(structure)
        if coarse is None or actor is None or self._surfaces.get(structure) is not surface:
            return
        full = self._mappers[structure][0] if structure in self._mappers else actor.GetMapper()
        self._mappers[structure] = (full, scene.polydata_actor(coarse, surface.color).GetMapper())
        self._restyle(structure, render=False)

    def _on_coarse_finished(self, worker) -> None:
        """All coarse meshes of a build made: drawn once if they are on show. Full detail
        estimated too slow from a frame drawn while they were being made, by less than
        `BUSY_SLOWDOWN` times, shared the CPU with them (the sample patient's: 350-450 ms
        instead of 150 ms on software OpenGL): it is timed again. The estimate, not that
        frame's time: a batch frame just over the budget drew some of the full meshes only.
        Nothing once the view is shut down."""
        self._coarse_jobs.pop(worker, None)
        if self._closed:
            return
        slowed = self._timed_while_busy and not self._full_detail_affordable()
        if (
            not self._coarse_jobs
            and slowed
            and self._full_detail_ms() <= BUSY_SLOWDOWN * FULL_DETAIL_BUDGET_MS
        ):
            self._full_frame = None
            self._render_coarse()
        elif self._coarse or any(structure.awaiting_review for structure in self._mappers):
            self._render()

    def _on_build_finished(self, worker) -> None:
        if self._build_worker is worker:
            self._build_worker = None
        self._show_progress("", 1, 1)
        if self._pending:
            self._timer.start()

    def _replace_actor(
        self, structure: Structure, surface: Surface | None, polydata=None, stand_in=None
    ) -> None:
        """Draw `surface` (its vtkPolyData and `stand_in`, if large, made in the worker) for
        `structure`, or nothing; its closed coarse mesh follows (`_on_coarse`), the stand-in
        drawn meanwhile wherever the coarse mesh would be."""
        self._mappers.pop(structure, None)
        self._uploaded.discard(structure)
        old = self._actors.pop(structure, None)
        if old is not None:
            self.renderer.RemoveActor(old)
            self._placer.RemoveViewProp(old)
        self._surfaces.pop(structure, None)
        if surface is None or surface.is_empty:
            return
        actor = scene.polydata_actor(polydata, surface.color)
        if stand_in is not None:
            self._mappers[structure] = (
                actor.GetMapper(),
                scene.polydata_actor(stand_in, surface.color).GetMapper(),
            )
        self._actors[structure] = actor
        self._surfaces[structure] = surface
        self.renderer.AddActor(actor)
        self._placer.AddProp(actor)
        self._restyle(structure, render=False)
        if structure in self._margin_maps:
            target, max_mm = self._margin_maps[structure]
            self.show_margin_map(structure.name, target.name, max_mm)

    def _restyle(self, structure: Structure, render: bool = True) -> None:
        actor = self._actors.get(structure)
        if actor is None:
            return
        opacity = self._chosen_opacity(structure)
        if self._fading() and structure.name not in self._focus:
            opacity = min(opacity, FADED_OPACITY)
        if any(target is structure for target, _ in self._margin_maps.values()):
            opacity = min(opacity, REFERENCE_OPACITY)
        unreviewed = structure.awaiting_review  # a wireframe, as the 2D views draw it dotted
        scene.style_actor(actor, structure.color, opacity, wireframe=unreviewed)
        if structure in self._mappers and structure not in self._margin_maps:
            actor.SetMapper(self._mesh_for(structure))  # a cage of the coarse mesh: lighter lines
        actor.SetVisibility(bool(structure.visible))
        if render:
            self._render()

    def _chosen_opacity(self, structure: Structure) -> float:
        """The opacity the user chose for the structure's surface, else the body outline's
        faint one or opaque."""
        default = EXTERNAL_OPACITY if structure.roi_type == RoiType.EXTERNAL else 1.0
        return self._opacity.get(structure, default)

    def _drop(self, structure: Structure) -> None:
        self._pending.discard(structure)
        self._opacity.pop(structure, None)
        self._generation.pop(structure, None)
        for mapped, (target, _) in list(self._margin_maps.items()):
            if structure in (mapped, target):
                self._unmap(mapped)
        if structure in self._closest_between:
            self._clear_overlay()
        self._replace_actor(structure, None)
        self._render_coarse()
        self.surfaces_changed.emit()


def _with_polydata(surface: Surface) -> tuple:
    """(surface, its vtkPolyData, a `stand_in` for its coarse mesh or None if small already)."""
    polydata = surface.to_polydata()
    large = len(surface.triangles) > INTERACTIVE_TRIANGLES
    return surface, polydata, scene.stand_in(polydata, INTERACTIVE_TRIANGLES) if large else None
