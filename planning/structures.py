"""Structures (ROIs) and structure sets: what oncologists draw and what RTSTRUCT carries.

A structure's geometry is a `Mask`: a boolean array on the image grid, stored cropped to its
bounding box, so a 512×512×600 CT with 100+ structures stays within a few GB. Imported planar
contours are kept as they were read (`Structure.contours`) until the mask is edited, so an
unedited structure can be written back losslessly.

A `StructureSet` emits psygnal events when structures are added, removed or edited; an edit
carries the changed bounding box so views redraw only that region.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from psygnal import Signal

from planning.errors import GeometryError
from planning.geometry import Grid

#: A region of the grid as (z, y, x) slices.
Box = tuple[slice, slice, slice]


class RoiType(StrEnum):
    """RT ROI Interpreted Type (DICOM PS3.3 C.8.8.8), the terms TPSs act on."""

    EXTERNAL = "EXTERNAL"
    PTV = "PTV"
    CTV = "CTV"
    GTV = "GTV"
    ORGAN = "ORGAN"
    AVOIDANCE = "AVOIDANCE"
    CAVITY = "CAVITY"
    CONTROL = "CONTROL"
    TREATED_VOLUME = "TREATED_VOLUME"
    IRRAD_VOLUME = "IRRAD_VOLUME"
    BOLUS = "BOLUS"
    SUPPORT = "SUPPORT"
    FIXATION = "FIXATION"
    DOSE_REGION = "DOSE_REGION"
    CONTRAST_AGENT = "CONTRAST_AGENT"
    MARKER = "MARKER"
    REGISTRATION = "REGISTRATION"
    ISOCENTER = "ISOCENTER"


class GenerationAlgorithm(StrEnum):
    """ROI Generation Algorithm: who made the geometry."""

    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"


class Mask:
    """A binary mask on a grid, stored as the array of its bounding box.

    Attributes:
        grid: the full image grid.
        offset: (z, y, x) index of the stored array's first voxel in the grid.
        array: bool array of the bounding box, indexed (z, y, x).
    """

    __slots__ = ("grid", "offset", "array")

    def __init__(self, grid: Grid, array: np.ndarray | None = None, offset=(0, 0, 0)):
        self.grid = grid
        if array is None:
            array = np.zeros((0, 0, 0), bool)
        if not (isinstance(array, np.ndarray) and array.dtype == bool):
            # a bool array stays the same object (`shared` and the structure table's counted
            # volumes rely on it), even with an equal dtype that is not numpy's own (unpickled)
            array = np.asarray(array, dtype=bool)
        offset = tuple(int(o) for o in offset)
        end = [o + n for o, n in zip(offset, array.shape, strict=True)]
        if array.size and (min(offset) < 0 or any(e > n for e, n in zip(end, grid.shape, strict=True))):
            raise GeometryError(f"mask box at {offset} of shape {array.shape} leaves the grid {grid.shape}")
        self.offset, self.array = offset, array

    @classmethod
    def from_full(cls, grid: Grid, full: np.ndarray) -> Mask:
        """A mask from a full-grid boolean array (cropped to its content)."""
        if tuple(full.shape) != grid.shape:
            raise GeometryError(f"mask of shape {full.shape} does not fit grid {grid.shape}")
        box = bounding_box(full)
        if box is None:
            return cls(grid)
        return cls(grid, full[box].copy(), tuple(s.start for s in box))

    # -- reading ------------------------------------------------------------------------------

    @property
    def box(self) -> Box | None:
        """The stored region as slices of the full grid, None when empty."""
        if self.array.size == 0:
            return None
        return tuple(slice(o, o + n) for o, n in zip(self.offset, self.array.shape, strict=True))

    @property
    def voxel_count(self) -> int:
        """The number of voxels inside."""
        return int(np.count_nonzero(self.array))

    @property
    def is_empty(self) -> bool:
        return self.voxel_count == 0

    @property
    def volume_cc(self) -> float:
        """The volume inside, in cc (voxel count × voxel volume)."""
        return self.voxel_count * self.grid.voxel_volume_cc

    def full(self) -> np.ndarray:
        """The mask on the whole grid (allocates a full-size bool array)."""
        full = np.zeros(self.grid.shape, bool)
        if self.box is not None:
            full[self.box] = self.array
        return full

    def region(self, box: Box) -> np.ndarray:
        """The mask inside `box` (slices of the full grid) as a new bool array."""
        out = np.zeros(tuple(s.stop - s.start for s in box), bool)
        if self.box is None:
            return out
        lo = [max(a.start, b.start) for a, b in zip(box, self.box, strict=True)]
        hi = [min(a.stop, b.stop) for a, b in zip(box, self.box, strict=True)]
        if any(h <= low for low, h in zip(lo, hi, strict=True)):
            return out
        target = tuple(slice(low - b.start, h - b.start) for low, h, b in zip(lo, hi, box, strict=True))
        source = tuple(slice(low - o, h - o) for low, h, o in zip(lo, hi, self.offset, strict=True))
        out[target] = self.array[source]
        return out

    def slice_z(self, k: int) -> np.ndarray:
        """Axial plane k of the mask as a full (rows, columns) bool array."""
        ny, nx = self.grid.shape[1:]
        return self.region((slice(k, k + 1), slice(0, ny), slice(0, nx)))[0]

    # -- editing ------------------------------------------------------------------------------

    def replace_region(self, box: Box, values: np.ndarray) -> None:
        """Set the mask inside `box` to `values` (bool, the box's shape); keeps the box tight.

        An edit inside the stored box is written in place, and the box is only recomputed when
        the edit may have emptied one of its faces, so brush strokes on a large structure cost
        the size of the stroke, not of the structure. An array `shared` with a snapshot is
        copied first.
        """
        current = self.box
        if current is not None and all(
            c.start <= b.start and b.stop <= c.stop for b, c in zip(box, current, strict=True)
        ):
            if not self.array.flags.writeable:
                self.array = self.array.copy()
            local = tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, self.offset, strict=True))
            self.array[local] = values
            touches_face = any(
                b.start == c.start or b.stop == c.stop for b, c in zip(box, current, strict=True)
            )
            if touches_face and not values.all():
                self._shrink_to_content()
            return
        union = box if current is None else _union_box(current, box)
        merged = self.region(union)
        merged[tuple(slice(b.start - u.start, b.stop - u.start) for b, u in zip(box, union, strict=True))] = (
            values
        )
        self.offset, self.array = tuple(u.start for u in union), merged
        self._shrink_to_content()

    def _shrink_to_content(self) -> None:
        """Drop empty outer planes, looking only as far in as the first plane with content."""
        if not self.array.any():
            self.offset, self.array = (0, 0, 0), np.zeros((0, 0, 0), bool)
            return
        box = []
        for axis, size in enumerate(self.array.shape):
            low = next(i for i in range(size) if self.array.take(i, axis).any())
            high = next(i for i in range(size - 1, low - 1, -1) if self.array.take(i, axis).any())
            box.append(slice(low, high + 1))
        if any(b.start > 0 or b.stop < n for b, n in zip(box, self.array.shape, strict=True)):
            self.offset = tuple(o + b.start for o, b in zip(self.offset, box, strict=True))
            self.array = self.array[tuple(box)].copy()

    def copy(self) -> Mask:
        """An independent copy (its own array)."""
        return Mask(self.grid, self.array.copy(), self.offset)

    def shared(self) -> Mask:
        """A mask on this one's array, which neither writes to from now on (the next edit of
        either copies it first): a background save reads it whole while the user draws on."""
        self.array.flags.writeable = False
        return Mask(self.grid, self.array, self.offset)


def bounding_box(mask: np.ndarray) -> Box | None:
    """Tightest (z, y, x) slices holding every True voxel, None when there is none."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


