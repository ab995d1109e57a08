"""How surfaces are built (`SurfaceOptions`), and how a build reports progress and is cancelled.

Progress is reported as (stage, done, total); a build of several layers names the layer in the
stage. Cancelling raises `planning.errors.Cancelled` between steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from planning.errors import Cancelled

Progress = Callable[[str, float, float], None]


@dataclass(frozen=True)
class SurfaceOptions:
    """How surfaces are built.

    Attributes:
        smoothing_iterations: windowed-sinc iterations (0: no smoothing).
        smoothing_pass_band: windowed-sinc pass band; 0.01 is 3D Slicer's default smoothing.
        decimation_tolerance_mm: largest distance a simplified vertex may move away from the
            planes of the triangles it replaces (0: no simplification).
        normals: compute vertex normals.
        patch_triangles: simplify at most this many triangles at a time (a shared boundary
            larger than this is cut into parts whose seams stay unsimplified); bounds how long
            the simplifier holds Python's GIL, so a GUI stays responsive.
    """

    smoothing_iterations: int = 20
    smoothing_pass_band: float = 0.01
    decimation_tolerance_mm: float = 0.25
    normals: bool = True
    patch_triangles: int = 20000

    def __post_init__(self) -> None:
        if self.smoothing_iterations < 0 or not 0 < self.smoothing_pass_band <= 2:
            raise ValueError("smoothing needs iterations ≥ 0 and a pass band in (0, 2]")
        if self.patch_triangles < 100:
            raise ValueError("patches must be allowed at least 100 triangles")
        if self.decimation_tolerance_mm < 0:
            raise ValueError("the decimation tolerance is a distance in mm, ≥ 0")


class Stages:
    """Reports (stage, done, total) for a run of several layers."""

    def __init__(self, on_progress: Progress | None, layers: int):
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self.layers = layers
        self.layer = 0

    def __call__(self, stage: str, done: float, total: float) -> None:
        if self.layers > 1:
            stage = f"{stage} ({self.layer + 1}/{self.layers})"
        self.on_progress(stage, done, total)


def check_cancelled(cancel: threading.Event | None) -> None:
    """Raise `Cancelled` when `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("surface building was cancelled")
