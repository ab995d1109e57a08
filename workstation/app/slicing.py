"""How a volume's voxels map onto the axial, coronal and sagittal views (Qt-free).

Views follow the radiological convention: axial with the patient's right on the screen's left and
anterior up; coronal with the patient's right on the left and superior up; sagittal with anterior
on the left and superior up. Each view shows slices across the index axis closest to its normal,
so voxels are shown as acquired (no resampling); the direction matrix decides which array axis
goes where and which way it runs, and the orientation labels are computed from the true direction
vectors, so an oblique acquisition is labelled with its dominant directions (e.g. "LA").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.geometry import Grid
from planning.structures import Mask

#: LPS vectors of (screen right, screen down, view normal) for each view.
VIEW_VECTORS = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}
VIEWS = tuple(VIEW_VECTORS)
#: Letters of the LPS axes, for the + and − directions.
_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))
#: Directions deviating more than this from the view axes make the view "oblique".
OBLIQUE_DEGREES = 1.0


def direction_label(vector) -> str:
    """Orientation letters of an LPS direction: dominant first, others when ≥ 0.3 of the length."""
    vector = np.asarray(vector, float)
    order = np.argsort(-np.abs(vector))
    letters = []
    for rank, axis in enumerate(order):
        component = vector[axis]
        if rank == 0 or abs(component) >= 0.3:
            letters.append(_LETTERS[axis][0 if component > 0 else 1])
    return "".join(letters)


@dataclass(frozen=True)
class Orientation:
    """Where one view takes its slices and how it lays them out on screen.

    Array axes are 0 = z (slice), 1 = y (row), 2 = x (column) of the volume.

    Attributes:
        view: "axial", "coronal" or "sagittal".
        normal_axis: array axis across which the view's slices are taken.
        row_axis, col_axis: array axes shown downwards / rightwards on screen.
        flip_rows, flip_cols: whether those axes run against the screen direction.
        shape: number of (slices, rows, columns) of the view.
        row_mm, col_mm, slice_mm: voxel size along the screen rows, columns and the normal.
        labels: orientation letters at the view's "left", "right", "top" and "bottom" edges.
        oblique: whether the image axes deviate from the patient axes (labels then combine).
    """

    view: str
    normal_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    shape: tuple[int, int, int]
    row_mm: float
    col_mm: float
    slice_mm: float
    labels: dict
    oblique: bool

    @property
    def n_slices(self) -> int:
        return self.shape[0]

    # -- slices -------------------------------------------------------------------------------

    def slice_of(self, array: np.ndarray, index: int) -> np.ndarray:
        """Slice `index` of a (z, y, x) array laid out for the screen (rows, columns); a view."""
        selector = [slice(None)] * 3
        selector[self.normal_axis] = index
        plane = array[tuple(selector)]
        if self.row_axis > self.col_axis:
            plane = plane.T
        if self.flip_rows:
            plane = plane[::-1, :]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane

    def mask_region(self, mask: Mask, index: int) -> tuple[np.ndarray, int, int] | None:
        """The part of a cropped mask on slice `index`: (plane, first row, first column) on screen.

        Only the mask's own bounding box is touched (never a full-size array); None when the mask
        does not reach this slice.
        """
        box = mask.box
        if box is None:
            return None
        start, stop = box[self.normal_axis].start, box[self.normal_axis].stop
        if not start <= index < stop:
            return None
        selector = [slice(None)] * 3
        selector[self.normal_axis] = index - start
        plane = mask.array[tuple(selector)]
        if self.row_axis > self.col_axis:
            plane = plane.T
        row0 = self._first(box[self.row_axis], self.shape[1], self.flip_rows)
        col0 = self._first(box[self.col_axis], self.shape[2], self.flip_cols)
        if self.flip_rows:
            plane = plane[::-1, :]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane, row0, col0

    @staticmethod
    def _first(extent: slice, size: int, flip: bool) -> int:
        return size - extent.stop if flip else extent.start

    # -- coordinates --------------------------------------------------------------------------

    def to_voxel(self, index: float, row: float, col: float) -> np.ndarray:
        """Continuous (z, y, x) array index of a point on slice `index` at display (row, col)."""
        zyx = np.zeros(3)
        zyx[self.normal_axis] = index
        zyx[self.row_axis] = self.shape[1] - 1 - row if self.flip_rows else row
        zyx[self.col_axis] = self.shape[2] - 1 - col if self.flip_cols else col
        return zyx

    def from_voxel(self, zyx) -> tuple[float, float, float]:
        """(slice index, display row, display column) of a continuous (z, y, x) array index."""
        zyx = np.asarray(zyx, float)
        row = zyx[self.row_axis]
        col = zyx[self.col_axis]
        if self.flip_rows:
            row = self.shape[1] - 1 - row
        if self.flip_cols:
            col = self.shape[2] - 1 - col
        return float(zyx[self.normal_axis]), float(row), float(col)

    def plane_to_box(self, index: int, row0: int, col0: int, plane: np.ndarray):
        """Inverse of `mask_region`: a display plane at (row0, col0) on slice `index` as a
        (z, y, x) box of the volume and the values to put there (3D, one voxel thick)."""
        rows, cols = plane.shape
        if self.flip_rows:
            plane = plane[::-1, :]
            row0 = self.shape[1] - row0 - rows
        if self.flip_cols:
            plane = plane[:, ::-1]
            col0 = self.shape[2] - col0 - cols
        if self.row_axis > self.col_axis:
            plane = plane.T
        box = [slice(0, 0)] * 3
        box[self.normal_axis] = slice(index, index + 1)
        box[self.row_axis] = slice(row0, row0 + rows)
        box[self.col_axis] = slice(col0, col0 + cols)
        return tuple(box), np.expand_dims(np.ascontiguousarray(plane), self.normal_axis)

    def full_plane_box(self, index: int):
        """The (z, y, x) box of the whole slice `index`."""
        box = [slice(0, 0)] * 3
        box[self.normal_axis] = slice(index, index + 1)
        box[self.row_axis] = slice(0, self.shape[1])
        box[self.col_axis] = slice(0, self.shape[2])
        return tuple(box)

    def display_box(self, box) -> tuple[int, int, int, int] | None:
        """Display (row0, row1, col0, col1) covered by a (z, y, x) box, ends exclusive."""
        rows, cols = box[self.row_axis], box[self.col_axis]
        row0 = self._first(rows, self.shape[1], self.flip_rows)
        col0 = self._first(cols, self.shape[2], self.flip_cols)
        return row0, row0 + rows.stop - rows.start, col0, col0 + cols.stop - cols.start


def orientation_for(grid: Grid, view: str) -> Orientation:
    """The layout of `view` for a grid, from its direction matrix (see module docstring)."""
    right, down, normal = (np.asarray(v) for v in VIEW_VECTORS[view])
    # Direction column k is the LPS vector of index axis k (x, y, z) = array axis 2 - k.
    vectors = {2 - k: grid.direction[:, k] for k in range(3)}
    spacing = {2 - k: grid.spacing_xyz[k] for k in range(3)}
    normal_axis = max(vectors, key=lambda a: abs(vectors[a] @ normal))
    rest = [a for a in (0, 1, 2) if a != normal_axis]
    col_axis = max(rest, key=lambda a: abs(vectors[a] @ right))
    row_axis = next(a for a in rest if a != col_axis)
    flip_cols = bool(vectors[col_axis] @ right < 0)
    flip_rows = bool(vectors[row_axis] @ down < 0)
    screen_right = vectors[col_axis] * (-1 if flip_cols else 1)
    screen_down = vectors[row_axis] * (-1 if flip_rows else 1)
    labels = {
        "right": direction_label(screen_right),
        "left": direction_label(-screen_right),
        "bottom": direction_label(screen_down),
        "top": direction_label(-screen_down),
    }
    cosines = [abs(screen_right @ right), abs(screen_down @ down)]
    oblique = min(cosines) < np.cos(np.radians(OBLIQUE_DEGREES))
    shape = grid.shape
    return Orientation(
        view=view,
        normal_axis=normal_axis,
        row_axis=row_axis,
        col_axis=col_axis,
        flip_rows=flip_rows,
        flip_cols=flip_cols,
        shape=(shape[normal_axis], shape[row_axis], shape[col_axis]),
        row_mm=spacing[row_axis],
        col_mm=spacing[col_axis],
        slice_mm=spacing[normal_axis],
        labels=labels,
        oblique=bool(oblique),
    )
