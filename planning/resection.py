"""Virtual resection: cut an organ with a plane or a shaped sheet, cut out the inside of a closed
surface, or remove a tumour with a safety margin in mm.

Each returns a `Resection`: the resected part and the remnant as new `Structure`s (voxel masks on
the organ's grid, a voxel belonging to the side its centre lies on), their volumes in cc and in %
of the organ, and the other structures the resection reaches (a vessel the cut crosses, a duct
removed whole). A structure is reached when it has voxels in the *resected region*: the resected
part of the organ and, outside the organ (where a label map puts the vessels), the region the
surgeon removes or cuts through: the tumour grown by the safety margin, the inside of a cutting
surface, or the voxels a cutting sheet passes through within `SHEET_REACH_MM` of the organ (a
vessel in a groove of the organ or at its hilum; not the aorta or the spine a plane through the
liver meets further on). The cavities the organ (for a cut) or the grown tumour encloses are
part of it: a label map cuts the tumours and vessels inside an organ out of the organ's label,
so a tumour in the resected half is a hole in the organ, removed with it.

The volumes reported are those of the structures created (voxel count × voxel volume), so the
numbers the user reads are those of the structures they get. A resection that removes nothing
of the organ raises `GeometryError` naming it. An organ that reaches the first or last slice or
the in-plane border of the images (a liver whose top the scan cuts off) is measured as imaged:
`Resection.edges` names the sides and `Resection.warnings` says that its volumes and
percentages are of the imaged part only, and which of the two parts reaches each side. Likewise
a structure whose part in the resected region runs off the images is not said to be removed
whole (`Reached.edges`), and one that touches the resected region (for a sheet, the cut) where
both run off the images is named as possibly reached past them (`Resection.beyond`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from planning.errors import GeometryError
from planning.margins import edge_planes, edges_in_words, sides_at_edges
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure
from planning.surfaces.mesh import Surface

Progress = Callable[[str, float, float], None]


#: Closest two bends of a cutting sheet may be, measured in its plane (mm).
MIN_BEND_SPACING_MM = 1.0
#: A cutting sheet reaches the structures it passes through within this distance of the organ (mm).
SHEET_REACH_MM = 5.0


@dataclass(frozen=True)
class CutSheet:
    """A cutting surface: a plane, optionally bent through control points.

    The sheet is the plane through `origin` with unit `normal`, displaced along the normal by a
    thin-plate spline through the `bends` (LPS points the sheet must pass through) that is flat
    far away. The resected side is the side the normal points to.

    Attributes:
        origin: LPS point (mm) on the plane.
        normal: direction (normalised here) pointing into the part to resect.
        bends: (K, 3) LPS points (mm) the sheet passes through; none for a plane.
    """

    origin: tuple[float, float, float]
    normal: tuple[float, float, float]
    bends: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __post_init__(self) -> None:
        normal = np.asarray(self.normal, float)
        length = np.linalg.norm(normal)
        if length == 0 or not np.isfinite(length):
            raise ValueError("a cutting plane needs a non-zero normal")
        object.__setattr__(self, "normal", tuple(normal / length))
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "bends", np.asarray(self.bends, float).reshape(-1, 3))
        self._require_separate_bends()

    def _require_separate_bends(self) -> None:
        """Two bends at one place in the plane (one above the other along the normal) ask the
        sheet to pass at two heights there: refuse them, naming them (numbered from 1)."""
        u, v, _ = self._frame()
        bends = self.bends - np.asarray(self.origin)
        in_plane = np.stack([bends @ u, bends @ v], axis=1)
        for i in range(len(in_plane)):
            apart = np.linalg.norm(in_plane[i + 1 :] - in_plane[i], axis=1)
            close = np.flatnonzero(apart < MIN_BEND_SPACING_MM)
            if len(close):
                j = i + 1 + int(close[0])
                raise ValueError(
                    f"points {i + 1} and {j + 1} of the cut lie {apart[close[0]]:.1f} mm apart across "
                    f"the cutting direction (at least {MIN_BEND_SPACING_MM:g} mm is needed): the "
                    "sheet cannot pass through both; remove one"
                )

    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        normal = np.asarray(self.normal)
        helper = np.eye(3)[np.argmin(np.abs(normal))]
        u = np.cross(normal, helper)
        u /= np.linalg.norm(u)
        return u, np.cross(normal, u), normal

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of LPS points above the sheet, along the normal: > 0 on the
        resected side. Exact for a plane; for a bent sheet, measured along the normal."""
        points = np.asarray(points, float).reshape(-1, 3) - np.asarray(self.origin)
        u, v, n = self._frame()
        above_plane = points @ n
        if len(self.bends) == 0:
            return above_plane
        from scipy.interpolate import RBFInterpolator

        bends = self.bends - np.asarray(self.origin)
        plane_uv = np.stack([bends @ u, bends @ v], axis=1)
        reach = 10.0 * max(float(np.abs(plane_uv).max()), 100.0)
        anchors = np.array([[reach, 0], [-reach, 0], [0, reach], [0, -reach]], float)
        spline = RBFInterpolator(
            np.concatenate([plane_uv, anchors]),
            np.concatenate([bends @ n, np.zeros(4)]),
            kernel="thin_plate_spline",
        )
        return above_plane - spline(np.stack([points @ u, points @ v], axis=1))


