"""How long the 3D view blocks the GUI thread when 117 surfaces arrive and the camera moves early.

The 117 structures of `benchmarks/dvh_memory.py` (a 600×512×512 CT grid: an External and 116
ellipsoids of 1 to 20 cm) are shown in a `View3D` of 1000×750 px in a real window (run under a
display: ``xvfb-run -a -s "-screen 0 1920x1200x24"``). A 10 ms timer beats on the GUI thread
meanwhile: every beat later than that is time the window could not answer. Printed, per phase:
the longest gap between beats and the frames drawn (ms, and how many surfaces at full detail).

1. arrival: the surfaces arrive, then 4 s go by (their first frames, full detail if it comes).
2. early drag: a trackball drag of 10 moves right away, while their coarse meshes are still
   being made (on a machine with few cores they take tens of seconds).
3. later drag: the same drag once every coarse mesh is in (and 3 s more went by).

`--cache FILE` keeps the built surfaces (npz) so later runs skip the build (35 s here, in a
worker: not what is measured).

    python benchmarks/view3d_freeze.py [--cache /tmp/surfaces117.npz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dvh_memory import structures as generated_structures  # noqa: E402
from trackball import trackball_drag  # noqa: E402

from planning.structures import StructureSet  # noqa: E402
from planning.surfaces.mesh import Surface  # noqa: E402

HEARTBEAT_MS = 10


def cached_build(cache: Path):
    """`build_surfaces` that reads the surfaces from `cache` once they were built and saved there."""
    from planning.surfaces.build import build_surfaces

    def build(structures, options, **kwargs):
        if cache.exists():
            saved = np.load(cache)
            names = {key.split("/")[0] for key in saved.files}
            colours = {s.name: s.color for s in structures}
            return {
                name: Surface(
                    name,
                    saved[f"{name}/points"],
                    saved[f"{name}/triangles"],
                    colours[name],
                    saved[f"{name}/normals"] if f"{name}/normals" in saved.files else None,
                )
                for name in names
                if name in colours
            }
        surfaces = build_surfaces(structures, options, **kwargs)
        arrays = {}
        for name, surface in surfaces.items():
            arrays[f"{name}/points"], arrays[f"{name}/triangles"] = surface.points, surface.triangles
            if surface.normals is not None:
                arrays[f"{name}/normals"] = surface.normals
        np.savez(cache, **arrays)
        return surfaces

    return build


class Heartbeat:
    """Beats every `HEARTBEAT_MS` on the GUI thread; `longest()` is the longest gap (ms) since `mark()`."""

    def __init__(self):
        from PyQt6.QtCore import Qt, QTimer

        self.beats = [time.perf_counter()]
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))
        self.timer.start()

    def mark(self) -> None:
        self.beats = [time.perf_counter()]

    def longest(self) -> float:
        now = [*self.beats, time.perf_counter()]
        return 1000 * max(b - a for a, b in zip(now, now[1:], strict=False))


class Frames:
    """The frames the view draws: (ms, surfaces drawn at full detail, surfaces shown)."""

    def __init__(self, view):
        self.view, self.drawn, self._start = view, [], 0.0
        window = view._vtk.GetRenderWindow()
        window.AddObserver("StartEvent", lambda *_: self._started())
        window.AddObserver("EndEvent", lambda *_: self._ended())

    def _started(self) -> None:
        view = self.view
        shown = [s for s, actor in view._actors.items() if actor.GetVisibility()]
        full = sum(
            s not in view._mappers or view._actors[s].GetMapper() is view._mappers[s][0] for s in shown
        )
        self._full, self._shown, self._start = full, len(shown), time.perf_counter()

    def _ended(self) -> None:
        self.drawn.append((1000 * (time.perf_counter() - self._start), self._full, self._shown))

    def take(self) -> str:
        drawn, self.drawn = self.drawn, []
        return ", ".join(f"{ms:.0f} ms ({full}/{shown} full)" for ms, full, shown in drawn) or "none"


def wait(app, seconds: float, until=lambda: False) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not until():
        app.processEvents()
        time.sleep(0.002)


def drag(app, view, moves: int = 10) -> list[float]:
    """A trackball drag across the view: ms per mouse move (each one a rotation and a frame)."""
    return [1000 * seconds for seconds in trackball_drag(app, view._vtk.GetRenderWindow(), moves, step_px=8)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, help="npz file keeping the built surfaces")
    args = parser.parse_args()
    from PyQt6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from workstation.view3d import View3D, surfaces

    if args.cache is not None:
        surfaces.build_surfaces = cached_build(args.cache)
    grid_structures = list(generated_structures(117))
    structure_set = StructureSet(grid_structures[0].mask.grid)
    for structure in grid_structures:
        structure_set.add(structure)
    view = View3D()
    view.resize(1000, 750)
    view.show()
    wait(app, 0.5)
    heartbeat, frames = Heartbeat(), Frames(view)
    start = time.perf_counter()
    view.set_structures(structure_set)
    wait(app, 900, until=lambda: len(view._actors) == len(structure_set))
    print(
        f"117 surfaces ({view._full_triangles():,} triangles) arrived after "
        f"{time.perf_counter() - start:.1f} s"
    )
    heartbeat.mark()
    frames.take()
    wait(app, 4.0)
    print(
        f"1. arrival, then 4 s: longest GUI-thread gap {heartbeat.longest():.0f} ms; frames: {frames.take()}"
    )
    coarse = "coarse meshes still being made" if not view.is_ready() else "coarse meshes already in"
    heartbeat.mark()
    moves = drag(app, view)
    wait(app, 1.5)
    print(
        f"2. early drag ({coarse}): "
        f"longest gap {heartbeat.longest():.0f} ms; per move median {np.median(moves):.0f} ms, "
        f"max {max(moves):.0f} ms; frames: {frames.take()}"
    )
    start = time.perf_counter()
    wait(app, 900, until=view.is_ready)
    heartbeat.mark()
    wait(app, 3.0)
    print(
        f"   coarse meshes all in {time.perf_counter() - start:.1f} s later; in the 3 s after: longest gap "
        f"{heartbeat.longest():.0f} ms; frames: {frames.take()}"
    )
    heartbeat.mark()
    moves = drag(app, view)
    wait(app, 1.5)
    print(
        f"3. later drag: longest gap {heartbeat.longest():.0f} ms; "
        f"per move median {np.median(moves):.0f} ms, max {max(moves):.0f} ms; frames: {frames.take()}"
    )
    heartbeat.mark()
    view.show_full_detail()
    print(f"   Full detail (asked): {frames.take()}")
    view.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
