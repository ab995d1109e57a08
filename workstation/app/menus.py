"""The main window's menus (File, Edit, View, Structures, Help; the Surgery menu of surgery.py
in its place), the Tools toolbar (tools, undo/redo, structure commands, window presets), the
enabling and naming of their actions as the case changes, File ▸ Open recent and Help ▸ Mouse
and keys. The slots are the window's and its helpers' (opening, commands)."""

from __future__ import annotations

import html
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QActionGroup, QKeySequence
from PyQt6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QLabel, QToolBar, QVBoxLayout

from planning.volume import not_in_hu
from workstation.app.surgery import SurgeryMenu
from workstation.app.windowing import AUTOMATIC, PRESETS

MAX_RECENT = 10
HELP_TEXT = """Views
  Wheel, Up/Down, PgUp/PgDn: scroll slices     Ctrl+wheel, +/-: zoom     R / Ctrl+0: reset zoom
  Right-drag: window/level (horizontal = width, vertical = level)
  F1–F6: CT window presets (HU; not on MR)     F7: the window the image opened with
  Middle-drag or Shift+left-drag: pan     Left click (Navigate): move the linked crosshair
  Double-click a view's title bar: maximise / restore it
  Keys act on the view under the pointer, whatever has the focus (not a name or value being typed)

Tools (on the selected structure)
  B brush, E eraser ([ and ] change the size; Ctrl swaps paint/erase), D draw (drag: freehand;
  clicks: polygon, double-click or Enter closes, Esc cancels, Ctrl subtracts), F fill,
  X erase a connected piece, S seeded delineation (click inside; Ctrl+click outside), N navigate

Edit
  Ctrl+Z / Ctrl+Shift+Z: undo / redo any edit     Ctrl+I: interpolate     Ctrl+M: margins, Booleans
  Ctrl+Shift+A: auto-segmentation     Ctrl+E: export RTSTRUCT     Ctrl+S: save the session
  Ctrl+N: add a structure     Ctrl+Shift+D: duplicate the selected one     Ctrl+L: lock / unlock it
  Ctrl+O: open a folder     Ctrl+Q: quit     Shift+F1: this help

Surgery
  Minimum distance, margin map, structure volume and surface area, virtual resection (one undo
  step), 3D model export (STL/OBJ/PLY/VTP, 3D-printing check), 3D snapshot at a chosen size
"""


