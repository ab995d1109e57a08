"""Labelled cases for training: readers for OpenKBP and for a clinic's own cases, and their
preparation on the model's grid with the shared preprocessing (`segmentation.preprocessing`).

A case holds its CT in HU (int16, (z, y, x), index axes growing toward the patient's left,
posterior and superior: "LPS", how DICOM CT loads) and its structures as a bit field: bit k set ⇔ the
voxel is inside output structure k (structures may overlap). `labelled[k]` says whether structure
k was delineated for this case at all; an undelineated structure is left out of the loss rather
than taught as empty (OpenKBP contours the oesophagus in only a third of its patients).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planning.errors import DelineoError
from planning.geometry import Grid
from planning.volume import Volume

log = logging.getLogger(__name__)

#: OpenKBP's bit order (its README) → Delineo's TG-263 output names.
OPENKBP_NAMES = {
    "Brainstem": "Brainstem",
    "SpinalCord": "SpinalCord",
    "RightParotid": "Parotid_R",
    "LeftParotid": "Parotid_L",
    "Esophagus": "Esophagus",
    "Larynx": "Larynx",
    "Mandible": "Bone_Mandible",
    "PTV56": "PTV56",
    "PTV63": "PTV63",
    "PTV70": "PTV70",
}
OPENKBP_BITS = list(OPENKBP_NAMES)

#: HU of voxels outside the patient / scanned field.
AIR_HU = -1024


@dataclass
class Case:
    """One labelled case.

    Attributes:
        name: identifier (file or folder name).
        image_hu: CT in HU, int16 (z, y, x).
        labels: bit field (z, y, x), unsigned; bit k ⇔ inside structure k.
        labelled: bool (K,): structure k was delineated for this case.
        spacing_zyx: voxel size in mm.
    """

    name: str
    image_hu: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray
    spacing_zyx: tuple[float, float, float]

    def mask(self, k: int) -> np.ndarray:
        """Boolean mask of structure k."""
        return ((self.labels >> k) & 1).astype(bool)

    def volume(self) -> Volume:
        """The CT as a `Volume` (origin 0, index axes along L, P, S), for the inference engine."""
        grid = Grid(self.image_hu.shape, tuple(reversed(self.spacing_zyx)))
        return Volume(self.image_hu, grid, "CT")


def label_dtype(n_structures: int):
    if n_structures > 32:
        raise ValueError(f"at most 32 output structures are supported, got {n_structures}")
    return np.uint16 if n_structures <= 16 else np.uint32


def openkbp_case_names(folder: str | Path) -> list[str]:
    """The patients of an OpenKBP split folder, in a stable order (pt_1, pt_2, ..., by number)."""
    names = [p.stem for p in Path(folder).glob("pt_*.npz")]
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def read_openkbp(folder: str | Path, name: str, structures: list[str]) -> Case:
    """One OpenKBP patient (``pt_N.npz``) with its structures mapped to `structures` (TG-263 names).

    OARs missing from the patient are unlabelled; a missing PTV is labelled empty (the plan has no
    such dose level, which is an answer, not a gap). OpenKBP's z index grows toward the feet; the
    case is flipped to LPS.
    """
    path = Path(folder) / f"{name}.npz"
    try:
        with np.load(path) as data:
            image = data["ct_hu"].astype(np.int16)
            bits = data["structures"].astype(np.uint16)
            spacing = tuple(float(s) for s in data["spacing_zyx"])
    except (OSError, KeyError, ValueError) as error:
        raise DelineoError(f"{path}: not a readable OpenKBP case ({error})") from error
    labels = np.zeros(image.shape, label_dtype(len(structures)))
    labelled = np.zeros(len(structures), bool)
    by_name = {tg263: bit for bit, tg263 in enumerate(OPENKBP_NAMES.values())}
    for k, structure in enumerate(structures):
        if structure not in by_name:
            raise DelineoError(f"{structure!r} is not an OpenKBP structure ({', '.join(by_name)})")
        mask = (bits >> by_name[structure]) & 1
        labels |= mask.astype(labels.dtype) << k
        labelled[k] = bool(mask.any()) or structure.startswith("PTV")
    return Case(
        name, np.ascontiguousarray(image[::-1]), np.ascontiguousarray(labels[::-1]), labelled, spacing
    )


def to_lps(array: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """`array` (z, y, x) with index axes along `direction` (columns: LPS unit vectors of the x, y,
    z index axes) permuted and flipped so its x, y, z indices grow toward L, P, S. Oblique axes
    follow their nearest patient axis."""
    direction = np.asarray(direction, float)
    lps_axis = np.abs(direction).argmax(0)  # for index axis x, y, z: which LPS axis it follows
    if sorted(lps_axis) != [0, 1, 2]:
        raise DelineoError(f"cannot orient an image with direction {direction.tolist()}")
    sign = np.sign(direction[lps_axis, [0, 1, 2]])
    # array axis of index axis a is 2 − a; new array axis of LPS axis b is 2 − b
    order = [2 - int(np.flatnonzero(lps_axis == 2 - axis)[0]) for axis in range(3)]
    array = np.transpose(array, order)
    flips = tuple(axis for axis in range(3) if sign[lps_axis == 2 - axis][0] < 0)
    return np.flip(array, flips) if flips else array


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
    (``Parotid_L.nii.gz``; non-zero = inside), each on the image's voxels (the same grid, or the
    same voxels stored in another axis order: `mask_on_image_grid`). This is the layout
    ``delineo segment --out FOLDER`` writes, so corrected auto-contours can be trained on.
    Structures without a file are unlabelled for this case; names are matched by
    `match_mask_files`.
    """
    from planning.imageio import is_image_file, load_volume

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
        mask = mask_on_image_grid(load_volume(path), volume.grid, path, images[0].name)
        labels |= (to_lps(mask, volume.grid.direction) != 0).astype(labels.dtype) << k
        labelled[k] = True
    lps_axis = np.abs(np.asarray(volume.grid.direction)).argmax(0)
    spacing_lps = [0.0, 0.0, 0.0]
    for axis in range(3):
        spacing_lps[lps_axis[axis]] = float(volume.grid.spacing_xyz[axis])
    spacing = tuple(reversed(spacing_lps))
    return Case(folder.name, np.ascontiguousarray(image), labels, labelled, spacing)


