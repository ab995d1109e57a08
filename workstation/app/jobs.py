"""Slow work off the GUI thread: superqt workers with progress, Cancel and error reporting.

Every slow job (loading, scanning, auto-segmentation, interpolation, margins, export, session
saves) runs through `JobRunner.run(title, function, on_done)`. `function(on_progress, cancel)`
runs in a worker thread and calls the domain's usual progress callback; progress reaches the
status bar on the GUI thread through a queued Qt signal; Cancel sets the `threading.Event` the
domain code checks. Results and errors come back on the GUI thread. A result refused because
the structure it writes into was locked while the job ran is no failure: `refused` says so.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from PyQt6 import sip
from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget
from superqt.utils import create_worker

from planning.errors import Cancelled, DelineoError
from workstation.app.history import Locked

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued connection)."""

    progress = pyqtSignal(str, float, float)


@dataclass(eq=False)
class Job:
    """A running job: its title, cancel flag and latest progress."""

    title: str
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = ""
    done: float = 0.0
    total: float = 0.0
    started: float = field(default_factory=time.monotonic)
    worker: object = None
    relay: _Relay | None = None
    #: Background housekeeping (autosave, checks) not shown in the progress panel.
    quiet: bool = False
    #: A write of the user's work (a save, an autosave): closing the window waits for it.
    finish_before_close: bool = False


class JobRunner(QObject):
    """Runs jobs in worker threads; `busy_changed(bool)` when the first starts / the last ends."""

    busy_changed = pyqtSignal(bool)
    progressed = pyqtSignal(object)  # the Job
    failed = pyqtSignal(str, str)  # title, message
    refused = pyqtSignal(str, str)  # title, the structure locked while the job ran

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: list[Job] = []
        self.errors: list[str] = []
        self._closed = False

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def run(
        self,
        title: str,
        function: Callable,
        on_done: Callable | None = None,
        on_error: Callable[[Exception], None] | None = None,
        *,
        quiet: bool = False,
        finish_before_close: bool = False,
    ) -> Job:
        """Start `function(on_progress, cancel)` in a worker; `on_done(result)` on the GUI thread.
        A `quiet` job is background housekeeping the progress panel does not show; closing the
        window waits for a `finish_before_close` one (a save) instead of cancelling it."""
        job = Job(title, quiet=quiet, finish_before_close=finish_before_close)
        job.relay = _Relay()
        job.relay.progress.connect(lambda stage, done, total: self._on_progress(job, stage, done, total))

        def report(stage: str, done: float, total: float) -> None:
            job.relay.progress.emit(str(stage), float(done), float(total))

        # Connecting "errored" here (not afterwards) stops superqt from re-raising the error.
        worker = create_worker(
            function,
            report,
            job.cancel,
            _start_thread=False,
            _connect={
                "returned": lambda result: self._finish(job, on_done, result),
                "errored": lambda error: self._fail(job, on_error, error),
            },
        )
        job.worker = worker
        self.jobs.append(job)
        if len(self.jobs) == 1:
            self.busy_changed.emit(True)
        self.progressed.emit(job)
        log.debug("job started: %s", title)
        worker.start()
        return job

    @property
    def writing(self) -> bool:
        """Whether a job closing the window waits for (a save) is running."""
        return any(job.finish_before_close for job in self.jobs)

    def cancel_all(self) -> None:
        for job in self.jobs:
            job.cancel.set()

    def close(self) -> None:
        """Cancel every job and drop results that arrive later (their window is gone)."""
        self.cancel_all()
        self._closed = True

    def _gone(self) -> bool:
        return self._closed or sip.isdeleted(self)

    def _on_progress(self, job: Job, stage: str, done: float, total: float) -> None:
        if self._gone():
            return
        job.stage, job.done, job.total = stage, done, total
        self.progressed.emit(job)

    def _forget(self, job: Job) -> None:
        """Drop a job that ended after the window closed (no signals: their receivers are gone)."""
        if job in self.jobs:
            self.jobs.remove(job)

    def _end(self, job: Job) -> None:
        self._forget(job)
        self.progressed.emit(job)
        if not self.jobs:
            self.busy_changed.emit(False)

    def _finish(self, job: Job, on_done, result) -> None:
        if self._gone():
            self._forget(job)
            return
        log.debug("job done in %.2f s: %s", time.monotonic() - job.started, job.title)
        try:
            if on_done is not None:
                on_done(result)
        except Locked as error:  # the case refused the result before changing anything
            self.refused.emit(job.title, error.name)
        except Exception as error:  # an error applying the result is reported like any other
            self._report(job, error)
        finally:
            self._end(job)

    def _fail(self, job: Job, on_error, error: Exception) -> None:
        if self._gone():
            self._forget(job)
            return
        try:
            if on_error is not None:
                on_error(error)
            elif isinstance(error, Cancelled):
                self.failed.emit(job.title, "cancelled")
            else:
                self._report(job, error)
        finally:
            self._end(job)

    def report(self, job: Job, error: Exception) -> None:
        """Show an error the usual way (on_error handlers call this for what they don't handle)."""
        if isinstance(error, Cancelled):
            self.failed.emit(job.title, "cancelled")
        else:
            self._report(job, error)

    def _report(self, job: Job, error: Exception) -> None:
        if isinstance(error, DelineoError):
            message = str(error)
        else:
            message = f"{type(error).__name__}: {error}"
            log.error("%s failed:\n%s", job.title, "".join(traceback.format_exception(error)))
        self.errors.append(f"{job.title}: {message}")
        self.failed.emit(job.title, message)


class ProgressPanel(QWidget):
    """Status-bar widget: the running job's stage, a progress bar and a Cancel button."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(self)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(True)
        self.cancel = QPushButton("Cancel", self)
        self.cancel.clicked.connect(self._cancel)
        for widget in (self.label, self.bar, self.cancel):
            layout.addWidget(widget)
        runner.progressed.connect(self._refresh)
        self.setVisible(False)

    def _refresh(self, _job=None) -> None:
        jobs = [job for job in self.runner.jobs if not job.quiet]
        self.setVisible(bool(jobs))
        if not jobs:
            return
        job = jobs[-1]
        more = f" (+{len(jobs) - 1})" if len(jobs) > 1 else ""
        self.label.setText(f"{job.title}{more}: {job.stage}" if job.stage else f"{job.title}{more}")
        if job.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(job.done / job.total, 1.0)))
        else:
            self.bar.setRange(0, 0)  # busy indicator

    def _cancel(self) -> None:
        shown = [job for job in self.runner.jobs if not job.quiet]
        if shown:
            shown[-1].cancel.set()
            self.label.setText(f"{shown[-1].title}: cancelling…")
