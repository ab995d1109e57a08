"""The Surgery menu: minimum distance, margin map, virtual resection, 3D model export, structure
volume and surface area, 3D snapshot. Each entry opens a dialog of its own module; the geometry
is `planning`'s (measurements, resection, mesh_export), run in the window's jobs.

Shared here: `SurgeryDialog`, the dialogs' base (deleted when closed; runs their job and drops a
result that no longer applies), `SurfaceSource`, which gets the surfaces a job needs (the 3D
view's current ones where it has them, the others built in the worker from copies of the
masks), and `report`.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QComboBox, QDialog, QPushButton

from planning.errors import Cancelled, GeometryError
from planning.structures import Structure
from planning.surfaces.build import build_surfaces
from planning.surfaces.mesh import Surface


def copy_structure(structure: Structure) -> Structure:
    """A copy a worker may read while the GUI thread edits the original."""
    return Structure(
        structure.name,
        structure.mask.copy(),
        structure.color,
        structure.roi_type,
        structure.algorithm,
        description=structure.description,
    )


def same_geometry(structure: Structure, copy: Structure) -> bool:
    """Whether `structure` still has the voxels it had when `copy` was taken."""
    mask, other = structure.mask, copy.mask
    return mask.box == other.box and (mask.box is None or np.array_equal(mask.region(other.box), other.array))


def non_empty_names(case) -> list[str]:
    """Structures with voxels (masks are kept cropped to their content: no voxel count needed)."""
    return [s.name for s in case.structures if s.mask.box is not None]


def list_structures(box: QComboBox, case) -> None:
    """List the case's structures with voxels in `box` (each item's data: its structure), unless
    it lists them already. The structure chosen stays chosen while listed (under its new name
    after a rename); when it is gone, none is."""
    structures = [s for s in case.structures if s.mask.box is not None]
    listed = [(box.itemText(i), box.itemData(i)) for i in range(box.count())]
    if len(listed) == len(structures) and all(
        name == s.name and data is s for (name, data), s in zip(listed, structures, strict=True)
    ):
        return
    chosen = box.currentData()
    box.clear()
    for structure in structures:
        box.addItem(structure.name, structure)
    box.setCurrentIndex(next((i for i, s in enumerate(structures) if s is chosen), -1))


class SurfaceSource:
    """The surfaces of some structures for a job.

    Made on the GUI thread: takes copies of the `names` structures (what the job reads) and, of
    those to mesh (`meshed`, default all), the 3D view's surfaces when its builds are done.
    `build` runs in the worker and meshes what the 3D view did not have, with its options.
    """

    def __init__(self, window, names: list[str], meshed: list[str] | None = None):
        case = window.case
        missing = [name for name in names if name not in case.structures]
        if missing:
            raise GeometryError(
                f"there is no structure {', '.join(missing)} any more (renamed or deleted?): "
                "open this dialog again"
            )
        view = window.view3d
        surface_of = getattr(view, "surface", None)
        ready = surface_of is not None and view.is_ready()
        self.options = getattr(view, "options", None)
        self.copies = {name: copy_structure(case.structures[name]) for name in names}
        self.meshed = list(names if meshed is None else meshed)
        self.known: dict[str, Surface] = {}
        for name in self.meshed:
            surface = surface_of(name) if ready else None
            if surface is not None:
                self.known[name] = surface
        self.empty = [name for name, s in self.copies.items() if s.mask.box is None]

    def build(self, on_progress, cancel) -> dict[str, Surface]:
        """The surface of every structure to mesh (empty structures have none)."""
        todo = [
            self.copies[name]
            for name in self.meshed
            if name not in self.known and not self.copies[name].mask.is_empty
        ]
        built = {}
        if todo:
            kwargs = {} if self.options is None else {"options": self.options}
            built = build_surfaces(todo, on_progress=on_progress, cancel=cancel, **kwargs)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        return {**self.known, **built}

    def require(self, surfaces: dict[str, Surface], name: str) -> Surface:
        surface = surfaces.get(name)
        if surface is None or surface.is_empty:
            raise GeometryError(f"structure {name!r} is empty: it has no surface to measure")
        return surface


def case_gone(dialog: SurgeryDialog) -> bool:
    """Whether the window shows another case than the dialog was opened for (then it says so)."""
    if dialog.window_.case is dialog.case:
        return False
    dialog.say("Another case is open now: open this dialog again from the Surgery menu.")
    return True


class SurgeryDialog(QDialog):
    """A Surgery dialog on the window's case. Deleted when closed: its links to the window's
    signals are cut, its job is cancelled and what it shows in the 3D view is taken out
    (`clear_3d`), so a closed dialog neither refreshes, leaves stale overlays nor keeps its case
    (images and masks) alive.

    `run_job` runs its work; a result is applied only while the dialog is open, the job was not
    cancelled and the window still shows the case: otherwise it is dropped (`discard`) and the
    dialog (if open) and the status bar say so.
    """

    def __init__(self, window, title: str):
        super().__init__(window)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(title)
        self.window_ = window
        self.case = window.case
        self.job = None
        self.is_open = True
        #: the button that starts the job: disabled while it runs
        self.action_button: QPushButton | None = None
        self._links: list[tuple[object, object]] = []
        self._faded: frozenset[str] | None = None
        self.finished.connect(self._stop)

    def say(self, text: str) -> None:
        """Show `text` in the dialog's note."""
        self.note.setText(text)

    def fade_3d(self, names: list[str] | None) -> None:
        """Fade the 3D view's surfaces but those of `names` (None: unfade them)."""
        focus = getattr(self.window_.view3d, "set_focus", None)
        if focus is not None:
            focus(names)
            self._faded = frozenset(names) if names else None

    def clear_3d(self) -> None:
        """Take what the dialog shows out of the 3D view; here its fading, unless the view was
        faded otherwise since. Dialogs that draw more take that out too."""
        view = self.window_.view3d
        if self._faded is not None and getattr(view, "focus", None) == self._faded:
            view.set_focus(None)
        self._faded = None

    def link(self, signal, slot) -> None:
        """Connect `slot` to a signal of something that outlives the dialog, until it closes."""
        signal.connect(slot)
        self._links.append((signal, slot))

    def follow_structures(self, *boxes: QComboBox) -> None:
        """Keep `boxes` listing the case's structures with voxels while the dialog is open
        (`list_structures`): one added, drawn, emptied, deleted or renamed shows at once."""
        structures = self.case.structures

        def refill(*_) -> None:
            for box in boxes:
                list_structures(box, self.case)

        for signal in (structures.added, structures.removed, structures.changed):
            self.link(signal, refill)

    def run_job(self, title: str, work, done, failed) -> None:
        """Run `work(on_progress, cancel)` in the window's jobs; `done(result)` or
        `failed(error)` (which is reported as well) when it ends, if the result still applies."""
        window = self.window_

        def on_done(result) -> None:
            self._ended()
            reason = self._stale_reason(job)
            if reason is None:
                done(result)
                return
            self.discard(result)
            if self.is_open:
                self.say(f"The result was discarded: {reason}.")
            window.statusBar().showMessage(f"{title}: the result was discarded: {reason}", 15000)

        def on_failed(error: Exception) -> None:
            self._ended()
            if self.is_open:
                failed(error)
            window.jobs.report(job, error)

        if self.action_button is not None:
            self.action_button.setEnabled(False)
        job = self.job = window.jobs.run(title, work, on_done, on_failed)

    def discard(self, result) -> None:
        """Drop a result that is not applied (what it holds outside memory is removed here)."""

    def _stale_reason(self, job) -> str | None:
        if not self.is_open:
            return "its dialog was closed"
        if job.cancel.is_set():
            return "it was cancelled"
        if self.window_.case is not self.case:
            return "another case was opened while it ran (open this dialog again from the Surgery menu)"
        return None

    def _ended(self) -> None:
        self.job = None
        if self.is_open and self.action_button is not None:
            self.action_button.setEnabled(True)

    def closeEvent(self, event) -> None:  # noqa: N802
        self._stop()
        super().closeEvent(event)

    def _stop(self, *_) -> None:
        """Cut the links, cancel the job, clear the 3D view (once closed, by any way)."""
        if self.is_open:
            self.clear_3d()
        self.is_open = False
        for signal, slot in self._links:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):  # not connected, or its object is gone
                pass
        self._links.clear()
        if self.job is not None:
            self.job.cancel.set()


