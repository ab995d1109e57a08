"""RTSTRUCT export: choose structures and options, see the conformance check, then write it
or send it to the planning system.

The check runs first, in a worker, on a snapshot of the structures taken when it starts: the
RTSTRUCT is written to a temporary file and checked the way a planning system would read it
(`services.check_rtstruct`); the findings, the writer's own warnings and notes, the derived structures out
of date (a PTV whose CTV was edited since) and the auto-contours not yet reviewed are listed.
"Write" then puts exactly that checked file at the chosen path; "Send" sends it to a DICOM node
(C-STORE, `planning.dicom.network`), remembered for next time. Any change to the case or the
options after the check starts makes it stale: Write and Send wait for a new one.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from PyQt6.QtCore import QSignalBlocker, Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from planning.dicom.network import DEFAULT_AE_TITLE, Node, send
from planning.errors import DelineoError
from planning.files import write_atomically
from planning.structures import StructureSet
from workstation.app import services
from workstation.app.pacs_dialog import AE_SETTING

#: QSettings key of the last node an RTSTRUCT was sent to
NODE_SETTING = "export/send_to"
CHECKING = "Checking…"
CHANGED_WHILE_CHECKING = "changed while checking: check again"


class ExportDialog(QDialog):
    """Export the case's structures as an RTSTRUCT, with the check shown before writing."""

    #: Emitted with the written path.
    written = pyqtSignal(str)
    checked = pyqtSignal()

    def __init__(self, window, path: str | Path | None = None):
        super().__init__(window)
        self.window_ = window
        self.case = window.case
        self.setWindowTitle("Export RTSTRUCT")
        self.resize(620, 560)
        self._checked_file: Path | None = None
        self._temp = Path(tempfile.mkdtemp(prefix="delineo-export-"))
        self._checks = 0  # each check writes its own file: a second may start before the first wrote
        self._current_check: int | None = None  # the check whose result Write and Send would use
        self._replace_confirmed: Path | None = None  # an existing file the save dialog may replace
        self.findings: list[tuple[str, str]] = []

        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.path_edit = QLineEdit(str(path or self._default_path()), self)
        browse = QPushButton("…", self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("File", row)
        self.label_edit = QLineEdit((self.case.structures.label or "Delineo")[:16], self)
        self.label_edit.setMaxLength(16)
        form.addRow("Structure set label", self.label_edit)
        self.simplify = QDoubleSpinBox(self)
        self.simplify.setRange(0.0, 2.0)
        self.simplify.setSingleStep(0.1)
        self.simplify.setSuffix(" mm")
        self.simplify.setToolTip(
            "Douglas–Peucker tolerance (0 keeps every boundary vertex); at most 5 % of each contour's "
            "size, so that small targets keep their volume"
        )
        form.addRow("Simplify contours", self.simplify)
        self.keyhole = QCheckBox(
            "Keyhole holes into their outer contour (for systems without even-odd filling)"
        )
        form.addRow(self.keyhole)
        self.node_edit = QLineEdit(str(window.settings.value(NODE_SETTING, "") or ""), self)
        self.node_edit.setPlaceholderText("planning system or PACS: AE_TITLE@host:port (optional)")
        form.addRow("Send to", self.node_edit)
        layout.addLayout(form)

        self.structure_list = QListWidget(self)
        self._listed: list[tuple] = []  # what the list shows: number, name, type, awaiting review
        self._awaiting: set[int] = set()  # ROI numbers listed as awaiting review
        self._list_structures({})
        layout.addWidget(self.structure_list, 1)

        self.report = QListWidget(self)  # findings wrap: long ones are read without scrolling
        self.report.setWordWrap(True)
        self.report.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.report.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout.addWidget(self.report, 1)
        buttons = QHBoxLayout()
        self.check_button = QPushButton("Check", self)
        self.check_button.clicked.connect(self.run_check)
        self.write_button = QPushButton("Write", self)
        self.write_button.setEnabled(False)
        self.write_button.clicked.connect(self.write)
        self.send_button = QPushButton("Send", self)
        self.send_button.setToolTip("Send the checked RTSTRUCT to the node above (DICOM C-STORE)")
        self.send_button.setEnabled(False)
        self.send_button.clicked.connect(self.send)
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)
        buttons.addWidget(self.write_button)
        buttons.addWidget(self.send_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        for widget in (self.simplify, self.keyhole, self.label_edit, self.structure_list):
            signal = (
                getattr(widget, "valueChanged", None)
                or getattr(widget, "toggled", None)
                or getattr(widget, "textChanged", None)
                or widget.itemChanged
            )
            signal.connect(self._invalidate)
        self.case.history.changed.connect(self._on_case_changed)
        self.window_.table.volumes_counted.connect(self._show_volumes)

    def _default_path(self) -> Path:
        """A file named after the time, beside the images; not one written before (same minute)."""
        reference = self.case.reference
        folder = Path(reference.path) if reference.path else Path.home()
        folder = folder if folder.is_dir() else folder.parent
        stamp = datetime.now().strftime("%Y%m%d-%H%M")
        if reference.kind == "dicom":
            return _unused(folder.parent / f"RS_Delineo_{stamp}.dcm")
        return _unused(folder / f"RS_{stamp}.dcm")

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write RTSTRUCT", self.path_edit.text(), "DICOM (*.dcm)")
        if path:
            self.path_edit.setText(path)
            self._replace_confirmed = Path(path)  # the save dialog asked before picking an existing file

    def _list_structures(self, checked: dict[int, bool]) -> None:
        """List the case's structures, ticked as in `checked` (by ROI number), else if not empty.

        Volumes are those the structure table counted in its worker (counting 100+ masks here, on
        the GUI thread, took 100+ ms per brush stroke); one not counted yet shows when it is."""
        scrolled = self.structure_list.verticalScrollBar().value()
        self.structure_list.clear()
        self._listed = _listing(self.case.structures)
        reviewed_since = self._awaiting - {s.number for s in self.case.structures if s.awaiting_review}
        self._awaiting = {s.number for s in self.case.structures if s.awaiting_review}
        for structure in self.case.structures:
            volume = self.window_.table.volume_of(structure)
            item = QListWidgetItem(_item_text(structure, volume))
            item.setData(Qt.ItemDataRole.UserRole, structure.number)
            # an auto-contour awaiting review is left out until ticked (exported, it reads as
            # delineated), and in once accepted
            filled = structure.mask.array.size != 0 and (volume is None or volume > 0)
            default = filled and not structure.awaiting_review
            tick = default if structure.number in reviewed_since else checked.get(structure.number, default)
            item.setCheckState(Qt.CheckState.Checked if tick else Qt.CheckState.Unchecked)
            self.structure_list.addItem(item)
        self.structure_list.verticalScrollBar().setValue(scrolled)

    def _show_volumes(self) -> None:
        """Show the volumes the structure table has counted (the list is not rebuilt)."""
        if _listing(self.case.structures) != self._listed:
            return  # the list is rebuilt on the history change
        with QSignalBlocker(self.structure_list):  # not a change of the selection: the check stands
            for row, structure in enumerate(self.case.structures):
                volume = self.window_.table.volume_of(structure)
                item = self.structure_list.item(row)
                if volume is not None and item is not None and item.text() != _item_text(structure, volume):
                    item.setText(_item_text(structure, volume))

    def _ticks(self) -> dict[int, bool]:
        """Whether each listed structure is ticked, by ROI number."""
        items = [self.structure_list.item(i) for i in range(self.structure_list.count())]
        return {
            item.data(Qt.ItemDataRole.UserRole): item.checkState() == Qt.CheckState.Checked for item in items
        }

    def selected_names(self) -> list[str]:
        ticked = {number for number, tick in self._ticks().items() if tick}
        return [s.name for s in self.case.structures if s.number in ticked]

    def _check_file(self, number: int) -> Path:
        """Where check `number` writes: a folder of its own, under the export's file name, so
        that what the writer and the check say (Messages panel) names the file exported."""
        folder = self._temp / str(number)
        folder.mkdir()
        return folder / (Path(self.path_edit.text()).name or "RTSTRUCT.dcm")

    def _on_case_changed(self) -> None:
        """An edit, undo or redo: the check is stale; the list is rebuilt only when structures
        were added, removed, renamed or retyped (a brush stroke changes a volume, shown when the
        structure table has counted it)."""
        self._invalidate()
        if _listing(self.case.structures) != self._listed:
            self._list_structures(self._ticks())
        else:
            self._show_volumes()

    def _invalidate(self, *args) -> None:
        """The case or the options changed: what was checked is not what would be exported."""
        if self._current_check is not None:  # on top: the findings below may be read on
            stale = _finding_item("note", "Changed since this check: check again before writing or sending.")
            self.report.insertItem(0, stale)
            self.report.scrollToTop()
        self._current_check = None
        self._checked_file = None
        self.write_button.setEnabled(False)
        self.send_button.setEnabled(False)

    # -- check and write -----------------------------------------------------------------------

    def run_check(self) -> None:
        """Write to a temporary file and check it, in a worker; findings land in the report."""
        source = self.case.structures
        # masks shared copy-on-write: edits from now on are not seen
        subset = source.snapshot(self.selected_names(), self.label_edit.text() or "Delineo")
        for structure in subset:  # the file says so of each auto-contour exported unreviewed
            if structure.awaiting_review:
                structure.description = "; ".join(filter(None, [structure.description, UNREVIEWED]))
        everything = source.snapshot()  # the sources of derived structures, exported or not
        volume = self.case.volume
        options = {
            "simplify_mm": self.simplify.value(),
            "keyhole": self.keyhole.isChecked(),
            "label": self.label_edit.text() or None,
        }
        self._checks += 1
        number = self._current_check = self._checks
        target = self._check_file(number)
        self.report.clear()
        self.report.addItem(CHECKING)
        self.check_button.setEnabled(False)

        def work(on_progress, cancel):
            notes: list[str] = []
            warnings = services.write_rtstruct(
                subset, volume, target, notes=notes, on_progress=on_progress, cancel=cancel, **options
            )
            on_progress("Checking the RTSTRUCT", 0, 1)
            written = [("warning", w) for w in warnings] + [("note", n) for n in notes]
            findings = written + services.check_rtstruct(target, volume)
            stale = _stale_findings(services.why_stale(everything), subset.names())
            return target, stale + _review_findings(everything, subset) + findings, notes

        def done(result):
            if number != self._current_check:  # stale: a later check runs, or the case changed
                self._end_stale_check()
                return
            self._checked_file, self.findings, notes = result
            for note in notes:  # the warnings reach the panel logged; notes are logged as info
                self.window_.messages.add("INFO", f"{target.name}: {note}")
            self._show_findings()
            self.check_button.setEnabled(True)
            conforming = not any(level == "error" for level, _ in self.findings)
            self.write_button.setEnabled(conforming)
            self.send_button.setEnabled(conforming)
            self.checked.emit()

        def failed(error):
            if number != self._current_check:
                self._end_stale_check()
                return
            self.report.clear()
            self._add_finding("error", str(error))
            self.check_button.setEnabled(True)

        self.window_.jobs.run("Checking RTSTRUCT export", work, done, failed)

    def _end_stale_check(self) -> None:
        """A check whose result is not the current one ended: Check may run again unless a
        later check is still on its way (whose "Checking…" stands)."""
        if self._current_check is None:
            self.check_button.setEnabled(True)
            for row in range(self.report.count()):
                if self.report.item(row).text() == CHECKING:
                    self.report.takeItem(row)
                    self.report.insertItem(row, _finding_item("note", CHANGED_WHILE_CHECKING))

    def _show_findings(self) -> None:
        self.report.clear()
        if not self.findings:
            self._add_finding("ok", "No conformance problems found. Ready to write.")
        for level, text in self.findings:
            self._add_finding(level, text)

    def _add_finding(self, level: str, text: str) -> None:
        self.report.addItem(_finding_item(level, text))

    def write(self) -> None:
        """Put the checked file at the chosen path."""
        if self._checked_file is None:
            return
        target = Path(self.path_edit.text()).expanduser()
        checked = self._checked_file
        if target.exists() and target != self._replace_confirmed and not self.ask_replace(target):
            self._add_finding("note", f"not written: {target} is kept; choose another file")
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, lambda temporary: shutil.copyfile(checked, temporary))
        except (DelineoError, OSError) as error:  # a folder that cannot be made or written
            self._add_finding("error", f"not written: {error}")
            return
        self.window_.statusBar().showMessage(f"RTSTRUCT written to {target}", 8000)
        self.written.emit(str(target))
        self.accept()

    def ask_replace(self, path: Path) -> bool:
        """Whether to replace the existing file `path`."""
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Replace file?", f"{path} already exists. Replace it?", buttons.Yes | buttons.No, buttons.No
        )
        return answer == buttons.Yes

    def send(self) -> None:
        """Send the checked file to the node, in a worker; the outcome lands in the report."""
        if self._checked_file is None:
            return
        try:
            node = Node.parse(self.node_edit.text())
        except DelineoError as error:
            self._add_finding("error", str(error))
            return
        self.window_.settings.setValue(NODE_SETTING, str(node))
        # the AE title the hospital's nodes know this computer by (set in File ▸ Retrieve from PACS…)
        calling_ae = str(self.window_.settings.value(AE_SETTING, "") or "").strip() or DEFAULT_AE_TITLE
        checked = self._checked_file
        self.send_button.setEnabled(False)

        def done(result) -> None:
            self.send_button.setEnabled(True)
            for _, why in result.failed + result.warnings:
                self._add_finding("error" if result.failed else "warning", f"{node}: {why}")
            if result.sent:
                self._add_finding("ok", f"Sent to {node}.")
                self.window_.statusBar().showMessage(f"RTSTRUCT sent to {node}", 8000)

        def failed(error: Exception) -> None:
            self.send_button.setEnabled(True)
            self._add_finding("error", str(error))

        self.window_.jobs.run(
            f"Sending to {node}",
            lambda on_progress, cancel: send(
                [checked], node, calling_ae=calling_ae, on_progress=on_progress, cancel=cancel
            ),
            done,
            failed,
        )

    def done(self, result: int) -> None:
        self.case.history.changed.disconnect(self._on_case_changed)
        self.window_.table.volumes_counted.disconnect(self._show_volumes)
        shutil.rmtree(self._temp, ignore_errors=True)
        super().done(result)