@dataclass(frozen=True)
class Reached:
    """A structure the resection reaches: one with voxels in the resected region (see the module
    docstring), which includes the safety margin and the cut outside the organ.

    Attributes:
        name: the structure's name.
        resected_cc: its volume (cc) inside the resected region.
        fraction: that volume over the structure's volume (0–1).
        crossed: whether the region's boundary runs through it, i.e. part of it lies outside
            the region (False: removed whole, as far as the images show).
        edges: patient sides ("superior", "left"…) where its part in the region reaches the edge
            of the images: it goes on past them, where more of it may be resected, so its volume
            and share are of the imaged part and "removed whole" cannot be said.
    """

    name: str
    resected_cc: float
    fraction: float
    crossed: bool
    edges: tuple[str, ...] = ()

    @property
    def how(self) -> str:
        """How the resection reaches it, in words: crossed, removed whole, or either as far as
        imaged where it runs off the images inside the resected region."""
        if not self.edges:
            return "crossed" if self.crossed else "removed whole"
        beyond = f"it runs off {edges_in_words(list(self.edges))} of the images inside the resected region"
        return f"crossed; {beyond}" if self.crossed else f"removed as far as imaged: {beyond}"


@dataclass
class Resection:
    """The outcome of a virtual resection.

    Attributes:
        resected: the part removed, as a new structure.
        remnant: the part left, as a new structure.
        organ_cc: the organ's volume.
        resected_cc, remnant_cc: volumes of the two parts in cc.
        reached: other structures the resected part reaches, largest share first.
        warnings: what limits the result, in words (the organ or a safety margin cut by the end of
            the images).
        edges: patient sides ("superior", "left"…) where the organ reaches the edge of the
            images: its volumes and percentages are of the imaged part only.
        beyond: other structures not reached in the images that touch the resected region (for
            a cutting sheet, the voxels it cuts) in the last plane of the images on a side both
            reach, with those sides: they may be reached past the images, unchecked.
    """

    resected: Structure
    remnant: Structure
    organ_cc: float
    resected_cc: float
    remnant_cc: float
    reached: list[Reached]
    warnings: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    beyond: dict[str, list[str]] = field(default_factory=dict)

    @property
    def resected_percent(self) -> float:
        """The resected part's share of the organ's volume, in %."""
        return 100.0 * self.resected_cc / self.organ_cc if self.organ_cc else 0.0

    @property
    def remnant_percent(self) -> float:
        """The remnant's share of the organ's volume, in %."""
        return 100.0 * self.remnant_cc / self.organ_cc if self.organ_cc else 0.0

    def summary(self) -> str:
        """Volumes (cc, %) of the two parts and the structures reached, one per line."""
        lines = [
            f"{self.resected.name}: {self.resected_cc:.1f} cc ({self.resected_percent:.1f} %)",
            f"{self.remnant.name}: {self.remnant_cc:.1f} cc ({self.remnant_percent:.1f} %)",
        ]
        for item in self.reached:
            lines.append(
                f"  {item.name}: {item.how}, {item.resected_cc:.2f} cc in the resected region "
                f"({100 * item.fraction:.0f} %)"
            )
        return "\n".join(lines)


# -- resections ---------------------------------------------------------------------------------


def cut_with_sheet(organ: Structure, sheet: CutSheet, others: Iterable[Structure] = ()) -> Resection:
    """Resect the part of `organ` on the sheet's normal side; other structures in that part
    (its cavities included) or cut by the sheet within `SHEET_REACH_MM` of the organ (in its
    bounding box) are reported as reached."""
    mask = _require(organ)
    box = mask.box
    centres = _voxel_centres(mask.grid, box)
    height = sheet.height(centres).reshape(mask.array.shape)
    resected = mask.array & (height > 0)
    _require_resected(resected, f"no part of {organ.name!r} lies on the resected side of the cutting sheet")
    filled = _with_cavities(mask)
    sheet_voxels = np.abs(height) <= _half_thickness(mask.grid, sheet.normal)
    near = ndimage.distance_transform_edt(~filled, sampling=mask.grid.spacing_zyx) <= SHEET_REACH_MM
    region = (filled & (height > 0)) | (sheet_voxels & near)
    resected_mask = Mask(mask.grid, resected, mask.offset)
    cut_outside = Mask(mask.grid, sheet_voxels & near, mask.offset)
    return _result(organ, resected_mask, others, "cut", Mask(mask.grid, region, mask.offset), cut_outside)


