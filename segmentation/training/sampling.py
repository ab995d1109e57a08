"""Training patches: class-balanced centres, spatial and intensity augmentation.

Most patches are centred near a voxel of a structure, the rest anywhere in a patient. With
``balanced=True`` the structure is drawn first, uniformly, then a case that has it: structures
delineated in few cases (OpenKBP's oesophagus: a third of the patients) are then seen as often
as the others. Otherwise the case is drawn first, then one of its structures. Each patch is read
with one trilinear `grid_sample` that applies an in-plane rotation, an isotropic scaling and an
optional left–right mirror (which swaps the ``_L``/``_R`` structures, so that left stays left).
Labels are interpolated too: the targets are soft at the edges. Patches come at the model's voxel
size (`spacing_zyx`) from cases on any grid: a case kept on its own grid is interpolated once,
from the contours as they were drawn. On a GPU the cases are copied to it once, when they fit
(`resident`), instead of sending each patch's block of voxels to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from segmentation.engine.manifest import mirror_permutation
from segmentation.preprocessing import normalize
from segmentation.training.data import AIR_HU, Case


@dataclass
class Augmentation:
    """Random changes of a training patch: in-plane rotation (degrees), scale factor range, left-right
    mirroring, intensity scale and shift and Gaussian noise (in normalised units)."""

    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    mirror_probability: float = 0.5
    intensity_scale: tuple[float, float] = (0.9, 1.1)
    intensity_shift: float = 0.1
    noise_std: float = 0.05


class PatchSampler:
    """Draws (image, target, labelled) batches from prepared cases."""

    def __init__(
        self,
        cases: list[Case],
        structures: list[str],
        patch_zyx,
        normalization: dict,
        foreground_fraction: float = 0.7,
        augmentation: Augmentation | None = None,
        points_per_structure: int = 3000,
        spacing_zyx=None,
        device=None,
        resident: bool | None = None,
    ):
        self.cases = cases
        #: where patches are interpolated and returned (a torch device; CPU by default)
        self.device = torch.device(device or "cpu")
        if resident is None:
            resident = self.device.type == "cuda" and _fit_on_gpu(cases, self.device)
        #: per case, its HU image and label bits as tensors on the device (empty: read per patch)
        self.resident = [_case_tensors(case, self.device) for case in cases] if resident else []
        self._offsets: torch.Tensor | None = None
        self.structures = structures
        self.patch = tuple(int(n) for n in patch_zyx)
        #: patch voxel size (mm); None: each case's own (cases already on the model's grid)
        self.spacing = None if spacing_zyx is None else np.asarray(spacing_zyx, float)
        self.normalization = normalization
        self.foreground_fraction = foreground_fraction
        self.augmentation = augmentation or Augmentation()
        self.mirror = mirror_permutation(structures)
        seed = np.random.default_rng(0)
        self.points = []
        for case in cases:
            points = {}
            for k in range(len(structures)):
                if case.labelled[k]:
                    where = np.argwhere(case.mask(k))
                    if len(where):
                        pick = seed.choice(len(where), min(len(where), points_per_structure), replace=False)
                        points[k] = where[pick].astype(np.int16)
            self.points.append(points)
        #: structure → the cases that have it
        self.having = {
            k: [i for i, points in enumerate(self.points) if k in points]
            for k in range(len(structures))
            if any(k in points for points in self.points)
        }

    def batch(self, rng: np.random.Generator, size: int, balanced: bool = True, weights: dict | None = None):
        """(image (B, 1, Z, Y, X) normalised, target (B, K, Z, Y, X) in [0, 1], labelled (B, K)).

        weights: structure index → relative frequency as a patch centre in balanced sampling
        (default: all equal)."""
        samples = [self.sample(rng, balanced, weights) for _ in range(size)]
        images, targets, labelled = zip(*samples, strict=True)
        return torch.stack(images), torch.stack(targets), torch.stack(labelled)

    def sample(self, rng: np.random.Generator, balanced: bool = True, weights: dict | None = None):
        """One patch: (image (1, Z, Y, X) normalised, target (K, Z, Y, X) in [0, 1], labelled (K,)); with
        probability `foreground_fraction` centred near a voxel of a structure (chosen across structures
        when `balanced`), else anywhere in a case."""
        index = int(rng.integers(len(self.cases)))
        patch = np.asarray(self.patch, float)
        foreground = rng.random() < self.foreground_fraction
        if foreground and balanced and self.having:
            candidates = list(self.having)
            if weights:
                p = np.array([float(weights.get(k, 1.0)) for k in candidates])
                k = candidates[int(rng.choice(len(candidates), p=p / p.sum()))]
            else:
                k = candidates[int(rng.integers(len(candidates)))]
            index = self.having[k][int(rng.integers(len(self.having[k])))]
        elif foreground and self.points[index]:
            k = list(self.points[index])[int(rng.integers(len(self.points[index])))]
        else:
            k = None
        case = self.cases[index]
        case_spacing = np.asarray(case.spacing_zyx, float)
        patch_spacing = case_spacing if self.spacing is None else self.spacing
        if k is None:
            centre = rng.uniform(0, 1, 3) * (np.asarray(case.image_hu.shape) - 1)
        else:
            points = self.points[index][k]
            centre = points[int(rng.integers(len(points)))].astype(float)
            centre += rng.uniform(-0.3, 0.3, 3) * patch * patch_spacing / case_spacing
        aug = self.augmentation
        angle = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
        scale = rng.uniform(*aug.scale)
        mirror = rng.random() < aug.mirror_probability
        # patch voxel offsets (z, y, x) → case voxel offsets: to mm, in-plane rotation, scaling,
        # mirror, back to case voxels
        rotation = np.diag([scale, scale, scale])
        cos, sin = math.cos(angle), math.sin(angle)
        rotation[1:, 1:] = scale * np.array([[cos, -sin], [sin, cos]])
        if mirror:
            rotation[:, 2] *= -1
        matrix = np.diag(1 / case_spacing) @ rotation @ np.diag(patch_spacing)
        image, target = self._read(index, centre, matrix)
        if mirror:
            target = target[self.mirror]
        image = normalize(image, self.normalization)
        image = image * rng.uniform(*aug.intensity_scale) + rng.uniform(
            -aug.intensity_shift, aug.intensity_shift
        )
        if aug.noise_std > 0 and rng.random() < 0.3:
            noise = torch.randn(image.shape, generator=_generator(rng))
            image = image + noise.to(self.device) * aug.noise_std
        labelled = torch.from_numpy(case.labelled[self.mirror] if mirror else case.labelled.copy())
        return image[None].float(), target.float(), labelled.to(self.device)

    def _read(self, index: int, centre: np.ndarray, matrix: np.ndarray):
        """HU image (Z, Y, X) and soft targets (K, Z, Y, X) sampled on the transformed patch of
        case `index`."""
        case = self.cases[index]
        axes = [np.arange(n) - (n - 1) / 2 for n in self.patch]
        corners = np.array(np.meshgrid(*[[a[0], a[-1]] for a in axes], indexing="ij")).reshape(3, -1)
        reach = matrix @ corners + centre[:, None]
        shape = np.asarray(case.image_hu.shape)
        low = np.clip(np.floor(reach.min(1)).astype(int), 0, shape - 1)
        high = np.clip(np.ceil(reach.max(1)).astype(int) + 1, low + 2, shape)
        low = np.minimum(low, high - 2)
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        if self.resident:
            hu, bits = (tensor[box] for tensor in self.resident[index])
        else:
            hu, bits = _case_tensors(case, self.device, box)
        channels = torch.arange(len(self.structures), dtype=bits.dtype, device=self.device)
        block_labels = ((bits[None] >> channels[:, None, None, None]) & 1).float()
        block_hu = hu.float() - AIR_HU  # air → 0 = the padding value
        block = torch.cat([block_hu[None], block_labels])[None]
        # sampling positions: patch offsets → block voxel indices (matrix, centre) → [-1, 1], as
        # one affine map computed on the device; grid_sample wants them in (x, y, z) order
        scale = 2 / np.maximum(np.asarray(block.shape[2:], float) - 1, 1)
        linear = (scale[:, None] * matrix)[::-1]
        shift = (scale * (centre - low) - 1)[::-1]
        grid = torch.addmm(
            torch.as_tensor(shift.copy(), dtype=torch.float32, device=self.device),
            self._patch_offsets(),
            torch.as_tensor(linear.T.copy(), dtype=torch.float32, device=self.device),
        ).reshape(1, *self.patch, 3)
        sampled = F.grid_sample(block, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        return sampled[0] + AIR_HU, sampled[1:]

    def _patch_offsets(self) -> torch.Tensor:
        """(Z·Y·X, 3) float32 on the device: each patch voxel's (z, y, x) offset from the centre."""
        if self._offsets is None:
            axes = [torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in self.patch]
            offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
            self._offsets = offsets.to(self.device)
        return self._offsets


def _generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def _case_tensors(case: Case, device: torch.device, box=(...,)) -> tuple[torch.Tensor, torch.Tensor]:
    """The case's HU image and label bits within `box` as tensors on `device`; the bits (uint16 or
    uint32) widened to a signed type torch can shift."""
    hu = torch.from_numpy(np.ascontiguousarray(case.image_hu[box])).to(device)
    bits = case.labels[box]
    bits = bits.astype(np.int64 if bits.dtype.itemsize > 2 else np.int32)
    return hu, torch.from_numpy(bits).to(device)


def _fit_on_gpu(cases: list[Case], device: torch.device) -> bool:
    """Whether the cases' images and label bits take at most a quarter of the GPU's free memory."""
    needed = sum(case.image_hu.size * (2 + (8 if case.labels.dtype.itemsize > 2 else 4)) for case in cases)
    free, _ = torch.cuda.mem_get_info(device)
    return needed <= free / 4