def _listing(structures: StructureSet) -> list[tuple]:
    """What the structure list shows of each structure but its volume (cheap to compare)."""
    return [(s.number, s.name, s.roi_type, s.awaiting_review) for s in structures]


def _item_text(structure, volume: float | None) -> str:
    counted = "… cc" if volume is None else f"{volume:.1f} cc"
    review = ", not reviewed" if structure.awaiting_review else ""
    return f"{structure.name}  ({structure.roi_type.value}, {counted}{review})"


def _finding_item(level: str, text: str) -> QListWidgetItem:
    """A line of the report, coloured by its level."""
    colours = {
        "error": QColor(200, 30, 30),
        "warning": QColor(190, 120, 0),
        "ok": QColor(0, 130, 0),
        "note": QColor(70, 70, 140),
    }
    item = QListWidgetItem(f"{level.upper()}: {text}" if level != "ok" else text)
    item.setForeground(colours.get(level, QColor(60, 60, 60)))
    return item


def _stale_findings(reasons: dict[str, str], exported: list[str]) -> list[tuple[str, str]]:
    """A warning for each exported derived structure out of date, saying why (`reasons`, by name:
    `services.why_stale`): exported all the same, as it is."""
    return [
        (
            "warning",
            f"{name}: {why}; rebuild it (Structures ▸ Rebuild derived structures) or it is exported as it is",
        )
        for name, why in reasons.items()
        if name in exported
    ]


def _review_findings(case: StructureSet, exported: StructureSet) -> list[tuple[str, str]]:
    """Warnings naming the case's auto-contours awaiting review: left out of the file (they are
    unticked until the user ticks them), or ticked and exported as they are."""
    pending = [s.name for s in case if s.awaiting_review]
    ticked = [name for name in pending if name in exported]
    left_out = [name for name in pending if name not in exported]
    findings = []
    if left_out:
        findings.append(
            ("warning", f"not exported, not reviewed (accept them, or tick them): {', '.join(left_out)}")
        )
    if ticked:
        noun = "auto-contour" if len(ticked) == 1 else "auto-contours"
        findings.append(
            (
                "warning",
                f"{len(ticked)} {noun} not reviewed, exported as they are (their ROI Description says "
                f"'{UNREVIEWED}'): {', '.join(ticked)}",
            )
        )
    return findings


#: What the ROI Description of an auto-contour exported before review says.
UNREVIEWED = "not reviewed when exported"


def _unused(path: Path) -> Path:
    """`path`, or the first of `path`-2, -3… (before the suffix) that does not exist."""
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate
