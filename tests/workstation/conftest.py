"""The `window` fixture of the workstation tests: a real main window, closed cleanly afterwards."""

import pytest
from support.app import close_window, open_window


@pytest.fixture
def window(qtbot, tmp_path):
    """A main window with its own settings and data folder; its workers are stopped at the end."""
    win = open_window(qtbot, tmp_path)
    yield win
    close_window(qtbot, win)
