"""Compare two structures of the case: a test one (an auto-contour, a second observer) against a
reference one, with the metrics of `delineo compare` (`planning.metrics.compare`: Dice, Jaccard,
sensitivity, precision, volumes, Hausdorff, HD95, mean surface distance, surface Dice at a
tolerance, added path length, centroid distance). Or compare all the case's structures with a
reference structure set file (an expert's RTSTRUCT, a SEG or a label map), paired by name, into
the HTML and CSV report of `delineo compare`. Computed in workers.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from planning.errors import DelineoError
from planning.metrics import Comparison, compare
from workstation.app import services
from workstation.app.case import contours_left_out

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

#: what the note and the report say of a reference whose contours off the images were left out
LEFT_OUT = "contours beyond the loaded images left out, as when the case was opened"


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
        self.report_button = QPushButton("Report against a reference structure set file…", self)
        self.report_button.setToolTip(
            "Every structure of this case against the one of the same name in an expert's RTSTRUCT, "
            "SEG or label map: an HTML and CSV report"
        )
        self.report_button.clicked.connect(self._choose_report)
        self.pairs = QLineEdit(self)
        self.pairs.setPlaceholderText("Pair names that differ: Lt Lung=Lung_L; …")
        self.pairs.setToolTip(
            "The reference file's name, '=', this case's name, for each pair of structures named "
            "differently; separate pairs with ';'. Others are paired by name"
        )
        layout.addWidget(self.pairs)
        layout.addWidget(self.report_button)
        self.report_note = QLabel("", self)
        self.report_note.setWordWrap(True)
        self.report_note.setOpenExternalLinks(True)
        layout.addWidget(self.report_note)
        self.report = None  # the last SetComparison
        self.resize(400, 700)
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
        # shared copy-on-write: a stroke drawn while the worker measures is not half in the result
        reference_mask, test_mask = structures[reference].mask.shared(), structures[test].mask.shared()
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
        empty = ""
        if result.reference_cc == 0 and result.test_cc == 0:
            empty = " (both structures are empty: they agree on nothing drawn)"
        elif math.isinf(result.hd95_mm):
            empty = " (an empty structure: distances are infinite)"
        self.note.setText(f"{title}; surface tolerance {result.tolerance_mm:g} mm{empty}")
        for row, (_, key, form) in enumerate(ROWS):
            value = getattr(result, key)
            item = QTableWidgetItem(form.format(value) if math.isfinite(value) else "∞")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 1, item)
        self.table.resizeColumnsToContents()

    # -- the whole set against a file ----------------------------------------------------------

    def _choose_report(self) -> None:
        reference, _ = QFileDialog.getOpenFileName(
            self,
            "Reference structure set",
            "",
            "Structure sets (*.dcm *.nii *.nii.gz *.nrrd *.mha);;All files (*)",
        )
        if not reference:
            return
        suggested = str(Path(reference).with_name(Path(reference).name.split(".")[0] + "_comparison.html"))
        out, _ = QFileDialog.getSaveFileName(self, "Save the report", suggested, "HTML (*.html)")
        if out:
            self.report_against(Path(reference), Path(out))

    def report_against(self, reference: Path, out: Path) -> None:
        """Compare the case's structures (test) with `reference`'s (paired by name, and as the
        pairs field says: "Lt Lung=Lung_L; …", reference name first) in a worker;
        write the HTML report to `out` and its table beside it as CSV. The reference is read as
        the case's structures are: contours off the loaded images are left out, with a warning
        that the note and the report carry."""
        from planning.compare_report import compare_sets, parse_pair, summary, write_csv, write_html

        try:
            explicit = [parse_pair(text) for text in self.pairs.text().split(";") if text.strip()]
        except DelineoError as error:
            self.report_note.setText(html.escape(str(error), quote=False))
            return
        case = self.window_.case
        volume, tolerance = case.volume, self.tolerance.value()
        source = case.structures
        structures = source.snapshot()  # masks shared copy-on-write: edits from now on are not seen
        self.report_button.setEnabled(False)
        self.report_note.setText(f"Comparing this case's structures with {reference.name}…")

        def work(on_progress, cancel):
            expert = services.load_rtstruct(reference, volume, on_progress, cancel)
            label = reference.name + (f" ({LEFT_OUT})" if contours_left_out(expert.warnings) else "")
            result = compare_sets(
                expert,
                structures,
                tolerance_mm=tolerance,
                explicit=explicit,
                reference_label=label,
                test_label="case",
                on_progress=on_progress,
            )
            try:
                write_html(result, out, title=f"This case against {reference.name}")
                write_csv(result, out.with_suffix(".csv"))
            except OSError as error:
                raise DelineoError(
                    f"{out}: the report cannot be written ({error.strerror or error})"
                ) from error
            return result, expert.warnings

        def done(outcome) -> None:
            result, warnings = outcome
            self.report = result
            self.report_button.setEnabled(True)
            missing = ", ".join(result.only_reference) or "none"
            extra = ", ".join(result.only_test) or "none"
            mean = summary(result).split(";")[0]
            self.report_note.setText(
                f"{mean}. Not in this case (not compared, not in the mean): {missing}; not in "
                f"{reference.name}: {extra}. "
                f'Report: <a href="{out.as_uri()}">{out.name}</a> (and {out.with_suffix(".csv").name})'
                + _reading_note(reference.name, warnings)
                + "".join(
                    f"<br><b>Warning</b>: {html.escape(same.text, quote=False)}."
                    for same in result.same_names
                )
            )

        def failed(error: Exception) -> None:
            self.report_button.setEnabled(True)
            self.report_note.setText("")
            self.window_.jobs.report(job, error)

        job = self.window_.jobs.run("Comparing structure sets", work, done, failed)


def _reading_note(name: str, warnings: list[str]) -> str:
    """What reading the reference file had to leave out or correct, for the note (rich text)."""
    if not warnings:
        return ""
    what = (
        f"{LEFT_OUT}: the comparison covers the loaded images only"
        if contours_left_out(warnings)
        else "read with corrections"
    )
    return f"<br><b>Warning</b> ({len(warnings)} in View ▸ Messages): {html.escape(name)}: {what}."
