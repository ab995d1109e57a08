"""File ▸ Retrieve from PACS…: search the hospital PACS, pick a study (or some of its series) and
bring it here, then open it.

Searches, series listings and retrieves run in the window's job runner (C-FIND with
`planning.dicom.query`, then C-GET or C-MOVE to this computer with `planning.dicom.retrieve`);
the dialog stays open and usable meanwhile. The instances go to a folder per study under the
window's data folder; once there, the dialog offers to open it the way File ▸ Open folder…
does. The node, our AE title, the retrieve method and the network timeout are remembered.
"""

from __future__ import annotations

import re
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from planning.dicom.network import DEFAULT_AE_TITLE, Node
from planning.dicom.query import (
    SeriesMatch,
    StudyMatch,
    check_date,
    count_text,
    find_series,
    find_studies,
    person_name_variants,
)
from planning.dicom.retrieve import RetrieveResult, incomplete
from planning.dicom.retrieve import retrieve as retrieve_from
from planning.errors import Cancelled, DelineoError

#: QSettings keys: the PACS, this computer's AE title, the C-MOVE port (0: retrieve with C-GET),
#: the network timeout in seconds
NODE_SETTING = "pacs/node"
AE_SETTING = "pacs/ae_title"
MOVE_PORT_SETTING = "pacs/move_port"
TIMEOUT_SETTING = "pacs/timeout_s"
DEFAULT_TIMEOUT_S = 30
MODALITIES = ["", "CT", "MR", "PT", "RTSTRUCT", "RTDOSE", "RTPLAN", "SEG"]
STUDY_COLUMNS = list(StudyMatch.HEADERS)
SERIES_COLUMNS = ["#", "Modality", "Description", "Images"]


