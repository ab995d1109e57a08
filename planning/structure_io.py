"""Opening and saving structure sets by path: RTSTRUCT, DICOM-SEG and label maps.

`load_structures` and `save_structures` are what the workstation, the CLI and the reports call
with whatever file the user points at; the kind is told by the file's content (DICOM) or ending
(NIfTI, NRRD, MHA). Structures always come back on the grid of the volume given, which must be
the images they belong to: an RTSTRUCT or SEG is placed through its image references and patient
coordinates; a label map is resampled onto the volume through patient coordinates (nearest
label), so a NIfTI with flipped axes or another voxel size lands where it belongs.

A label map's names come from `names` or from a JSON file beside it with the same stem
(``labels.nii.gz`` → ``labels.json``) mapping label values to names, e.g. ``{"1": "Liver"}``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from planning.dicom.headers import read_header
from planning.dicom.scan import RT_OBJECT_KINDS, scan
from planning.errors import DelineoError, FormatError, GeometryError
from planning.geometry import Grid
from planning.imageio import IMAGE_SUFFIXES, image_suffix, is_image_file, read_label_map, save_volume
from planning.structures import GenerationAlgorithm, StructureSet
from planning.volume import Volume

log = logging.getLogger(__name__)

#: Names: label value → name (label maps), or the ROI / segment names to read (RTSTRUCT, SEG).
Names = Mapping[int, str] | Sequence[str] | None


def load_structures(
    path: str | os.PathLike,
    volume: Volume,
    names: Names = None,
    *,
    algorithm: GenerationAlgorithm = GenerationAlgorithm.AUTOMATIC,
    **options,
) -> StructureSet:
    """Structures from an RTSTRUCT, a DICOM-SEG or a label map, on `volume`'s grid.

    Args:
        path: an RTSTRUCT or SEG file, a folder holding exactly one of them, or a NIfTI / NRRD /
            MHA label map.
        volume: the images the structures belong to.
        names: for a label map, label value → name (a mapping, or a list naming values 1, 2, …);
            for an RTSTRUCT or SEG, the names of the structures to read (default: all).
        algorithm: ROI generation algorithm recorded for label-map structures (AUTOMATIC: label
            maps are usually a model's output).
        options: passed to the RTSTRUCT reader (`allow_missing_images`, `on_progress`, `cancel`).

    Returns:
        The structure set; what had to be corrected is in its `warnings`.

    Raises:
        DelineoError (or a subclass) naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DelineoError(f"{path}: no such file or folder")
    if path.is_file() and is_image_file(path):
        return _load_label_map(path, volume, names, algorithm)
    if path.is_dir():
        path = _single_structure_object(path)
    kind = RT_OBJECT_KINDS.get(str(read_header(path).get("SOPClassUID", "")))
    selection = None if names is None or isinstance(names, Mapping) else list(names)
    if kind == "RTSTRUCT":
        from planning.rtstruct.reader import read_rtstruct

        return read_rtstruct(path, volume, names=selection, **options)
    if kind == "SEG":
        from planning.seg import read_seg

        return read_seg(path, volume, names=selection)
    modality = read_header(path).get("Modality") or "unknown"
    raise FormatError(f"{path.name}: holds no structures (a {modality} object, not an RTSTRUCT or SEG)")


#: Options of the RTSTRUCT writer that the mask formats (SEG, label map) have no use for.
_RTSTRUCT_ONLY = frozenset(
    ("simplify_mm", "keyhole", "min_island_mm2", "label", "notes", "on_progress", "cancel")
)


def save_structures(
    structure_set: StructureSet,
    volume: Volume,
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    **options,
) -> list[str]:
    """Save structures as an RTSTRUCT (``.dcm``), a DICOM-SEG (``.seg.dcm`` or kind="seg") or a
    label map (``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha`` with a ``.json`` of names beside it).

    Args:
        options: passed to the writer (for RTSTRUCT: `simplify_mm`, `keyhole`, `min_island_mm2`,
            `label`, `notes`, `on_progress`, `cancel`, which the other formats ignore). An option no
            writer knows is a TypeError.

    Returns:
        What the writer had to change or leave out, in words.
    """
    path = Path(path)
    kind = (kind or _kind_from_name(path)).lower()
    if kind != "rtstruct":  # the others hold masks: no contours to shape, written in one step
        options = {name: value for name, value in options.items() if name not in _RTSTRUCT_ONLY}
    if kind == "rtstruct":
        from planning.rtstruct.writer import write_rtstruct

        return write_rtstruct(structure_set, volume, path, **options)
    if kind == "seg":
        from planning.seg import write_seg

        return write_seg(structure_set, volume, path, **options)
    if kind == "labelmap":
        warning = label_map_warning(save_label_map(structure_set, volume, path, **options))
        return [warning] if warning else []
    raise FormatError(f"{path.name}: unknown structure format {kind!r}; use rtstruct, seg or labelmap")


def _kind_from_name(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".seg.dcm"):
        return "seg"
    if name.endswith(".dcm"):
        return "rtstruct"
    if is_image_file(path):
        return "labelmap"
    raise FormatError(
        f"{path.name}: cannot tell the format from the name; use .dcm (RTSTRUCT), .seg.dcm (DICOM-SEG) "
        f"or a label map ({', '.join(IMAGE_SUFFIXES)})"
    )


def _single_structure_object(folder: Path) -> Path:
    found = [obj for obj in scan(folder).rt_objects if obj.kind in ("RTSTRUCT", "SEG")]
    if len(found) != 1:
        what = "no RTSTRUCT or SEG" if not found else f"{len(found)} RTSTRUCT/SEG objects"
        listing = "".join(f"\n  {obj.path}" for obj in found)
        raise DelineoError(f"{folder} holds {what}; name the file{listing}")
    return found[0].path


# -- label maps -----------------------------------------------------------------------------


def label_names(path: Path, names: Names) -> dict[int, str]:
    """Label value → name from `names`, else from the JSON beside the label map, else {}."""
    if isinstance(names, Mapping):
        return {int(value): str(name) for value, name in names.items()}
    if names is not None:
        return {value: str(name) for value, name in enumerate(names, start=1)}
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return {}
    return read_names_file(sidecar)


def sidecar_path(path: Path) -> Path:
    """``labels.nii.gz`` → ``labels.json``."""
    suffix = image_suffix(path)
    return path.with_name(path.name[: -len(suffix)] + ".json") if suffix else path.with_suffix(".json")


def read_names_file(path: str | os.PathLike) -> dict[int, str]:
    """A JSON file of names: {"1": "Liver", …}, {"Liver": 1, …} or ["Liver", …] (values 1, 2, …)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FormatError(f"{path.name}: cannot be read as JSON ({error})") from error
    try:
        if isinstance(content, list):
            return {value: str(name) for value, name in enumerate(content, start=1)}
        if isinstance(content, dict):
            if all(str(key).lstrip("-").isdigit() for key in content):
                return {int(key): str(name) for key, name in content.items()}
            return {int(value): str(name) for name, value in content.items()}
    except (TypeError, ValueError):
        pass
    raise FormatError(f'{path.name}: expected {{"1": "name", …}}, {{"name": 1, …}} or a list of names')


def _load_label_map(path: Path, volume: Volume, names: Names, algorithm: GenerationAlgorithm) -> StructureSet:
    return label_map_structures(read_label_map(path), path, volume, names, algorithm=algorithm)


def label_map_structures(
    labels: Volume,
    path: str | os.PathLike,
    volume: Volume,
    names: Names = None,
    *,
    algorithm: GenerationAlgorithm = GenerationAlgorithm.AUTOMATIC,
) -> StructureSet:
    """The structures of a label map already read from `path` (`read_label_map`), on `volume`'s
    grid; `load_structures` without a second read, for a label map that is also the image.
    The label map's own warnings come first in the set's `warnings`."""
    path = Path(path)
    warnings = []
    array = _on_grid(labels, volume, path, warnings)
    structure_set = StructureSet.from_label_map(
        volume.grid,
        array,
        label_names(path, names),
        frame_of_reference_uid=volume.frame_of_reference_uid,
        algorithm=algorithm,
    )
    structure_set.label = path.name.split(".")[0][:16]
    structure_set.warnings = list(labels.warnings) + warnings
    for warning in warnings:
        log.warning("%s: %s", path.name, warning)
    return structure_set


def _on_grid(labels: Volume, volume: Volume, path: Path, warnings: list[str]) -> np.ndarray:
    """The label values on the volume's grid (nearest label through patient coordinates)."""
    target, source = volume.grid, labels.grid
    array = labels.array
    if source.same_as(target):
        return array
    overlap = _overlap_fraction(source, target)
    if overlap == 0:
        raise GeometryError(
            f"{path.name} does not overlap the images: its voxels lie elsewhere in patient space"
        )
    if _index_map(source, target) is None:
        warnings.append(
            f"label map resampled from {_describe(source)} onto the images' {_describe(target)} grid "
            "(nearest label)"
        )
    if overlap < 0.999:
        warnings.append(f"label map covers {overlap:.1%} of the images; the rest has no structures")
    outside = _labelled_outside(array, source, target)
    if outside:
        warnings.append(
            f"{outside} labelled voxels ({outside * source.voxel_volume_cc:.3g} cc) lie beyond the images "
            "and are left out"
        )
    return labels_on_grid(array, source, target)


def _labelled_outside(array: np.ndarray, source: Grid, target: Grid) -> int:
    """How many labelled (non-zero) voxels of `array` on `source` have centres beyond `target`
    (none when the source grid lies within the target; else counted a slice at a time)."""
    ends = [(0, n - 1) for n in source.shape[::-1]]
    corners = np.array([[x, y, z] for x in ends[0] for y in ends[1] for z in ends[2]], float)
    if _centres_within(corners, source, target).all():
        return 0
    count = 0
    for z, plane in enumerate(array):
        yx = np.argwhere(plane)
        if len(yx):
            index_xyz = np.column_stack([yx[:, 1], yx[:, 0], np.full(len(yx), z)])
            count += int(np.count_nonzero(~_centres_within(index_xyz, source, target)))
    return count


def labels_on_grid(array: np.ndarray, source: Grid, target: Grid) -> np.ndarray:
    """An integer (z, y, x) array on `source` carried onto `target` through patient coordinates.

    Voxels are copied exactly when every target voxel centre is a source voxel centre (the same
    voxels with axes flipped or permuted, or a sub-grid); otherwise each target voxel takes the
    label of the nearest source voxel. Outside the source grid the result is 0.
    """
    mapping = _index_map(source, target)
    if mapping is not None:
        return _take(array, mapping, target.shape)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(source.spacing_xyz)
    image.SetOrigin(source.origin_xyz)
    image.SetDirection(tuple(source.direction.ravel()))
    reference = sitk.Image([int(n) for n in target.shape[::-1]], image.GetPixelID())
    reference.SetSpacing(target.spacing_xyz)
    reference.SetOrigin(target.origin_xyz)
    reference.SetDirection(tuple(target.direction.ravel()))
    resampled = sitk.Resample(
        image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID()
    )
    return sitk.GetArrayFromImage(resampled)


def _index_map(source: Grid, target: Grid) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, offsets) with source index = steps[a] · target index[axis a] + offsets[a] per source
    axis, when target voxel centres fall on source voxel centres; else None. Axes in (z, y, x)."""
    matrix = np.linalg.inv(source.affine) @ target.affine  # target (x, y, z) → source (x, y, z)
    linear, offset = matrix[:3, :3], matrix[:3, 3]
    if not (
        np.allclose(linear, np.rint(linear), atol=1e-4) and np.allclose(offset, np.rint(offset), atol=1e-3)
    ):
        return None
    linear = np.rint(linear).astype(int)
    if not np.array_equal(np.abs(linear).sum(axis=0), np.ones(3)) or not np.array_equal(
        np.abs(linear).sum(axis=1), np.ones(3)
    ):
        return None
    return linear[::-1, ::-1], np.rint(offset).astype(int)[::-1]  # into (z, y, x) order


def _take(array: np.ndarray, mapping: tuple[np.ndarray, np.ndarray], shape) -> np.ndarray:
    """Copy the source voxels the mapping names (each axis a ±1 step: plain slicing, no gather)."""
    linear, offset = mapping
    out = np.zeros(shape, array.dtype)
    sources, targets, axes = [], [], []
    for source_axis in range(3):
        target_axis = int(np.flatnonzero(linear[source_axis])[0])
        step = int(linear[source_axis, target_axis])
        index = step * np.arange(shape[target_axis]) + offset[source_axis]
        valid = np.flatnonzero((index >= 0) & (index < array.shape[source_axis]))
        if not valid.size:
            return out
        first, last = int(index[valid[0]]), int(index[valid[-1]])
        stop = last + step if last + step >= 0 else None
        sources.append(slice(first, stop, step))
        targets.append(slice(int(valid[0]), int(valid[-1]) + 1))
        axes.append(target_axis)
    order = np.argsort(axes)  # the source axis holding each target axis
    out[tuple(targets[a] for a in order)] = array[tuple(sources)].transpose(order)
    return out


def _overlap_fraction(source, target) -> float:
    """Fraction of the target's voxel centres inside the source grid: exact for grids whose axes
    are parallel (in any order and sense: axis by axis), else from 64 samples along each axis."""
    turn = np.abs(np.asarray(source.direction).T @ np.asarray(target.direction))
    if np.allclose(turn, np.round(turn), atol=1e-6):
        fraction = 1.0
        for axis, n in enumerate(target.shape[::-1]):  # x, y, z: independent on parallel grids
            along = int(np.argmax(turn[:, axis]))  # the source axis parallel to it
            index_xyz = np.zeros((n, 3))
            index_xyz[:, axis] = np.arange(n)
            on_source = source.patient_to_index(target.index_to_patient(index_xyz))[:, along]
            fraction *= np.mean((on_source >= -0.5) & (on_source <= source.shape[::-1][along] - 0.5))
        return float(fraction)
    samples = [np.linspace(0, n - 1, min(n, 64)) for n in target.shape[::-1]]
    index_xyz = np.stack(np.meshgrid(*samples, indexing="ij"), axis=-1).reshape(-1, 3)
    return float(np.mean(_centres_within(index_xyz, target, source)))


def _centres_within(index_xyz: np.ndarray, grid: Grid, other: Grid) -> np.ndarray:
    """Whether each voxel centre (x, y, z index rows on `grid`) lies within `other`'s voxels."""
    on_other = other.patient_to_index(grid.index_to_patient(index_xyz))
    upper = np.asarray(other.shape[::-1]) - 0.5
    return np.all((on_other >= -0.5) & (on_other <= upper), axis=1)


