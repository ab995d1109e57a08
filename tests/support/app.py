"""Helpers for tests that drive the real workstation window (pytest-qt, under Xvfb).

The `window` fixture (tests/workstation/conftest.py) is built from `open_window` and `close_window`.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PyQt6.QtGui import QCursor, QImage, QMouseEvent, QWheelEvent
from PyQt6.QtWidgets import QApplication

WINDOW_SIZE = (1280, 860)


def make_window(qtbot, settings_path, data_dir, **kwargs):
    from workstation.app.main_window import MainWindow

    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    window = MainWindow(
        settings, data_dir, autosave_interval_s=kwargs.pop("autosave_interval_s", 3600), **kwargs
    )
    qtbot.addWidget(window)
    window.ask_unsaved_changes = _unexpected_question  # a test that expects it replaces it
    window.ask_close_without_autosave = _unexpected_question
    window.ask_interpolation_view = _unexpected_interpolation_question
    window.resize(*WINDOW_SIZE)
    window.show()
    qtbot.waitExposed(window)
    return window


def _unexpected_question(about: str) -> str:
    raise AssertionError(f"unexpected question about unsaved changes: {about}")


def _unexpected_interpolation_question(name: str, views: list[str]) -> str:
    raise AssertionError(f"unexpected question: which of {views} to interpolate {name} in")


def open_window(qtbot, tmp_path):
    """A main window with its own settings file and data folder under `tmp_path`."""
    return make_window(qtbot, tmp_path / "delineo.ini", tmp_path / "data")


def close_window(qtbot, window) -> None:
    """Cancel what is running (jobs and 3D surface builds) and wait for the workers to stop."""
    window.jobs.cancel_all()
    cancel_builds = getattr(window.view3d, "cancel_builds", None)  # absent on the placeholder
    if cancel_builds is not None:
        cancel_builds()

    def stopped() -> None:
        running = [job.title for job in window.jobs.jobs]
        assert not running and window.view3d.is_ready(), (
            f"still running after cancel: jobs {running}, 3D view ready: {window.view3d.is_ready()}"
        )

    qtbot.waitUntil(stopped, timeout=120_000)


def wait_idle(qtbot, window, timeout_ms: int = 120_000) -> None:
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=timeout_ms)
    QApplication.processEvents()


def show_sample(window, shape=(40, 128, 128)):
    """Put a small sample patient in the window directly (fast; the real loader is tested too)."""
    from planning.sample_patient import make_sample_patient
    from planning.session import ImageReference
    from workstation.app.case import Case

    sample = make_sample_patient(shape)
    case = Case(sample.volume, sample.structures, ImageReference.for_volume(sample.volume, "sample"))
    window.set_case(case)
    QApplication.processEvents()
    return case


def expand_in_dialog(qtbot, window, source: str, margin_mm: float, output: str) -> None:
    """Grow `source` by `margin_mm` into `output` through the Margins and Booleans dialog, as a
    user does, and wait for it."""
    from workstation.app.derive_dialog import DeriveDialog

    dialog = DeriveDialog(window)
    dialog.operation.setCurrentText("Expand (margin)")
    dialog.source_a.setCurrentText(source)
    dialog.margin.setValue(margin_mm)
    dialog.output.setText(output)
    dialog.compute()
    wait_idle(qtbot, window)


def grab(widget) -> np.ndarray:
    """The widget as rendered now: (height, width, 3) uint8 RGB."""
    widget.repaint()
    return _rgb(widget.grab().toImage())


def on_screen(widget) -> np.ndarray:
    """What the display shows where `widget` is, native windows (the 3D view's) included:
    (height, width, 3) uint8 RGB."""
    widget.repaint()
    QApplication.processEvents()
    corner = widget.mapToGlobal(QPoint(0, 0))
    shown = widget.screen().grabWindow(0, corner.x(), corner.y(), widget.width(), widget.height())
    return _rgb(shown.toImage())


def point_at(qtbot, widget, pos: QPoint) -> None:
    """Move the real pointer to `pos` in `widget` (as the user does): the display's enter and
    move events follow, and `widget.underMouse()` becomes true."""
    QCursor.setPos(widget.mapToGlobal(QPoint(-2, -2)))  # from outside: the pointer enters it
    QCursor.setPos(widget.mapToGlobal(pos))
    qtbot.waitUntil(widget.underMouse, timeout=3000)


def _rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    buffer = image.constBits()
    buffer.setsize(image.sizeInBytes())
    rows = np.frombuffer(buffer, np.uint8).reshape(height, image.bytesPerLine())
    return rows[:, : width * 3].reshape(height, width, 3).copy()


def widget_point(view, zyx) -> QPoint:
    point = view.voxel_to_widget(np.asarray(zyx, float))
    return QPoint(int(round(point.x())), int(round(point.y())))


def send_mouse(
    widget,
    kind,
    pos,
    button=Qt.MouseButton.LeftButton,
    buttons=None,
    modifiers=Qt.KeyboardModifier.NoModifier,
) -> None:
    pos = QPointF(pos)
    if buttons is None:
        buttons = button if kind != QEvent.Type.MouseButtonRelease else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def drag(widget, points, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press at the first point, move through the others, release at the last."""
    send_mouse(widget, QEvent.Type.MouseButtonPress, points[0], button, modifiers=modifiers)
    for point in points[1:]:
        send_mouse(
            widget, QEvent.Type.MouseMove, point, Qt.MouseButton.NoButton, buttons=button, modifiers=modifiers
        )
    send_mouse(widget, QEvent.Type.MouseButtonRelease, points[-1], button, modifiers=modifiers)


def click(widget, point, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    drag(widget, [point], modifiers=modifiers)


def wheel(widget, pos, steps: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(pos)
    event = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def colour_near(image: np.ndarray, point: QPoint, colour, radius: int = 2, tolerance: int = 40) -> bool:
    """Whether a pixel of `colour` lies within `radius` px of `point` in a grabbed image."""
    y0, x0 = point.y(), point.x()
    patch = image[max(0, y0 - radius) : y0 + radius + 1, max(0, x0 - radius) : x0 + radius + 1].astype(int)
    distance = np.abs(patch - np.asarray(colour, int)).max(axis=-1)
    return bool((distance <= tolerance).any())
