"""Surgery ▸ Virtual resection: remove a tumour with a safety margin, cut an organ with a plane
through the crosshair (or a sheet bent through points marked in the 2D views), or cut out the
part of an organ inside another structure (`planning.resection`). Runs as a job; the remnant and
the resected part become ordinary structures, added as one undo step, each described with how it
was made and its volume.
"""

from __future__ import annotations

import html
import math
from dataclasses import replace

import numpy as np
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from scipy import ndimage

from planning.errors import Cancelled, DelineoError
from planning.margins import edges_in_words
from planning.resection import (
    CutSheet,
    Reached,
    Resection,
    cut_inside,
    cut_with_sheet,
    resect_with_margin,
)
from planning.structures import Box, Mask, RoiType, Structure
from workstation.app.surgery import (
    SurfaceSource,
    SurgeryDialog,
    case_gone,
    list_structures,
    non_empty_names,
    report,
    same_geometry,
)

MARGIN, PLANE, INSIDE = "margin", "plane", "inside"
METHODS = {
    "Tumour with a safety margin": MARGIN,
    "Plane through the crosshair": PLANE,
    "Inside another structure": INSIDE,
}
#: side of the plane to remove → LPS normal (x: left, y: posterior, z: superior)
SIDES = {
    "Right of the crosshair (R–L plane)": (-1.0, 0.0, 0.0),
    "Left of the crosshair (R–L plane)": (1.0, 0.0, 0.0),
    "Anterior to the crosshair (A–P plane)": (0.0, -1.0, 0.0),
    "Posterior to the crosshair (A–P plane)": (0.0, 1.0, 0.0),
    "Superior to the crosshair (S–I plane)": (0.0, 0.0, 1.0),
    "Inferior to the crosshair (S–I plane)": (0.0, 0.0, -1.0),
}
TARGET_TYPES = {"GTV", "CTV", "PTV"}
#: The organ proposed for a tumour is the one with the most voxels within this distance of it (mm).
AROUND_MM = 10.0