#: Geometric types of RTSTRUCT contours that enclose an area.
CLOSED_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR")


@dataclass
class PlanarContour:
    """One contour as a structure set stores it: points in LPS mm on one image plane.

    Attributes:
        points: (N, 3) LPS mm.
        geometric_type: "CLOSED_PLANAR", "CLOSEDPLANAR_XOR", "OPEN_PLANAR" or "POINT".
        image_uid: SOP Instance UID of the image it lies on ("" when not referenced).
    """

    points: np.ndarray
    geometric_type: str = "CLOSED_PLANAR"
    image_uid: str = ""

    @property
    def encloses_area(self) -> bool:
        """A closed contour of at least three points (CLOSEDPLANAR_XOR only states the even-odd
        rule that inside is read with anyway)."""
        return self.geometric_type in CLOSED_TYPES and len(self.points) >= 3


@dataclass(frozen=True)
class DrawnElsewhere:
    """Contours drawn on the planes of another reconstruction of the images' frame of reference,
    each image plane taking the outline of the drawn plane nearest to it.

    Attributes:
        spacing_mm: the spacing of the planes they were drawn on.
        drawn_cc: the volume they enclose there, each plane a slab one spacing thick.
        placed_cc: the volume they enclose on the image planes, each one image slice thick.
    """

    spacing_mm: float
    drawn_cc: float
    placed_cc: float

    @property
    def change(self) -> float:
        """The relative change of volume, placed / drawn − 1 (0 when nothing was drawn)."""
        return self.placed_cc / self.drawn_cc - 1 if self.drawn_cc else 0.0


