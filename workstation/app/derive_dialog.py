"""Margins and Booleans: grow/shrink (uniform or six directions in mm), rings, union,
intersection, subtraction, XOR, crops (A away from B plus a margin, or A inside B less a margin:
"PTV 3 mm inside the skin", "PTV 5 mm clear of the rectum"), fill holes, small islands;
optionally kept inside a structure. Only the fields the chosen operation uses are shown.

The dialog only builds a recipe (plain data); `services.derive` computes it with planning's
margin and Boolean functions in a worker, and the result lands in a new or existing structure as
one undo step, with its recipe recorded so it can be rebuilt when its sources change. A locked
structure is read as a source but never written into: OK waits for another name. A new
structure whose usual colour is too close to one in the case gets a distinct one.
"""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from planning.tg263 import distinct_color
from workstation.app import services
from workstation.app.history import Locked

OPERATIONS = {
    "Expand (margin)": "expand",
    "Shrink (margin)": "shrink",
    "Ring": "ring",
    "Union A ∪ B": "union",
    "Intersection A ∩ B": "intersect",
    "Subtract A − B": "subtract",
    "XOR A ⊕ B": "xor",
    "Crop A away from B (+ margin)": "crop_away",
    "Crop A to inside B (− margin)": "crop_inside",
    "Fill holes": "fill_holes",
    "Remove islands smaller than": "remove_islands",
    "Keep the largest pieces": "keep_largest",
}
CROPS = {"crop_away", "crop_inside"}
TWO_SOURCES = {"union", "intersect", "subtract", "xor", *CROPS}
MARGIN_OPS = {"expand", "shrink", *CROPS}
DIRECTIONS = ("right", "left", "anterior", "posterior", "superior", "inferior")


def _mm_box(parent, value: float = 5.0, maximum: float = 100.0) -> QDoubleSpinBox:
    box = QDoubleSpinBox(parent)
    box.setRange(0.0, maximum)
    box.setSingleStep(0.5)
    box.setDecimals(1)
    box.setSuffix(" mm")
    box.setValue(value)
    return box