class ResectionDialog(SurgeryDialog):
    """Choose an organ and a way to resect; see the volumes; get the two parts as structures."""

    def __init__(self, window):
        super().__init__(window, "Virtual resection")
        self.result: Resection | None = None
        names = non_empty_names(self.case)
        structures = self.case.structures
        organs = [n for n in names if structures[n].roi_type == RoiType.ORGAN]  # not a Liver_resected
        targets = [n for n in names if structures[n].roi_type.value in TARGET_TYPES]

        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.form = form
        self.organ = QComboBox(self)
        list_structures(self.organ, self.case)
        around = _organ_around(self.case, targets[0], organs) if targets else None
        self.organ.setCurrentText(around or _largest(self.case, organs) or (names[0] if names else ""))
        form.addRow("Organ", self.organ)
        self.method = QComboBox(self)
        self.method.addItems(list(METHODS))
        form.addRow("Resect", self.method)
        self.tumour = QComboBox(self)
        list_structures(self.tumour, self.case)
        self.tumour.setCurrentText(targets[0] if targets else (names[0] if names else ""))
        self.margin = QDoubleSpinBox(self)
        self.margin.setRange(0.0, 50.0)
        self.margin.setDecimals(1)
        self.margin.setSingleStep(1.0)
        self.margin.setSuffix(" mm")
        self.margin.setValue(10.0)
        self.side = QComboBox(self)
        self.side.addItems(list(SIDES))
        self.crosshair = QLabel("", self)
        #: voxel (z, y, x) points the cut is bent through, marked at the crosshair
        self.bends: list[tuple[float, float, float]] = []
        self.bends_label = QLabel("", self)
        self.bends_label.setWordWrap(True)
        self.mark_button = QPushButton("Mark the crosshair", self)
        self.mark_button.setToolTip("Bend the cut through this point; move the crosshair and mark more")
        self.mark_button.clicked.connect(self.mark_crosshair)
        self.clear_marks_button = QPushButton("Clear marks", self)
        self.clear_marks_button.clicked.connect(self.clear_marks)
        bend_row = QWidget(self)
        bend_layout = QHBoxLayout(bend_row)
        bend_layout.setContentsMargins(0, 0, 0, 0)
        bend_layout.addWidget(self.mark_button)
        bend_layout.addWidget(self.clear_marks_button)
        bend_layout.addStretch(1)
        self.inside = QComboBox(self)
        list_structures(self.inside, self.case)
        self.inside.setCurrentText(names[0] if names else "")
        self.inside.setToolTip("e.g. a resection volume drawn with the brush")
        #: the rows each method shows
        self.rows = {
            MARGIN: [("Tumour", self.tumour), ("Safety margin", self.margin)],
            PLANE: [
                ("Remove the part", self.side),
                ("Crosshair", self.crosshair),
                ("Bend the cut", bend_row),
                ("", self.bends_label),
            ],
            INSIDE: [("Remove inside", self.inside)],
        }
        for rows in self.rows.values():
            for label, widget in rows:
                form.addRow(label, widget)
        layout.addLayout(form)

        self.hide_organ = QCheckBox("Hide the organ afterwards (shows the remnant and the resected part)")
        self.hide_organ.setParent(self)
        self.hide_organ.setChecked(True)
        layout.addWidget(self.hide_organ)
        self.fade = QCheckBox("Show the resected part in 3D through the faded remnant and other structures")
        self.fade.setParent(self)
        self.fade.setChecked(True)
        self.fade.setToolTip("Closing this dialog shows every structure as usual again")
        layout.addWidget(self.fade)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        self.note.setMinimumHeight(60)
        layout.addWidget(self.note)
        buttons = QDialogButtonBox(self)
        self.resect_button = self.action_button = QPushButton("Resect", self)
        self.resect_button.setDefault(True)
        buttons.addButton(self.resect_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.close)
        self.resect_button.clicked.connect(self.resect)
        layout.addWidget(buttons)
        self.method.currentIndexChanged.connect(self._refresh)
        self.finished.connect(lambda _: self._show_marks([]))
        if window.state is not None:
            self.link(window.state.cursor_changed, self._refresh)
        self.follow_structures(self.organ, self.tumour, self.inside)
        self._refresh()
        self.resize(480, 0)

    # -- choices ---------------------------------------------------------------------------

    def method_key(self) -> str:
        return METHODS[self.method.currentText()]

    def crosshair_lps(self) -> np.ndarray:
        """The crosshair's position, LPS mm."""
        return self.case.grid.index_to_patient(np.asarray(self.window_.state.cursor, float)[::-1])

    def mark_crosshair(self) -> None:
        """Bend the cut through the crosshair's position (marked, numbered, in the 2D views)."""
        point = tuple(float(v) for v in self.window_.state.cursor)
        if point not in self.bends:
            self.bends.append(point)
        self._show_marks(self.bends)
        self._refresh()

    def clear_marks(self) -> None:
        """A flat plane through the crosshair again."""
        self.bends = []
        self._show_marks([])
        self._refresh()

    def _sheet(self) -> tuple[CutSheet, str]:
        """The cutting sheet chosen, and the part it removes in words ("left of the crosshair")."""
        normal = SIDES[self.side.currentText()]
        side = self.side.currentText().split(" (")[0].lower()
        bends = self.bends_lps()
        if not len(bends):
            return CutSheet(tuple(self.crosshair_lps()), normal), side
        points = f"{len(bends)} marked point" + "s" * (len(bends) > 1)
        return CutSheet(tuple(bends.mean(axis=0)), normal, bends), side.replace(
            "the crosshair", f"the cut through {points}"
        )

    def bends_lps(self) -> np.ndarray:
        """The marked points, LPS mm, (K, 3)."""
        return np.array([self.case.grid.index_to_patient(np.asarray(p)[::-1]) for p in self.bends]).reshape(
            -1, 3
        )

    def _show_marks(self, points: list) -> None:
        if self.window_.case is self.case:
            for view in self.window_.views.values():
                view.set_marks(points)

    def _refresh(self, *_) -> None:
        for method, rows in self.rows.items():
            for _, widget in rows:
                self.form.setRowVisible(widget, method == self.method_key())
        if self.window_.state is not None and self.window_.case is self.case:
            x, y, z = self.crosshair_lps()
            self.crosshair.setText(f"x {x:.1f}  y {y:.1f}  z {z:.1f} mm (LPS): click in a 2D view to move it")
        count = len(self.bends)
        self.bends_label.setText(
            f"Bent through the {count} marked point{'s' if count > 1 else ''} (numbered in the 2D views)"
            if count
            else "None marked: a flat plane through the crosshair"
        )
        self.clear_marks_button.setEnabled(bool(count))

    # -- the job -------------------------------------------------------------------------------

    def resect(self) -> None:
        """Run the resection in a job; add its two parts as structures when it is done."""
        window, case = self.window_, self.case
        if case_gone(self):
            return
        organ, method = self.organ.currentText(), self.method_key()
        tool = {MARGIN: self.tumour, INSIDE: self.inside}.get(method)
        tool_name = tool.currentText() if tool is not None else None
        if not organ:
            self.note.setText("Choose the organ to resect.")
            return
        if tool_name == organ:
            self.note.setText(f"Choose another structure than {organ} to resect with.")
            return
        sheet, side = None, ""
        if method == PLANE:
            try:
                sheet, side = self._sheet()
            except ValueError as error:
                self.note.setText(f"No resection: {error}.")
                return
        inputs = [organ, *([tool_name] if tool_name else [])]
        try:
            source = SurfaceSource(window, inputs, meshed=[tool_name] if method == INSIDE else [])
        except DelineoError as error:
            self.note.setText(str(error))
            return
        if source.empty:
            self.note.setText(f"{', '.join(source.empty)} is empty now: nothing to resect with it.")
            return
        copies = source.copies
        margin_mm = self.margin.value()
        region = self._region_box(method, copies[organ], copies.get(tool_name), margin_mm)
        crops = _crops(case, region, inputs)
        rest = list(crops.values())

        def work(on_progress, cancel):
            if method == MARGIN:
                result = resect_with_margin(
                    copies[organ], copies[tool_name], margin_mm, rest, on_progress=on_progress, cancel=cancel
                )
            elif method == PLANE:
                on_progress("Cutting", 0, 0)
                result = cut_with_sheet(copies[organ], sheet, rest)
            else:
                surfaces = source.build(on_progress, cancel)
                on_progress("Cutting", 0, 0)
                result = cut_inside(copies[organ], source.require(surfaces, tool_name), rest)
            if cancel.is_set():
                raise Cancelled("the resection was cancelled")
            return result

        how = {
            MARGIN: f"{tool_name} with a {margin_mm:g} mm safety margin",
            PLANE: f"the part {side}",
            INSIDE: f"the part inside {tool_name}",
        }[method]

        def done(result: Resection) -> None:
            changed = _changed_in(case, crops, region, inputs)
            self.apply(result, organ, [copies[n] for n in inputs], how, changed)

        def failed(error: Exception) -> None:
            self.note.setText(f"No resection: {error}")

        self.note.setText(f"Resecting {how} from {organ}…")
        self.run_job(f"Virtual resection of {organ}", work, done, failed)

    @staticmethod
    def _region_box(method: str, organ: Structure, tool: Structure | None, margin_mm: float) -> Box:
        """A box holding the whole resected region (see `planning.resection`): the organ's for a
        plane; the tumour's grown by the margin; the cutting structure's with a voxel of slack
        for its smoothed surface."""
        if method == PLANE:
            return organ.mask.box
        grow_mm = margin_mm if method == MARGIN else max(organ.mask.grid.spacing_xyz)
        return _grown_box(tool.mask, grow_mm)

    def apply(self, result: Resection, organ: str, inputs: list, how: str, others_changed: list[str]) -> None:
        """Add the remnant and the resected part as one undo step (unless organ or tool
        changed); the structures reached are checked against their whole volume now."""
        window, case = self.window_, self.case
        structures = case.structures
        changed = [
            c.name for c in inputs if c.name not in structures or not same_geometry(structures[c.name], c)
        ]
        if changed:
            self.note.setText(
                f"{', '.join(changed)} changed while the resection ran: nothing was added. Resect again."
            )
            return
        result.reached = [_against_whole(r, structures, case.grid.voxel_volume_cc) for r in result.reached]
        volumes = (
            f"resected {result.resected_cc:.1f} cc ({result.resected_percent:.1f} %), "
            f"remnant {result.remnant_cc:.1f} cc ({result.remnant_percent:.1f} %) "
            f"of {result.organ_cc:.1f} cc"
        )
        if result.edges:  # the organ goes on past the images: say it wherever the numbers go
            volumes += f" (imaged part only: it reaches {edges_in_words(result.edges)} of the images)"
        for part in (result.resected, result.remnant):
            part.description = f"{_recipe(organ)}{how}; {volumes}"
        case.add_structures([result.remnant, result.resected], f"Virtual resection of {organ}")
        self.result = result
        if self.hide_organ.isChecked() and organ in case.structures:
            _hide_while_present(case, organ, result.remnant)
        window.table.select(result.remnant.name)
        if self.fade.isChecked():
            self.fade_3d([result.resected.name] + [c.name for c in inputs[1:]])  # and the tumour
        stale = ""
        if others_changed:
            stale = (
                f"{', '.join(others_changed)} changed while the resection ran: the structures "
                "reached may be out of date (resect again to update them)."
            )
        warnings = [f"{w[0].upper()}{w[1:]}." for w in result.warnings] + ([stale] if stale else [])
        bold = "".join(f"<br><b>{html.escape(w)}</b>" for w in warnings)
        self.note.setText(describe(result, organ, how) + bold)
        self.note.setMinimumHeight(self.note.heightForWidth(self.note.width()))  # every wrapped line shows
        self.adjustSize()
        reached = ", ".join(r.name for r in result.reached) or "no other structure"
        report(
            window,
            f"Resection of {organ} ({how}): {volumes}; reaches {reached}" + (f" ({stale})" if stale else ""),
            30,
        )
        for warning in result.warnings:
            window.messages.add("WARNING", f"Resection of {organ}: {warning}")


