"""Autosave and crash recovery.

While a case is open, its session (structures, history, view) is written every `interval_s`
seconds when something changed, in a worker, atomically, to
``<data dir>/autosave/<pid>-<start time>/autosave.delineo`` next to ``owner.json`` (the process
id). A clean exit deletes the folder; a folder whose process is gone is what a crash left behind,
and `recoverable` lists those for the next start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from planning.session import Session, load_session, save_session
from planning.structures import StructureSet

log = logging.getLogger(__name__)
AUTOSAVE_NAME = "autosave.delineo"


@dataclass
class Recoverable:
    """An autosave left by a process that did not exit cleanly."""

    folder: Path
    saved_at: float
    description: str

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
        try:
            owner = json.loads((folder / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        pid = int(owner.get("pid", 0))
        if pid == os.getpid() or (pid and _alive(pid)):
            continue
        if not (folder / AUTOSAVE_NAME).exists():
            shutil.rmtree(folder, ignore_errors=True)
            continue
        found.append(
            Recoverable(folder, (folder / AUTOSAVE_NAME).stat().st_mtime, owner.get("description", ""))
        )
    return sorted(found, key=lambda r: -r.saved_at)


def snapshot(session_source) -> tuple:
    """What a worker needs to write the session, taken on the GUI thread without copying arrays.

    The structures' masks are shared copy-on-write (`Structure.snapshot`) and history commands
    never change, so the save holds the structures and history as they are now, whatever the
    user draws meanwhile.
    """
    case, view = session_source
    copy = StructureSet(case.structures.grid, case.structures.frame_of_reference_uid, case.structures.label)
    for structure in case.structures:
        copy.add(structure.snapshot(), rename=False)
    commands, index = case.history.snapshot()
    return case.reference, copy, commands, index, view


def write_snapshot(taken: tuple, path: Path, on_progress=None, cancel=None) -> Path:
    reference, structures, commands, index, view = taken
    plain_history = {"index": index, "commands": [c.to_plain() for c in commands]}
    session = Session(reference, structures, [plain_history], view)
    kwargs = {"on_progress": on_progress} if on_progress else {}
    return save_session(session, path, cancel=cancel, **kwargs)


class Autosaver(QObject):
    """Saves the open case every `interval_s` seconds when it changed (in a worker)."""

    saved = pyqtSignal(str)

    def __init__(self, window, data_dir: Path, interval_s: float = 30.0):
        super().__init__(window)
        self.window = window
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.folder = Path(data_dir) / "autosave" / f"{os.getpid()}-{stamp}"
        self._saved_generation: tuple | None = None
        self._saving = False
        self.timer = QTimer(self, interval=int(interval_s * 1000))
        self.timer.timeout.connect(self.save_now)
        self.timer.start()

    @property
    def path(self) -> Path:
        return self.folder / AUTOSAVE_NAME

    def save_now(self) -> None:
        case = self.window.case
        if case is None or self._saving:
            return
        generation = (id(case), case.history.generation, self.window.view_generation)
        if generation == self._saved_generation:
            return
        taken = snapshot((case, self.window.view_state()))
        self.folder.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "description": self.window.case_description()}
        (self.folder / "owner.json").write_text(json.dumps(owner))
        self._saving = True

        def done(path):
            self._saving = False
            self._saved_generation = generation
            self.saved.emit(str(path))

        def failed(error):
            self._saving = False
            log.error("autosave failed: %s", error)

        self.window.jobs.run(
            "Autosave", lambda on_progress, cancel: write_snapshot(taken, self.path), done, failed, quiet=True
        )

    def discard(self) -> None:
        """Remove this process's autosave (a clean exit)."""
        self.timer.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