def cut_inside(organ: Structure, surface: Surface, others: Iterable[Structure] = ()) -> Resection:
    """Resect the part of `organ` inside a closed surface (LPS mm); other structures inside the
    surface, in the organ or not, are reported as reached."""
    from planning.surfaces.voxels import voxelize

    mask = _require(organ)
    resected = mask.array & voxelize(surface, mask.grid, mask.box)
    _require_resected(resected, f"the surface {surface.name!r} holds no voxel of {organ.name!r}")
    box = _points_box(mask.grid, surface.points)
    region = Mask(mask.grid, voxelize(surface, mask.grid, box), [s.start for s in box])
    return _result(organ, Mask(mask.grid, resected, mask.offset), others, "cut", region)


def resect_with_margin(
    organ: Structure,
    tumour: Structure,
    margin_mm: float,
    others: Iterable[Structure] = (),
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Resection:
    """Resect `tumour` with a safety margin: the organ's voxels within `margin_mm` of the tumour
    (the tumour grown by the margin, `planning.margins.expand`) are removed. Other structures
    with voxels in the grown tumour or a cavity it encloses, inside the organ or not, are
    reported as reached. A margin that runs past the end of the images is cut there:
    `Resection.warnings` names the sides."""
    from planning.margins import expand_to_edges

    if margin_mm < 0:
        raise ValueError(f"a safety margin is a distance ≥ 0 mm, got {margin_mm}")
    mask = _require(organ)
    if tumour.mask.is_empty:
        raise GeometryError(f"structure {tumour.name!r} is empty: nothing to resect")
    grown, cut = expand_to_edges(tumour.mask, margin_mm, on_progress=on_progress, cancel=cancel)
    box = mask.box
    resected = mask.array & grown.region(box)
    _require_resected(resected, f"{tumour.name!r} grown by {margin_mm:g} mm does not reach {organ.name!r}")
    result = _result(
        organ,
        Mask(mask.grid, resected, mask.offset),
        [s for s in others if s is not tumour],
        f"{tumour.name} + {margin_mm:g} mm",
        Mask(grown.grid, _with_cavities(grown), grown.offset),
    )
    if cut:
        result.warnings.append(
            f"the {margin_mm:g} mm safety margin around {tumour.name} runs past the edge of the images "
            f"on the {' and '.join(cut)} side and is cut there: what lies beyond the images is neither "
            "resected nor checked for structures reached"
        )
    return result


# -- helpers -----------------------------------------------------------------------------------


def _require(organ: Structure) -> Mask:
    if organ.mask.is_empty:
        raise GeometryError(f"structure {organ.name!r} is empty: nothing to resect")
    return organ.mask


def _with_cavities(mask: Mask) -> np.ndarray:
    """`mask.array` (its box, z y x) with the cavities it encloses filled. A cavity open only
    to the end or edge of the images counts as enclosed: the structure goes on past them."""
    padded = np.pad(mask.array, 1)
    for axis, (part, size) in enumerate(zip(mask.box, mask.grid.shape, strict=True)):
        for face, at_edge in ((0, part.start == 0), (-1, part.stop == size)):
            if at_edge:
                padded[(slice(None),) * axis + (face,)] = True
    return ndimage.binary_fill_holes(padded)[1:-1, 1:-1, 1:-1]


def _voxel_centres(grid, box) -> np.ndarray:
    """LPS centres (n, 3) of the voxels of `box`, in (z, y, x) C order."""
    z, y, x = np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij")
    return grid.index_to_patient(np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1).astype(float))


def _half_thickness(grid, normal) -> float:
    """Half the extent (mm) of a voxel along `normal` (LPS): a voxel whose centre is nearer a
    plane with that normal than this is cut by it."""
    along_axes = np.abs(np.asarray(normal) @ grid.direction) * np.asarray(grid.spacing_xyz)
    return 0.5 * float(along_axes.sum())


