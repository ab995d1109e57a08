"""The Messages panel: every warning and error of the session, kept for review.

Loading a series, importing structures, reading a dose, segmenting or exporting can each raise
several warnings at once (slices resampled, contours left out, a partial dose, pixel spacing
assumed); the status bar shows one for a few seconds. The panel keeps them all, newest last,
with the time. Log records of level WARNING and above reach it from any thread through
`MessageLog`, a logging handler; failed jobs are added by the window (the job runner's own log
record of a failure, with its traceback, is left to the log). Results worth keeping (a measured
distance) are added as INFO. A status-bar button counts the warnings and errors ("⚠ 3") and
opens the panel.
"""

from __future__ import annotations

import logging
import time

from PyQt6 import sip
from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtWidgets import QListWidget, QListWidgetItem, QToolButton, QWidget

#: item data role holding the bare message
_MESSAGE = Qt.ItemDataRole.UserRole
#: item data role holding the message's level (WARNING, INFO…)
_LEVEL = Qt.ItemDataRole.UserRole + 1
#: loggers whose records (tracebacks) the panel leaves out: the window reports failed jobs and
#: unexpected errors itself, in words; pydicom logs each pixel decoder's failure, which the
#: loading error then names
_REPORTED_ELSEWHERE = ("workstation.app.jobs", "workstation.app.unexpected", "pydicom.pixels.decoders.base")


class _Relay(QObject):
    """Carries log records to the GUI thread (a queued signal)."""

    received = pyqtSignal(str, str)  # level name, message


class MessageLog(logging.Handler):
    """A logging handler feeding a `MessagesPanel`; detaches itself once the panel is gone."""

    def __init__(self, relay: _Relay):
        super().__init__(logging.WARNING)
        self._relay = relay

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in _REPORTED_ELSEWHERE:
            return
        if sip.isdeleted(self._relay):  # the panel (and its relay) went with its window
            logging.getLogger().removeHandler(self)
            return
        self._relay.received.emit(record.levelname, record.getMessage())


class MessagesPanel(QListWidget):
    """The list of messages, and a status-bar button that counts them (`button`)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)
        self.button = QToolButton(parent)
        self.button.setAutoRaise(True)
        self.button.setToolTip("Warnings and errors of this session (View ▸ Messages)")
        self.button.hide()
        self._alerts = 0  # warnings and errors among the messages
        self._relay = _Relay(self)
        self._relay.received.connect(self.add)
        self.log = MessageLog(self._relay)
        logging.getLogger().addHandler(self.log)
        self.destroyed.connect(lambda: logging.getLogger().removeHandler(self.log))

    def add(self, level: str, message: str) -> None:
        """Append a message (level: WARNING, ERROR…); a repeat of the last one is not added."""
        text = f"{time.strftime('%H:%M:%S')}  {level.capitalize()}: {message}"
        last = self.item(self.count() - 1) if self.count() else None
        if last is not None and (last.data(_LEVEL), last.data(_MESSAGE)) == (level, message):
            return
        item = QListWidgetItem(text)
        item.setData(_MESSAGE, message)
        item.setData(_LEVEL, level)
        item.setToolTip(message)
        self.addItem(item)
        self.scrollToBottom()
        if level not in ("DEBUG", "INFO"):
            self._alerts += 1
        # the badge counts warnings and errors; results (INFO: a measured distance) only show it
        self.button.setText(f"⚠ {self._alerts}" if self._alerts else f"Messages {self.count()}")
        self.button.show()

    def messages(self) -> list[str]:
        return [self.item(row).data(_MESSAGE) for row in range(self.count())]

    def close_log(self) -> None:
        """Stop collecting (the window is closing)."""
        logging.getLogger().removeHandler(self.log)
