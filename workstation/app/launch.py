"""Starting the workstation: application, settings, data folder, first case, screenshot mode.

Nothing here runs at import. `run` is what `delineo` and `delineo open PATH` call.

Environment:
    DELINEO_CONFIG_DIR: keep settings (delineo.ini) and autosaves in this folder instead of the
        user's usual configuration and data folders (tests, portable installs).
    DELINEO_SCREENSHOT: a .png path; see `screenshot_when_ready`.
    DELINEO_AUTOSAVE_S: seconds between autosaves (default 30).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths, QTimer
from PyQt6.QtWidgets import QApplication

log = logging.getLogger(__name__)
SCREENSHOT_TIMEOUT_S = 600


def settings_and_data_dir() -> tuple[QSettings, Path]:
    """The QSettings and the autosave folder to use (see DELINEO_CONFIG_DIR)."""
    folder = os.environ.get("DELINEO_CONFIG_DIR")
    if folder:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return QSettings(str(folder / "delineo.ini"), QSettings.Format.IniFormat), folder
    data = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation))
    return QSettings("Delineo", "Delineo"), data


def run(paths: list[str] | None = None) -> int:
    """Open the main window (with `paths`, the recent case, or the sample patient); run the app."""
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if os.environ.get("DELINEO_SCREENSHOT") and headless and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a screenshot needs no screen
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Delineo")
    app.setOrganizationName("Delineo")
    from workstation.app.main_window import MainWindow

    settings, data_dir = settings_and_data_dir()
    interval = float(os.environ.get("DELINEO_AUTOSAVE_S", "30"))
    window = MainWindow(settings, data_dir, autosave_interval_s=interval)
    sys.excepthook = lambda kind, error, trace: report_unexpected(window, kind, error, trace)
    window.show()
    screenshot = screenshot_when_ready(window, app)
    open_first_case(window, paths or [], interactive=not screenshot)
    return app.exec()


def report_unexpected(window, kind, error, trace) -> None:
    """An exception nothing handled (a bug): logged with its traceback, shown to the user, and
    an autosave started at once; the window stays open. (PyQt would otherwise end the application
    on an exception in a slot, and the edits since the last autosave would be lost.)"""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("workstation.app.unexpected").error("unexpected error", exc_info=(kind, error, trace))
    window.on_job_failed(
        "Unexpected error",
        f"{kind.__name__}: {error}. This is a bug; the window stays open and your work is being "
        "autosaved. The details are in the log.",
    )
    try:
        window.autosaver.save_now()
    except Exception:  # noqa: BLE001 — the state itself may be what is broken; keep the window
        log.exception("autosave after the unexpected error failed")


def open_first_case(window, paths: list[str], *, interactive: bool = True) -> None:
    """What the window shows first: a crash recovery (asked), the given path, the most recent
    case, or else the built-in sample patient."""
    if interactive and window.opening.offer_recovery():
        return
    if paths:
        window.opening.open_path(paths[0])
        return
    recent = next((p for p in window.menus.recent() if Path(p).exists()), None)
    if recent is not None:
        window.opening.open_path(recent)
    else:
        window.opening.open_sample()


def screenshot_when_ready(window, app) -> bool:
    """With DELINEO_SCREENSHOT=/path/file.png set: once the case is loaded and every view is
    rendered, save a screenshot of the main window there and quit with status 0. A folder of
    several series opens none (the user chooses): once they are listed, the screenshot shows the
    list, and the status is 0 too. Status 1 if loading failed, the folder held no image series or
    it all took over SCREENSHOT_TIMEOUT_S. Returns whether screenshot mode is on."""
    path = os.environ.get("DELINEO_SCREENSHOT")
    if not path:
        return False
    waited = {"s": 0.0}

    def check() -> None:
        outcome = _first_case_outcome(window)
        if outcome is None and waited["s"] <= SCREENSHOT_TIMEOUT_S:
            waited["s"] += 0.2
            QTimer.singleShot(200, check)
            return
        app.processEvents()
        window.screenshot().save(path)
        for error in window.jobs.errors:
            print(f"delineo: error: {error}", file=sys.stderr)
        status, note = outcome or (1, f"error: nothing shown after {SCREENSHOT_TIMEOUT_S} s")
        if note:
            print(f"delineo: {note}", file=sys.stderr)
        app.exit(status)

    QTimer.singleShot(500, check)
    return True


def _first_case_outcome(window) -> tuple[int, str] | None:
    """(exit status, a note) once the first case is shown and rendered, or the opening has come
    to rest without one: failed, or a scan listed several series (or none) for the user to
    choose from. None while anything still loads."""
    if window.jobs.busy:
        return None
    if window.case is not None:
        return (0, "") if window.view3d.is_ready() else None
    if window.jobs.errors:
        return 1, ""
    scan = window.browser.scan
    if scan is None:
        return None
    if scan.series:
        return 0, f"{len(scan.series)} series found, none opened: the window lists them to choose from"
    return 1, "error: no image series found"