def describe(result: Resection, organ: str, how: str) -> str:
    """The result as rich text for the dialog."""
    e = html.escape
    rows = [
        f"<b>{e(organ)}</b>: {result.organ_cc:.1f} cc, resecting {e(how)}",
        f"<table cellspacing=4><tr><td>Resected</td><td><b>{result.resected_cc:.1f} cc</b></td>"
        f"<td>({result.resected_percent:.1f} %)</td><td>→ {e(result.resected.name)}</td></tr>"
        f"<tr><td>Remnant</td><td><b>{result.remnant_cc:.1f} cc</b></td>"
        f"<td>({result.remnant_percent:.1f} %)</td><td>→ {e(result.remnant.name)}</td></tr></table>",
    ]
    if result.reached:
        items = "".join(
            f"<li>{e(r.name)}: {e(r.how)}, "
            f"{r.resected_cc:.2f} cc in the resected region ({_percent(r.fraction)} of it)</li>"
            for r in result.reached
        )
        rows.append(
            "Structures reached (the resected region includes the safety margin or cut outside "
            f"the organ):<ul style='margin:0'>{items}</ul>"
        )
    else:
        rows.append("No other structure is reached.")
    rows.append("<i>Edit ▸ Undo removes both parts in one step; closing this dialog unfades the 3D view.</i>")
    return "<br>".join(rows)


