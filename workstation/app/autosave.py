"""Autosave and crash recovery.

While a case is open, its session (structures, history, view) is written every `interval_s`
seconds when something changed, in a worker, atomically, to
``<data dir>/autosave/<pid>-<start time>-<n>/autosave.delineo`` next to ``owner.json`` (the
process id). A clean exit deletes the folder, or keeps unsaved work there for the next start
(process id 0); a folder whose process is gone is what a crash left behind, and `recoverable`
lists those for the next start. A recovered case is autosaved at once; the autosave it came from
goes once that is written.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from planning.files import write_atomically
from planning.session import Session, load_session, save_session

log = logging.getLogger(__name__)
AUTOSAVE_NAME = "autosave.delineo"
_autosavers = itertools.count(1)


@dataclass
class Recoverable:
    """An autosave left by a process that did not exit cleanly, or that exited with unsaved work."""

    folder: Path
    saved_at: float
    description: str
    #: False when the process closed normally and kept its unsaved work here on purpose.
    crashed: bool = True

    @property
    def path(self) -> Path:
        return self.folder / AUTOSAVE_NAME

    def load(self) -> Session:
        return load_session(self.path)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recoverable(data_dir: Path) -> list[Recoverable]:
    """Autosaves of processes that are no longer running, newest first."""
    root = Path(data_dir) / "autosave"
    found = []
    for folder in root.glob("*") if root.is_dir() else []:
        if not folder.is_dir():
            continue
        pid, description = _owner(folder)
        if pid is not None and (pid == os.getpid() or (pid and _alive(pid))):
            continue
        if not (folder / AUTOSAVE_NAME).exists():
            shutil.rmtree(folder, ignore_errors=True)
            continue
        saved_at = (folder / AUTOSAVE_NAME).stat().st_mtime
        found.append(Recoverable(folder, saved_at, description, crashed=pid != 0))
    return sorted(found, key=lambda r: -r.saved_at)


def _owner(folder: Path) -> tuple[int | None, str]:
    """The process id (0: kept at a clean exit) and description ``owner.json`` states. When it is
    damaged (an older version wrote it in place, and a power cut can leave it empty), the process
    id is the folder name's first part (None when it has none) and the description says so: the
    work is still offered."""
    try:
        owner = json.loads((folder / "owner.json").read_text())
        return int(owner["pid"]), str(owner.get("description", ""))
    except (OSError, ValueError, TypeError, KeyError):
        pid = folder.name.split("-")[0]
        return (int(pid) if pid.isdigit() else None), "(its record of what was open is damaged)"


def snapshot(session_source) -> tuple:
    """What a worker needs to write the session, taken on the GUI thread without copying arrays.

    The structures' masks are shared copy-on-write (`Structure.snapshot`) and history commands
    never change, so the save holds the structures and history as they are now, whatever the
    user draws meanwhile.
    """
    case, view = session_source
    copy = case.structures.snapshot()  # with what reading them left out, e.g. for DVHs
    commands, index = case.history.snapshot()
    interpolated = dict(case.interpolated)  # records are frozen: the save holds them as they are now
    return case.reference, copy, commands, index, view, interpolated, dict(case.drawn_in)


def write_snapshot(taken: tuple, path: Path, on_progress=None, cancel=None) -> Path:
    reference, structures, commands, index, view, interpolated, drawn_in = taken
    plain_history = {"index": index, "commands": [c.to_plain() for c in commands]}
    session = Session(
        reference, structures, [plain_history], view, interpolated=interpolated, drawn_in=drawn_in
    )
    kwargs = {"on_progress": on_progress} if on_progress else {}
    return save_session(session, path, cancel=cancel, **kwargs)


class Autosaver(QObject):
    """Saves the open case every `interval_s` seconds when it changed (in a worker)."""

    saved = pyqtSignal(str)
    #: The first failure of a run of failed autosaves, in words (a successful one ends the run).
    failed = pyqtSignal(str)

    def __init__(self, window, data_dir: Path, interval_s: float = 30.0):
        super().__init__(window)
        self.window = window
        stamp = time.strftime("%Y%m%d-%H%M%S")
        # numbered: windows of one process (tests) opened in the same second each have their own
        self.folder = Path(data_dir) / "autosave" / f"{os.getpid()}-{stamp}-{next(_autosavers)}"
        self._saved_generation: tuple | None = None
        self._saving = False
        self._again = False  # a save was asked for while one was running
        self._failing = False
        self._superseded: Recoverable | None = None  # what the open case was recovered from
        self.timer = QTimer(self, interval=int(interval_s * 1000))
        self.timer.timeout.connect(self.save_now)
        self.timer.start()

    @property
    def path(self) -> Path:
        return self.folder / AUTOSAVE_NAME

    def save_now(self) -> None:
        case = self.window.case
        if case is None:
            return
        if self._saving:
            self._again = True
            return
        generation = (id(case), case.history.generation, self.window.view_generation)
        if generation == self._saved_generation:
            return
        taken = snapshot((case, self.window.view_state()))
        superseded = self._superseded
        try:
            self._write_owner(os.getpid(), self.window.case_description())
        except OSError as error:
            self._report_failure(error)
            return
        self._saving = True

        def done(path):
            self._saved_generation = generation
            self._failing = False
            self._discard_superseded(superseded)
            self.saved.emit(str(path))
            self._finished()

        def failed(error):
            self._report_failure(error)
            self._finished()

        self.window.jobs.run(
            "Autosave",
            lambda on_progress, cancel: write_snapshot(taken, self.path),
            done,
            failed,
            quiet=True,
            finish_before_close=True,
        )

    def take_over(self, entry: Recoverable) -> None:
        """Autosave the case just recovered from `entry` now; `entry` goes once that is written."""
        self._superseded = entry
        self.save_now()

    def save_at_exit(self) -> None:
        """Write the open case's unsaved work for the next start, at once (the window is closing).
        Raises OSError or DelineoError when it cannot be written."""
        self.timer.stop()
        self.folder.mkdir(parents=True, exist_ok=True)
        write_snapshot(snapshot((self.window.case, self.window.view_state())), self.path)
        self._write_owner(0, f"{self.window.case_description()} (unsaved at exit)")
        self._discard_superseded(self._superseded)

    def discard(self) -> None:
        """Remove this process's autosave and the one the case was recovered from (a clean exit)."""
        self.timer.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        self._discard_superseded(self._superseded)

    def _write_owner(self, pid: int, description: str) -> None:
        """Say whose autosave this is: a live process id, or 0 for work kept at a clean exit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"pid": pid, "description": description})
        write_atomically(self.folder / "owner.json", lambda path: path.write_text(record))

    def _discard_superseded(self, superseded: Recoverable | None) -> None:
        if superseded is None:
            return
        superseded.discard()
        if self._superseded is superseded:
            self._superseded = None

    def _report_failure(self, error: Exception) -> None:
        log.info("autosave failed: %s", error)
        if not self._failing:
            self._failing = True
            self.failed.emit(str(error))

    def _finished(self) -> None:
        self._saving = False
        if self._again:
            self._again = False
            self.save_now()
