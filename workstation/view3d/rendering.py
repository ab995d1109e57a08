"""When and how the 3D view renders: requests coalesced into one render, coarse meshes while the
camera moves, an edit lands or the view is resized (full detail once that pauses, if its frames
are fast enough), and the full-detail settings that software OpenGL (Mesa) cannot afford.

Every full-detail frame is timed. One that took longer than `FULL_DETAIL_BUDGET_MS` (100+
surfaces on software OpenGL: 1–3 s) is not drawn again by itself: the view keeps its coarse
meshes at rest too and says so in a corner, because a view frozen for seconds each time the
camera stops, an edit lands or a dialog closes over it cannot be rotated. Full detail is then one
frame drawn when asked (the toolbar's Full detail, a snapshot, a screenshot); it returns by
itself once enough surfaces are hidden for its frame to fit the budget again.

Full detail comes in a batch of surfaces per frame, the others coarse, as long as those frames
fit the budget: a case of 100+ surfaces never draws them all at once unless asked. The first batch
is `UPLOAD_TRIANGLES`; each next one grows with the room the last frame left within the budget, so
a GPU has them all in its second batch frame and software OpenGL keeps batches of about that size.
"""

from __future__ import annotations

import weakref
from time import perf_counter

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

from workstation.view3d.camera import look_from, viewport_aspect

#: Renders asked for within this many ms are made once (a bulk show/hide, an undo of many edits).
RENDER_COALESCE_MS = 60
#: Edits, visibility changes and new sizes draw the coarse meshes; full detail returns once they
#: pause this long (a full-detail frame of 100+ surfaces takes up to a second on software OpenGL).
FULL_DETAIL_AFTER_MS = 1000
#: OpenGL renderers that draw on the CPU (Mesa). There full detail goes without FXAA and
#: order-independent translucency, which cost ~40% and ~45% of a frame there (benchmarks/gui.py).
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast")
#: A full-detail frame estimated to take longer than this (ms) is drawn only when asked.
FULL_DETAIL_BUDGET_MS = 250
#: Full meshes never drawn before come in by at least this many triangles per frame (new surfaces
#: arrive with stand-ins), the rest drawn coarse until the next frame: the first frame of all of a
#: 117-structure case's 3.4 M triangles blocked the GUI thread 0.8-1.5 s on software OpenGL, in
#: one go, just to learn that full detail is too slow there. Frames stop bringing more in once one
#: is over the budget.
UPLOAD_TRIANGLES = 200_000
#: What the view says while it keeps its coarse meshes because full detail is too slow here.
COARSE_NOTE = "Coarse surfaces: a full-detail frame takes {seconds:.1f} s here (Full detail draws one)"


