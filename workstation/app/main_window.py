"""The Delineo main window: patient browser, four views, structure table, tools, jobs, sessions."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PyQt6 import sip
from PyQt6.QtCore import QPoint, QRect, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QImage, QPainter
from PyQt6.QtWidgets import (
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
)
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

from planning.errors import DelineoError, GeometryError
from planning.volume import not_in_hu, values_are_hu
from workstation.app.autosave import Autosaver
from workstation.app.autoseg_dialog import AutoSegDialog
from workstation.app.case import Case
from workstation.app.compare_dialog import CompareDialog
from workstation.app.derive_dialog import DeriveDialog
from workstation.app.docks import WindowDocks
from workstation.app.dose_layer import DoseLayer
from workstation.app.export_dialog import ExportDialog
from workstation.app.history import Locked
from workstation.app.jobs import JobRunner, ProgressPanel
from workstation.app.menus import WindowMenus
from workstation.app.opening import CaseOpening
from workstation.app.saved_view import checked_view_state
from workstation.app.saving import SessionSaving
from workstation.app.slice_view import SliceView
from workstation.app.slicing import VIEWS
from workstation.app.structure_commands import StructureCommands
from workstation.app.three_d import make_3d_view
from workstation.app.tools.base import ToolContext, ToolManager
from workstation.app.tools.brush import BrushTool, EraserTool
from workstation.app.tools.draw import DrawTool
from workstation.app.tools.region import EraseRegionTool, FillTool
from workstation.app.tools.seeded import SeededTool
from workstation.app.view_grid import ViewGrid
from workstation.app.view_keys import ViewKeys
from workstation.app.viewstate import ViewState
from workstation.app.windowing import AUTOMATIC, PRESETS, Window, auto_window

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """The workstation window.

    Args:
        settings: where preferences, tool settings and recent files are kept (passed in).
        data_dir: where autosaves go.
        autosave_interval_s: seconds between autosaves of a changed case.
    """

    #: Emitted when a case is shown (after loading, recovery or session restore).
    case_changed = pyqtSignal()

    def __init__(self, settings: QSettings, data_dir: Path, *, autosave_interval_s: float = 30.0):
        super().__init__()
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.case: Case | None = None
        self.state: ViewState | None = None
        #: the window the case opened with (View ▸ Window/level preset ▸ Automatic)
        self.start_window: Window | None = None
        self.view_generation = 0
        #: the case history's generation when last saved (None: unsaved); `dirty` compares it
        self.saved_generation: int | None = None
        self.session_path: Path | None = None
        self.autoseg_dialog: AutoSegDialog | None = None
        self.dose_layer: DoseLayer | None = None
        self.dose_path: str | None = None
        self.last_dialog = None
        #: the view and continuous voxel (z, y, x) the hover label describes; None: no image there
        self._hover: tuple[SliceView, np.ndarray] | None = None
        self.setWindowTitle("Delineo")
        self.resize(1500, 950)

        self.jobs = JobRunner(self)
        self.jobs.failed.connect(self.on_job_failed)
        self.jobs.refused.connect(self._on_job_refused)
        self.views = {name: SliceView(name) for name in VIEWS}
        self.view3d = make_3d_view(self)
        if hasattr(self.view3d, "failed"):
            self.view3d.failed.connect(lambda message: self.on_job_failed("3D view", message))
        self.grid = ViewGrid({**self.views, "3d": self.view3d}, self)
        self.grid.layout_changed.connect(lambda _: self._view_changed())
        self.setCentralWidget(self.grid)

        context = ToolContext(
            settings=settings,
            case=lambda: self.case,
            active_structure=lambda: self.table.active_name(),
            message=lambda text: self.statusBar().showMessage(text, 6000),
            run_job=self.jobs.run,
            views=lambda: list(self.views.values()),
        )
        self.tools = ToolManager(context, self._make_tools(context), self)
        for tool in self.tools.tools.values():
            self.case_changed.connect(tool.image_changed)
        for view in self.views.values():
            view.tools = self.tools
            view.active_structure = lambda: self.table.active_name()
            view.hovered.connect(self._on_hover)

        self.commands = StructureCommands(self)
        for view in self.views.values():
            view.tool_pressed.connect(self.commands.note_drawing_view)
        self.opening = CaseOpening(self)
        self.saving = SessionSaving(self)
        self.docks = WindowDocks(self)
        # the panels, used all over, are the window's; their docks are window.docks'
        self.browser, self.table = self.docks.browser, self.docks.table
        self.messages, self.dvh_panel = self.docks.messages, self.docks.dvh_panel
        self.menus = WindowMenus(self)
        self.surgery = self.menus.surgery  # the Surgery menu, built in its place among the others
        self._build_status_bar()
        self.tools.active_changed.connect(self._on_tool_changed)
        self.autosaver = Autosaver(self, self.data_dir, autosave_interval_s)
        self.autosaver.failed.connect(self.saving.on_autosave_failed)
        self.setAcceptDrops(True)
        self.resizeDocks(
            [self.docks.browser_dock, self.docks.structures_dock], [220, 330], Qt.Orientation.Horizontal
        )
        self._restore_window_settings()
        self.view_keys = ViewKeys(self)
        self.view_keys.install()

    # -- construction --------------------------------------------------------------------------

    def _make_tools(self, context: ToolContext) -> list:
        return [
            BrushTool(context),
            EraserTool(context),
            DrawTool(context),
            FillTool(context),
            EraseRegionTool(context),
            SeededTool(context),
        ]

    def _build_status_bar(self) -> None:
        # permanent: a temporary message (an undo, a save) sits on the left and no longer hides
        # the position and value under the mouse
        self.hover_label = QLabel("", self)
        self.hover_label.setMinimumWidth(420)
        self.statusBar().addPermanentWidget(self.hover_label)
        self.progress_panel = ProgressPanel(self.jobs, self)
        self.statusBar().addPermanentWidget(self.progress_panel)
        self.statusBar().addPermanentWidget(self.messages.button)

    def _restore_window_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

    # -- case ----------------------------------------------------------------------------------

    def set_case(self, case: Case, view: dict | None = None) -> None:
        """Show `case` in every view (and restore a saved view state)."""
        if self.case is not None:
            self.case.history.changed.disconnect(self.menus.update)
            self.case.history.changed.disconnect(self.commands.schedule_stale_check)
            self.case.history.changed.disconnect(self._structures_edited)
            for event in _structure_events(self.case):
                event.disconnect(self._refresh_hover)
        self.case = case
        self._on_hover(None, None)  # it described the closed case's image
        self.dose_layer, self.dose_path = None, None
        for slice_view in self.views.values():
            slice_view.dose_layer = None
        if self.autoseg_dialog is not None:
            self.autoseg_dialog.cancel()  # a run for the case closed here
            self.autoseg_dialog.close()
            self.autoseg_dialog.dispose()
            self.autoseg_dialog = None
        if self.last_dialog is not None and not sip.isdeleted(self.last_dialog):
            self.last_dialog.close()  # it worked on the previous case's structures
        self.last_dialog = None
        self.start_window = auto_window(case.volume.array, case.volume.modality)
        self.state = ViewState(case.grid.shape, self.start_window)
        self.state.window_changed.connect(self._on_window_changed)
        self.state.cursor_changed.connect(self._view_changed)
        target = _initial_target(case)
        if target is not None:
            self.state.set_cursor([(s.start + s.stop - 1) / 2 for s in target.mask.box])
        for slice_view in self.views.values():
            slice_view.set_case(case, self.state)
        self.table.set_case(case)
        if target is not None:
            self.table.select(target.name)
        self.view3d.show_case(case)
        case.history.changed.connect(self.menus.update)
        case.history.changed.connect(self.commands.schedule_stale_check)
        case.history.changed.connect(self._structures_edited)
        for event in _structure_events(case):
            event.connect(self._refresh_hover)
        self.dvh_panel.mark_stale("New case")
        self.saved_generation = case.history.generation
        if view:
            self.restore_view_state(view)
        self._on_window_changed()
        self.menus.update()
        identity = case.volume.identity
        title = " — ".join(
            x
            for x in (
                identity.patient_name.replace("^", " "),
                identity.patient_id,
                identity.series_description,
            )
            if x
        )
        if not title and case.reference.kind == "file":
            title = Path(case.reference.path).name
        self.setWindowTitle(f"Delineo — {title}" if title else "Delineo")
        self.case_changed.emit()

    def set_dose(self, dose, path=None) -> None:
        """Show a dose distribution (a `planning.dose.Dose`) as a colour wash in the 2D views."""
        if self.case is None:
            return
        name = Path(path).name if path else "the dose"
        try:
            dose.check_same_frame([self.case.volume.frame_of_reference_uid], "the loaded images", name)
        except GeometryError as error:
            self.on_job_failed("Dose", str(error))
            return
        self.dose_path = str(path) if path else None
        self.dose_layer = DoseLayer(dose, self.case.grid)
        for view in self.views.values():
            view.set_dose(self.dose_layer if self.menus.show_dose_action.isChecked() else None)
        self.menus.show_dose_action.setEnabled(True)
        note = f"; {dose.warnings[0]}" if dose.warnings else ""
        self.statusBar().showMessage(f"Dose: maximum {dose.max:.2f} {dose.unit_label}{note}", 15000)
        self.dvh_panel.mark_stale("Dose loaded")

    def _structures_edited(self, *_) -> None:
        self.dvh_panel.mark_stale("Structures edited")

    def _toggle_dose(self, shown: bool) -> None:
        for view in self.views.values():
            view.set_dose(self.dose_layer if shown else None)

    def case_description(self) -> str:
        if self.case is None:
            return ""
        identity = self.case.volume.identity
        return f"{identity.patient_name or identity.patient_id} {identity.series_description}".strip()

    @property
    def dirty(self) -> bool:
        return self.case is not None and self.case.history.generation != self.saved_generation

    # -- sessions ------------------------------------------------------------------------------

    def view_state(self) -> dict:
        state = {
            "views": {name: view.view_state() for name, view in self.views.items()},
            "maximised": self.grid.maximised,
            "active_structure": self.table.active_name(),
            "tool": self.tools.active.key if self.tools.active else None,
            "dose": self.dose_path,
        }
        if self.state is not None:
            state.update(self.state.to_plain())
        return state

    def restore_view_state(self, plain: dict) -> None:
        """Put the views back as a session saved them; a damaged entry is left as the case
        starts, said in the Messages (`saved_view.checked_view_state`)."""
        plain, damaged = checked_view_state(
            plain, self.case.grid.shape, list(self.views), list(self.grid.frames)
        )
        for warning in damaged:
            self.messages.add("WARNING", warning)
        if damaged:
            self.statusBar().showMessage(damaged[0], 15000)
        if self.state is not None:
            self.state.restore(plain)
        for name, view_plain in plain.get("views", {}).items():
            if name in self.views:
                self.views[name].restore_view_state(view_plain)
        self.grid.maximise(plain.get("maximised"))
        dose = plain.get("dose")
        if dose and Path(dose).exists():
            self.opening.open_dose(dose)
        elif dose:
            self._report_missing_dose(dose)
        if plain.get("active_structure"):
            self.table.select(plain["active_structure"])
        if plain.get("tool") in self.tools.tools:
            self.tools.activate(plain["tool"])

    def _report_missing_dose(self, path: str) -> None:
        text = (
            f"The session's dose {path} is no longer there; opened without it "
            "(File ▸ Open dose… reads it from where it is now)"
        )
        self.statusBar().showMessage(text, 15000)
        self.messages.add("WARNING", text)

    def _view_changed(self) -> None:
        self.view_generation += 1

    # -- editing -------------------------------------------------------------------------------

    def undo(self) -> None:
        if self.case is not None and self.case.history.can_undo:
            self._step(self.case.history.undo, "Undid")

    def redo(self) -> None:
        if self.case is not None and self.case.history.can_redo:
            self._step(self.case.history.redo, "Redid")

    def _step(self, move, done: str) -> None:
        """Undo or redo; a step that would change a locked structure is refused, said instead."""
        try:
            command = move()
        except Locked as error:
            self.statusBar().showMessage(str(error), 8000)
            return
        self.statusBar().showMessage(f"{done}: {command.label}", 4000)

    def open_margins(self) -> None:
        if self.case is not None and len(self.case.structures):
            self._show_dialog(DeriveDialog(self))

    def open_compare(self) -> None:
        if self.case is not None and len(self.case.structures) >= 2:
            self._show_dialog(CompareDialog(self))

    def open_autoseg(self) -> None:
        if self.case is None:
            return
        if self.autoseg_dialog is None:
            try:
                self.autoseg_dialog = AutoSegDialog(self)
            except DelineoError as error:
                self.on_job_failed("Auto-segmentation", str(error))
                return
        self._show_dialog(self.autoseg_dialog)

    def export_rtstruct(self) -> ExportDialog | None:
        if self.case is None:
            return None
        dialog = ExportDialog(self)
        self._show_dialog(dialog)
        dialog.run_check()
        return dialog

    def open_pacs(self):
        """File ▸ Retrieve from PACS…: one dialog, kept (searches and retrieves outlive its closing)."""
        from workstation.app.pacs_dialog import PacsDialog

        self.pacs_dialog = getattr(self, "pacs_dialog", None) or PacsDialog(self)
        self._show_dialog(self.pacs_dialog)
        return self.pacs_dialog

    def _show_dialog(self, dialog) -> None:
        self.last_dialog = dialog
        dialog.show()
        dialog.raise_()

    # -- window/level, views -------------------------------------------------------------------

    def set_preset(self, name: str) -> None:
        """Set a CT window preset (HU) or the image's starting window (`AUTOMATIC`). A CT preset
        on an image whose values are not HU (an MR) is refused, saying why."""
        if self.state is None:
            return
        if name == AUTOMATIC:
            self.state.set_window(self.start_window)
        elif name in PRESETS and values_are_hu(self.case.volume.modality):
            self.state.set_window(Window(*PRESETS[name]))
        elif name in PRESETS:
            self.statusBar().showMessage(
                f"{name} is {not_in_hu('a CT window', self.case.volume.modality)}: right-drag sets "
                f"the window, {AUTOMATIC} (F7) the one it opened with",
                8000,
            )

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()

    def _on_window_changed(self) -> None:
        window = self.state.window
        presets = PRESETS if values_are_hu(self.case.volume.modality) else {}
        match = next((n for n, wl in presets.items() if wl == (window.width, window.level)), None)
        match = match or (AUTOMATIC if window == self.start_window else "Custom")
        self.menus.preset_box.setCurrentText(match)
        self._view_changed()

    def _refresh_hover(self, *_) -> None:
        """Name the structures under a still pointer anew: one was added, removed or changed."""
        if self._hover is not None:
            self._on_hover(*self._hover)

    def _on_hover(self, view: SliceView | None, zyx) -> None:
        self._hover = None if zyx is None else (view, zyx)
        if zyx is None or self.case is None:
            self.hover_label.setText("")
            return
        voxel = tuple(int(v) for v in np.rint(zyx))
        value = self.case.volume.array[voxel]
        point = self.case.grid.index_to_patient(np.asarray(zyx, float)[::-1])
        unit = " HU" if self.case.volume.modality == "CT" else ""
        inside = [
            s.name
            for s in self.case.structures
            if s.visible
            and s.mask.box is not None
            and s.mask.region(tuple(slice(v, v + 1) for v in voxel))[0, 0, 0]
        ]
        # the value and the structures first: a narrow window cuts the label's end off
        text = (
            f"{value:g}{unit}"
            + (f"   in {', '.join(inside)}" if inside else "")
            + f"   x {point[0]:.1f}  y {point[1]:.1f}  z {point[2]:.1f} mm (LPS)"
            + f"   voxel ({voxel[2]}, {voxel[1]}, {voxel[0]})"
        )
        self.hover_label.setText(text)
        self.hover_label.setToolTip(text)

    def on_active_structure(self, name) -> None:
        """Redraw the views: the active structure's outline is drawn differently."""
        for view in self.views.values():
            view.update()

    def _on_tool_changed(self, tool) -> None:
        key = tool.key if tool is not None else None
        self.docks.show_tool_page(key)
        self.menus.tool_actions[key].setChecked(True)

    def on_job_failed(self, title: str, message: str) -> None:
        """Say a failed job in the status bar, Messages and a warning box (a cancel: only the
        status bar)."""
        if message == "cancelled":
            self.statusBar().showMessage(f"{title}: cancelled", 6000)
            return
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        self.messages.add("ERROR", f"{title}: {message}")
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    def _on_job_refused(self, title: str, name: str) -> None:
        """Say calmly that a job's result was not applied: `name` was locked while it ran."""
        text = f"{title}: not applied, {name} was locked meanwhile"
        self.statusBar().showMessage(text, 15000)
        self.messages.add("WARNING", text)

    def view_under_mouse(self) -> SliceView | None:
        """The 2D view under the pointer: the one keys and tools act on (`view_keys`)."""
        return next((v for v in self.views.values() if v.underMouse()), None)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        tool = self.tools.active
        view = self.view_under_mouse()
        if tool is not None and view is not None and tool.key_pressed(view, event.key()):
            return
        super().keyPressEvent(event)

    # -- questions about unsaved changes (asked by window.saving; tests replace them) ----------

    def ask_unsaved_changes(self, description: str) -> str:
        """'save', 'discard' or 'cancel': what to do with unsaved changes before another case."""
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            f"{description} has changes that are not saved. Save them before opening another case?",
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Save,
        )
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "cancel")

    def ask_close_without_autosave(self, reason: str) -> str:
        """'save' (to a file picked now), 'quit' (dropping the changes) or 'cancel' (stay open): the
        window is closing and its unsaved changes could not be kept for the next start."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes not kept", reason, parent=self)
        box.setInformativeText("Save them to another place before closing?")
        save = box.addButton("Save elsewhere…", QMessageBox.ButtonRole.AcceptRole)
        quit_anyway = box.addButton("Quit without saving", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(save)
        box.exec()
        return {save: "save", quit_anyway: "quit"}.get(box.clickedButton(), "cancel")

    def ask_interpolation_view(self, name: str, views: list[str]) -> str | None:
        """The view (one of `views`) across whose slices to interpolate structure `name`, or None
        when the user cancels: asked when it has empty slices between drawn ones in several
        directions and was not drawn in this window."""
        choices = [f"Between its {view} slices" for view in views]
        choice, ok = QInputDialog.getItem(
            self,
            "Interpolate between slices",
            f"{name} has empty slices between drawn ones in several directions. Fill:",
            choices,
            0,
            False,
        )
        return views[choices.index(choice)] if ok else None

    # -- drag and drop, closing ----------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.opening.open_path(urls[0])

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.saving.close(event):
            self.view_keys.remove()
            super().closeEvent(event)

    def screenshot(self) -> QImage:
        """The window as shown, the 3D view's OpenGL pixels included (`grab` alone misses them)."""
        image = self.grab().toImage()
        render = getattr(self.view3d, "render_image", None)
        canvas = self.view3d.findChild(QVTKRenderWindowInteractor) if render else None
        if canvas is not None and canvas.isVisible():
            pixels = np.ascontiguousarray(render())
            height, width = pixels.shape[:2]
            picture = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
            painter = QPainter(image)
            target = QRect(canvas.mapTo(self, QPoint(0, 0)), canvas.size())
            painter.drawImage(target, picture)
            painter.end()
        return image

    def wait_idle_then(self, callback, poll_ms: int = 100) -> None:
        """Call `callback` once no job is running (used by the screenshot mode)."""
        if self.jobs.busy:
            QTimer.singleShot(poll_ms, lambda: self.wait_idle_then(callback, poll_ms))
        else:
            callback()


def _initial_target(case: Case):
    """The first target (GTV/CTV/PTV) with voxels: the views start on it, the table selects it."""
    for structure in case.structures:
        if structure.roi_type.value in ("GTV", "CTV", "PTV") and structure.mask.box is not None:
            return structure
    return None


def _structure_events(case: Case) -> tuple:
    """The events of `case`'s structure set: a structure added, removed, changed."""
    return (case.structures.added, case.structures.removed, case.structures.changed)
