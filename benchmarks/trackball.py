"""A real trackball drag in a VTK render window, for the 3D benchmarks."""

from __future__ import annotations

import time


def trackball_drag(app, render_window, moves: int, step_px: int) -> list[float]:
    """Press the left button at the window's centre, move `moves` times by `step_px` pixels to
    the right (each move one rotation and one frame), release: the seconds each move took, its
    events processed."""
    interactor = render_window.GetInteractor()
    width, height = render_window.GetSize()
    x, y = width // 2, height // 2
    interactor.SetEventInformationFlipY(x, y, 0, 0)
    interactor.LeftButtonPressEvent()
    times = []
    for move in range(moves):
        begin = time.perf_counter()
        interactor.SetEventInformationFlipY(x + step_px * (move + 1), y, 0, 0)
        interactor.MouseMoveEvent()
        app.processEvents()
        times.append(time.perf_counter() - begin)
    interactor.LeftButtonReleaseEvent()
    app.processEvents()
    return times
