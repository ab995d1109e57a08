"""A text progress bar for long CLI jobs, fed by the domain's progress callbacks."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Callable as ``on_progress(stage, done, total)``; draws one updating line on stderr."""

    #: the bar whose line is being drawn (not yet ended), if any
    _drawing: ProgressBar | None = None

    def __init__(self, stream=None, width: int = 30, min_interval_s: float = 0.1):
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval_s = min_interval_s
        self._last_draw = 0.0
        self._stage = None

    def __call__(self, stage: str, done: float, total: float) -> None:
        now = time.monotonic()
        finished = total > 0 and done >= total
        if stage == self._stage and not finished and now - self._last_draw < self.min_interval_s:
            return
        if self._stage is not None and stage != self._stage:
            self.stream.write("\n")
        self._stage, self._last_draw = stage, now
        fraction = min(max(done / total, 0.0), 1.0) if total else 0.0
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{stage:<28} [{bar}] {fraction * 100:5.1f}%")
        self.stream.flush()
        ProgressBar._drawing = self

    def close(self) -> None:
        if self._stage is not None:
            self._end_line()
        self._stage = None

    @classmethod
    def interrupt(cls) -> None:
        """End the line a bar is drawing, so that other output starts on its own line (the bar
        carries on below it)."""
        if cls._drawing is not None:
            cls._drawing._end_line()

    def _end_line(self) -> None:
        if ProgressBar._drawing is self:
            self.stream.write("\n")
            self.stream.flush()
            ProgressBar._drawing = None