def prepare(case: Case, spacing_zyx=None, body_threshold_hu: float = -500.0, margin_mm: float = 20.0) -> Case:
    """`case` cropped to the patient (voxels above `body_threshold_hu`) plus `margin_mm`, so that
    thousands of cases fit in memory; first resampled to `spacing_zyx` (mm) with
    `segmentation.preprocessing.resample` (CT trilinear, labels nearest) unless it is None (the
    case keeps its own grid and patches are sampled from it at the model's spacing).
    """
    image, labels = case.image_hu, case.labels
    spacing = tuple(float(s) for s in case.spacing_zyx)
    if spacing_zyx is not None:
        import torch

        from segmentation.preprocessing import resample

        image = resample(torch.from_numpy(image), spacing, spacing_zyx, "trilinear")
        image = image.round_().clamp_(-32768, 32767).to(torch.int16).numpy()
        labels = resample(torch.from_numpy(labels.astype(np.int64)), spacing, spacing_zyx, "nearest")
        labels = labels.numpy().astype(case.labels.dtype)
        spacing = tuple(float(s) for s in spacing_zyx)
    inside = np.argwhere(image > body_threshold_hu)
    if inside.size:
        margin = np.ceil(margin_mm / np.asarray(spacing, float)).astype(int)
        low = np.maximum(inside.min(0) - margin, 0)
        high = np.minimum(inside.max(0) + margin + 1, image.shape)
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        image, labels = image[box], labels[box]
    return Case(case.name, np.ascontiguousarray(image), np.ascontiguousarray(labels), case.labelled, spacing)


def load_cases(sources: list[tuple[str, Path, str]], structures: list[str], spacing_zyx=None) -> list[Case]:
    """Read and prepare cases (`prepare`). Each source is (kind, folder, name): kind "openkbp"
    (folder of ``pt_N.npz``, name the patient) or "folder" (`read_mask_folder`, folder the case
    itself)."""
    cases = []
    for kind, folder, name in sources:
        if kind == "openkbp":
            case = read_openkbp(folder, name, structures)
        elif kind == "folder":
            case = read_mask_folder(folder, structures)
        else:
            raise ValueError(f"unknown case source kind {kind!r}")
        cases.append(prepare(case, spacing_zyx))
    return cases


