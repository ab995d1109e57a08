"""The 2×2 view layout (axial, 3D / coronal, sagittal); any one view can be maximised."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

#: Grid position of each view.
POSITIONS = {"axial": (0, 0), "3d": (0, 1), "coronal": (1, 0), "sagittal": (1, 1)}
TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal", "3d": "3D"}


class ViewFrame(QFrame):
    """A view with a slim title bar holding its name and a maximise/restore button."""

    maximise_requested = pyqtSignal(str)

    def __init__(self, key: str, content: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.key, self.content = key, content
        self.setFrameShape(QFrame.Shape.NoFrame)
        bar = QWidget(self)
        bar.setFixedHeight(20)
        bar.setStyleSheet("background: #2b2d31; color: #d0d0d0;")
        row = QHBoxLayout(bar)
        row.setContentsMargins(6, 0, 2, 0)
        row.addWidget(QLabel(TITLES[key], bar))
        row.addStretch(1)
        self.button = QToolButton(bar)
        self.button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarMaxButton))
        self.button.setToolTip("Maximise / restore this view (double-click the title bar)")
        self.button.setAutoRaise(True)
        self.button.clicked.connect(lambda: self.maximise_requested.emit(self.key))
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        layout.addWidget(bar)
        # Native content (the 3D view's OpenGL window) goes into a native frame: put into this one
        # while alien, its X window stayed the grid's child at the frame's offset, over the axial
        # view, hiding it on screen and taking its mouse events.
        if content.testAttribute(Qt.WidgetAttribute.WA_NativeWindow):
            self.winId()
        layout.addWidget(content, 1)
        bar.mouseDoubleClickEvent = lambda event: self.maximise_requested.emit(self.key)

    def set_content(self, content: QWidget) -> None:
        layout = self.layout()
        layout.replaceWidget(self.content, content)
        self.content.deleteLater()
        self.content = content


class ViewGrid(QWidget):
    """Four views in a 2×2 grid; `maximise(key)` shows one alone, `maximise(None)` restores."""

    layout_changed = pyqtSignal(object)

    def __init__(self, views: dict[str, QWidget], parent: QWidget | None = None):
        super().__init__(parent)
        self.setStyleSheet("ViewGrid { background: #18191c; }")
        self.frames = {key: ViewFrame(key, widget, self) for key, widget in views.items()}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        for key, frame in self.frames.items():
            row, column = POSITIONS[key]
            grid.addWidget(frame, row, column)
            frame.maximise_requested.connect(self.toggle)
            # Equal quarters whatever the views' own size hints (a toolbar's width, say).
            frame.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        for index in (0, 1):
            grid.setRowStretch(index, 1)
            grid.setColumnStretch(index, 1)
        self.maximised: str | None = None

    def toggle(self, key: str) -> None:
        self.maximise(None if self.maximised == key else key)

    def maximise(self, key: str | None) -> None:
        self.maximised = key
        for name, frame in self.frames.items():
            frame.setVisible(key is None or name == key)
        grid = self.layout()
        for index in (0, 1):
            grid.setRowStretch(index, 1 if key is None or POSITIONS[key][0] == index else 0)
            grid.setColumnStretch(index, 1 if key is None or POSITIONS[key][1] == index else 0)
        self.layout_changed.emit(key)

    def set_view(self, key: str, widget: QWidget) -> None:
        self.frames[key].set_content(widget)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape and self.maximised:
            self.maximise(None)
        else:
            super().keyPressEvent(event)
