"""The 3D slot of the view grid: `workstation.view3d.View3D`, or, where it cannot be created
(no OpenGL display, VTK's OpenGL modules missing), a label that says why, so the 2D
workstation still runs."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QLabel, QWidget

from workstation.app import services


class Placeholder3D(QLabel):
    """Stands in for the 3D view where it cannot be created."""

    def __init__(self, reason: str, parent: QWidget | None = None):
        super().__init__(f"3D view not available\n{reason}", parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("background: black; color: #909090;")
        self.setWordWrap(True)

    def show_case(self, case) -> None:
        pass

    def set_empty_hint(self, text: str) -> None:
        pass  # it says why there is no 3D view

    def is_ready(self) -> bool:
        return True


def make_3d_view(parent: QWidget) -> QWidget:
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return Placeholder3D("no OpenGL display (Qt platform 'offscreen'); run under X or Xvfb", parent)
    try:
        return services.make_view3d(parent)
    except services.Unavailable as error:
        return Placeholder3D(str(error), parent)
