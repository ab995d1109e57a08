"""Surgery ▸ Structure volume and surface area: each structure's voxel volume, the volume its
surface encloses, and its surface area (`planning.measurements.measure_structure`), computed in a
job (surfaces the 3D view has are reused, the others are built)."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QApplication,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from planning.measurements import StructureMeasures, measure_structure
from workstation.app.surgery import SurfaceSource, SurgeryDialog, case_gone, non_empty_names

HEADERS = ("Structure", "Volume (cc)", "Mesh volume (cc)", "Surface area (cm²)")


class StructureSizesDialog(SurgeryDialog):
    """A table of every non-empty structure's volume and surface area."""

    def __init__(self, window):
        super().__init__(window, "Structure volume and surface area")
        self.measures: list[StructureMeasures] = []
        #: what made the table out of date since the measuring began ("GTV changed")
        self.edited: str | None = None
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(HEADERS), self)
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(HEADERS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table)
        self.note = QLabel(
            "Volume counts the voxels; mesh volume is what the smoothed 3D surface encloses.", self
        )
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        buttons = QDialogButtonBox(self)
        self.refresh_button = self.action_button = QPushButton("Recompute", self)
        self.copy_button = QPushButton("Copy table", self)
        self.copy_button.setToolTip("Copy as tab-separated text (pastes into a spreadsheet)")
        buttons.addButton(self.refresh_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)
        self.refresh_button.clicked.connect(self.compute)
        self.copy_button.clicked.connect(self.copy)
        layout.addWidget(buttons)
        self.resize(560, 420)
        structures = self.case.structures
        self.link(structures.changed, self._on_edited)
        self.link(structures.added, lambda structure: self._on_listed(structure, "was added"))
        self.link(structures.removed, lambda structure: self._on_listed(structure, "was deleted"))
        self.compute()

    def compute(self) -> None:
        """Measure every non-empty structure in a job; the table fills when it is done."""
        window = self.window_
        if case_gone(self):
            return
        names = non_empty_names(window.case)
        source = SurfaceSource(window, names)
        self.edited = None
        self.note.setText(f"Measuring {len(names)} structure(s)…")

        def work(on_progress, cancel):
            surfaces = source.build(on_progress, cancel)
            return [
                measure_structure(source.copies[name], surfaces[name]) for name in names if name in surfaces
            ]

        def failed(error: Exception) -> None:
            self.note.setText(f"Not measured: {error}")

        self.run_job("Measuring structures", work, self.show_measures, failed)

    def show_measures(self, measures: list[StructureMeasures]) -> None:
        self.measures = list(measures)
        self.table.setRowCount(len(measures))
        for row, m in enumerate(measures):
            values = (m.name, f"{m.voxel_volume_cc:.2f}", f"{m.mesh_volume_cc:.2f}", f"{m.area_cm2:.1f}")
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.note.setText(
            "Volume counts the voxels; mesh volume is what the smoothed 3D surface encloses "
            "(the surface and its area are those of the 3D view)."
        )
        if self.edited is not None:
            self._say_out_of_date()

    def _on_edited(self, structure, box=None) -> None:
        """A structure was drawn (`box` None: only renamed, recoloured or shown) since the
        measuring began: the table is out of date until recomputed."""
        if box is not None:
            self._out_of_date(f"{structure.name} changed")

    def _on_listed(self, structure, what: str) -> None:
        """A structure with voxels was added or deleted (an empty one is not listed)."""
        if structure.mask.box is not None:
            self._out_of_date(f"{structure.name} {what}")

    def _out_of_date(self, why: str) -> None:
        self.edited = why
        if self.job is None and self.measures:
            self._say_out_of_date()

    def _say_out_of_date(self) -> None:
        self.note.setText(f"Out of date: {self.edited} since the table was measured. Recompute.")

    def as_text(self) -> str:
        rows = ["\t".join(HEADERS)]
        for m in self.measures:
            rows.append(f"{m.name}\t{m.voxel_volume_cc:.3f}\t{m.mesh_volume_cc:.3f}\t{m.area_cm2:.2f}")
        return "\n".join(rows)

    def copy(self) -> None:
        QApplication.clipboard().setText(self.as_text())
