"""Seeded tumour delineation: click inside a lesion (Ctrl+click outside it to refine).

Each click re-runs the seeded segmentation (`services.seeded`, in a worker) with all the clicks so
far; the result replaces the previous one in the target structure — the selected structure when it
is empty, else a new GTV — as one undo step per click. Esc or switching tools starts over.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from planning.structures import GenerationAlgorithm
from workstation.app import services
from workstation.app.tools.base import Tool


class SeededTool(Tool):
    key = "seeded"
    title = "Seeded"
    shortcut = "S"
    tip = "Click inside a tumour to delineate it in 3D; Ctrl+click outside to refine; Esc to restart"
    defaults: dict = {}
    keys = frozenset({Qt.Key.Key_Escape})

    def __init__(self, context):
        super().__init__(context)
        self._reset()

    def _reset(self) -> None:
        self.inside: list[np.ndarray] = []
        self.outside: list[np.ndarray] = []
        self.target_name: str | None = None
        self._base = None  # the target's mask before the first click
        self.running = False

    def deactivate(self) -> None:
        self._reset()

    def key_pressed(self, view, key: int) -> bool:
        if key == Qt.Key.Key_Escape:
            self._reset()
            view.update()
            return True
        return False

    def press(self, view, event) -> bool:
        case = self.case()
        if case is None or not view.inside(event.zyx) or self.running:
            return False
        point = np.rint(event.zyx).astype(int)
        outside = bool(event.modifiers & Qt.KeyboardModifier.ControlModifier)
        if outside and not self.inside:
            self.context.message("Click inside the lesion first (Ctrl+click marks background).")
            return False
        name = self.context.active_structure()
        if self.target_name is None or self.target_name not in case.structures:
            # Into the selected structure when it is still empty, else into a new GTV: a click
            # never silently rewrites a structure someone drew.
            if name is None or name not in case.structures or not case.structures[name].mask.is_empty:
                name = case.new_structure("GTV", label="New structure GTV (seeded)").name
            elif self.refused(name):
                return False
            self.target_name = name
            self._base = case.structures[name].mask
            self.reveal(name)
        elif self.refused(self.target_name):
            return False
        (self.outside if outside else self.inside).append(point)
        self._run(case)
        for each in self.context.views():
            each.update()
        return False

    def _run(self, case) -> None:
        inside, outside = list(self.inside), list(self.outside)
        volume, target, base = case.volume, self.target_name, self._base
        warnings: list[str] = []
        self.running = True

        def done(mask):
            self.running = False
            if target not in case.structures:
                return
            combined = services.union(base, mask) if base is not None and not base.is_empty else mask
            case.replace_mask(
                f"Seeded delineation of {target}", target, combined, GenerationAlgorithm.SEMIAUTOMATIC
            )
            if warnings:
                self.context.message(f"Seeded delineation of {target}: " + "; ".join(warnings) + ".")

        def failed(error):
            self.running = False
            self.context.message(str(error))

        self.context.run_job(
            "Seeded delineation",
            lambda on_progress, cancel: services.seeded(
                volume, inside, outside, on_progress=on_progress, cancel=cancel, warnings=warnings
            ),
            done,
            failed,
        )

    def over_locked(self) -> bool:
        """Whether a click would go into a locked structure: the one being delineated, or the
        selected one while it is empty (else a click makes a new GTV)."""
        case = self.case()
        if case is None:
            return False
        if self.target_name in case.structures:
            return case.structures[self.target_name].locked
        name = self.context.active_structure()
        if name not in case.structures:
            return False
        return case.structures[name].mask.is_empty and case.structures[name].locked

    def paint(self, view, painter: QPainter) -> None:
        super().paint(view, painter)
        for points, color in ((self.inside, QColor(80, 255, 80)), (self.outside, QColor(255, 80, 80))):
            painter.setPen(QPen(color, 2))
            for point in points:
                index, _, _ = view.orientation.from_voxel(point)
                if int(round(index)) != view.slice_index:
                    continue
                centre: QPointF = view.voxel_to_widget(point)
                painter.drawLine(centre + QPointF(-5, 0), centre + QPointF(5, 0))
                painter.drawLine(centre + QPointF(0, -5), centre + QPointF(0, 5))

    def options(self, parent) -> QWidget:
        widget = QWidget(parent)
        layout = QVBoxLayout(widget)
        text = QLabel(
            "Click inside the lesion: it is delineated in 3D in about a second.\n"
            "Ctrl+click outside it (e.g. on effusion or chest wall) to refine.\n"
            "The result goes into the selected structure if it is empty, else into a new GTV.\n"
            "Esc: start over.",
            widget,
        )
        text.setWordWrap(True)
        layout.addWidget(text)
        layout.addStretch(1)
        return widget
