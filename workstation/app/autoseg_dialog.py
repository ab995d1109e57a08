"""Auto-segmentation: choose a model and its structures, run it in a worker, review the results.

The window stays usable while the model runs (progress bar and Cancel here and in the status
bar). Results arrive as new AUTOMATIC structures, added in one undo step and shown in every view,
marked as awaiting review (`Structure.awaiting_review`, kept in sessions: italic, with "?", in the
table; dotted outline; wireframe in 3D) until each is accepted (kept) or rejected (deleted), one
by one or all, each an undo step. The dialog lists the case's results still awaiting review when
it opens (after a reopened or recovered session). A result whose colour is too close to one
already in the case gets a distinct one.

Closing the dialog leaves the run going (the status bar shows it, with Cancel); its results
still arrive. They go only into the case the run started on: a run cancelled, or whose case was
closed meanwhile (another case opened, the window closed), adds nothing and says so.
"""

from __future__ import annotations

import html

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from planning.errors import Cancelled
from planning.structures import GenerationAlgorithm
from planning.tg263 import distinct_color
from workstation.app import services
from workstation.app.history import Locked

#: Why a model's structure is offered unticked (a manifest output's ``by_default`` false).
ON_REQUEST = (
    "The model guesses this structure from the image alone (where physicians put it in similar "
    "patients): it is not a delineation of this patient's disease. Drawn only when ticked."
)


def _describe(model, refusal: str) -> str:
    """The model's description, a link to its model card (its intended use and measured
    accuracy) and why it cannot run here, as rich text."""
    parts = [html.escape(model.description)]
    if model.card is not None:
        parts.append(
            f'<a href="{model.card.as_uri()}">Model card</a>: intended use, training data and accuracy '
            "measured per structure; read it before relying on the contours."
        )
    if refusal:
        parts.append(html.escape(refusal))
    return "<br><br>".join(parts)


