"""Connected-region tools: fill an enclosed (or value-limited) region, erase a connected piece."""

from __future__ import annotations

import numpy as np
from PyQt6.QtWidgets import QCheckBox, QFormLayout, QWidget
from scipy import ndimage

from planning.structures import bounding_box
from workstation.app.tools.base import Tool, ValueRangeTool, add_value_limit_rows


class FillTool(ValueRangeTool):
    """Click outside the structure on a slice: fill the region enclosed by it there.

    With the value range on (HU on CT, intensities on MR), the fill grows from the click through
    connected voxels whose values lie in the range (a threshold flood fill), enclosed or not.
    """

    key = "fill"
    title = "Fill"
    shortcut = "F"
    tip = "Fill the region enclosed by the structure (or, with a value range, a connected region in it)"
    defaults = {"hu_limit": False, "hu_min": -200, "hu_max": 300}

    def press(self, view, event) -> bool:
        name = self.target()
        if name is None or not view.inside(event.zyx):
            return False
        case, orientation, index = self.case(), view.orientation, view.slice_index
        box = orientation.full_plane_box(index)
        current = case.structures[name].mask.region(box)
        plane = _squeeze(current, orientation.normal_axis)
        seed = tuple(
            int(v) for v in np.rint(event.zyx)[[a for a in range(3) if a != orientation.normal_axis]]
        )
        if plane[seed]:
            self.context.message(f"The click is already inside {name}.")
            return False
        candidates = ~plane
        if self.setting("hu_limit"):
            values = _squeeze(case.volume.array[box], orientation.normal_axis)
            candidates &= (values >= self.setting("hu_min")) & (values <= self.setting("hu_max"))
            if not candidates[seed]:
                low, high = self.setting("hu_min"), self.setting("hu_max")
                self.context.message(
                    f"The clicked voxel ({values[seed]:g}) is outside the value range {low:g}–{high:g}."
                )
                return False
        labels, _ = ndimage.label(candidates)
        region = labels == labels[seed]
        if not self.setting("hu_limit") and _touches_edge(region):
            self.context.message(f"That region is not enclosed by {name} on this slice; nothing filled.")
            return False
        case.edit_region(f"Fill {name}", name, box, np.expand_dims(plane | region, orientation.normal_axis))
        return False

    def options(self, parent) -> QWidget:
        return _hu_options(self, parent)


class EraseRegionTool(Tool):
    """Click inside the structure: remove the connected piece under the click (2D or 3D)."""

    key = "erase_region"
    title = "Erase piece"
    shortcut = "X"
    tip = "Remove the connected piece of the structure under the click (this slice, or in 3D)"
    defaults = {"three_d": False}

    def press(self, view, event) -> bool:
        name = self.target()
        if name is None or not view.inside(event.zyx):
            return False
        case = self.case()
        mask = case.structures[name].mask
        voxel = tuple(int(v) for v in np.rint(event.zyx))
        voxel = tuple(np.clip(voxel, 0, np.asarray(case.grid.shape) - 1))
        if mask.box is None or not mask.region(tuple(slice(v, v + 1) for v in voxel))[0, 0, 0]:
            self.context.message(f"Click inside {name} to erase a piece of it.")
            return False
        if self.setting("three_d"):
            box = mask.box
            values = mask.array
        else:
            box = view.orientation.full_plane_box(view.slice_index)
            values = mask.region(box)
        local = tuple(v - s.start for v, s in zip(voxel, box, strict=True))
        structure = ndimage.generate_binary_structure(3, 1)
        if not self.setting("three_d"):
            structure = _planar_structure(view.orientation.normal_axis)
        labels, _ = ndimage.label(values, structure)
        piece = labels == labels[local]
        inner = bounding_box(piece)
        piece_box = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner, strict=True))
        updated = values[inner] & ~piece[inner]
        case.edit_region(f"Erase piece of {name}", name, piece_box, updated)
        return False

    def options(self, parent) -> QWidget:
        widget = QWidget(parent)
        form = QFormLayout(widget)
        three_d = QCheckBox("3D (the whole connected piece, all slices)", widget)
        self.bind("three_d", three_d)
        form.addRow(three_d)
        return widget


def _squeeze(array: np.ndarray, axis: int) -> np.ndarray:
    return np.take(array, 0, axis=axis)


def _touches_edge(region: np.ndarray) -> bool:
    return bool(region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any())


def _planar_structure(normal_axis: int) -> np.ndarray:
    """4-connectivity within the plane across `normal_axis`, none across it."""
    structure = ndimage.generate_binary_structure(3, 1)
    selector = [slice(None)] * 3
    for outer in (0, 2):
        selector[normal_axis] = outer
        structure[tuple(selector)] = False
    return structure


def _hu_options(tool: Tool, parent) -> QWidget:
    widget = QWidget(parent)
    add_value_limit_rows(tool, widget, QFormLayout(widget), "Grow through voxels")
    return widget
