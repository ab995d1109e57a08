"""The size of a 3D snapshot (the view's own size, a common screen or print size, or any other)
and the PNG file it goes to.

The snapshot is rendered off-screen with the view's camera, so any size is possible; an aspect
ratio other than the view's shows more (or less) of the scene at the sides.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

#: (label, (width, height)); None: the view's current size
PRESETS: tuple[tuple[str, tuple[int, int] | None], ...] = (
    ("As shown (the view's size)", None),
    ("1920 × 1080 (Full HD)", (1920, 1080)),
    ("2560 × 1440 (QHD)", (2560, 1440)),
    ("3840 × 2160 (4K UHD)", (3840, 2160)),
    ("2480 × 3508 (A4 portrait, 300 dpi)", (2480, 3508)),
    ("Custom", None),
)
CUSTOM = len(PRESETS) - 1
MAX_SIDE = 16384


class SnapshotSizeDialog(QDialog):
    """Choose the width × height in pixels of a 3D snapshot."""

    def __init__(self, view_size: tuple[int, int], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("3D snapshot size")
        self.view_size = (max(1, int(view_size[0])), max(1, int(view_size[1])))
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.preset = QComboBox(self)
        for index, (label, _) in enumerate(PRESETS):
            shown = f"{self.view_size[0]} × {self.view_size[1]} (as shown)" if index == 0 else label
            self.preset.addItem(shown)
        form.addRow("Resolution", self.preset)
        row = QHBoxLayout()
        self.width_box, self.height_box = QSpinBox(self), QSpinBox(self)
        for box in (self.width_box, self.height_box):
            box.setRange(16, MAX_SIDE)
            box.setSuffix(" px")
        row.addWidget(self.width_box)
        row.addWidget(QLabel("×", self))
        row.addWidget(self.height_box)
        form.addRow("Width × height", row)
        layout.addLayout(form)
        note = QLabel(
            "Rendered with the view's camera; another shape than the view's shows more or less "
            "of the scene at the sides.",
            self,
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Save as…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumWidth(420)
        self.preset.currentIndexChanged.connect(self._apply_preset)
        self.preset.setCurrentIndex(1)
        self._apply_preset(1)

    def _apply_preset(self, index: int) -> None:
        custom = index == CUSTOM
        self.width_box.setEnabled(custom)
        self.height_box.setEnabled(custom)
        if not custom:
            width, height = PRESETS[index][1] or self.view_size
            self.width_box.setValue(width)
            self.height_box.setValue(height)

    def choose(self, label_start: str) -> None:
        """Select the preset whose label starts with `label_start` (e.g. "3840")."""
        index = next(i for i, (label, _) in enumerate(PRESETS) if label.startswith(label_start))
        self.preset.setCurrentIndex(index)

    def set_custom(self, width: int, height: int) -> None:
        self.preset.setCurrentIndex(CUSTOM)
        self.width_box.setValue(width)
        self.height_box.setValue(height)

    def chosen_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width_box.value(), self.height_box.value()


def ask_png_path(parent: QWidget) -> str | None:
    """A PNG file to save to, or None. The dialog adds .png to a bare name before its own
    "replace?" check; a name with another extension gets .png too, and is asked about here."""
    chooser = QFileDialog(parent, "Save 3D snapshot", "", "PNG images (*.png)")
    chooser.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    chooser.setDefaultSuffix("png")
    chooser.selectFile("snapshot.png")
    if chooser.exec() != QFileDialog.DialogCode.Accepted or not chooser.selectedFiles():
        return None
    path = chooser.selectedFiles()[0]
    if path.lower().endswith(".png"):
        return path
    path += ".png"
    replace = QMessageBox.StandardButton.Yes
    if (
        Path(path).exists()
        and QMessageBox.question(
            parent, "Replace the file?", f"{Path(path).name} already exists. Replace it?"
        )
        != replace
    ):
        return None
    return path
