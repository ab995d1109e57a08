"""What the command line writes besides its results: log records and warnings, each once.

The domain logs the warnings it also returns (a file's, a series', a run's), and the commands
print the returned ones, so without care each would show twice. `LogHandler` remembers what it
wrote and leaves out a warning it has already shown (a file read twice, as the image and as the
structures); `warn` prints a warning only when the log has not shown it. A log record written
while a progress bar is drawing starts on a line of its own.
"""

from __future__ import annotations

import logging
import sys

from workstation.cli.progress import ProgressBar


class LogHandler(logging.Handler):
    """Log records on stderr as ``LEVEL: message``, remembering the messages shown; a warning
    or error already shown is not shown again."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        self.shown: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.levelno >= logging.WARNING and message in self.shown:
                return
            ProgressBar.interrupt()
            self.shown.append(message)
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # logging's own rule: a failing handler reports, never raises
            self.handleError(record)


_handler: LogHandler | None = None


def install(verbose: bool) -> None:
    """Route log records to the terminal (debug records too when `verbose`), replacing the
    handler an earlier call installed."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = LogHandler()
    root.addHandler(_handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # pydicom logs each pixel decoder's failure with its traceback; the error raised names them all
    logging.getLogger("pydicom.pixels.decoders.base").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def warn(text: str) -> None:
    """Print ``warning: text`` unless a log record (``…: text``) has already shown it."""
    shown = _handler.shown if _handler is not None else []
    if not any(message == text or message.endswith(f": {text}") for message in shown):
        print(f"warning: {text}")