@dataclass(eq=False)
class Structure:
    """A named region of interest.

    Attributes:
        name: ROI name (TG-263 where possible).
        mask: geometry on the image grid.
        color: display colour (r, g, b), 0–255.
        roi_type: RT ROI Interpreted Type.
        algorithm: who made it (AUTOMATIC for model output).
        number: ROI Number, unique in its structure set (assigned when added).
        description: free text; derived structures record their recipe here too.
        contours: planar contours as imported, kept until the mask is edited; None otherwise.
        drawn_elsewhere: for contours drawn on another reconstruction's planes and moved onto
            these images' planes, how that changed their volume; None otherwise.
        markers: POINT and OPEN_PLANAR items read from an RTSTRUCT (never rasterised).
        recipe: how a derived structure is rebuilt from others (see planning margins), or None.
        visible: display state (the GUI's; stored so sessions restore it).
        awaiting_review: an auto-contour not yet accepted or rejected (stored so sessions
            restore it).
        locked: approved and protected: the workstation refuses edits of its geometry, name
            and type (stored so sessions restore it; not exported).
    """

    name: str
    mask: Mask
    color: tuple[int, int, int] = (255, 0, 0)
    roi_type: RoiType = RoiType.ORGAN
    algorithm: GenerationAlgorithm = GenerationAlgorithm.MANUAL
    number: int = 0
    description: str = ""
    contours: list[PlanarContour] | None = None
    drawn_elsewhere: DrawnElsewhere | None = None
    markers: list[PlanarContour] = field(default_factory=list)
    recipe: dict | None = None
    visible: bool = True
    awaiting_review: bool = False
    locked: bool = False

    def __post_init__(self) -> None:
        self.roi_type = RoiType(self.roi_type)
        self.algorithm = GenerationAlgorithm(self.algorithm)
        color = tuple(int(c) for c in self.color)
        if len(color) != 3 or not all(0 <= c <= 255 for c in color):
            raise ValueError(
                f"structure {self.name!r}: colour must be three integers 0–255, got {self.color}"
            )
        self.color = color
        if not self.name or not self.name.strip():
            raise ValueError("a structure needs a non-empty name")

    @property
    def volume_cc(self) -> float:
        """The mask's volume, in cc."""
        return self.mask.volume_cc

    def snapshot(self) -> Structure:
        """A copy for a background save: its mask `shared`, so later edits leave the copy as is."""
        return dataclasses.replace(self, mask=self.mask.shared(), markers=list(self.markers))

    def properties_plain(self) -> dict:
        """Everything but the geometry (mask, contours, markers) as JSON-ready data: what session
        files and the undo history keep beside the mask. `from_properties` reads it back."""
        return {
            "name": self.name,
            "color": list(self.color),
            "roi_type": str(self.roi_type),
            "algorithm": str(self.algorithm),
            "number": self.number,
            "description": self.description,
            "recipe": self.recipe,
            "drawn_elsewhere": dataclasses.asdict(self.drawn_elsewhere) if self.drawn_elsewhere else None,
            "visible": self.visible,
            "awaiting_review": self.awaiting_review,
            "locked": self.locked,
        }

    @classmethod
    def from_properties(
        cls, plain: dict, mask: Mask, contours: list[PlanarContour] | None = None, markers=None
    ) -> Structure:
        """A structure from `properties_plain` data and its geometry."""
        return cls(
            name=plain["name"],
            mask=mask,
            color=tuple(plain["color"]),
            roi_type=plain["roi_type"],
            algorithm=plain["algorithm"],
            number=int(plain["number"]),
            description=plain.get("description", ""),
            contours=contours,
            markers=list(markers or []),
            recipe=plain.get("recipe"),
            drawn_elsewhere=DrawnElsewhere(**plain["drawn_elsewhere"])
            if plain.get("drawn_elsewhere")
            else None,
            visible=bool(plain.get("visible", True)),
            awaiting_review=bool(plain.get("awaiting_review", False)),
            locked=bool(plain.get("locked", False)),
        )