class WindowMenus:
    """The menus and toolbar of a main window, and their actions."""

    def __init__(self, window):
        self.window = window
        menu = window.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(
            self._action("&Open folder…", self.window.opening.ask_open_folder, QKeySequence.StandardKey.Open)
        )
        file_menu.addAction(self._action("Open &image file…", self.window.opening.ask_open_file))
        file_menu.addAction(self._action("Retrieve from &PACS…", self.window.open_pacs))
        file_menu.addAction(self._action("Open &sample patient", self.window.opening.open_sample))
        self.import_action = self._action(
            "&Import structures…",
            self.window.opening.ask_import_structures,
            tip="RTSTRUCT, DICOM-SEG or label map",
        )
        file_menu.addAction(self.import_action)
        self.dose_action = self._action(
            "Open &dose…", self.window.opening.ask_open_dose, tip="RTDOSE of the open images"
        )
        file_menu.addAction(self.dose_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self._action("Open s&ession…", self.window.opening.ask_open_session))
        file_menu.addAction(
            self._action("&Save session", self.window.saving.save_session, QKeySequence.StandardKey.Save)
        )
        file_menu.addAction(self._action("Save session &as…", self.window.saving.ask_save_session_as))
        file_menu.addSeparator()
        self.export_action = self._action("&Export RTSTRUCT…", self.window.export_rtstruct, "Ctrl+E")
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.window.close, QKeySequence.StandardKey.Quit))

        edit_menu = menu.addMenu("&Edit")
        self.undo_action = self._action("&Undo", self.window.undo, QKeySequence.StandardKey.Undo)
        self.redo_action = self._action("&Redo", self.window.redo, QKeySequence.StandardKey.Redo)
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)

        view_menu = menu.addMenu("&View")
        for name in ("axial", "coronal", "sagittal", "3d"):
            view_menu.addAction(
                self._action(f"Maximise {name}", lambda _=False, n=name: self.window.grid.toggle(n))
            )
        view_menu.addAction(self._action("Four views", lambda: self.window.grid.maximise(None)))
        view_menu.addSeparator()
        window_menu = view_menu.addMenu("Window/level preset")
        for index, name in enumerate([*PRESETS, AUTOMATIC]):
            window_menu.addAction(
                self._action(name, lambda _=False, n=name: self.window.set_preset(n), f"F{index + 1}")
            )
        view_menu.addAction(self._action("Reset zoom", self.window.reset_views, "Ctrl+0"))
        self.show_dose_action = QAction("Show dose", self.window, checkable=True, checked=True)
        self.show_dose_action.setEnabled(False)
        self.show_dose_action.toggled.connect(self.window._toggle_dose)
        view_menu.addAction(self.show_dose_action)
        view_menu.addSeparator()
        view_menu.addAction(self.window.docks.browser_dock.toggleViewAction())
        view_menu.addAction(self.window.docks.structures_dock.toggleViewAction())
        view_menu.addAction(self.window.docks.messages_dock.toggleViewAction())
        view_menu.addAction(self.window.docks.dvh_dock.toggleViewAction())

        structures_menu = menu.addMenu("&Structures")
        structures_menu.addAction(
            self._action("&Add structure", lambda: self.window.commands.add_structure(), "Ctrl+N")
        )
        structures_menu.addAction(
            self._action("D&uplicate structure", self.window.commands.duplicate_structure, "Ctrl+Shift+D")
        )
        structures_menu.addAction(self._action("&Delete structure", self.window.commands.delete_structure))
        structures_menu.addAction(
            self._action(
                "&Lock / unlock structure",
                self.window.commands.toggle_lock,
                "Ctrl+L",
                "A locked structure's contours, name and type cannot be edited",
            )
        )
        self.interpolate_action = self._action(
            "&Interpolate between slices", self.window.commands.interpolate, "Ctrl+I"
        )
        structures_menu.addAction(self.interpolate_action)
        self.margins_action = self._action("&Margins and Booleans…", self.window.open_margins, "Ctrl+M")
        structures_menu.addAction(self.margins_action)
        self.compare_action = self._action(
            "&Compare structures…",
            self.window.open_compare,
            tip="Dice, HD95, surface Dice… of two structures",
        )
        structures_menu.addAction(self.compare_action)
        self.rebuild_action = self._action("Re&build derived structures", self.window.commands.rebuild_stale)
        self.rebuild_action.setStatusTip("Recompute margins and Booleans whose source structures changed")
        structures_menu.addAction(self.rebuild_action)
        structures_menu.addSeparator()
        self.autoseg_action = self._action("A&uto-segmentation…", self.window.open_autoseg, "Ctrl+Shift+A")
        structures_menu.addAction(self.autoseg_action)
        self.surgery = SurgeryMenu(self.window, menu)

        help_menu = menu.addMenu("&Help")
        help_menu.addAction(
            self._action("&Mouse and keys", self.show_help, "Shift+F1")  # F1 is the first preset
        )

        toolbar = QToolBar("Tools", self.window)
        toolbar.setObjectName("tools")
        self.window.addToolBar(toolbar)
        group = QActionGroup(self.window)
        group.setExclusive(True)
        self.tool_actions: dict[str | None, QAction] = {}
        navigate = QAction("Navigate", self.window, checkable=True, checked=True)
        navigate.setShortcut(QKeySequence("N"))
        navigate.setToolTip("Navigate (N): click to move the crosshair")
        navigate.triggered.connect(lambda: self.window.tools.activate(None))
        self.tool_actions[None] = navigate
        for key, tool in self.window.tools.tools.items():
            action = QAction(tool.title, self.window, checkable=True)
            if tool.shortcut:
                action.setShortcut(QKeySequence(tool.shortcut))
            action.setToolTip(f"{tool.title} ({tool.shortcut}): {tool.tip}" if tool.shortcut else tool.tip)
            action.triggered.connect(lambda _=False, k=key: self.window.tools.activate(k))
            self.tool_actions[key] = action
        for action in self.tool_actions.values():
            group.addAction(action)
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.undo_action)
        toolbar.addAction(self.redo_action)
        toolbar.addSeparator()
        toolbar.addAction(self.interpolate_action)
        toolbar.addAction(self.margins_action)
        toolbar.addAction(self.autoseg_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Window ", self.window))
        self.preset_box = QComboBox(self.window)
        self.preset_box.addItems(["Custom", AUTOMATIC, *PRESETS])
        self.preset_box.textActivated.connect(self.window.set_preset)
        toolbar.addWidget(self.preset_box)
        self.update()

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self.window)
        action.triggered.connect(slot)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        return action

    def update(self) -> None:
        """Enable the actions that apply to the open case; name what Undo and Redo would do."""
        history = self.window.case.history if self.window.case is not None else None
        self.undo_action.setEnabled(bool(history and history.can_undo))
        self.redo_action.setEnabled(bool(history and history.can_redo))
        _label(self.undo_action, "Undo", history.undo_text if history and history.can_undo else "")
        _label(self.redo_action, "Redo", history.redo_text if history and history.can_redo else "")
        has_case = self.window.case is not None
        for action in (
            self.export_action,
            self.interpolate_action,
            self.margins_action,
            self.autoseg_action,
            self.import_action,
            self.dose_action,
        ):
            action.setEnabled(has_case)
        self.compare_action.setEnabled(has_case and len(self.window.case.structures) >= 2)
        self._enable_ct_presets()
        self.surgery.update()

    def _enable_ct_presets(self) -> None:
        """Offer the CT presets in the toolbar's box only for an image in HU; say why not."""
        modality = self.window.case.volume.modality if self.window.case is not None else "CT"
        tip = not_in_hu("A CT window", modality)
        model = self.preset_box.model()
        for name in PRESETS:
            item = model.item(self.preset_box.findText(name))
            item.setEnabled(not tip)
            item.setToolTip(tip)

    def remember(self, path) -> None:
        """Put `path` first in File ▸ Open recent."""
        text = str(Path(path).resolve())
        recent = [p for p in self.recent() if p != text]
        self.window.settings.setValue("recent", [text, *recent][:MAX_RECENT])

    def recent(self) -> list[str]:
        value = self.window.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent():
            self.recent_menu.addAction(
                self._action(path, lambda _=False, p=path: self.window.opening.open_path(p))
            )
        if not self.recent():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def show_help(self) -> QDialog:
        """Help ▸ Mouse and keys, left open beside the work: the table unwrapped in a fixed-width
        font (a message box wrapped it to 400 pixels and its columns ran into each other)."""
        box = QDialog(self.window)
        box.setWindowTitle("Mouse and keys")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        layout = QVBoxLayout(box)
        layout.addWidget(QLabel(f"<pre>{html.escape(HELP_TEXT)}</pre>", box))
        ok = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, box)
        ok.accepted.connect(box.close)
        layout.addWidget(ok)
        box.show()
        return box


def _label(action: QAction, verb: str, what: str) -> None:
    """Name `action` "`verb` `what`" in menus and its tooltip, and just `verb` on its toolbar
    button: a long name there pushed the tools after it, the Window preset box first, into the
    toolbar's overflow menu."""
    text = f"{verb} {what}" if what else verb
    action.setText(f"&{text}")
    action.setIconText(verb)
    action.setToolTip(text)
