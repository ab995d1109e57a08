"""The structure table: visibility, colour, name (with TG-263 suggestions), type, volume in cc,
lock.

Volumes are counted in a worker thread (100+ masks of a large CT take 100+ ms) and shown when
done; a structure not counted yet shows "…", never a 0.00 it does not have. Derived structures
whose sources changed are marked ⟳; auto-contours not yet accepted or rejected are shown in
italics, marked "?"; the table is never narrower than a typical TG-263 name with its mark (longer
names are elided in the middle, whole in their tooltip); their context menu accepts or rejects
them. A padlock locks an approved structure (a click on it, or the context menu): its name and
type are not edited, and the case refuses every tool's edit of it, said in the status bar.

The table follows the structure set's events (added / removed / changed) and writes user edits
back through the `Case` (one undo step each); its own updates run under a signal blocker so they
are not mistaken for user edits.
"""

from __future__ import annotations

import logging
import time
import weakref
from functools import lru_cache

from PyQt6.QtCore import QLineF, QRectF, QSignalBlocker, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QBrush, QColor, QFont, QFontMetrics, QIcon, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QCompleter,
    QHeaderView,
    QLineEdit,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)
from superqt.utils import create_worker

from planning.structures import RoiType
from planning.tg263 import standard_structures, style_for
from workstation.app import services
from workstation.app.history import Locked

log = logging.getLogger(__name__)

VISIBLE, COLOR, NAME, TYPE, VOLUME, LOCK = range(6)
#: the Volume column of a structure whose voxels are not counted yet
UNCOUNTED = "…"
#: a structure's volume is counted once its edits (brush dabs) pause this long (ms)
EDIT_PAUSE_MS = 250
HEADERS = ("", "", "Name", "Type", "Volume (cc)", "")
#: The name column is at least this wide: 16 characters, the longest usual TG-263 name, with the
#: awaiting-review mark, in italics.
NAME_SAMPLE = "SpinalCord_PRV05  ?"
LOCK_TIPS = {
    True: "Locked: no tool changes its contours, name or type. Click to unlock",
    False: "Click to lock it (an approved structure: no tool may change it)",
}


@lru_cache(maxsize=2)
def padlock(closed: bool) -> QIcon:
    """A padlock: closed and dark for a locked structure, open and faint for the others."""
    pixmap = QPixmap(16, 16)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    colour = QColor(35, 35, 35) if closed else QColor(165, 165, 165)
    painter.setPen(QPen(colour, 1.6))
    lift = 0.0 if closed else 2.5  # an open shackle stands up, free on the right
    painter.drawArc(QRectF(4.5, 1.5 - lift, 7, 7), 0, 180 * 16)
    painter.drawLine(QLineF(4.5, 5.0 - lift, 4.5, 8.0))
    if closed:
        painter.drawLine(QLineF(11.5, 5.0, 11.5, 8.0))
    painter.setBrush(colour if closed else Qt.BrushStyle.NoBrush)
    painter.drawRoundedRect(QRectF(2.8, 7.8, 10.4, 7.2), 1.5, 1.5)
    painter.end()
    return QIcon(pixmap)


@lru_cache(maxsize=4096)
def name_advice(name: str) -> str:
    """'' for a TG-263 name, otherwise what is wrong with it and the names probably meant
    (remembered per name: the suggestions take milliseconds, and a table shows 100+ names)."""
    return services.name_advice(name)


class _NameDelegate(QStyledItemDelegate):
    """Name editor completing TG-263 standard names."""

    def createEditor(self, parent, option, index):  # noqa: N802
        editor = QLineEdit(parent)
        completer = QCompleter(sorted(standard_structures()), editor)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        editor.setCompleter(completer)
        return editor

    def setEditorData(self, editor, index):  # noqa: N802
        editor.setText(index.data(Qt.ItemDataRole.UserRole))  # the name, without its marks


class _TypeDelegate(QStyledItemDelegate):
    def createEditor(self, parent, option, index):  # noqa: N802
        combo = QComboBox(parent)
        combo.addItems([t.value for t in RoiType])
        return combo

    def setEditorData(self, editor, index):  # noqa: N802
        editor.setCurrentText(index.data())

    def setModelData(self, editor, model, index):  # noqa: N802
        model.setData(index, editor.currentText())