class AutoSegDialog(QDialog):
    """Runs a segmentation model on the current case (non-modal)."""

    #: Emitted when results have been added (their names).
    results_arrived = pyqtSignal(list)

    def __init__(self, window):
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Auto-segmentation")
        self.setModal(False)
        self.resize(520, 600)
        self.job = None
        #: each listed result's row by its ROI number: found again if renamed since
        self._rows: dict[int, int] = {}
        self.models = services.models()

        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.model_box = QComboBox(self)
        for model in self.models:
            self.model_box.addItem(model.title, model.name)
        self.model_box.currentIndexChanged.connect(self._fill_structures)
        form.addRow("Model", self.model_box)
        # listed without asking PyTorch (that would load it on the GUI thread)
        self.device_box = QComboBox(self)
        self.device_box.addItem("Automatic: a GPU if there is one, else the CPU", None)
        self.device_box.addItem("CPU only", "cpu")
        form.addRow("Device", self.device_box)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.RichText)
        self.description.setOpenExternalLinks(True)
        form.addRow(self.description)
        layout.addLayout(form)
        self.structure_list = QListWidget(self)
        layout.addWidget(QLabel("Structures to contour", self))
        layout.addWidget(self.structure_list, 1)

        row = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.stage = QLabel("", self)
        self.stage.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.run_button)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        layout.addWidget(self.stage)

        layout.addWidget(QLabel("Results (accept or reject each)", self))
        self.results = QTableWidget(0, 3, self)
        self.results.setHorizontalHeaderLabels(["Structure", "Volume (cc)", ""])
        self.results.horizontalHeader().setStretchLastSection(True)
        self.results.verticalHeader().setVisible(False)
        layout.addWidget(self.results, 1)
        all_row = QHBoxLayout()
        self.accept_all_button = QPushButton("Accept all", self)
        self.accept_all_button.clicked.connect(self.accept_all)
        self.reject_all_button = QPushButton("Reject all", self)
        self.reject_all_button.clicked.connect(self.reject_all)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        all_row.addWidget(self.accept_all_button)
        all_row.addWidget(self.reject_all_button)
        all_row.addStretch(1)
        all_row.addWidget(close)
        layout.addLayout(all_row)
        window.jobs.progressed.connect(self._on_progress)
        self._fill_structures()
        for structure in window.case.structures if window.case is not None else []:
            if structure.awaiting_review:  # from a reopened or recovered session
                self._list_result(structure)
        #: the case the dialog was opened on (the window drops the dialog when it opens another)
        self.case = window.case
        self._disposed = False  # its case was closed (`dispose`)
        if self.case is not None:
            self.case.history.changed.connect(self._refresh_rows)

    def dispose(self) -> None:
        """Cut the links to the window's jobs and to the case, and delete the dialog (its case
        was closed): at once, or once its run has ended and said what became of its results."""
        self.window_.jobs.progressed.disconnect(self._on_progress)
        if self.case is not None:
            self.case.history.changed.disconnect(self._refresh_rows)
        self._disposed = True
        if self.job is None:
            self.deleteLater()

    def _model(self):
        return self.models[self.model_box.currentIndex()] if self.models else None

    def _fill_structures(self) -> None:
        self.structure_list.clear()
        model = self._model()
        if model is None:
            self.description.setText("No segmentation model is installed.")
            self.run_button.setEnabled(False)
            return
        refusal = self._refusal(model)
        self.description.setText(_describe(model, refusal))
        self.run_button.setEnabled(not refusal and self.job is None)
        for name in model.structures:
            item = QListWidgetItem(name)
            asked = name in model.on_request
            item.setCheckState(Qt.CheckState.Unchecked if asked else Qt.CheckState.Checked)
            if asked:
                item.setText(f"{name}  (only when ticked)")
                item.setData(Qt.ItemDataRole.UserRole, name)
                item.setToolTip(ON_REQUEST)
            self.structure_list.addItem(item)

    def _refusal(self, model) -> str:
        """Why `model` cannot run on the case's image, in words ("" when it can): the image is of
        another modality (an MR for a CT model). The run checks it too; saying it here spares a
        click and an error box."""
        case = self.window_.case
        mismatch = services.modality_mismatch(model, case.volume.modality if case is not None else "")
        return f"{mismatch}: it cannot run here." if mismatch else ""

    def selected_structures(self) -> list[str]:
        items = [self.structure_list.item(i) for i in range(self.structure_list.count())]
        return [
            item.data(Qt.ItemDataRole.UserRole) or item.text()
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        ]

    # -- running -------------------------------------------------------------------------------

    def run(self) -> None:
        model, names = self._model(), self.selected_structures()
        case = self.window_.case
        if model is None or case is None or not names or self._refusal(model):
            return
        volume, device = case.volume, self.device_box.currentData()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)

        def work(on_progress, cancel):
            return services.segment(volume, model, names, device, on_progress=on_progress, cancel=cancel)

        def finished(_=None):
            self.job = None
            self.run_button.setEnabled(not self._refusal(model))
            self.cancel_button.setEnabled(False)
            if self._disposed:  # its case was closed while it ran: deleted after this callback
                self.deleteLater()

        def done(structure_set):
            finished()
            self._deliver(job, case, structure_set, model.title)

        def failed(error):
            finished()
            self.stage.setText("Cancelled." if isinstance(error, Cancelled) else f"Failed: {error}")
            self.window_.jobs.report(job, error)

        job = self.window_.jobs.run(f"Auto-segmentation ({model.title})", work, done, failed)
        self.job = job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel.set()
            self.stage.setText("Cancelling…")

    def _on_progress(self, job) -> None:
        if job is not self.job:
            return
        if job.total > 0:
            self.progress.setValue(int(1000 * min(job.done / job.total, 1.0)))
        self.stage.setText(job.stage)
        if job not in self.window_.jobs.jobs and job.cancel.is_set():
            self.stage.setText("Cancelled.")

    def _deliver(self, job, case, structure_set, title: str) -> None:
        """Add a run's results to `case`, the case it ran on, unless the run was cancelled or
        that case is no longer open."""
        if self.window_.case is not case:
            self.stage.setText("Results dropped: the case they were for is no longer open.")
            self.window_.statusBar().showMessage(
                f"{job.title}: results dropped, the case they were for is no longer open", 15000
            )
        elif job.cancel.is_set():
            self.stage.setText("Cancelled.")
            self.window_.statusBar().showMessage(f"{job.title}: cancelled, nothing added", 8000)
        else:
            self._receive(case, structure_set, title)

    def _receive(self, case, structure_set, title: str) -> None:
        new, empty = [], []
        for structure in structure_set:
            if structure.mask.is_empty:
                empty.append(structure.name)
                continue
            structure.algorithm = GenerationAlgorithm.AUTOMATIC
            structure.awaiting_review = True
            structure.number = 0
            new.append(structure)
        used = [s.color for s in case.structures]
        for structure in new:
            structure.color = distinct_color(structure.color, used)
            used.append(structure.color)
        asked = [s.name for s in new]
        case.add_structures(new, f"Auto-segmentation ({title}): {len(new)} structures")
        renamed = [
            f"{s.name} ({name} is taken)" for name, s in zip(asked, new, strict=True) if s.name != name
        ]
        self.progress.setValue(1000)
        summary = (
            f"{len(new)} structures added; accept or reject each."
            if new
            else "Nothing found: no structures added."
        )
        self.stage.setText(summary)
        if empty:  # asked for, not found in this image (a lung outside the field of view)
            self.stage.setText(f"{self.stage.text()}\nNot found in this image: {', '.join(empty)}.")
        if renamed:  # the physician's own contour keeps its name; Compare structures sets them side by side
            self.stage.setText(f"{self.stage.text()}\nNamed apart: {', '.join(renamed)}.")
        for warning in structure_set.warnings:  # each: an organ's odd volume is as much to review
            self.stage.setText(f"{self.stage.text()}\nWarning: {warning}")
        if structure_set.warnings:
            self.window_.statusBar().showMessage(f"Auto-segmentation: {structure_set.warnings[0]}", 15000)
        elif not self.isVisible():  # closed while it ran: the status bar tells
            self.window_.statusBar().showMessage(f"Auto-segmentation ({title}): {summary}", 15000)
        for structure in new:
            self._list_result(structure)
        self.results_arrived.emit([s.name for s in new])

    @property
    def pending(self) -> list[str]:
        """Names of the case's auto-contours awaiting review."""
        case = self.window_.case
        return [s.name for s in case.structures if s.awaiting_review] if case is not None else []

    def _list_result(self, structure) -> None:
        """A row for `structure`; an older row with its ROI number (a result deleted since, whose
        number was given again) is marked gone."""
        number = structure.number
        if number in self._rows:
            self._mark(number, "gone")
        self._rows[number] = self.results.rowCount()
        self._add_result_row(number, structure.name, structure.volume_cc)

    def _add_result_row(self, number: int, name: str, volume_cc: float) -> None:
        row = self.results.rowCount()
        self.results.insertRow(row)
        self.results.setItem(row, 0, QTableWidgetItem(name))
        self.results.setItem(row, 1, QTableWidgetItem(f"{volume_cc:.1f}"))
        self._show_buttons(number, row)

    def _show_buttons(self, number: int, row: int) -> None:
        buttons = QWidget(self.results)
        layout = QHBoxLayout(buttons)
        layout.setContentsMargins(0, 0, 0, 0)
        accept = QPushButton("Accept", buttons)
        accept.clicked.connect(lambda: self.accept_result(number))
        reject = QPushButton("Reject", buttons)
        reject.clicked.connect(lambda: self.reject_result(number))
        layout.addWidget(accept)
        layout.addWidget(reject)
        self.results.setCellWidget(row, 2, buttons)

    def _refresh_rows(self) -> None:
        """Each row as its result is now (an undo, a redo, a rename): its name, and Accept/Reject
        while it awaits review, else "accepted" or "rejected"."""
        by_number = {s.number: s for s in self.case.structures}
        for number, row in self._rows.items():
            structure = by_number.get(number)
            if structure is not None:
                self.results.item(row, 0).setText(structure.name)
            state = "rejected" if structure is None else None if structure.awaiting_review else "accepted"
            if state is None:
                if isinstance(self.results.cellWidget(row, 2), QLabel):
                    self._show_buttons(number, row)
            else:
                self._mark(number, state)

    # -- review --------------------------------------------------------------------------------

    def accept_result(self, number: int) -> None:
        """Keep the listed auto-contour of ROI number `number` (it stays AUTOMATIC until someone
        edits it), under whatever name it has now."""
        name = self._awaiting(number)
        if name is not None:  # its row follows the history (`_refresh_rows`)
            self.window_.case.accept_auto_contours([name], f"Accept {name}")

    def reject_result(self, number: int) -> None:
        """Delete the listed auto-contour of ROI number `number` (undoable), under whatever name
        it has now."""
        name = self._awaiting(number)
        if name is not None:
            self._remove(lambda: self.window_.case.remove_structure(name))

    def accept_all(self) -> None:
        """Keep every listed result still awaiting review, as one undo step."""
        awaiting = self._listed_awaiting()
        self.window_.case.accept_auto_contours(list(awaiting.values()), "Accept all auto-contours")

    def reject_all(self) -> None:
        """Delete every listed result still awaiting review, as one undo step; one a person
        edited since (SEMIAUTOMATIC) is kept and named: only its own Reject deletes it."""
        awaiting = self._listed_awaiting()
        case = self.window_.case
        edited = [
            n for n in awaiting.values() if case.structures[n].algorithm == GenerationAlgorithm.SEMIAUTOMATIC
        ]
        names = [n for n in awaiting.values() if n not in edited]
        if names:
            self._remove(lambda: case.remove_structures(names, "Reject all auto-contours"))
        if edited:
            self.window_.statusBar().showMessage(
                f"Kept, edited by hand since: {', '.join(edited)} (its own Reject deletes it)", 15000
            )

    def _remove(self, remove) -> None:
        """Call `remove()`; a refusal to delete a locked structure is said in the status bar."""
        try:
            remove()
        except Locked as error:
            self.window_.statusBar().showMessage(str(error), 8000)

    def _listed_awaiting(self) -> dict[int, str]:
        """ROI number → current name of each listed result still awaiting review."""
        names = {number: self._awaiting(number) for number in self._rows}
        return {number: name for number, name in names.items() if name is not None}

    def _awaiting(self, number: int) -> str | None:
        """The current name of the structure of ROI number `number` while it awaits review; None
        once reviewed or gone."""
        for structure in self.window_.case.structures:
            if structure.number == number and structure.awaiting_review:
                return structure.name
        return None

    def _mark(self, number: int, state: str) -> None:
        label = QLabel(state, self.results)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.results.setCellWidget(self._rows[number], 2, label)