def check_delineated(cases: list[Case], structures: list[str], fine_tuning: bool = False) -> None:
    """Refuse structures delineated in none of `cases` (no mask file in any case folder, or
    absent from every OpenKBP patient): outputs nothing would teach. When `fine_tuning` a model
    whose outputs these are, they are only named in a warning (the loss leaves them out; the
    model keeps what it learnt of them)."""
    missing = [name for k, name in enumerate(structures) if not any(case.labelled[k] for case in cases)]
    if not missing:
        return
    what = f"{', '.join(missing)}: delineated in none of the {len(cases)} training cases"
    if fine_tuning:
        log.warning("%s; fine-tuning leaves them out of the loss", what)
        return
    it, its = ("it", "its") if len(missing) == 1 else ("them", "their")
    raise DelineoError(f"{what}; train without {it} (--structures) or add {its} masks")


def far_from_median(volumes: dict, factor: float) -> tuple[float, list]:
    """(median of `volumes`' values, the keys whose value is over `factor` times the median or
    under the median divided by `factor`)."""
    median = float(np.median(list(volumes.values())))
    return median, [
        key for key, value in volumes.items() if value > factor * median or value * factor < median
    ]


def reference_volumes(cases: list[Case], channels: list[int]) -> dict[int, dict[int, float]]:
    """For each structure channel in `channels`: {case index: volume in cc} of its non-empty
    references in `cases` (those delineated)."""
    volumes: dict[int, dict[int, float]] = {}
    for i, case in enumerate(cases):
        voxel_cc = float(np.prod(case.spacing_zyx)) / 1000.0
        for k in channels:
            if case.labelled[k]:
                count = int(np.count_nonzero(case.mask(k)))
                if count:
                    volumes.setdefault(k, {})[i] = count * voxel_cc
    return volumes


def training_volume_ranges(cases: list[Case], structures: list[str]) -> dict[str, dict]:
    """Per structure delineated in `cases`: how many cases and the smallest and largest
    reference volume in cc (a trained model's manifest carries them; see
    `segmentation.engine.plausibility`)."""
    volumes = reference_volumes(cases, list(range(len(structures))))
    return {
        structures[k]: {
            "cases": len(by_case),
            "smallest_cc": round(min(by_case.values()), 2),
            "largest_cc": round(max(by_case.values()), 2),
        }
        for k, by_case in sorted(volumes.items())
    }


def leave_out_unusual_references(
    cases: list[Case], structures: list[str], names: list[str], factor: float
) -> list:
    """Mark as not delineated (left out of the loss) each reference of a structure in `names`
    whose volume is over `factor` times, or under 1/`factor` of, that structure's median over
    `cases`: a partial contour (a 0.5 cc larynx against a median of 21 cc) or one of something
    else would teach the network a wrong extent. Returns (case, structure, cc, median cc) for
    each reference left out."""
    unknown = sorted(set(names) - set(structures))
    if unknown:
        raise DelineoError(f"unusual references: {', '.join(unknown)} not among the trained structures")
    volumes = reference_volumes(cases, [k for k, name in enumerate(structures) if name in names])
    left_out = []
    for k, by_case in volumes.items():
        median, unusual = far_from_median(by_case, factor)
        for i in unusual:
            cases[i].labelled = cases[i].labelled.copy()
            cases[i].labelled[k] = False
            left_out.append((cases[i].name, structures[k], by_case[i], median))
    for name, structure, cc, median in left_out:
        log.warning(
            "%s: %s reference (%.1f cc, median %.1f cc) left out of training", name, structure, cc, median
        )
    return left_out


def discover(path: str | Path) -> list[tuple[str, Path, str]]:
    """Case sources under `path`: an OpenKBP split folder (``pt_*.npz``) or a folder of case
    folders (one per patient, `read_mask_folder` layout)."""
    path = Path(path)
    if not path.is_dir():
        raise DelineoError(f"{path}: not a folder of training cases")
    names = openkbp_case_names(path)
    if names:
        return [("openkbp", path, name) for name in names]
    cases = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cases:
        raise DelineoError(f"{path}: no cases (pt_*.npz files or case folders) found")
    return [("folder", case, case.name) for case in cases]


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")