class DeriveDialog(QDialog):
    """Build a derived structure from existing ones."""

    derived = pyqtSignal(str)

    def __init__(self, window):
        super().__init__(window)
        self.window_ = window
        self.case = window.case
        self.setWindowTitle("Margins and Booleans")
        names = self.case.structures.names()
        active = window.table.active_name()

        layout = QVBoxLayout(self)
        form = self.form = QFormLayout()
        self.operation = QComboBox(self)
        self.operation.addItems(list(OPERATIONS))
        form.addRow("Operation", self.operation)
        self.source_a = QComboBox(self)
        self.source_a.addItems(names)
        if active:
            self.source_a.setCurrentText(active)
        form.addRow("Structure A", self.source_a)
        self.source_b = QComboBox(self)
        self.source_b.addItems(names)
        form.addRow("Structure B", self.source_b)

        self.margin = _mm_box(self)
        form.addRow("Margin", self.margin)
        self.per_direction = QCheckBox("Different margin per direction", self)
        form.addRow(self.per_direction)
        self.directions = QWidget(self)
        grid = QGridLayout(self.directions)
        grid.setContentsMargins(0, 0, 0, 0)
        self.direction_boxes = {}
        for i, direction in enumerate(DIRECTIONS):
            box = _mm_box(self.directions)
            self.direction_boxes[direction] = box
            grid.addWidget(QLabel(direction.capitalize(), self.directions), i // 2, (i % 2) * 2)
            grid.addWidget(box, i // 2, (i % 2) * 2 + 1)
        form.addRow(self.directions)
        self.inner = QDoubleSpinBox(self)
        self.inner.setRange(-100, 100)
        self.inner.setSuffix(" mm")
        self.inner.setValue(2.0)
        self.outer = QDoubleSpinBox(self)
        self.outer.setRange(-100, 200)
        self.outer.setSuffix(" mm")
        self.outer.setValue(20.0)
        form.addRow("Ring from", self.inner)
        form.addRow("Ring to", self.outer)
        self.island_cc = QDoubleSpinBox(self)
        self.island_cc.setRange(0.0, 1000.0)
        self.island_cc.setDecimals(2)
        self.island_cc.setSuffix(" cc")
        self.island_cc.setValue(0.1)
        form.addRow("Islands under", self.island_cc)
        self.pieces = QSpinBox(self)
        self.pieces.setRange(1, 99)
        form.addRow("Pieces to keep", self.pieces)
        self.per_slice = QCheckBox("Fill holes in each slice (also those open to another slice)", self)
        form.addRow(self.per_slice)
        self.within = QComboBox(self)
        self.within.addItem("(nowhere)")
        self.within.addItems(names)
        external = next((s.name for s in self.case.structures if s.roi_type.value == "EXTERNAL"), None)
        if external:
            self.within.setCurrentText(external)
        form.addRow("Keep inside", self.within)
        self.output = QLineEdit(self)
        self.output.setPlaceholderText("name of the new (or an existing) structure")
        form.addRow("Result into", self.output)
        layout.addLayout(form)
        self.warning = QLabel("", self)  # what OK would do beyond making a new structure
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b00020")
        layout.addWidget(self.warning)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.compute)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        for signal in (
            self.operation.currentIndexChanged,
            self.per_direction.toggled,
            self.source_a.currentIndexChanged,
            self.source_b.currentIndexChanged,
            self.margin.valueChanged,
            self.inner.valueChanged,
            self.outer.valueChanged,
            self.output.textChanged,
        ):
            signal.connect(self._refresh)
        self.setMinimumWidth(self.sizeHint().width())  # as wide as with every field: only its height changes
        self._refresh()

    def _refresh(self, *args) -> None:
        op = OPERATIONS[self.operation.currentText()]
        self._show_fields(op)
        self.margin.setEnabled(not self.per_direction.isChecked())
        self.output.setPlaceholderText(_suggest_name(op, self.source_a.currentText(), self.margin.value()))
        self.warning.setText(self._warning())
        self.ok_button.setEnabled(not self._impossible_ring() and not self._locked_output())

    def _show_fields(self, op: str) -> None:
        """Show only the rows `op` uses; the dialog's height follows, its width stays."""
        shown = {
            self.source_b: op in TWO_SOURCES,
            self.margin: op in MARGIN_OPS,
            self.per_direction: op in MARGIN_OPS,
            self.directions: op in MARGIN_OPS and self.per_direction.isChecked(),
            self.inner: op == "ring",
            self.outer: op == "ring",
            self.island_cc: op == "remove_islands",
            self.pieces: op == "keep_largest",
            self.per_slice: op == "fill_holes",
        }
        if all(self.form.isRowVisible(widget) == visible for widget, visible in shown.items()):
            return
        for widget, visible in shown.items():
            self.form.setRowVisible(widget, visible)
        self.layout().activate()
        self.resize(self.width(), self.sizeHint().height())

    def _impossible_ring(self) -> bool:
        return OPERATIONS[self.operation.currentText()] == "ring" and self.outer.value() <= self.inner.value()

    def _locked_output(self) -> bool:
        name = self.output_name()
        return name in self.case.structures and self.case.structures[name].locked

    def _warning(self) -> str:
        """Said before OK: a ring that cannot be, or a result that replaces a structure."""
        name = self.output_name()
        if self._impossible_ring():
            return "A ring needs its outer distance beyond its inner one."
        if name not in self.case.structures:
            return ""
        if self._locked_output():
            return f"{Locked(name)}, or put the result into another structure."
        if name in services.recipe_sources(self.recipe()):
            return (
                f"{name} will be replaced by this result, as a one-off edit (it reads {name} "
                "itself, so it keeps no recipe); Undo restores it."
            )
        return f"{name} exists: its contours will be replaced by this result; Undo restores them."

    def recipe(self) -> dict:
        """The operation as plain data, in `planning.derived`'s recipe format."""
        op = OPERATIONS[self.operation.currentText()]
        a, b = self.source_a.currentText(), self.source_b.currentText()
        recipe: dict = {"op": op, "source": a}
        if op in CROPS:
            recipe = self._crop(op, a, b)
        elif op == "subtract":
            recipe["minus"] = [b]
        elif op in TWO_SOURCES:
            recipe = {"op": op, "sources": [a, b]}
        elif op in MARGIN_OPS:
            recipe["margins"] = self._margins()
        elif op == "ring":
            recipe.update(inner_mm=self.inner.value(), outer_mm=self.outer.value())
        elif op == "remove_islands":
            recipe["min_cc"] = self.island_cc.value()
        elif op == "keep_largest":
            recipe["count"] = self.pieces.value()
        elif op == "fill_holes":
            recipe["per_slice"] = self.per_slice.isChecked()
        if self.within.currentIndex() > 0:
            recipe["within"] = self.within.currentText()
        return recipe

    def _margins(self) -> dict | float:
        """The margin in mm, or the six directional ones."""
        if self.per_direction.isChecked():
            return {d: box.value() for d, box in self.direction_boxes.items()}
        return self.margin.value()

    def _crop(self, op: str, a: str, b: str) -> dict:
        """A minus B grown by the margin, or A within B shrunk by it (nested recipes)."""
        margins = self._margins()
        moved = (
            b
            if margins == 0
            else {"op": "expand" if op == "crop_away" else "shrink", "source": b, "margins": margins}
        )
        if op == "crop_away":
            return {"op": "subtract", "source": a, "minus": [moved]}
        return {"op": "intersect", "sources": [a, moved]}

    def output_name(self) -> str:
        return self.output.text().strip() or self.output.placeholderText()

    def compute(self) -> None:
        """Compute the recipe in a worker; the result goes into `output_name()` (one undo step)."""
        recipe, name = self.recipe(), self.output_name()
        case = self.case
        sources = services.recipe_sources(recipe)  # as they are now, whatever is drawn meanwhile
        structures = {s.name: s.snapshot() for s in case.structures if s.name in sources}
        label = f"{self.operation.currentText().split(' (')[0]} → {name}"

        def done(result):
            structure, warnings = result
            if name not in case.structures:
                structure.color = distinct_color(structure.color, [s.color for s in case.structures])
            case.derive_into(name, structure, label)
            self.window_.table.select(name)
            if structure.mask.is_empty:  # a contraction larger than the structure, disjoint sources
                self.window_.statusBar().showMessage(f"{name} is empty: {label} leaves nothing", 15000)
            elif warnings:  # a margin cut where the images end: in Messages too
                self.window_.statusBar().showMessage(f"{name}: {warnings[0]}", 20000)
            self.derived.emit(name)

        self.window_.jobs.run(
            f"Computing {name}",
            lambda on_progress, cancel: services.logged_warnings(
                services.derive, recipe, structures, name=name, on_progress=on_progress, cancel=cancel
            ),
            done,
        )
        self.accept()


def _suggest_name(op: str, source: str, margin_mm: float) -> str:
    from planning.margins import prv_name

    if op == "expand" and source.upper().startswith("CTV"):
        return "PTV" + source[3:]
    if op == "expand" and source.upper().startswith("GTV"):
        return "CTV" + source[3:]
    if op == "expand":
        return prv_name(source, margin_mm)
    if op == "ring":
        return f"{source}_Ring"
    if op in CROPS:
        return f"{source}_Crop"
    return f"{source}_{op}"
