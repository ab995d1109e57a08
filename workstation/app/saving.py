"""Saving the main window's session, in a worker (File ▸ Save session, Save session as…) or at once
when the open case is to give way to another or the window to close; and closing the window
without losing unsaved work: kept in the autosave for the next start, or, when that cannot be
written, saved elsewhere or dropped as the user says (the window's `ask_unsaved_changes` and
`ask_close_without_autosave` ask). The session's file and saved generation stay on the window."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, QThreadPool, QTimer
from PyQt6.QtWidgets import QApplication, QFileDialog

from planning.errors import DelineoError
from planning.session import ARCHIVE_SUFFIXES
from workstation.app.autosave import snapshot, write_snapshot


class SessionSaving:
    """How a main window saves its session, and closes once its unsaved work is safe."""

    def __init__(self, window):
        self.window = window

    def _say(self, text: str, ms: int = 0) -> None:
        self.window.statusBar().showMessage(text, ms)

    # -- saving --------------------------------------------------------------------------------

    def save_session(self) -> None:
        if self.window.session_path is None:
            self.ask_save_session_as()
        else:
            self.save_session_to(self.window.session_path)

    def save_session_to(self, path: str | Path) -> None:
        """Save the session (folder, or archive for .delineo/.zip) in a worker."""
        window = self.window
        if window.case is None:
            return
        path = Path(path)
        taken = snapshot((window.case, window.view_state()))
        generation = window.case.history.generation

        def done(written):
            window.session_path = Path(written)
            window.saved_generation = generation
            window.menus.remember(written)
            self._say(f"Session saved to {written}", 6000)

        window.jobs.run(
            "Saving session", lambda p, c: write_snapshot(taken, path, p, c), done, finish_before_close=True
        )

    def ask_save_session_as(self) -> None:
        path = self._ask_session_path()
        if path is not None:
            self.save_session_to(path)

    def _ask_session_path(self) -> Path | None:
        """A session file the user picks (.delineo added without an archive suffix); None: cancelled."""
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save the session", "", "Delineo sessions (*.delineo)"
        )
        if not path:
            return None
        return Path(path if path.lower().endswith(ARCHIVE_SUFFIXES) else path + ".delineo")

    def _save_now(self, choose_path: bool = False) -> bool:
        """Save the session at once (to its file, else one the user picks); True when saved."""
        window = self.window
        path = None if choose_path else window.session_path
        path = path or self._ask_session_path()
        if path is None:
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            written = write_snapshot(snapshot((window.case, window.view_state())), Path(path))
        except (DelineoError, OSError) as error:
            window.on_job_failed("Saving session", str(error))
            return False
        finally:
            QApplication.restoreOverrideCursor()
        window.session_path, window.saved_generation = Path(written), window.case.history.generation
        window.menus.remember(written)
        return True

    # -- unsaved changes -----------------------------------------------------------------------

    def may_replace_case(self) -> bool:
        """Whether the open case may give way to another one just loaded: yes when nothing is
        unsaved, or once the user saved the changes or chose to discard them; no keeps it (and
        the other is not shown). Asked when the other has loaded, so edits made meanwhile count."""
        window = self.window
        if not window.dirty:
            return True
        answer = window.ask_unsaved_changes(window.case_description() or "The open case")
        if answer == "save":
            return self._save_now()
        if answer == "cancel":
            self._say("Not opened: the open case keeps its unsaved changes", 8000)
        return answer == "discard"

    def on_autosave_failed(self, message: str) -> None:
        """Autosaves began failing: said once, until one works again."""
        text = (
            f"Autosave failed: {message}. Until it works again, a crash loses the unsaved changes: "
            "save the session (to another disk if this one is full)"
        )
        self._say(text, 30000)
        self.window.messages.add("ERROR", text)

    # -- closing -------------------------------------------------------------------------------

    def close(self, event) -> bool:
        """The window's closeEvent: True when it may close, what it holds then released; else the
        event is ignored (a save still being written, or unsaved work the user keeps open)."""
        window = self.window
        if window.jobs.writing:
            self._close_once_written(event)
            return False
        if window.dirty and not self._keep_unsaved_work():
            window.autosaver.timer.start()
            event.ignore()
            return False
        if not window.dirty:
            window.autosaver.discard()
        window.settings.setValue("window/geometry", window.saveGeometry())
        window.settings.setValue("window/state", window.saveState())
        window.messages.close_log()
        window.jobs.cancel_all()
        cancel_3d = getattr(window.view3d, "cancel_builds", None)
        if cancel_3d is not None:
            cancel_3d()
        # Workers (ours and the 3D view's) stop at their next cancel check; their results, queued
        # for this thread, are delivered now, while every view still exists.
        QThreadPool.globalInstance().waitForDone(10_000)
        QApplication.processEvents()
        shutdown = getattr(window.view3d, "shutdown", None)
        if shutdown is not None:
            shutdown()  # stops its surface builds and releases its render window
        window.jobs.close()
        return True

    def _close_once_written(self, event) -> None:
        """Closing while a save is being written: the window closes once it is done."""
        event.ignore()
        self._say("Closing once the session is saved…")
        QTimer.singleShot(100, self.window.close)

    def _keep_unsaved_work(self) -> bool:
        """Keep the unsaved work in the autosave, offered for recovery next time; when it cannot be
        written, ask. True when the window may close."""
        window = self.window
        try:
            window.autosaver.save_at_exit()
            return True
        except (DelineoError, OSError) as error:
            reason = f"The unsaved changes could not be kept for the next start: {error}"
        window.messages.add("ERROR", reason)
        answer = window.ask_close_without_autosave(reason)
        if answer == "save":
            return self._save_now(choose_path=True)
        if answer != "quit":
            self._say("Not closed: the unsaved changes are still open here", 15000)
        return answer == "quit"
