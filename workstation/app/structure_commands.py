"""The Structures menu's commands on the selected structure: add, duplicate, delete, lock,
interpolate between slices; and the derived structures (margins, Booleans) whose sources changed
since they were made: found in a quiet worker after each edit, rebuilt on request. Each edit is
one undo step of the case's history; the work runs in the window's jobs."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QTimer

from planning.session import FilledPlanes
from workstation.app import services
from workstation.app.history import Locked
from workstation.app.slicing import VIEWS, orientation_for


class StructureCommands:
    """The structure commands of a main window (its case, table, jobs and status bar)."""

    def __init__(self, window):
        self.window = window
        #: derived structures whose sources changed since they were made
        self.stale: list[str] = []
        self._stale_timer = QTimer(window, singleShot=True, interval=1500)
        self._stale_timer.timeout.connect(self.check_stale)

    def _say(self, text: str, ms: int) -> None:
        self.window.statusBar().showMessage(text, ms)

    def _refuses(self, name: str, action: str = "edit") -> bool:
        """Whether structure `name` is locked, said in the status bar."""
        try:
            self.window.case.check_unlocked([name], action)
        except Locked as error:
            self._say(str(error), 8000)
            return True
        return False

    def add_structure(self, name: str = "Structure") -> str | None:
        case = self.window.case
        if case is None:
            return None
        structure = case.new_structure(name)
        self.window.table.select(structure.name)
        return structure.name

    def duplicate_structure(self) -> str | None:
        """A copy of the selected structure (its mask and type; a colour of its own), e.g. to
        start a CTV from the GTV by hand; one undo step. Returns the copy's name."""
        case, name = self.window.case, self.window.table.active_name()
        if case is None or name is None:
            self._say("Select the structure to duplicate first.", 6000)
            return None
        source = case.structures[name]
        copy = case.new_structure(
            f"{name}_copy",
            label=f"Duplicate {name}",
            mask=source.mask.shared(),  # copy-on-write: the first edit of either copies it
            roi_type=source.roi_type,
            description=f"Copy of {name}",
        )
        self.window.table.select(copy.name)
        return copy.name

    def delete_structure(self) -> None:
        case, name = self.window.case, self.window.table.active_name()
        if case is not None and name is not None and not self._refuses(name, "delete"):
            case.remove_structure(name)

    def toggle_lock(self) -> None:
        """Lock or unlock the selected structure."""
        name = self.window.table.active_name()
        if self.window.case is not None and name is not None:
            self.window.table.toggle_lock(name)

    def note_drawing_view(self, view) -> None:
        """Remember the slice view the selected structure is being drawn in (a tool's press)."""
        case, name = self.window.case, self.window.table.active_name()
        if case is not None and name in case.structures:
            case.drawn_in[case.structures[name].number] = view.view

    def interpolate(self) -> None:
        """Fill the slices between the drawn slices of the selected structure (worker), across
        the slices of the view it was drawn in (see `_interpolation_view`)."""
        case, name = self.window.case, self.window.table.active_name()
        if case is None or name is None:
            self._say("Select the structure to interpolate first.", 6000)
            return
        if self._refuses(name):
            return
        structure = case.structures[name]
        view = self._interpolation_view(case, structure)
        if view is None:
            return
        axis = orientation_for(case.grid, view).normal_axis
        # copy-on-write: the worker reads the mask as it is now, and an edit meanwhile (in place,
        # the same Mask object) gives the structure a new array, which `done` tells by identity
        mask, record = structure.mask.shared(), case.interpolated.get(structure.number)
        filled = record.digests if record is not None and record.axis == axis else {}

        def unchanged() -> bool:
            live = case.structures[name].mask if name in case.structures else None
            return live is not None and live.array is mask.array and live.offset == mask.offset

        def done(found):
            result, keys, digests = found.mask, found.keys, found.digests
            if not unchanged():
                self._say(f"{name} changed during interpolation; not applied.", 8000)
            elif result.offset == mask.offset and np.array_equal(result.array, mask.array):
                why = (
                    f"{name} is drawn on {_slices(len(keys), view)}: draw it on two {view} slices or "
                    "more, with empty slices between them, to interpolate"
                    if len(keys) < 2
                    else f"{name} is already interpolated between its {len(keys)} drawn {view} slices"
                )
                self._say(f"Nothing to interpolate: {why}.", 8000)
            else:
                case.replace_mask(f"Interpolate {name}", name, result)
                case.interpolated[structure.number] = FilledPlanes(axis, digests)
                self._say(
                    f"{name}: {_slices(len(digests), view)} interpolated between {len(keys)} drawn slices"
                    f"{_left_apart(found.separate, case.grid.spacing_zyx[axis])}.",
                    12000,
                )

        self.window.jobs.run(
            f"Interpolating {name}",
            lambda on_progress, cancel: services.interpolate(mask, on_progress, cancel, filled, axis),
            done,
        )

    def _interpolation_view(self, case, structure) -> str | None:
        """The view ("axial", "coronal", "sagittal") across whose slices to interpolate
        `structure`: the one it was last drawn in here, else the one it was last interpolated in,
        else the only one across which it has empty slices between drawn ones. When there are
        several the user picks one (None: cancelled).

        The view it was last drawn in gives way when across its slices the structure has no
        empty slices between drawn ones (nor was it interpolated across them, which an edit may
        call for again) and across another view's it has: drawn every 5th axial slice and touched
        up once with the eraser in the coronal view, it is interpolated between its axial slices."""
        views = _views_by_axis(case.grid)
        record = case.interpolated.get(structure.number)
        drawn = case.drawn_in.get(structure.number)
        gapped_axes = services.axes_with_gaps(structure.mask)
        if drawn is not None:
            axis = orientation_for(case.grid, drawn).normal_axis
            if axis in gapped_axes or (record is not None and record.axis == axis):
                return drawn
            others = [views[a] for a in gapped_axes if a in views and a != axis]
            if not others:
                return drawn  # nothing to fill across any view: said in the drawn view's terms
            if len(others) > 1:
                return self.window.ask_interpolation_view(structure.name, others)
            return others[0]
        if record is not None and record.axis in views:
            return views[record.axis]
        gapped = [views[axis] for axis in gapped_axes if axis in views]
        if len(gapped) > 1:
            return self.window.ask_interpolation_view(structure.name, gapped)
        return gapped[0] if gapped else "axial"

    def schedule_stale_check(self) -> None:
        """Look for stale derived structures once the edits pause (connected to the history)."""
        self._stale_timer.start()

    def check_stale(self) -> None:
        """Find derived structures whose sources changed (in a quiet worker: it hashes masks)."""
        case = self.window.case
        if case is None or not any(s.recipe for s in case.structures):
            self._show_stale([])
            return
        copy = case.structures.snapshot()

        def done(names):
            if case is self.window.case:
                self._show_stale(names)

        self.window.jobs.run(
            "Checking derived structures", lambda p, c: services.stale_structures(copy), done, quiet=True
        )

    def _show_stale(self, names: list[str]) -> None:
        self.stale = list(names)
        self.window.table.set_stale(self.stale)
        self.window.menus.rebuild_action.setEnabled(bool(self.stale))
        if self.stale:
            self._say(
                f"Sources changed for {', '.join(self.stale)}: Structures ▸ Rebuild derived structures", 10000
            )

    def rebuild_stale(self) -> None:
        """Recompute the stale derived structures (worker), each as an undo step."""
        case, names = self.window.case, list(self.stale)
        if case is None or not names:
            return
        copy = case.structures.snapshot()

        def done(structures):
            locked = [
                s.name for s in structures if s.name in case.structures and case.structures[s.name].locked
            ]
            for structure in structures:
                if structure.name in case.structures and structure.name not in locked:
                    case.derive_into(structure.name, structure, f"Rebuild {structure.name}")
            if locked:
                self._say(f"Not rebuilt, locked: {', '.join(locked)} (unlock to rebuild)", 15000)

        self.window.jobs.run(
            "Rebuilding derived structures",
            lambda p, c: services.rebuild(copy, names, on_progress=p, cancel=c),
            done,
        )


def _left_apart(gaps: list[tuple[int, int]], spacing_mm: float) -> str:
    """ "; not bridged: slices 10–50 (120 mm apart), separate parts" for gaps left unfilled."""
    if not gaps:
        return ""
    spans = ", ".join(f"slices {a + 1}–{b + 1} ({(b - a) * spacing_mm:.0f} mm apart)" for a, b in gaps)
    return f"; not bridged, as separate parts: {spans} (draw between them to join them)"


def _views_by_axis(grid) -> dict[int, str]:
    """The slice view across each array axis (0 = z, 1 = y, 2 = x) of `grid`; on a grid so oblique
    that two views slice across the same axis, the first of them."""
    views: dict[int, str] = {}
    for view in VIEWS:
        views.setdefault(orientation_for(grid, view).normal_axis, view)
    return views


def _slices(count: int, view: str) -> str:
    """'1 sagittal slice', '12 sagittal slices'."""
    return f"{count} {view} slice{'' if count == 1 else 's'}"
