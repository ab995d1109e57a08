"""A clinic's labelled cases as folders: ``image.<ext>`` (or a DICOM ``image/`` folder) and one
mask file per delineated structure, named after it: the layout ``delineo segment --out FOLDER``
writes, so corrected auto-contours can be trained on. Masks must lie on their image's voxels and
be named exactly; anything else is refused, naming the file and what is wrong.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from planning.errors import DelineoError
from planning.geometry import Grid
from planning.volume import Volume
from segmentation.training.data import Case, label_dtype, to_lps

log = logging.getLogger(__name__)


#: A mask is on the image's grid when each of its voxel centres lies within this fraction of the
#: image's smallest voxel size of the image's own (NIfTI headers store positions as float32: a
#: round trip moves them far less).
MASK_GRID_TOLERANCE_VOXELS = 0.01


def _stem(path: Path) -> str:
    from planning.imageio import image_suffix

    suffix = image_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def _loose_name(name: str) -> str:
    """`name` as compared with a structure's when it is not exactly one: case, spaces and
    underscores aside (``parotid l`` ~ ``Parotid_L``)."""
    return re.sub(r"[\s_]+", "", name).lower()


def match_mask_files(folder: Path, files: list[Path], structures: list[str]) -> dict[str, Path]:
    """{structure: mask file} for a case folder's mask `files`, each named after its structure
    exactly (``Parotid_L.nii.gz``), or as ``delineo segment --out FOLDER`` writes a name no file
    system takes (`planning.files.file_stem_for`: "PTV 70" → ``PTV_70.nii.gz``). A file named
    like a structure but not exactly (``parotid_l``, ``Parotid L``) is refused naming both rather
    than guessed; a file whose name is no structure's is left out with a warning (it may be
    another image of the case); a case with none of `structures` is refused."""
    from planning.files import file_stem_for

    by_loose_name = {_loose_name(structure): structure for structure in structures}
    written_as = {file_stem_for(s): s for s in structures if file_stem_for(s) not in structures}
    masks: dict[str, Path] = {}
    unknown = []
    for path in sorted(files):
        stem = _stem(path)
        stem = written_as.get(stem, stem) if stem not in structures else stem
        if stem in structures:
            if stem in masks:
                raise DelineoError(f"{folder}: two masks of {stem}: {masks[stem].name} and {path.name}")
            masks[stem] = path
        elif _loose_name(stem) in by_loose_name:
            expected = by_loose_name[_loose_name(stem)]
            raise DelineoError(
                f"{path}: named {stem!r}, not exactly the trained structure {expected!r} (names are "
                f"matched exactly, case included): rename it {expected}{path.name[len(stem) :]}"
            )
        else:
            unknown.append(path.name)
    if unknown:
        log.warning(
            "%s: %s not named after any trained structure (%s): left out",
            folder,
            ", ".join(unknown),
            ", ".join(structures),
        )
    if not masks:
        raise DelineoError(
            f"{folder}: no mask of the trained structures ({', '.join(structures)}); each is a file named "
            f"after its structure, such as {structures[0]}.nii.gz"
            + (f" (found {', '.join(unknown)})" if unknown else "")
        )
    return masks


def _sizes(values, unit: str = "") -> str:
    return "×".join(f"{float(v):.6g}" for v in values) + unit


def mask_on_image_grid(mask: Volume, image: Grid, path: Path, image_name: str) -> np.ndarray:
    """`mask`'s array in the array order of `image`, whose voxels it must be: the same grid
    (within `MASK_GRID_TOLERANCE_VOXELS`), or the same voxels stored in another axis order or
    with axes flipped (copied exactly). A mask anywhere else, or on another lattice, is refused
    naming the file and what differs; it is never resampled (a reference moved or blurred would
    teach the network wrong)."""
    source = mask.grid
    tolerance = MASK_GRID_TOLERANCE_VOXELS * min(image.spacing_xyz)
    # row j: the image's index axis j in the mask's index axes; a signed permutation when the
    # mask's axes are the image's, in another order or direction
    rotation = image.direction.T @ source.direction
    permutation = np.rint(rotation)
    is_permutation = all(np.array_equal(np.abs(permutation).sum(a), np.ones(3)) for a in (0, 1))
    direction = (
        f"axes along {np.round(source.direction, 6).tolist()}, the image's along "
        f"{np.round(image.direction, 6).tolist()} (direction)"
    )
    problem = None
    if not is_permutation or not np.allclose(rotation, permutation, atol=0.1):
        problem = direction
    else:
        # for each image index axis j (x, y, z): the mask's index axis along it, and whether the
        # mask's runs the other way
        axis = [int(np.flatnonzero(permutation[j])[0]) for j in range(3)]
        backwards = [bool(permutation[j, axis[j]] < 0) for j in range(3)]
        shape_xyz, image_shape_xyz = source.shape[::-1], image.shape[::-1]
        spacing = [source.spacing_xyz[axis[j]] for j in range(3)]
        ends = [(0, n - 1) for n in image_shape_xyz]
        corners = np.array([[x, y, z] for x in ends[0] for y in ends[1] for z in ends[2]], float)
        on_mask = np.zeros_like(corners)
        for j in range(3):
            on_mask[:, axis[j]] = image_shape_xyz[j] - 1 - corners[:, j] if backwards[j] else corners[:, j]
        if [shape_xyz[axis[j]] for j in range(3)] != list(image_shape_xyz):
            problem = f"{_sizes(shape_xyz)} voxels, the image {_sizes(image_shape_xyz)}"
        elif any(abs(spacing[j] - image.spacing_xyz[j]) * image_shape_xyz[j] > tolerance for j in range(3)):
            problem = (
                f"voxel size {_sizes(source.spacing_xyz, ' mm')}, the image's {_sizes(image.spacing_xyz)}"
            )
        elif np.abs(source.index_to_patient(on_mask) - image.index_to_patient(corners)).max() > tolerance:
            centre = image.index_to_patient((np.asarray(image_shape_xyz) - 1) / 2.0)
            moved = float(np.linalg.norm(source.index_to_patient(on_mask.mean(0)) - centre))
            if not np.allclose(rotation, permutation, atol=1e-6):
                problem = direction
            elif np.array_equal(permutation, np.eye(3)):
                problem = f"origin {moved:.3g} mm away from the image's"
            else:
                problem = (
                    f"its voxels {moved:.3g} mm away from the image's (centre to centre; its axes are "
                    "the image's in another order or direction, its origin does not match)"
                )
        else:
            array = np.transpose(mask.array, [2 - axis[2 - a] for a in range(3)])
            flips = tuple(2 - j for j in range(3) if backwards[j])
            return np.flip(array, flips) if flips else array
    raise DelineoError(
        f"{path}: not on the voxels of {image_name}: {problem}. A mask must be on the image's grid "
        "(masks are not resampled)"
    )


def read_mask_folder(folder: str | Path, structures: list[str]) -> Case:
    """A clinic's labelled case: a folder with ``image.<ext>`` (CT; NIfTI, NRRD, MHA or a DICOM
    sub-folder ``image/``) and one mask file per delineated structure named after it exactly
    (``Parotid_L.nii.gz``; non-zero = inside; read by the rule of label maps,
    `planning.imageio.read_label_map`: NaN or fractional values are refused), each on the image's
    voxels (the same grid, or the same voxels stored in another axis order: `mask_on_image_grid`).
    This is the layout ``delineo segment --out FOLDER`` writes, so corrected auto-contours can be
    trained on.
    Structures without a file are unlabelled for this case; names are matched by
    `match_mask_files`.
    """
    from planning.imageio import is_image_file, load_volume, read_label_map

    folder = Path(folder)
    images = [p for p in folder.iterdir() if p.name.lower().startswith("image") and is_image_file(p)]
    if (folder / "image").is_dir():
        images.append(folder / "image")
    if len(images) != 1:
        raise DelineoError(f"{folder}: expected one image (image.nii.gz, image.nrrd, ... or image/)")
    files = [path for path in folder.iterdir() if is_image_file(path) and path not in images]
    masks = match_mask_files(folder, files, structures)
    volume = load_volume(images[0])
    image = to_lps(np.clip(np.rint(volume.array), -32768, 32767).astype(np.int16), volume.grid.direction)
    labels = np.zeros(image.shape, label_dtype(len(structures)))
    labelled = np.zeros(len(structures), bool)
    for k, structure in enumerate(structures):
        if structure not in masks:
            continue
        path = masks[structure]
        mask = mask_on_image_grid(read_label_map(path), volume.grid, path, images[0].name)
        labels |= (to_lps(mask, volume.grid.direction) != 0).astype(labels.dtype) << k
        labelled[k] = True
    lps_axis = np.abs(np.asarray(volume.grid.direction)).argmax(0)
    spacing_lps = [0.0, 0.0, 0.0]
    for axis in range(3):
        spacing_lps[lps_axis[axis]] = float(volume.grid.spacing_xyz[axis])
    spacing = tuple(reversed(spacing_lps))
    return Case(folder.name, np.ascontiguousarray(image), labels, labelled, spacing)