def _percent(fraction: float) -> str:
    """A share as a percentage that does not round a small share down to 0 %."""
    value = 100 * fraction
    return f"{value:.0f} %" if value >= 10 or value == 0 else f"{value:.2g} %"


def _hide_while_present(case, organ: str, remnant) -> None:
    """Hide the organ while the remnant is in the case: undoing the resection shows it again,
    redoing hides it again. Stops once the remnant is gone and cannot be redone. The remnant is
    found by ROI number: a redo adds a new copy of it."""
    state = {"present": True}
    number = remnant.number

    def check(*_) -> None:
        present = any(s.number == number for s in case.structures)
        if present != state["present"] and organ in case.structures:
            case.set_visible(organ, not present)
        state["present"] = present
        if not present and not case.history.can_redo:
            case.history.changed.disconnect(check)

    case.set_visible(organ, False)
    case.history.changed.connect(check)


def _grown_box(mask: Mask, mm: float) -> Box:
    """`mask`'s box grown by `mm` and a voxel more on every side, within the grid."""
    grid = mask.grid
    pad = [math.ceil(mm / h) + 1 for h in grid.spacing_zyx]
    return tuple(
        slice(max(0, s.start - p), min(n, s.stop + p))
        for s, p, n in zip(mask.box, pad, grid.shape, strict=True)
    )


