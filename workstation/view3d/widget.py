"""`View3D`: the 3D view of a case — structure surfaces, CT volume rendering, measurements.

This module holds the widget, its state, its public calls for data, display and output, and its
toolbar; its parts live beside it: `surfaces` (kept in step with a `StructureSet`), `tools`
(rulers, angles), `overlays` (minimum distance, margin maps, focus), `rendering` (when and how it
renders), `camera` (framing, orientation cube) and `scene` (VTK pieces, snapshots). Everything is
in patient LPS millimetres, so measurements are in mm.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path

import numpy as np
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (GPU volume mapper factories)
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QComboBox, QLabel, QToolBar, QVBoxLayout, QWidget
from superqt.utils import create_worker
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkInteractionWidgets import vtkPolygonalSurfacePointPlacer
from vtkmodules.vtkRenderingCore import vtkRenderer

from planning.errors import Cancelled
from planning.measurements import ClosestPoints
from planning.structures import Structure, StructureSet
from planning.surfaces.mesh import Surface
from planning.surfaces.options import SurfaceOptions
from planning.volume import Volume, not_in_hu, values_are_hu
from workstation.view3d import scene
from workstation.view3d.camera import (
    MARKER_VIEWPORT,
    VIEWS,
    camera_for_shape,
    look_from,
    orientation_cube,
    orientation_marker,
    surface_bounds,
    viewport_aspect,
    volume_bounds,
)
from workstation.view3d.overlays import Overlays
from workstation.view3d.presets import INTENSITIES, PRESETS, intensity_preset, preset
from workstation.view3d.rendering import Canvas, RenderScheduling, is_software_renderer
from workstation.view3d.snapshot_dialog import SnapshotSizeDialog, ask_png_path
from workstation.view3d.surfaces import SurfaceSync
from workstation.view3d.tools import MeasurementTools

log = logging.getLogger(__name__)

#: The volume-rendering box's entries in order: off, the CT presets, the image's intensities.
_PRESET_NAMES: list[str | None] = [None, *PRESETS, INTENSITIES]


#: What an empty 3D view says (an image open, no structure, no volume rendering).
EMPTY_HINT = "No structures to show yet.\nDraw or import some, or choose a Volume rendering above."
#: What the view says while no image is open, as the slice views do; `set_empty_hint` adds to it.
NO_IMAGE = "No image"


class View3D(SurfaceSync, MeasurementTools, Overlays, RenderScheduling, QWidget):
    """3D view of a volume and its structures.

    Signals:
        surfaces_changed(): surfaces were built, rebuilt or removed.
        measured(kind, value): "ruler" (mm), "angle" (degrees) or "distance" (mm) after a
            measurement changes.
        building(stage, done, total): progress of a surface build.
        failed(message): a background job failed.
        margin_map_shown(name): structure `name` now shows its margin map (`margin_values`).
    """

    surfaces_changed = pyqtSignal()
    measured = pyqtSignal(str, float)
    building = pyqtSignal(str, float, float)
    failed = pyqtSignal(str)
    margin_map_shown = pyqtSignal(str)
    _structure_event = pyqtSignal(str, object, object)  # psygnal → GUI thread

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        options: SurfaceOptions | None = None,
        toolbar: bool = True,
        debounce_ms: int = 250,
    ):
        super().__init__(parent)
        self.options = options or SurfaceOptions()
        self._vtk = Canvas(self, on_resize=self._on_canvas_resized)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.05, 0.06, 0.08)
        self.renderer.SetBackground2(0.22, 0.24, 0.3)
        self.renderer.GradientBackgroundOn()
        self._vtk.GetRenderWindow().AddRenderer(self.renderer)
        # no multisampling (it costs 3–4× per frame on software OpenGL); FXAA smooths edges at
        # rest and is switched off while the camera moves
        self._vtk.GetRenderWindow().SetMultiSamples(0)
        self.renderer.UseFXAAOn()
        style = vtkInteractorStyleTrackballCamera()
        me = weakref.ref(self)  # VTK keeps the observers: they must not keep the view alive
        style.AddObserver("StartInteractionEvent", lambda *_: (view := me()) and view._set_interacting(True))
        style.AddObserver("EndInteractionEvent", lambda *_: (view := me()) and view._set_interacting(False))
        self._vtk.SetInteractorStyle(style)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self._status = QLabel("")
        if toolbar:
            layout.addWidget(self._make_toolbar())
        layout.addWidget(self._vtk, 1)
        self.building.connect(self._show_progress)

        self._volume: Volume | None = None
        self._volume_actor = None
        self._preset: str | None = None
        self._structures: StructureSet | None = None
        self._actors: dict[Structure, object] = {}
        self._mappers: dict[Structure, tuple] = {}  # (full, coarse) for interactive level of detail
        self._surfaces: dict[Structure, Surface] = {}
        self._generation: dict[Structure, int] = {}
        self._pending: set[Structure] = set()  # surfaces to (re)build
        self._workers: list = []
        self._build_worker = None
        self._cancel = threading.Event()
        self._coarse_jobs: dict = {}  # coarse-mesh worker: its cancel event
        self._coarse_waiting: list[Structure] = []  # coarse meshes to make after the next frame
        self._margin_maps: dict[Structure, tuple[Structure, float]] = {}
        self._focus: set[str] | None = None
        self._opacity: dict[Structure, float] = {}  # chosen by the user (`set_opacity`)
        self._scalar_bar = None
        self._overlay: list = []  # the minimum distance drawn: line, dots, label
        self._closest: ClosestPoints | None = None
        self._closest_between: tuple[Structure | None, ...] = ()
        self._rulers: list = []
        self._angles: list = []
        self._placer = vtkPolygonalSurfacePointPlacer()
        self._started = False
        self._closed = False
        self._coarse = False  # the coarse meshes are drawn (camera moving, or changes not settled)
        self._interacting = False
        self._software_gl = False  # set once the window has an OpenGL context
        self._camera_set = False
        # (direction, bounds, aspect) of the last framing while the camera is still that one: a
        # new viewport shape frames them afresh (a view framed in a wide window, then narrowed)
        self._framing: tuple[str, np.ndarray, float] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._start_build)
        self._structure_event.connect(self._on_structure_event)
        self._orientation = orientation_marker()
        self.empty_hint = ""  # said under "No image" while no image is open, e.g. how to open one
        self._empty_hint = scene.hint(NO_IMAGE)
        self.renderer.AddViewProp(self._empty_hint)
        self._coarse_note = scene.note("")
        self._coarse_note.SetVisibility(False)
        self.renderer.AddViewProp(self._coarse_note)
        self.surfaces_changed.connect(self._update_empty_hint)
        self._init_render_timers()

    # -- data ------------------------------------------------------------------------------

    def show_case(self, case) -> None:
        """Show a workstation case: its volume and its structures."""
        self.set_volume(case.volume)
        self.set_structures(case.structures)

    def set_volume(self, volume: Volume | None) -> None:
        """The image to volume-render (the camera frames it until structures show). None clears it."""
        if volume is not self._volume:
            self._camera_set = False  # another case: frame it afresh
        self._volume = volume
        self._remove_volume_actor()
        if volume is not None and self._preset in PRESETS and not values_are_hu(volume.modality):
            self._preset = None  # a CT preset left on from a CT: it means nothing here
        self._enable_ct_presets()
        if volume is not None and self._preset is not None:
            self._add_volume_actor()
        if volume is not None and not self._camera_set:
            self.set_view("anterior")
        self._update_empty_hint()
        self._render()

    def set_structures(self, structures: StructureSet | None) -> None:
        """Follow a structure set: build every surface (in one pass, in the background) and keep
        them in step with its events. None clears the view's surfaces."""
        if self._structures is structures:
            return
        self._disconnect()
        self._cancel_builds()
        for actor in self._actors.values():
            self.renderer.RemoveActor(actor)
        self._actors.clear()
        self._mappers.clear()
        self._uploaded.clear()
        self._surfaces.clear()
        self._generation.clear()
        self._pending.clear()
        self._margin_maps.clear()
        self._focus = None
        self._opacity.clear()
        self._clear_overlay()
        self._structures = structures
        if structures is not None:
            structures.added.connect(self._on_added)
            structures.removed.connect(self._on_removed)
            structures.changed.connect(self._on_changed)
            for structure in structures:
                self._generation[structure] = 0
                self._pending.add(structure)
            self._start_build()
        self._render()
        self.surfaces_changed.emit()

    def surface(self, name: str) -> Surface | None:
        """The current surface of structure `name` (None while not built or empty)."""
        structure = self._by_name(name)
        return None if structure is None else self._surfaces.get(structure)

    def is_ready(self) -> bool:
        """No surface build (of surfaces or of their coarse meshes) running or waiting (always
        true once shut down)."""
        if self._closed:
            return True
        return (
            self._build_worker is None
            and not self._coarse_jobs
            and not self._coarse_waiting
            and not self._pending
            and not self._timer.isActive()
        )

    def cancel_builds(self) -> None:
        """Stop the running surface builds at their next check and drop the waiting ones."""
        self._timer.stop()
        self._pending.clear()
        self._cancel_builds()

    def _cancel_builds(self) -> None:
        self._coarse_waiting.clear()
        self._cancel.set()
        for cancel in self._coarse_jobs.values():
            cancel.set()

    # -- display ---------------------------------------------------------------------------

    def set_volume_rendering(self, name: str | None) -> None:
        """Volume-render the CT with a preset ("bone", "soft tissue", "ct angiography", "lung"),
        any image over its own intensities ("intensities", for an MR), or stop (None). A CT
        preset on an image not in HU is refused (ValueError)."""
        if name is not None:
            name = name.lower()
            if name not in _PRESET_NAMES:
                known = ", ".join(_PRESET_NAMES[1:])
                raise ValueError(f"no volume-rendering preset {name!r}; presets: {known}")
            modality = self._volume.modality if self._volume is not None else "CT"
            if name in PRESETS and (why := not_in_hu("a CT preset", modality)):
                raise ValueError(f"{preset(name).label} is {why}: use {INTENSITIES!r}")
        self._preset = name
        if name is None:
            self._remove_volume_actor()
        elif self._volume_actor is not None:
            self._volume_actor.SetProperty(self._volume_property())
        elif self._volume is not None:
            self._add_volume_actor()
        if hasattr(self, "_preset_box"):
            self._preset_box.blockSignals(True)
            self._preset_box.setCurrentIndex(_PRESET_NAMES.index(name))
            self._preset_box.blockSignals(False)
        self._update_empty_hint()
        self._render()

    @property
    def volume_rendering(self) -> str | None:
        return self._preset

    def set_empty_hint(self, text: str) -> None:
        """Say `text` under "No image" while no image is open ("" says nothing more), as the slice
        views do."""
        self.empty_hint = text
        self._update_empty_hint()

    @property
    def shows_empty_hint(self) -> bool:
        """Whether the view says it has nothing to show (no structure surface, no volume
        rendering): "No image" (and `empty_hint`) without an image, else what it waits for."""
        return bool(self._empty_hint.GetVisibility())

    @property
    def empty_text(self) -> str:
        """What the view says it has nothing to show ("" while it shows something)."""
        return self._empty_hint.GetInput() if self.shows_empty_hint else ""

    @property
    def shows_coarse_note(self) -> bool:
        """Whether the view says it keeps its coarse meshes because full detail is too slow."""
        return bool(self._coarse_note.GetVisibility())

    def _update_empty_hint(self) -> None:
        """Say "No image" (and the empty hint) while no image is open, and what the view is waiting
        for while one is open with nothing to draw in 3D."""
        nothing = not self._pending and not any(self._surfaces.values())
        empty = self._preset is None and nothing
        if self._volume is None:
            text = f"{NO_IMAGE}\n\n{self.empty_hint}" if self.empty_hint else NO_IMAGE
        else:
            text = EMPTY_HINT
        if (empty, text) != (self.shows_empty_hint, self._empty_hint.GetInput()):
            self._empty_hint.SetInput(text)
            self._empty_hint.SetVisibility(empty)
            self._render()

    def set_opacity(self, name: str, opacity: float) -> None:
        """Opacity (0–1) of a structure's surface, kept through edits and restyling until the
        case changes (an organ made translucent shows the tumour inside it)."""
        structure = self._by_name(name)
        if structure is not None:
            self._opacity[structure] = min(max(float(opacity), 0.0), 1.0)
            self._restyle(structure)

    def opacity(self, name: str) -> float:
        """A structure's surface opacity as chosen (`set_opacity`), else its default: 0.15 for
        the body outline, 1 for the others."""
        structure = self._by_name(name)
        return self._chosen_opacity(structure) if structure is not None else 1.0

    def set_view(self, direction: str = "anterior") -> None:
        """Look from a patient direction (anterior, posterior, left, right, superior, inferior)
        at the visible structures, or at the whole volume while none shows: their bounding box
        fills the view's width or height, whichever is tighter, but for a small margin. Until the
        camera is moved, a change of the view's shape frames them again, and so do surfaces
        built later that reach out of their box."""
        if direction not in VIEWS:
            raise ValueError(f"unknown view {direction!r}; views: {', '.join(VIEWS)}")
        bounds = surface_bounds(self._surfaces)
        framed_structures = bounds is not None
        if bounds is None:
            bounds = volume_bounds(self._volume)
        if bounds is None:
            return
        aspect = viewport_aspect(self.renderer)
        look_from(self.renderer, direction, bounds, aspect)
        self._framing = (direction, bounds, aspect)
        self._camera_set = framed_structures
        self._render()

    # -- output --------------------------------------------------------------------------------

    def snapshot(self, path: str | Path, size: tuple[int, int] | None = None) -> Path:
        """Save the view as a PNG of `size` (width, height) pixels (default: the view's size),
        rendered off-screen with the same camera, labels and lines grown with the height, and
        the orientation cube in its corner (which side is the patient's left). Returns the path.
        An image of another shape than the view's is framed for its own shape while the camera
        is still the automatic framing; the user's camera is kept, its angle widened where the
        image is narrower than the view, so that it shows all the view shows."""
        path = Path(path)
        if size is None:
            size = tuple(self._vtk.GetRenderWindow().GetSize())
        width, height = (int(v) for v in size)
        if width < 1 or height < 1 or width * height > 16384**2:
            raise ValueError(f"a snapshot needs a size between 1×1 and 16384×16384, not {width}×{height}")
        scale = height / max(1, self._vtk.GetRenderWindow().GetSize()[1])
        self._show_full_detail()
        self._reframe()
        framing = None if self._framing is None else self._framing[:2]
        camera = camera_for_shape(
            self.renderer.GetActiveCamera(), width / height, viewport_aspect(self.renderer), framing
        )
        pixels = scene.render_offscreen(
            self.renderer,
            (width, height),
            self._measurement_overlays(),
            scale,
            camera,
            self._marker_corner((width, height)),
        )
        self._end_full_detail()
        scene.write_png(pixels, path)
        return path

    def _marker_corner(self, size: tuple[int, int]) -> tuple | None:
        """The orientation cube for a snapshot of `size` (width, height), where the view shows
        it: its corner as many pixels wide and high as in the view, times the snapshot's height
        over the view's (as labels grow). None while the view shows no cube."""
        if not self._orientation.GetEnabled():
            return None
        view_width, view_height = self._vtk.GetRenderWindow().GetSize()
        scale = size[1] / max(1, view_height)  # the snapshot's pixels per view pixel
        x0, y0, x1, y1 = MARKER_VIEWPORT
        width = min(1.0 - x0, (x1 - x0) * view_width * scale / size[0])
        return orientation_cube(), (x0, y0, x0 + width, y1)

    def render_image(self) -> np.ndarray:
        """The view's current pixels, (height, width, 3), top row first (at full detail)."""
        self._show_full_detail()
        self._render(force=True)
        return scene.window_pixels(self._vtk.GetRenderWindow())

    def display_position(self, point_lps) -> tuple[float, float]:
        """Where an LPS point appears in `render_image()` (column, row from the top)."""
        renderer = self.renderer
        renderer.SetWorldPoint(*map(float, point_lps), 1.0)
        renderer.WorldToDisplay()
        x, y, _ = renderer.GetDisplayPoint()
        height = self._vtk.GetRenderWindow().GetSize()[1]
        return x, height - 1 - y

    # -- Qt ------------------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if not self._started:
            self._vtk.Initialize()
            self._orientation.SetInteractor(self._vtk)
            self._orientation.SetEnabled(1)
            self._orientation.InteractiveOff()
            self._started = True
            self._software_gl = is_software_renderer(self._vtk.GetRenderWindow().ReportCapabilities())
            self.renderer.SetUseOIT(not self._software_gl)
            self.renderer.SetUseFXAA(not (self._coarse or self._software_gl))
        self._render()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop background work, let go of the structure set and release the render window."""
        if self._closed:
            return
        self._closed = True
        self._render_timer.stop()
        self._detail_timer.stop()
        self.cancel_builds()
        self._disconnect()
        self._structures = None
        for worker in list(self._workers):
            worker.quit()
        self._vtk.Finalize()

    # -- background jobs ---------------------------------------------------------------------

    def _run(self, function, args, on_result, **kwargs) -> None:
        worker = create_worker(function, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        worker.returned.connect(on_result)
        worker.errored.connect(self._on_error)
        self._keep(worker)
        worker.start()

    def _keep(self, worker) -> None:
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker) if worker in self._workers else None)

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, Cancelled):
            return
        log.error("3D view: %s", error, exc_info=error)
        self.failed.emit(str(error))

    # -- helpers ---------------------------------------------------------------------------------

    def _by_name(self, name: str) -> Structure | None:
        if self._structures is None or name not in self._structures:
            return None
        return self._structures[name]

    def _require_surface(self, name: str) -> Surface:
        surface = self.surface(name)
        if surface is None:
            raise ValueError(f"structure {name!r} has no surface (yet)")
        return surface

    def _volume_property(self):
        if self._preset == INTENSITIES:
            return intensity_preset(self._volume.array).volume_property()
        return preset(self._preset).volume_property()

    def _add_volume_actor(self) -> None:
        self._volume_actor, _ = scene.volume_prop(self._volume, self._volume_property())
        self.renderer.AddVolume(self._volume_actor)

    def _enable_ct_presets(self) -> None:
        """Offer the CT presets in the toolbar's box only for an image in HU; say why not."""
        if not hasattr(self, "_preset_box"):
            return
        modality = self._volume.modality if self._volume is not None else "CT"
        tip = not_in_hu("A CT preset", modality)
        for index, name in enumerate(_PRESET_NAMES):
            if name in PRESETS:
                item = self._preset_box.model().item(index)
                item.setEnabled(not tip)
                item.setToolTip(tip)
        if self._preset_box.currentIndex() != _PRESET_NAMES.index(self._preset):
            self._preset_box.blockSignals(True)
            self._preset_box.setCurrentIndex(_PRESET_NAMES.index(self._preset))
            self._preset_box.blockSignals(False)

    def _remove_volume_actor(self) -> None:
        if self._volume_actor is not None:
            self.renderer.RemoveVolume(self._volume_actor)
            self._volume_actor = None

    def _make_toolbar(self) -> QToolBar:
        bar = QToolBar(self)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.addWidget(QLabel(" Volume: "))
        self._preset_box = QComboBox(bar)
        self._preset_box.addItems(["Off"] + [p.label for p in PRESETS.values()] + ["Intensities (MR)"])
        self._preset_box.setItemData(
            len(_PRESET_NAMES) - 1, "Grey ramp over the image's own values", Qt.ItemDataRole.ToolTipRole
        )
        self._preset_box.currentIndexChanged.connect(lambda i: self.set_volume_rendering(_PRESET_NAMES[i]))
        bar.addWidget(self._preset_box)
        bar.addSeparator()
        for label, slot in (("Ruler", self.set_ruler_enabled), ("Angle", self.set_angle_enabled)):
            action = QAction(label, bar)
            action.setToolTip(f"Place a {label.lower()}: click on surfaces")
            action.triggered.connect(lambda _=False, slot=slot: slot(True))
            bar.addAction(action)
        clear = QAction("Clear", bar)
        clear.setToolTip("Remove rulers, angles, distances and margin maps, and unfade")
        clear.triggered.connect(self.clear_measurements)
        bar.addAction(clear)
        bar.addSeparator()
        for view in ("anterior", "left", "superior"):
            action = QAction(view[0].upper(), bar)
            action.setToolTip(f"View the visible structures from {view}")
            action.triggered.connect(lambda _=False, v=view: self.set_view(v))
            bar.addAction(action)
        detail = QAction("Full detail", bar)
        detail.setToolTip("Draw the surfaces in full detail once (slow here: coarse ones otherwise)")
        detail.triggered.connect(self.show_full_detail)
        bar.addAction(detail)
        shot = QAction("Snapshot…", bar)
        shot.setToolTip("Save the 3D view as a PNG at a chosen resolution")
        shot.triggered.connect(self.ask_snapshot)
        bar.addAction(shot)
        bar.addWidget(self._status)
        return bar

    def ask_snapshot(self) -> Path | None:
        """Ask for a resolution and a file, then save a snapshot there; the path, or None."""
        dialog = SnapshotSizeDialog(tuple(self._vtk.GetRenderWindow().GetSize()), self)
        if dialog.exec() != SnapshotSizeDialog.DialogCode.Accepted:
            return None
        size = dialog.chosen_size()
        path = ask_png_path(self)
        if path is None:
            return None
        try:
            written = self.snapshot(path, size)
        except (OSError, ValueError) as error:
            self.failed.emit(f"snapshot not saved: {error}")
            return None
        self._status.setText(f"  Saved {Path(written).name} ({size[0]} × {size[1]})")
        return written

    def _show_progress(self, stage: str, done: float, total: float) -> None:
        self._status.setText(f"  {stage}… {100 * done / total:.0f}%" if stage and total else "")
