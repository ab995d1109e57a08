"""Sampling a structure's mask on the dose grid: its voxels' centres (or n_x × n_y × n_z points
in each), in blocks past the sample budget. Mask arrays are (z, y, x); dose indices (x, y, z)."""

from __future__ import annotations

import math

import numpy as np

from planning.dvh.sampling import SAMPLE_BUDGET, given_factor, outside_grid_warning, small_structure_warning
from planning.dvh.volumes import SampleVolumes
from planning.errors import Cancelled
from planning.structures import Mask


def sample_mask(dose, mask: Mask, factor, name, cancel):
    """Doses (the dose's unit) and volumes (cc) of samples, the sampling in words, and warnings.

    Samples at the centres of the mask's voxels, or at n_x × n_y × n_z points in each where a
    voxel spans more than a dose voxel along an axis (n = round(f × its span in dose voxels)).
    Past `SAMPLE_BUDGET` (a fine grid: 1,500 cc of 0.5 mm voxels is 12 million), voxels much
    smaller than a dose voxel are taken in blocks no larger than one, each sampled at the mean
    centre of its voxels in the mask and weighted by their count."""
    grid = dose.grid
    if mask.is_empty:
        return np.zeros(0), SampleVolumes.of([]), "empty mask", [f"{name}: empty structure"]
    f = 1 if factor == "auto" else given_factor(factor)
    to_dose = np.linalg.inv(grid.affine) @ mask.grid.affine  # image index (x, y, z) → dose index
    span = np.abs(to_dose[:3, :3]).max(axis=0)  # dose voxels one image voxel spans, per image axis
    counts = [max(1, round(f * float(s))) for s in span]
    offsets = np.stack(
        np.meshgrid(*[(np.arange(n) + 0.5) / n - 0.5 for n in counts], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    per_voxel = len(offsets)
    block = _mask_block(mask.voxel_count * per_voxel, span, counts) if factor == "auto" else (1, 1, 1)
    doses, inside_flags, voxel_counts = [], [], []
    count_type = np.min_scalar_type(math.prod(block))
    rows = mask.array.shape[1] * mask.array.shape[2]
    chunk = block[0] * max(1, SAMPLE_BUDGET // 10 // max(1, per_voxel * rows * block[0]))
    for start in range(0, mask.array.shape[0], chunk):
        if cancel is not None and cancel.is_set():
            raise Cancelled("DVH computation cancelled")
        zyx, voxels = _block_centres(mask.array[start : start + chunk], block)
        if not len(zyx):
            continue
        centres = (zyx + np.asarray(mask.offset) + (start, 0, 0))[:, ::-1]
        points = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        values, ok = dose.sample(points @ to_dose[:3, :3].T + to_dose[:3, 3])
        doses.append(values)
        inside_flags.append(ok)
        voxel_counts.append(np.repeat(voxels.astype(count_type), per_voxel))
    doses = np.concatenate(doses)
    inside = np.concatenate(inside_flags)
    # a sample of a block of k voxels stands for k voxels' share: entry k of the table
    share_cc = mask.grid.voxel_volume_cc / per_voxel
    volumes = SampleVolumes(np.arange(math.prod(block) + 1) * share_cc, np.concatenate(voxel_counts))
    size = " × ".join(f"{s:.3g}" for s in mask.grid.spacing_xyz)
    where = "at its centre" if per_voxel == 1 else f"at {' × '.join(str(n) for n in counts)} points"
    sampling = f"mask on its {size} mm image grid, each voxel sampled {where}"
    if block != (1, 1, 1):
        points = "" if per_voxel == 1 else f", at {' × '.join(str(n) for n in counts)} points"
        sampling = (
            f"mask on its {size} mm image grid, in blocks of {' × '.join(str(b) for b in block[::-1])} "
            f"voxels (cost bound), each sampled at the mean centre of its voxels in the mask{points}"
        )
    warnings = small_structure_warning(name, volumes.total(), dose, "sampled at its own voxels")
    warnings += outside_grid_warning(name, inside, volumes)
    return doses, volumes, sampling, warnings


def _mask_block(samples: int, span: np.ndarray, counts) -> tuple[int, int, int]:
    """Image voxels per block (z, y, x) that bring `samples` under `SAMPLE_BUDGET`, along the
    image axes (x, y, z) whose voxels are sampled once and span under half a dose voxel, a block
    no larger than a dose voxel; (1, 1, 1) when none is needed."""
    limits = [int(1 / s) if n == 1 and s < 0.5 else 1 for s, n in zip(span, counts, strict=True)]
    size = 1
    block = [1, 1, 1]
    while samples / math.prod(block) > SAMPLE_BUDGET and any(
        b < limit for b, limit in zip(block, limits, strict=True)
    ):
        size += 1
        block = [min(size, limit) for limit in limits]
    return tuple(block[::-1])


def _block_centres(array: np.ndarray, block: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For blocks of `block` (z, y, x) voxels of a bool (z, y, x) array: the mean index of the
    True voxels of each block holding any, and how many they are."""
    if block == (1, 1, 1):
        zyx = np.argwhere(array)
        return zyx.astype(np.float64), np.ones(len(zyx), np.int64)
    padded = np.pad(array, [(0, -n % b) for n, b in zip(array.shape, block, strict=True)])
    shape = [padded.shape[0] // block[0], block[0], padded.shape[1] // block[1], block[1]]
    shape += [padded.shape[2] // block[2], block[2]]
    cells = padded.reshape(shape)
    voxels = cells.sum(axis=(1, 3, 5), dtype=np.int64)
    found = np.nonzero(voxels)
    counts = voxels[found]
    centres = np.empty((len(counts), 3))
    for k, (axis, size) in enumerate(((1, block[0]), (3, block[1]), (5, block[2]))):
        place = np.arange(size, dtype=np.float64).reshape([size if a == axis else 1 for a in range(6)])
        local = (cells * place).sum(axis=(1, 3, 5))[found] / counts
        centres[:, k] = found[k] * size + local
    return centres, counts