def _points_box(grid, points: np.ndarray):
    """(z, y, x) slices of the grid voxels around LPS `points` (some of them on the grid)."""
    index = grid.patient_to_index(points)[:, ::-1]
    low = np.maximum(np.floor(index.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1, grid.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _require_resected(resected: np.ndarray, problem: str) -> None:
    if not resected.any():
        raise GeometryError(f"{problem}: nothing to resect")


def _result(
    organ: Structure, resected: Mask, others, how: str, region: Mask, cut_at_edges: Mask | None = None
) -> Resection:
    """The resection of `resected` (organ voxels); other structures count as reached in
    `region`, the resected region outside the organ too. Those touching `cut_at_edges` (by
    default `region`; for a sheet, the voxels it cuts: the organ's resected part goes on past
    the images, but what borders it is only cut where the sheet passes) where both run off the
    images may be reached past them."""
    others = list(others)
    remnant = Mask(organ.mask.grid, organ.mask.array & ~resected.array, organ.mask.offset)
    tight_resected, tight_remnant = _tight(resected), _tight(remnant)
    organ_cc = organ.mask.volume_cc
    resected_cc = tight_resected.volume_cc
    reached = [item for other in others if (item := _reached(other, organ, region))]
    reached.sort(key=lambda r: -r.resected_cc)
    description = f"virtual resection of {organ.name} ({how})"
    edges = sides_at_edges(organ.mask)
    warnings = []
    if edges:
        parts = {"the resected part": sides_at_edges(resected), "the remnant": sides_at_edges(remnant)}
        warnings.append(_edge_warning(organ.name, edges, parts))
    reached_names = {item.name for item in reached}
    unreached = [s for s in others if s is not organ and s.name not in reached_names]
    beyond = _beyond_images(unreached, region if cut_at_edges is None else cut_at_edges)
    if beyond:
        warnings.append(_beyond_warning(beyond))
    return Resection(
        resected=Structure(
            f"{organ.name}_resected",
            tight_resected,
            (230, 60, 60),
            RoiType.CONTROL,
            GenerationAlgorithm.SEMIAUTOMATIC,
            description=description,
        ),
        remnant=Structure(
            f"{organ.name}_remnant",
            tight_remnant,
            organ.color,
            organ.roi_type,
            GenerationAlgorithm.SEMIAUTOMATIC,
            description=description,
        ),
        organ_cc=organ_cc,
        resected_cc=resected_cc,
        remnant_cc=tight_remnant.volume_cc,
        reached=reached,
        warnings=warnings,
        edges=edges,
        beyond=beyond,
    )


def _edge_warning(organ: str, edges: list[str], parts: dict[str, list[str]]) -> str:
    """The warning for an organ reaching `edges` of the images; `parts`: the sides each part
    (the resected part, the remnant) reaches: which of them the images cut off."""
    it = "it" if len(edges) == 1 else "them"
    if all(sides == edges for sides in parts.values()):
        which = f"both parts reach {it}"
    else:
        which = ", ".join(
            f"{part} reaches {it}"
            if sides == edges
            else f"{part} does not"
            if not sides
            else f"{part} reaches {edges_in_words(sides)}"
            for part, sides in parts.items()
        )
    return (
        f"{organ} reaches {edges_in_words(edges)} of the images: its volumes and percentages are of "
        f"the imaged part only ({which})"
    )


def _reached(other: Structure, organ: Structure, region: Mask) -> Reached | None:
    """How much of `other` lies in the resected `region`; None for none (or the organ itself)."""
    if other is organ or other.mask.is_empty or region.box is None:
        return None
    in_region = other.mask.region(region.box) & region.array
    inside = int(np.count_nonzero(in_region))
    if inside == 0:
        return None
    total = other.mask.voxel_count
    edges = sides_at_edges(Mask(region.grid, in_region, region.offset))
    return Reached(
        other.name, inside * other.mask.grid.voxel_volume_cc, inside / total, inside < total, tuple(edges)
    )


def _beyond_images(others: list[Structure], region: Mask) -> dict[str, list[str]]:
    """The structures of `others` that touch `region` (share or neighbour a voxel, diagonals
    included) in the last plane of the images on a side both reach, with those sides: past the
    images they may go into it."""
    beyond: dict[str, list[str]] = {}
    for side, (_, plane) in edge_planes(region).items():
        near = ndimage.binary_dilation(plane, np.ones((3, 3), bool))
        for other in others:
            theirs = edge_planes(other.mask).get(side)
            if theirs is not None and (theirs[1] & near).any():
                beyond.setdefault(other.name, []).append(side)
    return beyond


def _beyond_warning(beyond: dict[str, list[str]]) -> str:
    """The warning for structures that may be reached past the edges of the images."""
    named = ", ".join(f"{name} ({edges_in_words(sides)})" for name, sides in beyond.items())
    one = len(beyond) == 1
    return (
        f"{named} {'touches' if one else 'touch'} the resected region where both run off the images: "
        f"past the images, which show nothing, {'it' if one else 'they'} may be reached too"
    )


def _tight(mask: Mask) -> Mask:
    """The same voxels with the box cropped to them."""
    result = Mask(mask.grid)
    if mask.box is not None and mask.array.any():
        result.replace_region(mask.box, mask.array)
    return result