def _overlap(a: Box | None, b: Box) -> Box | None:
    """The common part of two boxes, None when they do not meet."""
    if a is None:
        return None
    box = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b, strict=True))
    return box if all(s.start < s.stop for s in box) else None


def _crops(case, region: Box, inputs: list[str]) -> dict[str, Structure]:
    """Copies of the other structures' voxels inside `region` (all a resection there can reach),
    for the worker to read while the originals may be edited; only those whose box meets it,
    each cropped to the overlap (cheap: no copy of a body-sized mask)."""
    crops = {}
    for structure in _others(case, inputs):
        box = _overlap(structure.mask.box, region)
        if box is not None:
            mask = Mask(case.grid, structure.mask.region(box), [s.start for s in box])
            crops[structure.name] = Structure(structure.name, mask, structure.color, structure.roi_type)
    return crops


def _others(case, inputs: list[str]) -> list[Structure]:
    """The structures a resection may reach: all but its inputs, the parts of the organ (`inputs[0]`)
    from earlier resections and the body outline."""
    skip = set(inputs) | _family(case, inputs[0])
    return [s for s in case.structures if s.name not in skip and s.roi_type != RoiType.EXTERNAL]


def _recipe(organ: str) -> str:
    """How the description of a part cut from `organ` begins."""
    return f"Virtual resection of {organ}: "


def _family(case, organ: str) -> set[str]:
    """`organ`, what it was cut from and every part cut from any of these, by the descriptions
    that resections give their parts (`_recipe`)."""
    names = case.structures.names()
    parent = {
        s.name: next((n for n in names if n != s.name and s.description.startswith(_recipe(n))), None)
        for s in case.structures
    }

    def root(name: str) -> str:
        seen = {name}
        while parent.get(name) is not None and parent[name] not in seen:
            name = parent[name]
            seen.add(name)
        return name

    top = root(organ)
    return {n for n in names if root(n) == top}


def _changed_in(case, crops: dict[str, Structure], region: Box, inputs: list[str]) -> list[str]:
    """The other structures whose voxels in `region` are not those of `crops` any more
    (edited, drawn into it, renamed or deleted)."""
    empty = Mask(case.grid)
    gone = [name for name in crops if name not in case.structures]
    return gone + [
        s.name
        for s in _others(case, inputs)
        if not _same_in(s.mask, crops[s.name].mask if s.name in crops else empty, region)
    ]


def _same_in(mask: Mask, crop: Mask, region: Box) -> bool:
    """Whether `mask` has the voxels of `crop` in `region` (crop: its part there, or less)."""
    boxes = [b for b in (mask.box, crop.box) if b is not None]
    if not boxes:
        return True
    union = tuple(
        slice(min(s.start for s in axis), max(s.stop for s in axis)) for axis in zip(*boxes, strict=True)
    )
    box = _overlap(union, region)
    return box is None or np.array_equal(mask.region(box), crop.region(box))


def _against_whole(reached: Reached, structures, voxel_cc: float) -> Reached:
    """`reached` with its share and 'crossed' against the whole structure (the worker had only
    its part in the resected region)."""
    if reached.name not in structures:
        return reached
    inside = round(reached.resected_cc / voxel_cc)
    total = structures[reached.name].mask.voxel_count
    return replace(reached, fraction=inside / total, crossed=inside < total)


def _organ_around(case, tumour: str, names: list[str]) -> str | None:
    """Of the organs `names` (the body outline is not one), the one other than the tumour with
    the most voxels within `AROUND_MM` of it; None when none comes that near. Cheap: only the
    tumour's box grown by that distance is looked at."""
    mask = case.structures[tumour].mask
    box = _grown_box(mask, AROUND_MM)
    near = ndimage.distance_transform_edt(~mask.region(box), sampling=case.grid.spacing_zyx) <= AROUND_MM
    counts = {n: np.count_nonzero(case.structures[n].mask.region(box) & near) for n in names if n != tumour}
    best = max(counts, key=counts.__getitem__, default=None)
    return best if best is not None and counts[best] else None


def _largest(case, names: list[str]) -> str | None:
    """The largest of `names` by bounding box (the organ most likely to be resected; cheap)."""
    if not names:
        return None
    return max(names, key=lambda n: case.structures[n].mask.array.size)
