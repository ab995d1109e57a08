"""Compare two structures of the case: a test one (an auto-contour, a second observer) against a
reference one, with the metrics of `delineo compare` (`planning.metrics.compare`: Dice, Jaccard,
sensitivity, precision, volumes, Hausdorff, HD95, mean surface distance, surface Dice at a
tolerance, added path length, centroid distance). Computed in a worker.
"""

from __future__ import annotations

import math

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from planning.metrics import Comparison, compare

#: rows of the result table: (label, Comparison field, format)
ROWS = (
    ("Dice", "dice", "{:.3f}"),
    ("Jaccard", "jaccard", "{:.3f}"),
    ("Sensitivity", "sensitivity", "{:.3f}"),
    ("Precision", "precision", "{:.3f}"),
    ("Reference volume", "reference_cc", "{:.2f} cc"),
    ("Test volume", "test_cc", "{:.2f} cc"),
    ("Volume difference", "volume_difference_cc", "{:+.2f} cc"),
    ("Hausdorff distance", "hausdorff_mm", "{:.2f} mm"),
    ("HD95", "hd95_mm", "{:.2f} mm"),
    ("Mean surface distance", "mean_surface_distance_mm", "{:.2f} mm"),
    ("Surface Dice", "surface_dice", "{:.3f}"),
    ("Added path length", "added_path_length_mm", "{:.0f} mm"),
    ("Centroid distance", "centroid_distance_mm", "{:.2f} mm"),
)


class CompareDialog(QDialog):
    """Pick a reference and a test structure and a tolerance; see every metric."""

    def __init__(self, window):
        super().__init__(window)
        self.window_ = window
        self.result: Comparison | None = None
        self.setWindowTitle("Compare structures")
        names = window.case.structures.names()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.reference = QComboBox(self)
        self.reference.addItems(names)
        self.test = QComboBox(self)
        self.test.addItems(names)
        active = window.table.active_name()
        if active:
            self.test.setCurrentText(active)
        self.tolerance = QDoubleSpinBox(self)
        self.tolerance.setRange(0.1, 50.0)
        self.tolerance.setSingleStep(0.5)
        self.tolerance.setSuffix(" mm")
        self.tolerance.setValue(2.0)
        self.tolerance.setToolTip("Surface Dice and added path length count surface within this distance")
        form.addRow("Reference", self.reference)
        form.addRow("Test", self.test)
        form.addRow("Tolerance", self.tolerance)
        layout.addLayout(form)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.clicked.connect(self.run)
        layout.addWidget(self.compare_button)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.table = QTableWidget(len(ROWS), 2, self)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (label, _, _) in enumerate(ROWS):
            self.table.setItem(row, 0, QTableWidgetItem(label))
        layout.addWidget(self.table)
        self.resize(380, 560)
        window.case.history.changed.connect(self._refresh_names)

    def _refresh_names(self) -> None:
        """Structures added, renamed or deleted since the dialog opened: offer the current ones."""
        names = self.window_.case.structures.names()
        for box in (self.reference, self.test):
            chosen = box.currentText()
            box.clear()
            box.addItems(names)
            if chosen in names:
                box.setCurrentText(chosen)

    def run(self) -> None:
        """Compare the chosen structures in a worker; the table fills when it is done."""
        structures = self.window_.case.structures
        reference, test = self.reference.currentText(), self.test.currentText()
        if reference == test:
            self.note.setText("Choose two different structures.")
            return
        reference_mask, test_mask = structures[reference].mask, structures[test].mask
        tolerance = self.tolerance.value()
        self.compare_button.setEnabled(False)
        self.note.setText(f"Comparing {test} with {reference}…")

        def done(result: Comparison) -> None:
            self.compare_button.setEnabled(True)
            self.show_result(f"{test} against {reference}", result)

        def failed(error: Exception) -> None:
            self.compare_button.setEnabled(True)
            self.note.setText("")
            self.window_.jobs.report(job, error)

        job = self.window_.jobs.run(
            "Comparing structures",
            lambda on_progress, cancel: compare(reference_mask, test_mask, tolerance_mm=tolerance),
            done,
            failed,
        )

    def show_result(self, title: str, result: Comparison) -> None:
        self.result = result
        empty = " (an empty structure: distances are infinite)" if math.isinf(result.hd95_mm) else ""
        self.note.setText(f"{title}; surface tolerance {result.tolerance_mm:g} mm{empty}")
        for row, (_, key, form) in enumerate(ROWS):
            value = getattr(result, key)
            item = QTableWidgetItem(form.format(value) if math.isfinite(value) else "∞")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 1, item)
        self.table.resizeColumnsToContents()
