"""Placing an RTSTRUCT's contours on the planes of the loaded images, and refusing what does not fit.

`ImagePlanes` finds each contour's image plane k (by position along the slice normal) and its
in-plane (u, v) indices (u along the columns, v along the rows, as `planning.rtstruct.contours`
takes them); distances are in mm. Contours drawn on another reconstruction of the frame of
reference (`planning.rtstruct.drawn_planes`) go instead on each image plane they are the nearest
contour plane of. Here too: checks of the file's frame of reference against the images', and of
contours that lie beyond the images, between their planes or beyond their in-plane edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planning.dicom.stack import image_plane_origins
from planning.errors import ContoursOffImagesError, GeometryError
from planning.rtstruct.drawn_planes import DrawnPlanes
from planning.rtstruct.rois import RoiRecord
from planning.structures import CLOSED_TYPES, PlanarContour
from planning.volume import Volume

#: Contour points farther than this beyond the images' in-plane edges (the outer pixel borders, mm)
#: lie outside the images.
EDGE_TOLERANCE_MM = 0.05


class ImagePlanes:
    """Puts contours on the volume's planes: by image reference, else by position; or, drawn on
    other planes (`drawn`), on the image planes they are the nearest contour plane of."""

    def __init__(self, volume: Volume, drawn: DrawnPlanes | None = None):
        grid = volume.grid
        self.grid = grid
        self.slices = volume.slices
        self.origins = image_plane_origins(grid, volume.slices)
        self.axes = grid.direction / np.asarray(grid.spacing_xyz)  # patient mm → index steps
        self.normal = grid.direction[:, 2]
        #: a contour lies on a plane when all its points are within this of it (half a slice, mm)
        self.on_plane_mm = 0.5 * grid.spacing_xyz[2]
        tolerance = EDGE_TOLERANCE_MM / np.asarray(grid.spacing_xyz[:2])
        #: (u, v) of the images' in-plane edges, the outer pixel borders, widened by the tolerance
        self.low_uv = -0.5 - tolerance
        self.high_uv = np.array(grid.shape[:0:-1]) - 0.5 + tolerance
        self.uids: dict[str, list[int]] = {}
        for k, ref in enumerate(volume.slices):
            if ref is not None:
                self.uids.setdefault(ref.sop_instance_uid, []).append(k)
        #: the planes the contours were drawn on when they are not the images' (None: they are)
        self.drawn = drawn
        #: the drawn plane each image plane takes (the nearest, within half their spacing), or -1
        self.taken = drawn.nearest(self.origins @ self.normal) if drawn else None

    def place(self, contour: PlanarContour) -> tuple[int, np.ndarray, float]:
        """(plane k, in-plane indices (N, 2), farthest point from that plane in mm).

        The plane is the one the points lie on; k is outside 0 … size-1 for a contour beyond the
        first or last image.
        """
        points = contour.points
        along = (points - self.origins[0]) @ self.normal / self.grid.spacing_xyz[2]
        k = int(np.rint(along.mean()))
        if k < 0 or k >= len(self.origins):
            return k, np.zeros((0, 2)), np.inf
        distance = float(np.abs((points - self.origins[k]) @ self.normal).max())
        return k, self.in_plane(contour, k), distance

    def in_plane(self, contour: PlanarContour, k: int) -> np.ndarray:
        """The contour's in-plane indices (N, 2) (u, v) on image plane k."""
        return (contour.points - self.origins[k]) @ self.axes[:, :2]

    def nearest_planes(self, contour: PlanarContour) -> list[int]:
        """The image planes that take a contour drawn on other planes: those its plane is the
        nearest drawn plane of."""
        n = self.drawn.nearest(np.array([float((contour.points @ self.normal).mean())]))[0]
        return np.flatnonzero(self.taken == n).tolist() if n >= 0 else []

    def onto_plane(self, contour: PlanarContour, k: int) -> PlanarContour:
        """The contour moved along the slice normal onto image plane k, its outline unchanged,
        referencing that plane's image."""
        points = contour.points - np.outer((contour.points - self.origins[k]) @ self.normal, self.normal)
        ref = self.slices[k]
        return PlanarContour(points, contour.geometric_type, ref.sop_instance_uid if ref else "")

    def beyond_images(self, contour: PlanarContour) -> bool:
        """Whether a contour lies more than half an image slice beyond the first or last image."""
        along = float((contour.points @ self.normal).mean())
        ends = self.origins[[0, -1]] @ self.normal
        return not ends.min() - self.on_plane_mm <= along <= ends.max() + self.on_plane_mm

    def where(self, k: int, distance: float) -> str:
        """What `place`'s answer means: "beyond" the first or last image, "between" the planes
        (no plane holds every point: not planar, or other slice positions), or "on" plane k."""
        if not 0 <= k < len(self.origins):
            return "beyond"
        return "between" if distance > self.on_plane_mm else "on"

    def beyond_edges(self, uv: np.ndarray) -> str:
        """Where in-plane indices (N, 2) (u, v) lie against the images' edges: "" within them,
        "wholly" or "partly" beyond them."""
        if np.all((uv >= self.low_uv) & (uv <= self.high_uv)):
            return ""
        away = np.any(uv.max(axis=0) < self.low_uv) or np.any(uv.min(axis=0) > self.high_uv)
        return "wholly" if away else "partly"

    def describe_range(self) -> str:
        """Where the images lie along the slice normal, in mm, in words (for messages)."""
        first, last = self.origins[0] @ self.normal, self.origins[-1] @ self.normal
        return f"the images span {min(first, last):.1f} to {max(first, last):.1f} mm along the slice normal"