def _describe(grid) -> str:
    size = "×".join(str(n) for n in grid.shape[::-1])
    spacing = "×".join(f"{s:.3g}" for s in grid.spacing_xyz)
    return f"{size} ({spacing} mm)"


#: What a label map's overlap warning advises by default.
KEEP_OVERLAPS = "save an RTSTRUCT or SEG to keep overlaps"


@dataclass(frozen=True)
class LabelMapLoss:
    """A structure that a label map holds only in part: where structures overlap, a label map
    keeps the later structure's label (`StructureSet.to_label_map`).

    Attributes:
        drawn: voxels of the structure; kept: voxels holding its label in the label map.
    """

    name: str
    drawn: int
    kept: int
    voxel_volume_cc: float

    @property
    def drawn_cc(self) -> float:
        """The structure's volume, in cc."""
        return self.drawn * self.voxel_volume_cc

    @property
    def kept_cc(self) -> float:
        """The volume that keeps its label in the label map, in cc."""
        return self.kept * self.voxel_volume_cc

    def __str__(self) -> str:
        return (
            f"{self.name} keeps {self.kept:,} of {self.drawn:,} voxels ({self.kept / self.drawn:.0%}, "
            f"{_cc(self.kept_cc)} of {_cc(self.drawn_cc)} cc)"
        )


