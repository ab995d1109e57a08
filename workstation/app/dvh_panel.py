"""The DVH panel: cumulative DVHs and dose metrics of the case's structures on the loaded dose.

The numbers are `delineo dvh`'s (`planning.dvh.compute_dvh`): a structure read from an RTSTRUCT
and not edited is sampled from its planar contours, as planning systems do, each contour plane one
slice of the case's images thick; an edited or drawn one from its mask. They are computed in a
worker (with progress and Cancel) when the panel is shown and its curves are missing or out of
date: after a dose is loaded, or after an edit. The worker also works out the table's metrics and
builds the curves' figure: with 100+ structures of millions of samples each, that took seconds of
the window's time.

Each row's tick shows or hides its curve; beyond `LEGEND_MAX` curves the legend is left out (it
would squeeze the plot to nothing) and the rows' colours name the curves.

When the structures were read onto a part of their series (contours off the loaded images left
out at import), the panel names the structures cut by the images and those left with no voxel,
and the saved CSV says so in their rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QColor, QIcon, QPixmap
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from planning.contour_slabs import ImageSlices
from planning.dvh import (
    DVH,
    compute_dvh,
    dose_unit,
    format_dose,
    format_volume,
    plot_dvhs,
    visible_on_white,
    write_table,
)
from planning.errors import DelineoError
from workstation.app.case import contours_left_out

#: table columns after the name: (header, key of `DVH.statistics`)
COLUMNS = (
    ("Volume (cc)", "volume_cc"),
    ("Dmean", "Dmean"),
    ("Dmin", "Dmin"),
    ("Dmax", "Dmax"),
    ("D95%", "D95%"),
    ("D50%", "D50%"),
    ("D2%", "D2%"),
)

#: the D_x% of the table
PERCENTS = (95, 50, 2)

#: Most curves the plot names in a legend; with more, the table's colour swatches name them.
LEGEND_MAX = 20

#: what a DVH's warnings (hover, CSV) say of a structure the loaded images cut
PARTIAL = (
    "reaches the edge of the loaded images, beyond which contours were left out at import: this DVH "
    "may be of the part on the loaded slices only (delineo dvh RTDOSE RTSTRUCT gives the whole)"
)
#: ... and of one with no voxel on them
NO_VOXEL = (
    "no voxel on the loaded images (contours off them were left out at import): no DVH here "
    "(delineo dvh RTDOSE RTSTRUCT gives it)"
)


class DvhPanel(QWidget):
    """DVH curves over a table of metrics; `window` is the main window (case, dose, jobs)."""

    def __init__(self, window, parent: QWidget | None = None):
        super().__init__(parent)
        self.window_ = window
        self.dvhs: list[DVH] = []
        #: each DVH's `DVH.statistics` for the table, in the order of `dvhs`
        self._statistics: list[dict] = []
        #: the dose file's warnings (one fraction's dose, relative doses), for the saved table
        self._dose_warnings: list[str] = []
        #: rows without numbers for the saved table: structures with no voxel on the loaded images
        self._no_voxel: list[DVH] = []
        self._stale = True
        self._filled = False  # the table holds the current DVHs (row ticks drive the curves)
        self._hidden: set[str] = set()  # structures whose curves the user unticked
        self._job = None  # the computation under way, cancelled when a newer one starts
        self._recompute = QTimer(self, singleShot=True, interval=1000)  # edits come in bursts
        self._recompute.timeout.connect(self.compute)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.status = QLabel("Load a dose (RTDOSE) with the images to see DVHs.", self)
        self.status.setWordWrap(True)
        self._left_out = ""  # the warning about structures cut by the loaded images
        self.compute_button = QPushButton("Compute", self)
        self.compute_button.setToolTip("Compute the DVHs of every structure on the loaded dose")
        self.compute_button.clicked.connect(self.compute)
        self.compute_button.setEnabled(False)
        self.save_button = QPushButton("Save CSV…", self)
        self.save_button.setToolTip("The table (and D98 %) as CSV, as delineo dvh writes it")
        self.save_button.clicked.connect(self._ask_save)
        self.save_button.setEnabled(False)
        row.addWidget(self.status, 1)
        row.addWidget(self.compute_button)
        row.addWidget(self.save_button)
        layout.addLayout(row)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)  # curves | metrics
        self.canvas = QWidget(self.splitter)
        self.table = QTableWidget(0, 1 + len(COLUMNS), self.splitter)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.verticalHeader().hide()
        self.splitter.addWidget(self.canvas)
        self.splitter.addWidget(self.table)
        self.splitter.setSizes([700, 600])
        layout.addWidget(self.splitter, 1)
        self.setMinimumHeight(280)

    # -- state -------------------------------------------------------------------------------

    def mark_stale(self, reason: str) -> None:
        """The curves no longer match the case (`reason`, in words); recomputed when shown."""
        self._stale = True
        if self._job is not None:  # its DVHs are of the structures before the edit: never shown
            self._job.cancel.set()
            self._job = None
        has_dose = self.window_.dose_layer is not None
        self.compute_button.setEnabled(has_dose)
        if has_dose:
            self.status.setText(f"{reason}: DVHs to compute.")
            if self.isVisible():
                self._recompute.start()
        else:
            self.status.setText("Load a dose (RTDOSE) with the images to see DVHs.")
            self._show([], [])

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale and self.window_.dose_layer is not None and not self.window_.jobs.busy:
            self.compute()

    # -- computing ---------------------------------------------------------------------------

    def compute(self) -> None:
        """Compute every non-empty structure's DVH in a worker, then show them."""
        window = self.window_
        if window.case is None or window.dose_layer is None:
            return
        dose = window.dose_layer.dose
        self._dose_warnings = list(dose.warnings)
        # masks shared copy-on-write: a stroke drawn while the worker samples is not half in a DVH
        structures = [s.snapshot() for s in window.case.structures if not s.mask.is_empty]
        slices = ImageSlices.from_images(window.case.grid, window.case.volume.slices)
        partial, empty = _cut_by_images(window.case)
        self._left_out = _left_out(window.case.structures, partial, empty)
        self._no_voxel = [_no_voxel_dvh(name, dose.unit_label) for name in empty]
        self._stale = False
        self.status.setText(f"Computing the DVHs of {len(structures)} structures…")
        colours, hidden = self._colours(), set(self._hidden)

        def work(on_progress, cancel):
            dvhs = []
            for done, structure in enumerate(structures):
                on_progress("Computing DVHs", done, len(structures))
                dvhs.append(compute_dvh(dose, structure, slices=slices, cancel=cancel))
                if structure.name in partial:
                    dvhs[-1].warnings.append(f"{structure.name}: {PARTIAL}")
            on_progress("Computing DVHs", len(structures), len(structures))
            statistics = [d.statistics(percents=PERCENTS) for d in dvhs]
            return dvhs, statistics, _figure([d for d in dvhs if d.name not in hidden], colours)

        def done(result) -> None:
            if job is self._job:
                dvhs, statistics, figure = result
                self._show(
                    dvhs, statistics, figure if self._hidden == hidden else None
                )  # rows unticked since

        def failed(error: Exception) -> None:
            if job is not self._job:  # a computation a newer one replaced
                return
            self._stale = True
            self.status.setText("DVHs not computed.")
            window.jobs.report(job, error)

        if self._job is not None:
            self._job.cancel.set()
        job = self._job = window.jobs.run("DVHs", work, done, failed)

    def save_csv(self, path: str | Path) -> bool:
        """Write the shown DVHs' metrics as CSV (`planning.dvh.write_table`, the dose file's
        warnings in every row; a structure with no voxel on the loaded images has a row without
        numbers saying so); False, with the reason in the status line, when the file cannot be
        written."""
        try:
            write_table([*self.dvhs, *self._no_voxel], path, dose_warnings=self._dose_warnings)
        except (DelineoError, OSError) as error:
            self.status.setText(f"Not saved: {error}")
            return False
        self.status.setText(f"Saved {Path(path).name}")
        return True

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save DVH metrics", "dvh.csv", "CSV (*.csv)")
        if path:
            self.save_csv(path)

    def _show(self, dvhs: list[DVH], statistics: list[dict], figure=None) -> None:
        """Show `dvhs` with their `statistics`, and `figure` (`_figure` of the unticked-out ones)
        as the curves (None: drawn here)."""
        self.dvhs, self._statistics = dvhs, statistics
        self.save_button.setEnabled(bool(dvhs))
        units = dvhs[0].units if dvhs else "Gy"
        if dvhs:
            notes = sum(len(d.warnings) for d in dvhs)
            self.status.setText(
                f"{len(dvhs)} structures, doses in {units}"
                + (f"; {notes} note(s) on small or partly covered structures (hover a row)" if notes else "")
                + (
                    f"; the legend shows when {LEGEND_MAX} curves or fewer are ticked (the rows' colours "
                    "name the curves)"
                    if len(dvhs) > LEGEND_MAX
                    else ""
                )
                + self._left_out
            )
        self._fill_table(dvhs, units)
        self._draw_curves(figure)

    def shown(self) -> list[str]:
        """The structures whose curves are drawn (their rows ticked)."""
        return [
            item.text()
            for row in range(self.table.rowCount())
            if (item := self.table.item(row, 0)) is not None and item.checkState() == Qt.CheckState.Checked
        ]

    def _colours(self) -> dict[str, tuple[int, int, int]]:
        return {s.name: s.color for s in self.window_.case.structures} if self.window_.case else {}

    def _draw_curves(self, figure=None) -> None:
        if figure is None:
            shown = set(self.shown())
            figure = _figure([d for d in self.dvhs if d.name in shown], self._colours())
        self.splitter.replaceWidget(0, FigureCanvasQTAgg(figure) if figure is not None else QWidget())
        self.canvas.deleteLater()
        self.canvas = self.splitter.widget(0)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0 or not self._filled:
            return
        if item.checkState() == Qt.CheckState.Checked:
            self._hidden.discard(item.text())
        else:
            self._hidden.add(item.text())  # stays hidden when the DVHs are computed again
        self._draw_curves()

    def _fill_table(self, dvhs: list[DVH], units: str) -> None:
        self._filled = False  # no redraw per row while filling
        self.table.setColumnCount(1 + len(COLUMNS))
        self.table.setHorizontalHeaderLabels(
            ["Structure"] + [h if key == "volume_cc" else f"{h} ({dose_unit(units)})" for h, key in COLUMNS]
        )
        self.table.setRowCount(len(dvhs))
        colours = self._colours()
        for row, (dvh, statistics) in enumerate(zip(dvhs, self._statistics, strict=True)):
            name = QTableWidgetItem(dvh.name)
            name.setToolTip("\n".join([dvh.sampling, *dvh.warnings, "Untick to hide its curve"]))
            name.setFlags(name.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            hidden = dvh.name in self._hidden
            name.setCheckState(Qt.CheckState.Unchecked if hidden else Qt.CheckState.Checked)
            colour = colours.get(dvh.name)
            if colour is not None:
                name.setIcon(_swatch(colour))
            self.table.setItem(row, 0, name)
            for column, (_, key) in enumerate(COLUMNS, start=1):
                value = statistics[key]
                item = QTableWidgetItem(
                    format_volume(value) if key == "volume_cc" else format_dose(value, units)
                )
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self._filled = True

    def values(self) -> dict[str, dict[str, float]]:
        """The table's numbers by structure name (for tests and copying)."""
        return {d.name: statistics for d, statistics in zip(self.dvhs, self._statistics, strict=True)}


def _figure(dvhs: list[DVH], colours: dict):
    """`plot_dvhs`' figure of `dvhs` (None when there is none), laid out again at every size, its
    legend beside it (up to `LEGEND_MAX` curves). Built in the worker or, for a row ticked, here."""
    if not dvhs:
        return None
    return plot_dvhs(dvhs, colors=colours, legend_beside=True, legend=len(dvhs) <= LEGEND_MAX)


def _swatch(colour) -> QIcon:
    """A small square of a structure's colour (RGB 0–255), as the curve is drawn (`plot_dvhs`)."""
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*(round(255 * c) for c in visible_on_white(tuple(c / 255 for c in colour)))))
    return QIcon(pixmap)


def _cut_by_images(case) -> tuple[list[str], list[str]]:
    """(partial, empty): when contours off the loaded images were left out at import, the
    structures reaching the first or last loaded image (what lay beyond is missing) and those with
    no voxel left (nor markers). An empty structure in a set read whole is one not drawn yet."""
    if not contours_left_out(case.structures.warnings):
        return [], []
    last = case.grid.shape[0]
    partial, empty = [], []
    for structure in case.structures:
        if structure.mask.is_empty:
            if not structure.markers:
                empty.append(structure.name)
        elif structure.mask.box[0].start == 0 or structure.mask.box[0].stop == last:
            partial.append(structure.name)
    return partial, empty


def _no_voxel_dvh(name: str, units: str) -> DVH:
    """A DVH without volume for the saved table, saying why."""
    nothing = np.zeros(0)
    return DVH(name, nothing, nothing, units=units, sampling="none", warnings=[f"{name}: {NO_VOXEL}"])


def _left_out(structure_set, partial: list[str], empty: list[str]) -> str:
    """The status line's warning when contours off the loaded images were left out at import,
    naming the structures whose DVH is of a part, or missing, and where the plan's DVHs are."""
    if not contours_left_out(structure_set.warnings):
        return ""
    named = "".join(
        f"\n{what}: {_names(names)}."
        for what, names in (
            ("Partial, reaching the edge of the loaded images (DVH of the loaded slices only)", partial),
            ("No voxel on these images (no DVH)", empty),
        )
        if names
    )
    return (
        "\nWarning: contours beyond the loaded images were left out at import: these DVHs may miss "
        f"them.{named}\nFor the plan's DVHs load the whole series, or run delineo dvh RTDOSE RTSTRUCT "
        "(from the planar contours, no images needed)."
    )


def _names(names: list[str], shown: int = 8) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more (all in the CSV)" if more > 0 else "")