@dataclass
class PlacedRoi:
    """A record's closed contours on their planes, and what did not fit. `contours` are those
    kept as the structure's own: as drawn, or, drawn on other planes, moved onto each image
    plane that takes them (`ImagePlanes.onto_plane`)."""

    contours: list[PlanarContour] = field(default_factory=list)
    loops: list[np.ndarray] = field(default_factory=list)
    planes: list[int] = field(default_factory=list)
    markers: list[PlanarContour] = field(default_factory=list)
    outside: list[PlanarContour] = field(default_factory=list)
    between_planes: list[PlanarContour] = field(default_factory=list)
    too_short: int = 0
    markers_beyond: int = 0
    mismatched: int = 0
    unknown_image: int = 0
    other_plane: int = 0
    off_plane_mm: float = 0.0
    beyond_edges: dict[str, int] = field(default_factory=lambda: {"wholly": 0, "partly": 0})
    unused: int = 0


def place_roi(record: RoiRecord, placer: ImagePlanes) -> PlacedRoi:
    """Place a record's contours on the image planes: closed contours with at least 3 points on a plane are
    kept with their (u, v) loops and plane k (those beyond the in-plane edges counted too); markers are
    kept aside; what does not fit is counted or listed for the warnings. Contours drawn on other planes
    go on each image plane that takes them (`ImagePlanes.nearest_planes`)."""
    placed = PlacedRoi()
    for contour, declared in zip(record.contours, record.declared_points, strict=True):
        if declared is not None and declared != len(contour.points):
            placed.mismatched += 1
        k, uv, distance = placer.place(contour)
        if contour.geometric_type not in CLOSED_TYPES:
            placed.markers_beyond += placer.where(k, distance) == "beyond"
            placed.markers.append(contour)
            continue
        if len(contour.points) < 3:
            placed.too_short += 1
            continue
        if placer.drawn is not None:
            _place_on_nearest_planes(contour, placer, placed)
            continue
        where = placer.where(k, distance)
        if where != "on":
            (placed.outside if where == "beyond" else placed.between_planes).append(contour)
            continue
        if contour.image_uid:
            planes_of_image = placer.uids.get(contour.image_uid)
            if planes_of_image is None:
                placed.unknown_image += 1
            elif k not in planes_of_image:
                placed.other_plane += 1
        placed.off_plane_mm = max(placed.off_plane_mm, distance)
        _keep(contour, [(k, uv)], placer, placed)
    return placed


def _place_on_nearest_planes(contour: PlanarContour, placer: ImagePlanes, placed: PlacedRoi) -> None:
    """A contour drawn on other planes, kept on the image planes that take it; taken by none, it
    is beyond the images or on a plane between those taken (unused)."""
    planes = placer.nearest_planes(contour)
    if planes:
        loops = [(k, placer.in_plane(contour, k)) for k in planes]
        _keep(contour, loops, placer, placed, [placer.onto_plane(contour, k) for k in planes])
    elif placer.beyond_images(contour):
        placed.outside.append(contour)
    else:
        placed.unused += 1


def _keep(
    contour: PlanarContour,
    loops: list[tuple[int, np.ndarray]],
    placer: ImagePlanes,
    placed: PlacedRoi,
    own: list[PlanarContour] | None = None,
) -> None:
    """Keep a contour with its (plane k, (u, v) loop) on each plane it goes on; `own`: what the
    structure keeps of it (default: the contour itself)."""
    if edges := placer.beyond_edges(loops[0][1]):
        placed.beyond_edges[edges] += 1
    placed.contours += own or [contour]
    for k, uv in loops:
        placed.loops.append(uv)
        placed.planes.append(k)


def stated_frames(dataset) -> set[str]:
    """The frames of reference an RTSTRUCT dataset says its structures are in."""
    frames = {
        str(item.get("FrameOfReferenceUID", ""))
        for item in dataset.get("ReferencedFrameOfReferenceSequence", [])
    }
    frames |= {
        str(item.get("ReferencedFrameOfReferenceUID", ""))
        for item in dataset.get("StructureSetROISequence", [])
    }
    frames.discard("")
    return frames


