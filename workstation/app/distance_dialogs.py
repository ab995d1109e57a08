"""Surgery ▸ Minimum distance and Surgery ▸ Margin map.

Minimum distance: the shortest gap between two structures' surfaces
(`planning.measurements.minimum_distance`, exact point-to-triangle), computed in a job; the
closest points are drawn in the 3D view and "Tumour ↔ Vessel: 7.4 mm" goes to the status bar and
the Messages panel. Margin map: a structure's surface coloured by each point's distance to a
reference structure (the 3D view computes it in its own worker), summed up as the nearest point
and the share of the surface's area within a distance.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from planning.errors import DelineoError
from planning.measurements import ClosestPoints, minimum_distance, vertex_areas
from planning.structures import Structure
from workstation.app.surgery import (
    SurfaceSource,
    SurgeryDialog,
    case_gone,
    list_structures,
    non_empty_names,
    report,
    same_geometry,
)


def _pair_boxes(dialog, window) -> tuple[QComboBox, QComboBox]:
    """Two structure choosers that follow the case's structures: the selected structure (or
    the first) first, another second."""
    names = non_empty_names(window.case)
    first, second = QComboBox(dialog), QComboBox(dialog)
    for box in (first, second):
        list_structures(box, window.case)
    active = window.table.active_name()
    first.setCurrentText(active if active in names else names[0] if names else "")
    others = [n for n in names if n != first.currentText()]
    if others:
        second.setCurrentText(others[0])
    dialog.follow_structures(first, second)
    return first, second


def _is(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


def _was(names: list[str]) -> str:
    return "was" if len(names) == 1 else "were"


def _note(dialog) -> QLabel:
    label = QLabel("", dialog)
    label.setWordWrap(True)
    label.setMinimumHeight(40)
    return label


def _fade_box(dialog) -> QCheckBox:
    box = QCheckBox("Fade the other structures in the 3D view", dialog)
    box.setChecked(True)
    box.setToolTip("What lies inside other structures shows through, until this dialog closes")
    return box


def describe_distance(first: str, second: str, closest: ClosestPoints) -> str:
    if closest.overlapping:
        return f"{first} ↔ {second}: 0 mm: they touch or overlap"
    return f"{first} ↔ {second}: {closest.distance_mm:.1f} mm"


class MinimumDistanceDialog(SurgeryDialog):
    """Pick two structures; measure the shortest distance between them."""

    def __init__(self, window):
        super().__init__(window, "Minimum distance")
        self.result: ClosestPoints | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.first, self.second = _pair_boxes(self, window)
        form.addRow("From", self.first)
        form.addRow("To", self.second)
        layout.addLayout(form)
        self.fade = _fade_box(self)
        layout.addWidget(self.fade)
        self.note = _note(self)
        layout.addWidget(self.note)
        buttons = QDialogButtonBox(self)
        self.measure_button = self.action_button = QPushButton("Measure", self)
        self.measure_button.setDefault(True)
        self.clear_button = QPushButton("Clear from 3D view", self)
        buttons.addButton(self.measure_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.clear_button, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)
        self.measure_button.clicked.connect(self.measure)
        self.clear_button.clicked.connect(self._clear)
        layout.addWidget(buttons)
        #: the structures the result shown was measured on, and the result in words
        self.measured: tuple = ()
        self._text = ""
        self.link(self.case.structures.changed, self._on_edited)
        self.link(self.case.structures.removed, self._on_edited)
        self.resize(420, 0)

    def measure(self) -> None:
        """Measure in a job; draw and report the result when it is done."""
        if case_gone(self):
            return
        first, second = self.first.currentText(), self.second.currentText()
        if not first or not second or first == second:
            self.note.setText("Choose two different structures.")
            return
        window = self.window_
        try:
            source = SurfaceSource(window, [first, second])
        except DelineoError as error:
            self.note.setText(str(error))
            return
        if source.empty:
            self.note.setText(f"{', '.join(source.empty)} is empty: draw it first.")
            return
        self.note.setText(f"Measuring {first} ↔ {second}…")

        def work(on_progress, cancel):
            surfaces = source.build(on_progress, cancel)
            on_progress("Closest points", 0, 0)
            return minimum_distance(source.require(surfaces, first), source.require(surfaces, second))

        def done(closest: ClosestPoints) -> None:
            structures = self.case.structures
            edited = [
                n
                for n, c in source.copies.items()
                if n not in structures or not same_geometry(structures[n], c)
            ]
            if edited:
                self.note.setText(
                    f"Not shown: {', '.join(edited)} changed while it was measured. Measure again."
                )
                return
            self.result = closest
            self.measured = (structures[first], structures[second])
            text = self._text = describe_distance(first, second, closest)
            self._say_result()
            draw = getattr(window.view3d, "draw_minimum_distance", None)
            if draw is not None:
                draw(closest, first, second)
                self.fade_3d([first, second] if self.fade.isChecked() else None)
            report(window, text)

        def failed(error: Exception) -> None:
            self.note.setText(f"Not measured: {error}")

        self.run_job(f"Minimum distance {first} ↔ {second}", work, done, failed)

    def _say_result(self) -> None:
        """The distance shown, and why the 3D view draws no line for it: the line shows only
        while both structures do."""
        hidden = [s.name for s in self.measured if not s.visible]
        why = f"\nNot drawn: {' and '.join(hidden)} {_is(hidden)} hidden" if hidden else ""
        self.note.setText(self._text + why)

    def _on_edited(self, structure, box=True) -> None:
        """A measured structure's voxels changed or it was deleted: the distance shown is out of
        date (the 3D view drops its line). `box` None: only its name, colour or visibility
        changed: the note says whether the line is drawn."""
        if not any(structure is s for s in self.measured):
            return
        if box is None:
            self._say_result()
            return
        self.measured = ()
        self.note.setText(f"{self._text}: out of date, {structure.name} changed since. Measure again.")

    def _clear(self) -> None:
        self.clear_3d()
        self.measured = ()
        self.note.setText("")

    def clear_3d(self) -> None:
        """Remove the distance this dialog drew (not a newer one) and unfade."""
        view = self.window_.view3d
        if self.result is not None and getattr(view, "shown_distance", None) is self.result:
            view.clear_distance()
        super().clear_3d()


class MarginMapDialog(SurgeryDialog):
    """Colour a structure's surface by its distance to a reference structure."""

    def __init__(self, window):
        super().__init__(window, "Margin map")
        #: the structure whose map is shown, and the reference and limit it was asked with (the
        #: structures themselves: a rename does not lose them)
        self.shown: Structure | None = None
        self.shown_with: tuple[Structure | None, float] = (None, 0.0)
        self._report_next = False
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.structure, self.reference = _pair_boxes(self, window)
        self.max_mm = QDoubleSpinBox(self)
        self.max_mm.setRange(1.0, 200.0)
        self.max_mm.setDecimals(1)
        self.max_mm.setSuffix(" mm")
        self.max_mm.setValue(20.0)
        self.max_mm.setToolTip("Distances from this on are shown green")
        form.addRow("Colour", self.structure)
        form.addRow("By distance to", self.reference)
        form.addRow("Green from", self.max_mm)
        layout.addLayout(form)
        legend = QLabel("Red: touching or inside the reference · yellow: half-way · green: far enough", self)
        legend.setWordWrap(True)
        layout.addWidget(legend)
        self.fade = _fade_box(self)
        layout.addWidget(self.fade)
        self.note = _note(self)
        layout.addWidget(self.note)
        buttons = QDialogButtonBox(self)
        self.show_button = QPushButton("Show", self)
        self.show_button.setDefault(True)
        self.clear_button = QPushButton("Clear", self)
        buttons.addButton(self.show_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.clear_button, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)
        self.show_button.clicked.connect(self.show_map)
        self.clear_button.clicked.connect(self.clear_map)
        layout.addWidget(buttons)
        view = window.view3d
        self._view = view if hasattr(view, "show_margin_map") else None
        #: a map asked for while the 3D view builds surfaces: (structure, reference, limit mm)
        self._asked: tuple | None = None
        self._wait = QTimer(self)
        self._wait.setInterval(200)
        self._wait.timeout.connect(self._show_asked)
        if self._view is not None:
            self.link(self._view.margin_map_shown, self._on_shown)
        else:
            self.note.setText("The 3D view is not available on this display: margin maps need it.")
            self.show_button.setEnabled(False)
        self.resize(420, 0)

    def show_map(self) -> None:
        """Show the map chosen; while the 3D view builds surfaces, once it is done."""
        if self._view is None or case_gone(self):
            return
        structure, reference = self.structure.currentData(), self.reference.currentData()
        if structure is None or reference is None or structure is reference:
            self.note.setText("Choose two different structures.")
            return
        self._asked = (structure, reference, self.max_mm.value())
        self._show_asked()

    def _show_asked(self) -> None:
        """Show the map asked for, when the 3D view has built the surfaces (checked every
        0.2 s meanwhile, without blocking)."""
        if self._asked is None or not self.is_open or case_gone(self):
            self._stop_waiting()
            return
        view = self._view
        if not view.is_ready():
            self.note.setText("The 3D view is still building surfaces: the map shows when they are ready.")
            self._wait.start()
            return
        structure, reference, limit = self._asked
        self._stop_waiting()
        gone = [s.name for s in (structure, reference) if not any(s is t for t in self.case.structures)]
        if gone:
            self.note.setText(f"No margin map: {' and '.join(gone)} {_was(gone)} deleted meanwhile.")
            return
        name, to = structure.name, reference.name
        empty = [n for n in (name, to) if view.surface(n) is None]
        if empty:
            self.note.setText(f"No margin map: {' and '.join(empty)} {_is(empty)} empty now.")
            return
        if self.shown is not None and self.shown is not structure:
            view.clear_margin_map(self.shown.name)
        try:
            view.show_margin_map(name, to, limit)
        except ValueError as error:
            self.note.setText(f"No margin map: {error}")
            return
        self.shown, self.shown_with, self._report_next = structure, (reference, limit), True
        self.fade_3d([name, to] if self.fade.isChecked() else None)
        self.note.setText(f"Colouring {name} by its distance to {to}…")

    def _on_shown(self, name: str) -> None:
        """The map of `name` is (re)computed: the note follows it; only the map asked for with
        Show goes to the Messages panel (the view recomputes it after every edit)."""
        if self.shown is None or name != self.shown.name or self.window_.case is not self.case:
            return
        values, surface = self._view.margin_values(name), self._view.surface(name)
        if values is None or not len(values) or surface is None:
            return
        reference, limit = self.shown_with
        text = describe_margins(name, reference.name, limit, values, vertex_areas(surface))
        self.note.setText(text)
        if self._report_next:
            self._report_next = False
            report(self.window_, f"Margin map: {text}")

    def clear_map(self) -> None:
        self.clear_3d()
        self.note.setText("")

    def clear_3d(self) -> None:
        """Remove the map (and its colour bar), forget one waited for, and unfade."""
        self._stop_waiting()
        if self._view is not None and self.shown is not None and self.window_.case is self.case:
            self._view.clear_margin_map(self.shown.name)
        self.shown, self._report_next = None, False
        super().clear_3d()

    def _stop_waiting(self) -> None:
        self._asked = None
        self._wait.stop()


def describe_margins(name: str, to: str, limit: float, values: np.ndarray, areas: np.ndarray) -> str:
    """A margin map in words: the nearest point and the share of the surface's area within
    `limit` mm, from each vertex's distance `values` (mm) and the area it stands for `areas`
    (mm², `planning.measurements.vertex_areas`)."""
    nearest = float(np.min(values))
    within = 100.0 * float(areas[values < limit].sum() / areas.sum())
    if nearest <= 0:
        text = f"{name} touches or enters {to}"
    else:
        text = f"{name}: nearest point {nearest:.1f} mm from {to}"
    return text + f"; {within:.0f} % of its surface area within {limit:g} mm"
