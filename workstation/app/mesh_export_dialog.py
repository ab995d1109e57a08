"""Surgery ▸ Export 3D models: the chosen structures' surfaces as STL, OBJ, PLY or VTP files
(`planning.mesh_export.export_surfaces`), optionally checked and repaired for 3D printing, in a
job. Files are written into a hidden folder inside the target first and moved into place at the
end, so an existing file is replaced only after the user agreed, and a failed or cancelled export
leaves the folder as it was. Structures that run off the images are named, with the sides
where their meshes are capped flat: that face is the edge of the scan, not anatomy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QIcon, QPixmap
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from planning.errors import Cancelled, DelineoError
from planning.margins import sides_at_edges
from planning.mesh_export import Export, PrintCheck, export_surfaces
from workstation.app.surgery import SurfaceSource, SurgeryDialog, case_gone, non_empty_names, report

FORMATS = {
    "STL (binary, one file per structure)": "stl",
    "OBJ with colours (one file + .mtl)": "obj",
    "PLY with colours (one file per structure)": "ply",
    "VTP (VTK XML, one file per structure)": "vtp",
}
COORDINATES = {
    "Patient LPS (DICOM, 3D Slicer)": "LPS",
    "Patient RAS (older 3D Slicer, some mesh tools)": "RAS",
}
SETTING = "surgery/mesh_folder"


class MeshExportDialog(SurgeryDialog):
    """Choose structures, a folder, a format; export their surfaces."""

    def __init__(self, window):
        super().__init__(window, "Export 3D models")
        self.written: list[Path] = []
        self.checks: list[PrintCheck] = []
        layout = QVBoxLayout(self)
        self.list = QListWidget(self)
        for name in non_empty_names(window.case):
            structure = window.case.structures[name]
            pixmap = QPixmap(12, 12)
            pixmap.fill(QColor(*structure.color))
            item = QListWidgetItem(QIcon(pixmap), name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if structure.visible else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.setMinimumHeight(120)
        layout.addWidget(self.list, 1)
        picks = QHBoxLayout()
        for text, rule in (
            ("Visible", lambda s: s.visible),
            ("All", lambda s: True),
            ("None", lambda s: False),
        ):
            button = QPushButton(text, self)
            button.clicked.connect(lambda _=False, rule=rule: self.check_where(rule))
            picks.addWidget(button)
        picks.addStretch(1)
        layout.addLayout(picks)

        form = QFormLayout()
        folder_row = QHBoxLayout()
        self.folder = QLineEdit(str(window.settings.value(SETTING, "") or ""), self)
        self.folder.setPlaceholderText("folder for the mesh files")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        self.format = QComboBox(self)
        self.format.addItems(list(FORMATS))
        form.addRow("Format", self.format)
        self.coordinates = QComboBox(self)
        self.coordinates.addItems(list(COORDINATES))
        form.addRow("Coordinates", self.coordinates)
        layout.addLayout(form)
        self.for_printing = QCheckBox(
            "Check and repair for 3D printing (closed, manifold shells; reports each volume)", self
        )
        layout.addWidget(self.for_printing)
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("The files written and the printing check appear here.")
        self.output.setMinimumHeight(170)
        layout.addWidget(self.output)
        buttons = QDialogButtonBox(self)
        self.export_button = self.action_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)
        self.export_button.clicked.connect(self.export)
        layout.addWidget(buttons)
        self.resize(560, 620)

    # -- choices -------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.output.setPlainText(text)

    def chosen(self) -> list[str]:
        return [
            self.list.item(row).text()
            for row in range(self.list.count())
            if self.list.item(row).checkState() == Qt.CheckState.Checked
        ]

    def check_where(self, rule) -> None:
        structures = self.window_.case.structures
        for row in range(self.list.count()):
            item = self.list.item(row)
            keep = item.text() in structures and rule(structures[item.text()])
            item.setCheckState(Qt.CheckState.Checked if keep else Qt.CheckState.Unchecked)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the 3D models", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def confirm_replace(self, folder: Path, names: list[str]) -> bool:
        """Ask before replacing existing files; True to replace them."""
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        answer = QMessageBox.question(
            self,
            "Replace existing files?",
            f"{len(names)} file(s) already exist in {folder}:\n{shown}\n\nReplace them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    # -- the job -------------------------------------------------------------------------------

    def export(self) -> None:
        """Build (or reuse) the surfaces and write them in a job; files move into place at the end."""
        window = self.window_
        names = self.chosen()
        text = self.folder.text().strip()
        if not names:
            self.output.setPlainText("Choose at least one structure to export.")
            return
        if not text:
            self.output.setPlainText("Choose a folder for the files (Browse…).")
            return
        folder = Path(text).expanduser()
        if folder.exists() and not folder.is_dir():
            self.output.setPlainText(f"{folder} is a file, not a folder: choose a folder.")
            return
        fmt = FORMATS[self.format.currentText()]
        coordinates = COORDINATES[self.coordinates.currentText()]
        for_printing = self.for_printing.isChecked()
        if case_gone(self):
            return
        try:
            source = SurfaceSource(window, names)
        except DelineoError as error:
            self.output.setPlainText(str(error))
            return
        if len(source.empty) == len(names):
            self.output.setPlainText(f"Nothing to export: {', '.join(names)} empty now.")
            return
        window.settings.setValue(SETTING, str(folder))

        def work(on_progress, cancel):
            surfaces = source.build(on_progress, cancel)
            image_edges = {name: sides_at_edges(source.copies[name].mask) for name in names}
            try:
                folder.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=".delineo-export-", dir=folder))
            except OSError as error:
                raise DelineoError(f"cannot write in {folder}: {error.strerror or error}") from error
            try:
                export = export_surfaces(
                    [surfaces[n] for n in names if n in surfaces],
                    staging,
                    fmt,
                    coordinates=coordinates,
                    for_printing=for_printing,
                    image_edges=image_edges,
                    on_progress=on_progress,
                    cancel=cancel,
                )
                if cancel.is_set():  # e.g. the window closing: its result would be dropped
                    raise Cancelled("the 3D model export was cancelled")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return staging, export

        def done(result) -> None:
            staging, export = result
            try:
                self.finish(folder, staging, export, source.empty)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

        def failed(error: Exception) -> None:
            self.output.setPlainText(f"Nothing exported: {error}")

        self.output.setPlainText(f"Exporting {len(names)} structure(s) to {folder}…")
        self.run_job(f"Exporting {len(names)} 3D model(s)", work, done, failed)

    def discard(self, result) -> None:
        """An export not moved into place: its staging folder goes."""
        shutil.rmtree(result[0], ignore_errors=True)

    def finish(self, folder: Path, staging: Path, export: Export, empty: list[str]) -> None:
        """Move the written files into `folder` (asking before replacing any) and list them,
        and the structures not written: `empty` ones and those not printable."""
        names = [path.name for path in export.files]
        existing = [name for name in names if (folder / name).exists()]
        if existing and not self.confirm_replace(folder, existing):
            self.output.setPlainText(
                f"Nothing written: {len(existing)} file(s) already exist in {folder} and were kept. "
                "Choose another folder, or export again and replace them."
            )
            self.window_.statusBar().showMessage("3D model export: nothing written (files exist)", 10000)
            return
        self.written = []
        for name in names:
            target = folder / name
            try:
                os.replace(staging / name, target)
            except OSError as error:
                raise DelineoError(f"cannot write {target}: {error.strerror or error}") from error
            self.written.append(target)
        self.checks = list(export.checks)
        left_out = [(name, "empty") for name in empty] + [(n, "not printable") for n, _ in export.unprintable]
        stale = [folder / path.name for path in export.unwritten_files if (folder / path.name).exists()]
        lines = [f"Wrote {len(self.written)} file(s) to {folder}."]
        if left_out:
            lines.append("Not written:")
            lines += [f"  {name}: empty (nothing drawn)" for name in empty]
            lines += [f"  {reason}" for _, reason in export.unprintable]  # "<name>: why"
        if stale:
            shown = ", ".join(path.name for path in stale)
            lines.append(f"Left from an earlier export, not replaced (out of date): {shown}")
        if export.cut:
            lines.append("Cut off by the images:")
            lines += [f"  {cut.describe()}" for cut in export.cut]
        if self.checks:
            lines.append("3D-printing check (volume enclosed by the written mesh):")
            lines += [f"  {describe_check(check)}" for check in self.checks]
        lines.append("Files:")
        lines += [f"  {path.name}" for path in self.written]
        self.output.setPlainText("\n".join(lines))
        repaired = sum(check.repaired for check in self.checks)
        note = f"; {repaired} mesh(es) repaired for printing" if repaired else ""
        if export.cut:
            note += f"; {len(export.cut)} cut off by the images, flat there (see Messages)"
        if left_out:
            note += "; not written: " + ", ".join(f"{name} ({why})" for name, why in left_out)
        report(self.window_, f"Exported {len(self.written)} 3D model file(s) to {folder}{note}")
        for cut in export.cut:
            self.window_.messages.add("WARNING", f"3D model export: {cut.describe()}")


def describe_check(check: PrintCheck) -> str:
    if check.repaired:
        state = f"closed after repair ({check.shells} shell(s); it was {check.found})"
    else:
        state = f"closed, {check.shells} shell(s)"
    return f"{check.name}: {check.volume_cc:.2f} cc, {state}"