class StructureTable(QTableWidget):
    """Rows = structures of the current case, in structure-set order."""

    #: The selected structure's name (None when nothing is selected).
    active_changed = pyqtSignal(object)
    #: Emitted when volumes counted in the worker are shown (`volume_of` knows them).
    volumes_counted = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(HEADERS), parent)
        self.case = None
        self.setHorizontalHeaderLabels(HEADERS)
        header = self.horizontalHeader()
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column in (VISIBLE, COLOR, TYPE, VOLUME, LOCK):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.sectionResized.connect(lambda column, *_: column != NAME and self.updateGeometry())
        self.horizontalHeaderItem(LOCK).setIcon(padlock(True))
        self.horizontalHeaderItem(LOCK).setToolTip("Locked structures: click a padlock to lock or unlock")
        self.verticalHeader().setVisible(False)
        # a long name ("Tumor Bed Block") is shortened in the middle on one line, whole in its
        # tooltip; wrapped, its second line was cut off by the row height
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.setItemDelegateForColumn(NAME, _NameDelegate(self))
        self.setItemDelegateForColumn(TYPE, _TypeDelegate(self))
        self._volume_timer = QTimer(self, singleShot=True, interval=EDIT_PAUSE_MS)
        self._volume_timer.timeout.connect(self._refresh_volumes)
        # structures edited since their volume was shown: their last edit's time.monotonic(), by id
        self._stale_volumes: dict[int, float] = {}
        self._to_measure: dict[int, object] = {}  # structures whose volume to count, by id
        self._measuring: tuple[list, list] | None = None  # structures and masks being counted
        # volumes counted, by structure id: with the (read-only, shared) array and offset counted
        self._volumes: dict[int, tuple[weakref.ref, tuple, float]] = {}
        self._measure_timer = QTimer(self, singleShot=True, interval=0)
        self._measure_timer.timeout.connect(self._measure_volumes)
        self._stale: set[str] = set()
        self.itemChanged.connect(self._on_item_changed)
        self.cellDoubleClicked.connect(self._on_double_click)
        self.cellClicked.connect(self._on_click)
        self.itemSelectionChanged.connect(lambda: self.active_changed.emit(self.active_name()))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu)

    # -- model ---------------------------------------------------------------------------------

    def set_case(self, case) -> None:
        if self.case is not None:
            self.case.structures.added.disconnect(self._on_added)
            self.case.structures.removed.disconnect(self._on_removed)
            self.case.structures.changed.disconnect(self._on_changed)
        self.case = case
        self._to_measure.clear()  # the closed case's structures: not counted for nothing
        self._stale_volumes.clear()
        self._volumes.clear()
        self._rebuild()
        if case is not None:
            case.structures.added.connect(self._on_added)
            case.structures.removed.connect(self._on_removed)
            case.structures.changed.connect(self._on_changed)
            if len(case.structures):
                self.selectRow(0)

    def set_stale(self, names: list[str]) -> None:
        """Mark derived structures whose sources changed since they were built (only the rows
        whose mark changes are refilled)."""
        changed = self._stale.symmetric_difference(names)
        self._stale = set(names)
        self._refill(changed)

    def _refill(self, names: set[str]) -> None:
        if self.case is None:
            return
        for row, structure in enumerate(self.case.structures):
            if row < self.rowCount() and structure.name in names:
                self._fill(row, structure, volume=False)

    def active_name(self) -> str | None:
        rows = self.selectionModel().selectedRows() if self.selectionModel() else []
        if not rows or self.case is None:
            return None
        item = self.item(rows[0].row(), NAME)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def select(self, name: str) -> None:
        for row in range(self.rowCount()):
            if self.item(row, NAME).data(Qt.ItemDataRole.UserRole) == name:
                self.selectRow(row)
                return

    def _rebuild(self) -> None:
        with QSignalBlocker(self):
            self.setRowCount(0)
            if self.case is None:
                return
            for structure in self.case.structures:
                self._insert(self.rowCount(), structure)
        self.active_changed.emit(self.active_name())

    def _insert(self, row: int, structure) -> None:
        self.insertRow(row)
        visible = QTableWidgetItem()
        visible.setFlags(
            Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        )
        self.setItem(row, VISIBLE, visible)
        color = QTableWidgetItem()
        color.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        color.setToolTip("Double-click to change the colour")
        self.setItem(row, COLOR, color)
        name = QTableWidgetItem()
        self.setItem(row, NAME, name)
        kind = QTableWidgetItem()
        self.setItem(row, TYPE, kind)
        volume = QTableWidgetItem(UNCOUNTED)
        volume.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        volume.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setItem(row, VOLUME, volume)
        lock = QTableWidgetItem()
        lock.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self.setItem(row, LOCK, lock)
        self._fill(row, structure, volume=True)

    def _fill(self, row: int, structure, volume: bool) -> None:
        with QSignalBlocker(self):
            self.item(row, VISIBLE).setCheckState(
                Qt.CheckState.Checked if structure.visible else Qt.CheckState.Unchecked
            )
            swatch = QPixmap(14, 14)
            swatch.fill(QColor(*structure.color))
            self.item(row, COLOR).setIcon(QIcon(swatch))
            name = self.item(row, NAME)
            stale = structure.name in self._stale
            pending = structure.awaiting_review
            name.setText(structure.name + ("  ⟳" if stale else "") + ("  ?" if pending else ""))
            name.setData(Qt.ItemDataRole.UserRole, structure.name)
            font = QFont(self.font())
            font.setItalic(pending)
            name.setFont(font)
            advice = name_advice(structure.name)
            if stale:
                advice = (
                    "sources changed since it was built: Structures ▸ Rebuild derived structures. " + advice
                )
            history = self.case.history.history_of(structure.name)[-8:]
            lines = [structure.name, f"{structure.algorithm.value.lower()} • ROI {structure.number}"]
            lines += ["pending: accept or reject it (right-click, or Auto-segmentation)"] if pending else []
            lines += ["locked: click its padlock to unlock it"] if structure.locked else []
            lines += [advice] if advice else []
            lines += [f"• {c.label}" for c in history]
            name.setToolTip("\n".join(lines))
            name.setForeground(QBrush(QColor(200, 120, 0) if advice else self.palette().text().color()))
            self.item(row, TYPE).setText(structure.roi_type.value)
            self.item(row, LOCK).setIcon(padlock(structure.locked))
            self.item(row, LOCK).setToolTip(LOCK_TIPS[structure.locked])
            if volume:
                self._show_volume(row, structure)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        """Wide enough for the other columns and a `NAME_SAMPLE` name."""
        font = QFont(self.font())
        font.setItalic(True)
        header = self.horizontalHeader()
        name = (
            QFontMetrics(font).horizontalAdvance(NAME_SAMPLE)
            + 2 * self.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin)
            + 8
        )
        others = sum(header.sectionSize(column) for column in range(self.columnCount()) if column != NAME)
        width = name + others + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(width, super().minimumSizeHint().height())

    def _row_of(self, structure) -> int | None:
        for row in range(self.rowCount()):
            if self.item(row, NAME).data(Qt.ItemDataRole.UserRole) == structure.name:
                return row
        names = self.case.structures.names()
        # After a rename the row still carries the old name: find it by position.
        if structure.name in names:
            index = names.index(structure.name)
            if index < self.rowCount():
                return index
        return None

    # -- structure-set events ------------------------------------------------------------------

    def _on_added(self, structure) -> None:
        index = self.case.structures.names().index(structure.name)
        with QSignalBlocker(self):
            self._insert(index, structure)
        self.selectRow(index)

    def _on_removed(self, structure) -> None:
        for row in range(self.rowCount()):
            if self.item(row, NAME).data(Qt.ItemDataRole.UserRole) == structure.name:
                self.removeRow(row)
                break
        self.active_changed.emit(self.active_name())

    def _on_changed(self, structure, box) -> None:
        row = self._row_of(structure)
        if row is None:
            return
        if box is not None:  # a mask edit (each brush dab): the row is refilled once edits to it pause
            self._stale_volumes[id(structure)] = time.monotonic()
            if structure.mask.array.size and self.item(row, VOLUME).text() == f"{0.0:.2f}":
                with QSignalBlocker(self):  # filled since counted empty (a seeded GTV): not 0.00
                    self.item(row, VOLUME).setText(UNCOUNTED)
            if not self._volume_timer.isActive():
                self._volume_timer.start(EDIT_PAUSE_MS)
            return
        self._fill(row, structure, volume=False)
        if row in [r.row() for r in self.selectionModel().selectedRows()]:
            self.active_changed.emit(structure.name)

    def _refresh_volumes(self) -> None:
        """Refill the rows of the structures not edited for `EDIT_PAUSE_MS`; wait on for those
        still being edited (each structure's own pause: painting one delays no other)."""
        if self.case is None:
            return
        stale, self._stale_volumes = self._stale_volumes, {}
        now = time.monotonic()
        for row, structure in enumerate(self.case.structures):
            edited = stale.get(id(structure))
            if edited is None or row >= self.rowCount():
                continue
            if (now - edited) * 1000 >= EDIT_PAUSE_MS:
                self._fill(row, structure, volume=True)
            else:
                self._stale_volumes[id(structure)] = edited
        if self._stale_volumes:
            first = min(self._stale_volumes.values())
            self._volume_timer.start(max(1, round(EDIT_PAUSE_MS - (now - first) * 1000)))

    def _show_volume(self, row: int, structure) -> None:
        """An empty structure's volume at once, any other's once a worker has counted it (a new
        one says `UNCOUNTED` until then, an edited one its last count)."""
        if structure.mask.array.size == 0:
            self.item(row, VOLUME).setText(f"{0.0:.2f}")
        else:
            self._measure(structure)

    def _measure(self, structure) -> None:
        self._to_measure[id(structure)] = structure
        if self._measuring is None:
            self._measure_timer.start()

    def _measure_volumes(self) -> None:
        """Count the queued structures' voxels in a worker, on copy-on-write masks."""
        if self._measuring is not None or not self._to_measure:
            return
        structures = list(self._to_measure.values())
        self._to_measure.clear()
        masks = [s.mask.shared() for s in structures]
        self._measuring = (structures, masks)
        worker = create_worker(
            lambda: [m.volume_cc for m in masks],
            _start_thread=False,
            _connect={"returned": self._show_volumes, "errored": self._measure_failed},
        )
        worker.start()

    def _measure_failed(self, error: Exception) -> None:
        """A count failed (memory, say): those volumes stay as shown until their structures
        change again; the worker is free for the next ones."""
        log.warning("structure volumes not counted: %s", error)
        self._measuring = None
        self._measure_volumes()

    def volume_of(self, structure) -> float | None:
        """`structure`'s volume in cc as counted for its current mask; None: not counted (yet)."""
        if structure.mask.array.size == 0:
            return 0.0
        counted = self._volumes.get(id(structure))
        if counted is None:
            return None
        array, offset, volume = counted
        # a counted array is read-only: an edit since then replaced it with a copy
        same = array() is structure.mask.array and offset == structure.mask.offset
        return volume if same else None

    def _show_volumes(self, volumes: list[float]) -> None:
        """Show the volumes counted, for the structures whose mask is still the one counted."""
        structures, masks = self._measuring
        self._measuring = None
        rows = {self.item(r, NAME).data(Qt.ItemDataRole.UserRole): r for r in range(self.rowCount())}
        with QSignalBlocker(self):  # not a user edit
            for structure, mask, volume in zip(structures, masks, volumes, strict=True):
                if not self._holds(structure):
                    continue
                if structure.mask.array is mask.array and structure.mask.offset == mask.offset:
                    self._volumes[id(structure)] = (weakref.ref(mask.array), mask.offset, volume)
                row = rows[structure.name] if structure.name in rows else self._row_of(structure)
                if (
                    row is not None
                    and structure.mask.array is mask.array
                    and structure.mask.offset == mask.offset
                ):
                    self.item(row, VOLUME).setText(f"{volume:.2f}")
        self._measure_volumes()
        self.volumes_counted.emit()

    def _holds(self, structure) -> bool:
        structures = None if self.case is None else self.case.structures
        return (
            structures is not None
            and structure.name in structures
            and structures[structure.name] is structure
        )

    # -- user edits ----------------------------------------------------------------------------

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        row, column = item.row(), item.column()
        name = self.item(row, NAME).data(Qt.ItemDataRole.UserRole)
        if self.case is None or name not in self.case.structures:
            return
        structure = self.case.structures[name]
        try:
            if column == VISIBLE:
                self.case.set_visible(name, item.checkState() == Qt.CheckState.Checked)
            elif column == NAME:
                new = item.text().strip()
                if new and new != name:
                    if new in self.case.structures:
                        raise ValueError(f"a structure named {new!r} already exists")
                    self._rename(structure, new)
            elif column == TYPE:
                self.case.set_properties(name, f"Type of {name}", roi_type=RoiType(item.text()))
        except (ValueError, Locked) as error:
            self.window().statusBar().showMessage(str(error), 5000)
        self._fill(row, structure, volume=False)

    def _rename(self, structure, new: str) -> None:
        """Rename; a type that came from the old name (a new structure's ORGAN, a duplicated GTV's
        GTV) follows the new one in the same step: "PTV_Boost" is a PTV, "PTV_Ring" a CONTROL.
        A type the user chose stays."""
        name, changes = structure.name, {"name": new}
        named_type, new_type = style_for(name)[1], style_for(new)[1]
        if structure.roi_type == named_type and new_type != named_type:
            changes["roi_type"] = new_type
        self.case.set_properties(name, f"Rename {name} → {new}", **changes)
        if "roi_type" in changes:
            self._say(
                f"{new}: type {named_type.value} → {new_type.value}, from its name (the Type column sets it)"
            )

    def edit(self, index, *args) -> bool:
        """No name or type editor for a locked structure: the status bar says why."""
        name = self.item(index.row(), NAME).data(Qt.ItemDataRole.UserRole) if index.isValid() else None
        locked = self.case is not None and name in self.case.structures and self.case.structures[name].locked
        if not args or not locked or index.column() not in (NAME, TYPE):
            return super().edit(index, *args)
        trigger = args[0]
        if trigger in (
            QAbstractItemView.EditTrigger.DoubleClicked,
            QAbstractItemView.EditTrigger.EditKeyPressed,
        ):
            action = "rename" if index.column() == NAME else "change its type"
            self._say(str(Locked(name, action)))
        return False

    def toggle_lock(self, name: str) -> None:
        """Lock an unlocked structure, unlock a locked one (no undo step), and say which."""
        locked = not self.case.structures[name].locked
        self.case.set_locked(name, locked)
        self._say(f"{name} locked: no tool changes it until it is unlocked" if locked else f"{name} unlocked")

    def _on_click(self, row: int, column: int) -> None:
        if column == LOCK and self.case is not None:
            self.toggle_lock(self.item(row, NAME).data(Qt.ItemDataRole.UserRole))

    def _say(self, text: str) -> None:
        self.window().statusBar().showMessage(text, 8000)

    def _try(self, edit) -> None:
        """Make an edit; one refused for a locked structure is said in the status bar."""
        try:
            edit()
        except Locked as error:
            self._say(str(error))

    def _on_double_click(self, row: int, column: int) -> None:
        if column != COLOR or self.case is None:
            return
        name = self.item(row, NAME).data(Qt.ItemDataRole.UserRole)
        structure = self.case.structures[name]
        color = QColorDialog.getColor(QColor(*structure.color), self, f"Colour of {name}")
        if color.isValid():
            self.case.set_properties(
                name, f"Colour of {name}", color=(color.red(), color.green(), color.blue())
            )

    # -- review of auto-contours ---------------------------------------------------------------

    def review_menu(self, name: str) -> QMenu | None:
        """Accept / Reject for an auto-contour awaiting review (None for any other structure)."""
        if self.case is None or name not in self.case.structures:
            return None
        if not self.case.structures[name].awaiting_review:
            return None
        menu = QMenu(self)
        menu.addAction(f"Accept {name}", lambda: self.case.accept_auto_contours([name], f"Accept {name}"))
        menu.addAction(f"Reject {name}", lambda: self._try(lambda: self.case.remove_structure(name)))
        return menu

    def context_menu(self, name: str) -> QMenu:
        """Lock (or Unlock) the structure, then Accept / Reject if it awaits review, then its
        opacity in the 3D view."""
        menu = self.review_menu(name) or QMenu(self)
        locked = self.case.structures[name].locked
        action = QAction(padlock(not locked), f"{'Unlock' if locked else 'Lock'} {name}", menu)
        action.triggered.connect(lambda: self.toggle_lock(name))
        menu.insertAction(menu.actions()[0] if menu.actions() else None, action)
        view3d = getattr(self.window(), "view3d", None)
        if view3d is not None:
            menu.addMenu(_opacity_menu(menu, name, view3d))
        return menu

    def _on_context_menu(self, pos) -> None:
        item = self.itemAt(pos)
        if item is None or self.case is None:
            return
        menu = self.context_menu(self.item(item.row(), NAME).data(Qt.ItemDataRole.UserRole))
        menu.exec(self.viewport().mapToGlobal(pos))
        menu.deleteLater()


#: Opacities offered for a structure's 3D surface, in percent.
OPACITY_CHOICES = (100, 60, 30, 10)


def _opacity_menu(parent: QMenu, name: str, view3d) -> QMenu:
    """ "3D opacity" ▸ 100 % … 10 %, the current one checked: a translucent organ shows the
    tumour or vessels inside it."""
    menu = QMenu("3D opacity", parent)
    current = round(view3d.opacity(name) * 100)
    for percent in OPACITY_CHOICES:
        action = menu.addAction(f"{percent} %", lambda p=percent: view3d.set_opacity(name, p / 100))
        action.setCheckable(True)
        action.setChecked(percent == current)
    return menu