class StructureSet:
    """The structures drawn on one image grid, with unique names and ROI numbers.

    Events (psygnal): `added(structure)`, `removed(structure)`, `changed(structure, box)` where
    box is the edited region (z, y, x slices) or None for a non-geometric change (name, colour).
    """

    added = Signal(object)
    removed = Signal(object)
    changed = Signal(object, object)

    def __init__(self, grid: Grid, frame_of_reference_uid: str = "", label: str = "Delineo"):
        self.grid = grid
        self.frame_of_reference_uid = frame_of_reference_uid
        self.label = label
        #: What reading the structures had to correct or leave out, in words (like Volume.warnings).
        self.warnings: list[str] = []
        self._structures: list[Structure] = []

    # -- access -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Structure]:
        return iter(list(self._structures))

    def __len__(self) -> int:
        return len(self._structures)

    def __contains__(self, name: str) -> bool:
        return any(s.name == name for s in self._structures)

    def __getitem__(self, name: str) -> Structure:
        for structure in self._structures:
            if structure.name == name:
                return structure
        raise KeyError(f"no structure named {name!r}; structures: {', '.join(self.names()) or 'none'}")

    def names(self) -> list[str]:
        """The structures' names, in order."""
        return [s.name for s in self._structures]

    def snapshot(self, names: Iterable[str] | None = None, label: str | None = None) -> StructureSet:
        """A copy of the set, or of its structures `names` in that order, whose masks are shared
        copy-on-write (`Structure.snapshot`): what a worker reads while the user goes on editing.
        It keeps the reading warnings; `label` replaces the set's label."""
        copy = StructureSet(self.grid, self.frame_of_reference_uid, self.label if label is None else label)
        copy.warnings = list(self.warnings)
        for structure in self if names is None else [self[name] for name in names]:
            copy.add(structure.snapshot(), rename=False)
        return copy

    # -- changes ------------------------------------------------------------------------------

    def add(self, structure: Structure, *, rename: bool = True) -> Structure:
        """Add a structure; give it a free ROI number and, if `rename`, a unique name."""
        if structure.mask.grid is not self.grid and not structure.mask.grid.same_as(self.grid):
            raise GeometryError(f"structure {structure.name!r} is on another grid than this structure set")
        if structure.name in self:
            if not rename:
                raise ValueError(f"a structure named {structure.name!r} already exists")
            structure.name = self.unique_name(structure.name)
        used = {s.number for s in self._structures}
        if structure.number <= 0 or structure.number in used:
            structure.number = next(n for n in itertools.count(1) if n not in used)
        self._structures.append(structure)
        self.added.emit(structure)
        return structure

    def remove(self, name: str) -> Structure:
        """Remove the structure named `name`, emit `removed` and return it (KeyError when there is none)."""
        structure = self[name]
        self._structures.remove(structure)
        self.removed.emit(structure)
        return structure

    def unique_name(self, name: str) -> str:
        """`name`, or `name_2`, `name_3`… whichever is not taken."""
        if name not in self:
            return name
        return next(f"{name}_{n}" for n in itertools.count(2) if f"{name}_{n}" not in self)

    def edit_mask(self, name: str, box: Box, values: np.ndarray) -> np.ndarray:
        """Replace a structure's mask inside `box`; return the previous values there (for undo).

        Editing drops the imported planar contours (and what `drawn_elsewhere` says of them) and
        marks the structure SEMIAUTOMATIC if it was AUTOMATIC (a model's contour a person changed).
        """
        structure = self[name]
        before = structure.mask.region(box)
        structure.mask.replace_region(box, values)
        structure.contours = structure.drawn_elsewhere = None
        if structure.algorithm == GenerationAlgorithm.AUTOMATIC:
            structure.algorithm = GenerationAlgorithm.SEMIAUTOMATIC
        self.changed.emit(structure, box)
        return before

    def set_mask(self, name: str, mask: Mask) -> None:
        """Replace a structure's whole geometry."""
        structure = self[name]
        old_box, structure.mask = structure.mask.box, mask
        structure.contours = structure.drawn_elsewhere = None
        self.changed.emit(structure, _union_box(old_box, mask.box))

    def notify(self, structure: Structure) -> None:
        """Tell listeners a structure's attributes (name, colour, visibility…) changed."""
        self.changed.emit(structure, None)

    # -- label maps ---------------------------------------------------------------------------

    def to_label_map(self, names: list[str] | None = None) -> np.ndarray:
        """uint16 label map (z, y, x): structure i of `names` (default: all, in order) → i + 1.

        Where structures overlap, the later one wins; use per-structure masks when that matters.
        """
        names = self.names() if names is None else names
        dtype = np.uint8 if len(names) < 256 else np.uint16
        labels = np.zeros(self.grid.shape, dtype)
        for value, name in enumerate(names, start=1):
            mask = self[name].mask
            if mask.box is not None:
                labels[mask.box][mask.array] = value
        return labels

    @classmethod
    def from_label_map(
        cls,
        grid: Grid,
        labels: np.ndarray,
        names: dict[int, str] | None = None,
        *,
        frame_of_reference_uid: str = "",
        algorithm: GenerationAlgorithm = GenerationAlgorithm.MANUAL,
    ) -> StructureSet:
        """One structure per non-zero label value (named `names[value]`, else "Label_<value>"),
        coloured by its name (`style_for`: "liver" takes TG-263's Liver colour), changed where
        needed to be told apart from the structures before it (`distinct_color`)."""
        from planning.tg263 import distinct_color, style_for

        if tuple(labels.shape) != grid.shape:
            raise GeometryError(f"label map of shape {labels.shape} does not fit grid {grid.shape}")
        structure_set = cls(grid, frame_of_reference_uid)
        values = [int(v) for v in np.unique(labels) if v != 0]
        boxes = _label_boxes(labels, values)
        for value in values:
            box = boxes[value]
            name = (names or {}).get(value, f"Label_{value}")
            color, roi_type = style_for(name)
            color = distinct_color(color, [s.color for s in structure_set])
            mask = Mask(grid, labels[box] == value, tuple(s.start for s in box))
            structure_set.add(Structure(name, mask, color, roi_type, algorithm, number=value))
        return structure_set


def _label_boxes(labels: np.ndarray, values: list[int]) -> dict[int, Box]:
    """Bounding box of every label value in one pass (scipy's find_objects)."""
    from scipy import ndimage

    if not values:
        return {}
    objects = ndimage.find_objects(labels, max_label=max(values))
    return {value: objects[value - 1] for value in values}


def _union_box(a: Box | None, b: Box | None) -> Box | None:
    if a is None or b is None:
        return a or b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True))