class RenderScheduling:
    """Render scheduling of `View3D`, which owns the state this part uses: `renderer`, `_vtk`
    (the `Canvas`), `_started`, `_closed`, `_coarse`, `_interacting`, `_software_gl`,
    `_camera_set`, `_framing`, `_coarse_note` (a text actor), and the surfaces' `_actors`,
    `_mappers` ((full, coarse) per structure), `_margin_maps` and `_coarse_jobs`, and its
    `_start_coarse`.
    `_init_render_timers` makes the three timers it adds, the set of surfaces whose full mesh
    was drawn (`_uploaded`), and starts timing the frames."""

    def _init_render_timers(self) -> None:
        # (ms, triangles) of the last full-detail frame: how long it took, how much it drew
        self._full_frame: tuple[float, int] | None = None
        self._timed_while_busy = False  # that frame was drawn while coarse meshes were being made
        self._frame_start = 0.0
        self._uploaded: set = set()  # structures whose full mesh is drawn in full-detail frames
        me = weakref.ref(self)  # VTK keeps the observers: they must not keep the view alive
        window = self._vtk.GetRenderWindow()
        window.AddObserver("StartEvent", lambda *_: (view := me()) and view._frame_started())
        window.AddObserver("EndEvent", lambda *_: (view := me()) and view._frame_ended())
        self._render_timer = QTimer(self)  # renders requested in one event-loop turn: one render
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_COALESCE_MS)
        self._render_timer.timeout.connect(lambda: self._render(force=True))
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(FULL_DETAIL_AFTER_MS)
        self._detail_timer.timeout.connect(self._settle_detail)
        self._upload_timer = QTimer(self)  # the next batch of full meshes, after a frame
        self._upload_timer.setSingleShot(True)
        self._upload_timer.setInterval(0)
        self._upload_timer.timeout.connect(self._upload_more)

    def _render(self, force: bool = False) -> None:
        """Render now (`force`), or soon, once for all the requests made meanwhile. Nothing is
        rendered while the view is hidden or shut down (its window may be gone). Coarse meshes
        waiting for a frame are started once it is drawn (or not to be drawn)."""
        if self._closed or not self._started or not self.isVisible():
            self._start_coarse()
            return
        if force:
            self._render_timer.stop()
            self._reframe()
            self.renderer.ResetCameraClippingRange()
            self._vtk.GetRenderWindow().Render()
            self._start_coarse()
        elif not self._render_timer.isActive():
            self._render_timer.start()

    def _set_interacting(self, interacting: bool) -> None:
        """The camera starts moving (coarse meshes) or stops (full detail again, if affordable,
        in the frame the interactor draws right after)."""
        self._interacting = interacting
        self._camera_set = True  # the user's camera: surfaces arriving later keep it
        self._framing = None  # nor does a new viewport shape reframe it
        self._detail_timer.stop()
        self._swap_meshes(interacting or not self._full_detail_affordable())

    def _reframe(self) -> None:
        """Frame the last framed box again if the viewport's shape changed since (and the camera
        was not moved)."""
        if self._framing is None:
            return
        direction, bounds, aspect = self._framing
        now = viewport_aspect(self.renderer)
        if abs(now - aspect) > 1e-3 * aspect:
            look_from(self.renderer, direction, bounds, now)
            self._framing = (direction, bounds, now)

    def _render_coarse(self) -> None:
        """Render soon with the coarse meshes; full detail returns once such renders pause for
        `FULL_DETAIL_AFTER_MS`."""
        self._swap_meshes(True)
        self._detail_timer.start()
        self._render()

    def _settle_detail(self) -> None:
        if not self._interacting and self._full_detail_affordable():
            self._swap_meshes(False)
            self._render()

    def _upload_more(self) -> None:
        """The next batch of full meshes, while full detail is shown and its frames fit the budget."""
        if not (self._coarse or self._interacting) and self._full_detail_affordable():
            self._swap_meshes(False)
            self._render()

    def _show_full_detail(self) -> None:
        """Full detail now, every surface at once, for an image someone keeps (it renders nothing
        itself); then `_end_full_detail`."""
        self._detail_timer.stop()
        if not self._interacting:
            self._swap_meshes(False, at_once=True)

    def _end_full_detail(self) -> None:
        """Back to the coarse meshes after an image kept at full detail, if full detail is too
        slow to be drawn by itself (what is on screen stays until the next render)."""
        if not self._interacting and not self._full_detail_affordable():
            self._swap_meshes(True)

    def show_full_detail(self) -> None:
        """Draw one full-detail frame now, however long it takes (the toolbar's Full detail)."""
        self._show_full_detail()
        self._render(force=True)

    def _full_detail_affordable(self) -> bool:
        """Whether a full-detail frame is expected within `FULL_DETAIL_BUDGET_MS`."""
        expected = self._full_detail_ms()
        return expected is None or expected <= FULL_DETAIL_BUDGET_MS

    def _full_detail_ms(self) -> float | None:
        """The expected time (ms) of a full-detail frame of the surfaces shown: unknown (None)
        until one is drawn; the last one's if it was within budget (each is timed anew), else
        the last one's scaled by the full meshes' triangles shown now over those it drew (some
        of them coarse, if it was drawn while full meshes came in by batches)."""
        if self._full_frame is None:
            return None
        ms, triangles = self._full_frame
        return ms if ms <= FULL_DETAIL_BUDGET_MS else ms * self._full_triangles() / triangles

    def _triangles_drawn(self) -> tuple[int, int]:
        """Triangles (cells) of the full meshes drawn now, and of all meshes drawn now."""
        full = total = 0
        for structure, actor in self._actors.items():
            if actor.GetVisibility():
                cells = actor.GetMapper().GetInput().GetNumberOfCells()
                total += cells
                if structure not in self._mappers or actor.GetMapper() is self._mappers[structure][0]:
                    full += cells
        return full, total

    def _full_triangles(self) -> int:
        """Triangles (cells) of the full-detail meshes of the surfaces shown."""
        total = 0
        for structure, actor in self._actors.items():
            if actor.GetVisibility():
                mapper = self._mappers[structure][0] if structure in self._mappers else actor.GetMapper()
                total += mapper.GetInput().GetNumberOfCells()
        return total

    def _frame_started(self) -> None:
        self._frame_start = perf_counter()

    def _frame_ended(self) -> None:
        """Keep the time of a full-detail frame of surfaces (ms) with the triangles it drew
        (some surfaces may still be coarse, waiting for their batch); if it was too slow, the
        frames after it (a repaint when a dialog closes) are coarse, else the next batch of
        full meshes follows."""
        full, triangles = self._triangles_drawn()
        if self._coarse or not full:
            return
        self._full_frame = (1000 * (perf_counter() - self._frame_start), triangles)
        self._timed_while_busy = bool(self._coarse_jobs)
        self._end_full_detail()
        if not self._coarse and self._waiting_uploads():
            self._upload_timer.start()

    def _on_canvas_resized(self) -> None:
        """A new size is painted with the coarse meshes (dragging a splitter, maximising)."""
        if self._started and not self._closed:
            self._swap_meshes(True)
            self._detail_timer.start()

    def _swap_meshes(self, coarse: bool, at_once: bool = False) -> None:
        """Swap every surface to its coarse mesh (and drop anti-aliasing), or back to full
        detail: the full meshes drawn before, and of the others all `at_once` or the next batch
        (`_next_uploads`; surfaces showing a margin map keep their full mesh and colours)."""
        note = coarse and not self._full_detail_affordable()
        self._coarse_note.SetVisibility(note)
        if note:
            self._coarse_note.SetInput(COARSE_NOTE.format(seconds=self._full_detail_ms() / 1000))
        self._coarse = coarse
        self.renderer.SetUseFXAA(not (coarse or self._software_gl))
        if not coarse:
            self._uploaded.update(self._next_uploads(at_once))
        for structure in self._mappers:
            actor = self._actors.get(structure)
            if actor is not None and structure not in self._margin_maps:
                actor.SetMapper(self._mesh_for(structure))

    def _mesh_for(self, structure):
        """The mapper a surface with a coarse mesh draws now: the coarse one while the view
        changes, awaiting review (a cage) or waiting for its full mesh's batch; else the full."""
        full, coarse = self._mappers[structure]
        use_full = not (self._coarse or structure.awaiting_review) and structure in self._uploaded
        return full if use_full else coarse

    def _waiting_uploads(self) -> list:
        """Surfaces shown whose full mesh has not been drawn yet, smallest first: each batch
        adds some `_batch_triangles` to the frames, so the first frame over budget is over by
        about that much (a body outline of 1 M triangles, if it comes, comes last)."""
        waiting = [
            structure
            for structure, actor in self._actors.items()
            if structure in self._mappers
            and structure not in self._uploaded
            and structure not in self._margin_maps
            and not structure.awaiting_review
            and actor.GetVisibility()
        ]
        return sorted(waiting, key=lambda s: self._mappers[s][0].GetInput().GetNumberOfCells())

    def _next_uploads(self, at_once: bool) -> list:
        """The next batch of full meshes to draw: all waiting `at_once`, else about
        `_batch_triangles` (at least one surface)."""
        waiting = self._waiting_uploads()
        if at_once:
            return waiting
        batch, triangles, most = [], 0, self._batch_triangles()
        for structure in waiting:
            triangles += self._mappers[structure][0].GetInput().GetNumberOfCells()
            if batch and triangles > most:
                break
            batch.append(structure)
        return batch

    def _batch_triangles(self) -> float:
        """Triangles of full meshes the next batch may add: half of those the last full-detail
        frame had time left for within the budget, at its ms per triangle drawn (the next frame
        is then expected halfway between it and the budget), and at least `UPLOAD_TRIANGLES`.
        After a frame of a few ms (a GPU's) it is millions of triangles; after one of 100+ ms
        (software OpenGL) about `UPLOAD_TRIANGLES`."""
        if self._full_frame is None:
            return UPLOAD_TRIANGLES
        ms, drawn = self._full_frame
        room = drawn * (FULL_DETAIL_BUDGET_MS - ms) / max(ms, 1.0)
        return max(UPLOAD_TRIANGLES, room / 2)


class Canvas(QVTKRenderWindowInteractor):
    """The render window's widget, telling the view when its size changes (before the paint that
    renders the new size)."""

    def __init__(self, parent: QWidget, on_resize):
        super().__init__(parent)
        self._on_resize = on_resize

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self._on_resize()
        super().resizeEvent(event)


def is_software_renderer(capabilities: str) -> bool:
    """Whether a render window's `ReportCapabilities()` names a software OpenGL renderer."""
    line = next((line for line in capabilities.splitlines() if "renderer string" in line), "")
    return any(name in line.lower() for name in SOFTWARE_RENDERERS)