def check_frame_of_reference(
    path: Path, dataset, records: list[RoiRecord], volume: Volume, placer: ImagePlanes, warnings: list[str]
) -> None:
    """Refuse another frame of reference, unless the contours reference the loaded images."""
    frames = stated_frames(dataset)
    own = volume.frame_of_reference_uid
    referenced = {c.image_uid for r in records for c in r.contours if c.image_uid}
    loaded = referenced & set(placer.uids)
    if own and frames and own not in frames:
        if not loaded:
            raise GeometryError(
                f"{path.name} belongs to frame of reference {', '.join(sorted(frames))}, but the loaded "
                f"images (series {volume.identity.series_instance_uid}) are in {own}: load the images "
                "the structures were drawn on"
            )
        warnings.append(
            f"the file states frame of reference {', '.join(sorted(frames))} while the images are in "
            f"{own}; its contours reference {len(loaded)} of the loaded images one by one, so they "
            "were placed on those images"
        )


def in_images_frame(
    path: Path, frames: set[str], records: list[RoiRecord], volume: Volume, warnings: list[str]
) -> list[RoiRecord]:
    """In a file that names the images' frame of reference (`frames`: those it states), the ROIs
    not declared in another; the others are left out with a warning, an error when none is left."""
    own = volume.frame_of_reference_uid
    if not own or own not in frames:
        return records  # the file is in another frame: `check_frame_of_reference` decided
    kept = [r for r in records if r.frame_of_reference in ("", own)]
    for record in records:
        if record not in kept:
            warnings.append(
                f"{record.name}: declared in frame of reference {record.frame_of_reference}, not in the "
                f"images' {own}; left out (it was drawn on other images)"
            )
    if not kept:
        raise GeometryError(
            f"{path.name}: no ROI is in the images' frame of reference {own}; "
            f"{_names(records)} are declared in another"
        )
    return kept


def _names(records: list[RoiRecord]) -> str:
    return ", ".join(r.name for r in records[:6]) + ("…" if len(records) > 6 else "")


def check_outside(
    path: Path,
    placed: list[tuple[RoiRecord, PlacedRoi]],
    placer: ImagePlanes,
    allow_missing_images: bool,
    warnings: list[str],
) -> None:
    """Refuse contours beyond the loaded images or off their planes (unless allowed: then they
    are left out, with a warning)."""
    problems = [_beyond_images(placed, placer), _between_planes(placed, placer)]
    for problem in filter(None, problems):
        message, advice = problem
        if not allow_missing_images:
            raise ContoursOffImagesError(f"{path.name}: {message}; {advice}")
        warnings.append(f"{message}; those contours were left out")


def _rois(contours: list[tuple[str, PlanarContour]]) -> str:
    rois = sorted({name for name, _ in contours})
    return ", ".join(rois[:6]) + ("…" if len(rois) > 6 else "")


def _beyond_images(placed: list[tuple[RoiRecord, PlacedRoi]], placer: ImagePlanes) -> tuple[str, str] | None:
    """(what is wrong, what to do) for contours beyond the first or last loaded image."""
    outside = [(record.name, contour) for record, p in placed for contour in p.outside]
    if not outside:
        return None
    missing = sorted({c.image_uid for _, c in outside if c.image_uid and c.image_uid not in placer.uids})
    positions = [float(c.points.mean(axis=0) @ placer.normal) for _, c in outside]
    where = (
        f"at {min(positions):.1f} to {max(positions):.1f} mm"
        if len(set(positions)) > 1
        else (f"at {positions[0]:.1f} mm")
    )
    message = (
        f"{len(outside)} contour(s) of {_rois(outside)} lie beyond the loaded images "
        f"({where}; {placer.describe_range()})"
    )
    if missing:
        shown = ", ".join(missing[:3]) + ("…" if len(missing) > 3 else "")
        message += f" on {len(missing)} image(s) that are not loaded ({shown})"
    return message, "load the complete image series the structures were drawn on"


def _between_planes(placed: list[tuple[RoiRecord, PlacedRoi]], placer: ImagePlanes) -> tuple[str, str] | None:
    """(what is wrong, what to do) for contours within the images' extent that lie on no image
    plane: not planar (their points spread along the slice normal: a damaged contour), or drawn
    between the loaded slices (images with other slice positions)."""
    off = [(record.name, contour) for record, p in placed for contour in p.between_planes]
    if not off:
        return None
    along = [c.points @ placer.normal for _, c in off]
    spread = max(float(a.max() - a.min()) for a in along)
    thickness = placer.grid.spacing_xyz[2]
    where = ", ".join(f"{float(a.mean()):.1f}" for a in along[:3]) + ("…" if len(along) > 3 else "")
    message = f"{len(off)} contour(s) of {_rois(off)} at {where} mm lie on no image plane"
    if spread > 0.5 * thickness:
        return (
            f"{message}: their points spread over up to {spread:.1f} mm along the slice normal",
            "the file is damaged",
        )
    return (
        f"{message}: they lie between the loaded slices ({thickness:.2f} mm apart)",
        "load the image series the structures were drawn on (these images have other slice positions)",
    )