def _cc(value: float) -> str:
    return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2g}"


def label_map_losses(
    structure_set: StructureSet, names: Sequence[str] | None = None, labels: np.ndarray | None = None
) -> list[LabelMapLoss]:
    """The structures that a label map of `structure_set` does not hold whole, in label order.

    Args:
        names: the structures in the label map, label 1, 2, … (default: all, in order).
        labels: the label map (`StructureSet.to_label_map(names)`), made when not given.
    """
    names = structure_set.names() if names is None else list(names)
    if labels is None:
        labels = structure_set.to_label_map(names)
    losses = []
    for value, name in enumerate(names, start=1):
        mask = structure_set[name].mask
        drawn = mask.voxel_count
        if not drawn:
            continue
        kept = int(np.count_nonzero(labels[mask.box][mask.array] == value))
        if kept < drawn:
            losses.append(LabelMapLoss(name, drawn, kept, structure_set.grid.voxel_volume_cc))
    return losses


def label_map_warning(losses: Sequence[LabelMapLoss], advice: str = KEEP_OVERLAPS) -> str | None:
    """The warning for a label map that lost the `losses` (None when it lost nothing), naming
    each structure and how much it keeps, ending with `advice` (how to keep overlaps)."""
    if not losses:
        return None
    return (
        "voxels belonging to more than one structure hold only the later structure's label in a label "
        f"map (one label per voxel): {'; '.join(map(str, losses))}; {advice}"
    )


def save_label_map(
    structure_set: StructureSet, volume: Volume, path: str | os.PathLike
) -> list[LabelMapLoss]:
    """Write the structures as one label map (label k for the k-th structure, a later one over
    an earlier one) with its names in a ``.json`` beside it; returns what the overlaps cost each
    structure (`label_map_losses`)."""
    path = Path(path)
    names = structure_set.names()
    labels = structure_set.to_label_map(names)
    losses = label_map_losses(structure_set, names, labels)
    save_volume(volume.with_array(labels, modality="SEG"), path)
    sidecar = sidecar_path(path)
    try:
        sidecar.write_text(json.dumps({str(i): n for i, n in enumerate(names, start=1)}, indent=1), "utf-8")
    except OSError as error:
        raise FormatError(f"{sidecar.name}: cannot be written ({error.strerror or error})") from error
    return losses