def report(window, text: str, seconds: int = 20) -> None:
    """A result in the status bar and in the Messages panel."""
    window.statusBar().showMessage(text, seconds * 1000)
    window.messages.add("INFO", text)


class SurgeryMenu:
    """The Surgery menu of a main window and its actions (enabled with a case)."""

    def __init__(self, window, menubar):
        self.window = window
        menu = menubar.addMenu("Sur&gery")
        self.menu = menu
        self.distance = self._add(
            "&Minimum distance…",
            self.open_distance,
            "Shortest distance between two structures, drawn in the 3D view",
        )
        self.margin_map = self._add(
            "Ma&rgin map…", self.open_margin_map, "Colour a structure's surface by its distance to another"
        )
        self.sizes = self._add(
            "Structure &volume and surface area…",
            self.open_sizes,
            "Volume (voxels and mesh) and surface area of every structure",
        )
        menu.addSeparator()
        self.resection = self._add(
            "Virtual &resection…",
            self.open_resection,
            "Cut an organ with a plane, or resect a tumour with a safety margin",
        )
        menu.addSeparator()
        self.export = self._add(
            "&Export 3D models…",
            self.open_export,
            "STL, OBJ, PLY or VTP surface meshes, checked for 3D printing",
        )
        self.snapshot = self._add(
            "3D &snapshot…", self.snapshot_3d, "Save the 3D view as a PNG at a chosen resolution"
        )
        self.update()

    def _add(self, text: str, slot, tip: str) -> QAction:
        action = QAction(text, self.window)
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(lambda _=False: slot())
        self.menu.addAction(action)
        return action

    def update(self) -> None:
        case = self.window.case
        count = len(non_empty_names(case)) if case is not None else 0
        for action in (self.sizes, self.resection, self.export):
            action.setEnabled(count >= 1)
        for action in (self.distance, self.margin_map):
            action.setEnabled(count >= 2)
        self.snapshot.setEnabled(hasattr(self.window.view3d, "ask_snapshot"))

    def _open(self, make):
        if self.window.case is None:
            return None
        dialog = make(self.window)
        self.window._show_dialog(dialog)
        return dialog

    def open_distance(self):
        from workstation.app.distance_dialogs import MinimumDistanceDialog

        return self._open(MinimumDistanceDialog)

    def open_margin_map(self):
        from workstation.app.distance_dialogs import MarginMapDialog

        return self._open(MarginMapDialog)

    def open_sizes(self):
        from workstation.app.sizes_dialog import StructureSizesDialog

        return self._open(StructureSizesDialog)

    def open_resection(self):
        from workstation.app.resection_dialog import ResectionDialog

        return self._open(ResectionDialog)

    def open_export(self):
        from workstation.app.mesh_export_dialog import MeshExportDialog

        return self._open(MeshExportDialog)

    def snapshot_3d(self):
        ask = getattr(self.window.view3d, "ask_snapshot", None)
        if ask is None:
            self.window.on_job_failed("3D snapshot", "the 3D view is not available on this display")
            return None
        return ask()