class PacsDialog(QDialog):
    """Search a PACS and retrieve studies or series into the data folder (non-modal)."""

    def __init__(self, window):
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Retrieve from PACS")
        self.setModal(False)
        self.resize(980, 680)
        self.studies: list[StudyMatch] = []
        self.series: list[SeriesMatch] = []
        self.search_job = None
        self.retrieve_job = None
        self._listing = 0  # the series listing whose answer the table waits for
        self.series_job = None  # the series listing running, cancelled when another study is selected
        settings = window.settings

        layout = QVBoxLayout(self)
        connection = QFormLayout()
        self.node_edit = QLineEdit(str(settings.value(NODE_SETTING, "") or ""), self)
        self.node_edit.setPlaceholderText("AE_TITLE@host:port, e.g. PACS@10.0.0.9:104")
        connection.addRow("PACS", self.node_edit)
        self.ae_edit = QLineEdit(str(settings.value(AE_SETTING, DEFAULT_AE_TITLE) or DEFAULT_AE_TITLE), self)
        self.ae_edit.setMaxLength(16)
        self.ae_edit.setToolTip("The AE title the PACS knows this computer by")
        method = QHBoxLayout()
        method.addWidget(self.ae_edit)
        method.addSpacing(16)
        self.method_box = QComboBox(self)
        self.method_box.addItem("C-GET (no port to open)", "get")
        self.method_box.addItem("C-MOVE to this computer, port", "move")
        self.method_box.setToolTip(
            "C-MOVE is for a PACS without C-GET: it must know this AE title with this computer's "
            "address and the port"
        )
        self.port_spin = QSpinBox(self)
        self.port_spin.setRange(1, 65535)
        move_port = int(settings.value(MOVE_PORT_SETTING, 0) or 0)
        self.port_spin.setValue(move_port or 11112)
        self.method_box.setCurrentIndex(1 if move_port else 0)
        self.method_box.currentIndexChanged.connect(self._method_changed)
        method.addWidget(QLabel("Retrieve with", self))
        method.addWidget(self.method_box)
        method.addWidget(self.port_spin)
        method.addSpacing(16)
        self.timeout_spin = QSpinBox(self)
        self.timeout_spin.setRange(1, 600)
        self.timeout_spin.setSuffix(" s")
        self.timeout_spin.setValue(_setting_int(settings, TIMEOUT_SETTING, DEFAULT_TIMEOUT_S, 1, 600))
        self.timeout_spin.setToolTip(
            "How long to wait for the PACS to answer (a slow PACS or network needs more)"
        )
        method.addWidget(QLabel("Timeout", self))
        method.addWidget(self.timeout_spin)
        method.addStretch(1)
        connection.addRow("Our AE title", method)
        layout.addLayout(connection)

        search = QGridLayout()
        self.patient_id_edit = QLineEdit(self)
        self.patient_id_edit.setPlaceholderText("* and ? match any text")
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("DOE^JOHN, Doe, John or DOE*")
        self.date_edit = QLineEdit(self)
        self.date_edit.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self.modality_box = QComboBox(self)
        self.modality_box.setEditable(True)
        self.modality_box.addItems(MODALITIES)
        self.modality_box.setToolTip("Studies holding a series of this modality")
        self.accession_edit = QLineEdit(self)
        self.search_button = QPushButton("Search", self)
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        fields = [
            ("Patient ID", self.patient_id_edit),
            ("Patient name", self.name_edit),
            ("Study date", self.date_edit),
            ("Modality", self.modality_box),
            ("Accession", self.accession_edit),
        ]
        for index, (label, widget) in enumerate(fields):
            row, column = divmod(index, 3)
            search.addWidget(QLabel(label, self), row, 2 * column)
            search.addWidget(widget, row, 2 * column + 1)
            if isinstance(widget, QLineEdit):
                widget.returnPressed.connect(self.search)
        search.addWidget(self.search_button, 1, 5)
        for column in (1, 3, 5):
            search.setColumnStretch(column, 1)
        layout.addLayout(search)

        self.studies_label = QLabel("Studies found", self)
        layout.addWidget(self.studies_label)
        split = QSplitter(Qt.Orientation.Vertical, self)
        self.study_table = _table(STUDY_COLUMNS, 4, self, QAbstractItemView.SelectionMode.SingleSelection)
        self.study_table.itemSelectionChanged.connect(self._study_selected)
        self.series_table = _table(SERIES_COLUMNS, 2, self, QAbstractItemView.SelectionMode.ExtendedSelection)
        self.series_table.itemSelectionChanged.connect(self._update_buttons)
        series_box = QWidget(self)
        series_layout = QVBoxLayout(series_box)
        series_layout.setContentsMargins(0, 4, 0, 0)
        self.series_label = QLabel("Series of the selected study: select some to retrieve only those", self)
        series_layout.addWidget(self.series_label)
        series_layout.addWidget(self.series_table)
        split.addWidget(self.study_table)
        split.addWidget(series_box)
        split.setSizes([320, 200])
        layout.addWidget(split, 1)

        self.status = QLabel("Search the PACS by patient, date, modality or accession number.", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.retrieve_button = QPushButton("Retrieve selected", self)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop the retrieve (the instances already here are kept)")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        buttons.addWidget(self.retrieve_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        window.jobs.progressed.connect(self._on_progress)
        self._method_changed()
        self._update_buttons()

    # -- settings ----------------------------------------------------------------------------------

    def _method_changed(self, *_) -> None:
        self.port_spin.setEnabled(self.method_box.currentData() == "move")

    def _node(self) -> Node | None:
        """The PACS typed in (remembered, with our AE title and the method); None: said why."""
        try:
            node = Node.parse(self.node_edit.text())
        except DelineoError as error:
            self._say(str(error), "error")
            return None
        ae_title = self.ae_title()
        settings = self.window_.settings
        settings.setValue(NODE_SETTING, str(node))
        settings.setValue(AE_SETTING, ae_title)
        settings.setValue(MOVE_PORT_SETTING, self.move_port() or 0)
        settings.setValue(TIMEOUT_SETTING, self.timeout_s())
        return node

    def ae_title(self) -> str:
        return self.ae_edit.text().strip() or DEFAULT_AE_TITLE

    def timeout_s(self) -> int:
        return self.timeout_spin.value()

    def move_port(self) -> int | None:
        return self.port_spin.value() if self.method_box.currentData() == "move" else None

    # -- search --------------------------------------------------------------------------------------

    def search(self) -> None:
        """Find the studies matching the fields, in a worker; they fill the studies table."""
        node = self._node()
        if node is None:
            return
        keys = {
            "patient_id": self.patient_id_edit.text(),
            "patient_name": self.name_edit.text(),
            "study_date": self.date_edit.text(),
            "modality": self.modality_box.currentText(),
            "accession": self.accession_edit.text(),
        }
        try:
            keys["study_date"] = check_date(keys["study_date"])
        except ValueError as error:
            self._say(str(error), "error")
            return
        names = person_name_variants(keys["patient_name"])
        typed = keys["patient_name"].strip()
        as_searched = f" (patient name searched as {' or '.join(names)})" if names != (typed,) else ""
        ae_title, timeout_s = self.ae_title(), self.timeout_s()
        if self.search_job is not None:
            self.search_job.cancel.set()  # a new search replaces the one still running
        self._say(f"Searching {node}{as_searched}…")

        def work(on_progress, cancel):
            on_progress(f"Searching {node}", 0, 0)
            return find_studies(node, calling_ae=ae_title, timeout_s=timeout_s, cancel=cancel, **keys)

        def done(studies) -> None:
            if job is not self.search_job:
                return
            self.search_job = None
            self._show_studies(studies)
            if studies:
                patients = len({s.patient for s in studies})
                self._say(
                    f"{len(studies)} study(ies) of {patients} patient(s) on {node}{as_searched}: "
                    "select one to see its series."
                )
            else:
                asked = ", ".join(f"{k.replace('_', ' ')} {v!r}" for k, v in keys.items() if v.strip())
                asked = asked or "an empty search"
                self._say(f"No study on {node} matches {asked}{as_searched}.", "note")

        def failed(error: Exception) -> None:
            if job is not self.search_job:
                return
            self.search_job = None
            self._say(str(error) if not isinstance(error, Cancelled) else "Search cancelled.", "error")

        job = self.search_job = self.window_.jobs.run(f"Searching {node}", work, done, failed)

    def _show_studies(self, studies: list[StudyMatch]) -> None:
        self.studies = studies
        self.study_table.setRowCount(0)
        self._show_series([])
        for study in studies:
            _add_row(self.study_table, study.cells(), f"Study UID {study.study_uid}")
        if len(studies) == 1:
            self.study_table.selectRow(0)
        self._update_buttons()

    def selected_study(self) -> StudyMatch | None:
        rows = self.study_table.selectionModel().selectedRows()
        return self.studies[rows[0].row()] if rows else None

    def _study_selected(self) -> None:
        """List the selected study's series (in a worker); a listing still running for the study
        selected before is cancelled (arrowing through the studies opened one association each)."""
        self._show_series([])
        self._update_buttons()
        self._listing += 1  # an answer still on its way is for another study
        if self.series_job is not None:
            self.series_job.cancel.set()
            self.series_job = None
        study = self.selected_study()
        if study is None:
            return
        node = self._node()
        if node is None:
            return
        number = self._listing
        ae_title, timeout_s = self.ae_title(), self.timeout_s()
        self.series_label.setText(f"Listing the series of {study.patient_name or study.patient_id}…")

        def done(series) -> None:
            if number == self._listing:
                self.series_job = None
                self._show_series(series)
                who = study.patient_name or study.patient_id
                what = f"{who} {study.display_date} {study.description}".strip()
                self.series_label.setText(
                    f"Series of {what}: select some to retrieve only those (none selected: the whole study)"
                )

        def failed(error: Exception) -> None:
            if number == self._listing:
                self.series_job = None
                self.series_label.setText("Series of the selected study: not listed")
                self._say(str(error), "error")

        self.series_job = self.window_.jobs.run(
            f"Listing series on {node}",
            lambda on_progress, cancel: find_series(
                node, study.study_uid, calling_ae=ae_title, timeout_s=timeout_s, cancel=cancel
            ),
            done,
            failed,
        )

    def _show_series(self, series: list[SeriesMatch]) -> None:
        self.series = series
        self.series_table.setRowCount(0)
        for item in series:
            cells = [
                count_text(item.number, ""),
                item.modality,
                item.description,
                count_text(item.instance_count),
            ]
            _add_row(self.series_table, cells, f"Series UID {item.series_uid}")

    def selected_series(self) -> list[SeriesMatch]:
        rows = sorted(index.row() for index in self.series_table.selectionModel().selectedRows())
        return [self.series[row] for row in rows if row < len(self.series)]

    # -- retrieve ------------------------------------------------------------------------------------

    def folder_for(self, study: StudyMatch) -> Path:
        """Where a study's instances go: one folder per study under the window's data folder."""
        name = re.sub(r"[^0-9.]", "_", study.study_uid).strip(".")  # a UID as the PACS sent it
        return self.window_.data_dir / "pacs" / (name or "unnamed")

    def retrieve(self) -> None:
        """Retrieve the selected series (or the whole selected study), in a worker."""
        study = self.selected_study()
        if study is None or self.retrieve_job is not None:
            return
        node = self._node()
        if node is None:
            return
        series = self.selected_series()
        folder = self.folder_for(study)
        options = {
            "move_port": self.move_port(),
            "calling_ae": self.ae_title(),
            "timeout_s": self.timeout_s(),
        }
        what = f"{len(series)} series" if series else "the study"
        self._say(f"Retrieving {what} from {node} into {folder}…")
        self.progress.setValue(0)

        def work(on_progress, cancel):
            uids = [s.series_uid for s in series]
            return retrieve_from(
                node, folder, study.study_uid, uids, on_progress=on_progress, cancel=cancel, **options
            )

        def done(result: RetrieveResult) -> None:
            self.retrieve_job = None
            self.progress.setValue(1000)
            missing = incomplete(folder)
            level = "warning" if missing else "ok"
            summary = result.summary()[0].upper() + result.summary()[1:] + "."
            self._say(summary + (f" Incomplete: {missing}." if missing else ""), level)
            self._update_buttons()
            self.window_.statusBar().showMessage(
                f"Retrieved {len(result.received)} instance(s) from {node}", 8000
            )
            if self.ask_open(folder, result):
                self.window_.opening.open_folder(folder)

        def failed(error: Exception) -> None:
            self.retrieve_job = None
            self._update_buttons()
            if isinstance(error, Cancelled):
                self._say(f"Cancelled: {error}.", "note")
            else:
                self._say(str(error), "error")

        self.retrieve_job = self.window_.jobs.run(f"Retrieving from {node}", work, done, failed)
        self._update_buttons()

    def cancel(self) -> None:
        if self.retrieve_job is not None:
            self.retrieve_job.cancel.set()
            self._say("Cancelling the retrieve…")

    def ask_open(self, folder: Path, result: RetrieveResult) -> bool:
        """Whether to open the retrieved folder now (warned when it is incomplete)."""
        buttons = QMessageBox.StandardButton
        missing = incomplete(folder)
        warning = (
            f"\n\nIncomplete: {missing}. Retrieve the whole study again to complete it." if missing else ""
        )
        answer = QMessageBox.question(
            self,
            "Open the retrieved images?",
            f"{len(result.received)} instance(s) are in {folder}.{warning}\nOpen them now?",
            buttons.Yes | buttons.No,
            buttons.Yes,
        )
        return answer == buttons.Yes

    def _on_progress(self, job) -> None:
        if job is not self.retrieve_job or job.total <= 0:
            return
        self.progress.setValue(int(1000 * min(job.done / job.total, 1.0)))
        self.progress.setFormat(f"{int(job.done)} of {int(job.total)} instances")

    def _update_buttons(self) -> None:
        running = self.retrieve_job is not None
        self.retrieve_button.setEnabled(not running and self.selected_study() is not None)
        self.cancel_button.setEnabled(running)
        series = self.selected_series()
        self.retrieve_button.setText(f"Retrieve {len(series)} series" if series else "Retrieve study")

    def _say(self, text: str, level: str = "") -> None:
        colours = {"error": "#c81e1e", "warning": "#be7800", "ok": "#008200", "note": "#46468c"}
        self.status.setStyleSheet(f"color: {colours[level]};" if level in colours else "")
        self.status.setText(text)


def _setting_int(settings, key: str, default: int, low: int, high: int) -> int:
    """An integer setting within [low, high]; `default` when unset or not a number."""
    try:
        value = int(settings.value(key, default) or default)
    except (TypeError, ValueError):
        return default
    return min(max(value, low), high)


def _table(columns: list[str], stretch: int, parent, selection) -> QTableWidget:
    """A read-only table of rows selected whole; column `stretch` takes the room left."""
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(selection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setAlternatingRowColors(True)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


def _add_row(table: QTableWidget, cells: list[str], tooltip: str) -> None:
    row = table.rowCount()
    table.insertRow(row)
    for column, text in enumerate(cells):
        item = QTableWidgetItem(text)
        item.setToolTip(tooltip)
        if text.isdigit():
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        table.setItem(row, column, item)
