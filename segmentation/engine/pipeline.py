"""From a `Volume` to a `StructureSet` through one or more networks.

The steps, each on the chosen device:

1. crop: to the body (CT, a margin around the patient; outside it every voxel is background) or,
   for nnU-Net models, to the non-zero region as nnU-Net does;
2. reorient to the model's orientation (views, no copy);
3. resample to the model's spacing and normalise the intensities (model-specific `Recipe`);
4. sliding window with Gaussian blending, mirroring and fold ensembling, float16 accumulation,
   autocast on GPUs, a cancel check before every layer;
5. back to the original grid plane by plane (separable linear maps: only the planes a chunk needs
   are touched), sigmoid thresholds or softmax argmax, masks cropped per structure.

A GPU running out of memory retries with smaller tiles, then falls back to the CPU with a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planning.errors import Cancelled, DelineoError
from planning.structures import GenerationAlgorithm, Mask, Structure, StructureSet, bounding_box
from planning.volume import Volume
from segmentation.engine import device as devices
from segmentation.engine.manifest import OutputSpec
from segmentation.engine.orientation import Reorientation
from segmentation.engine.resample import AxisMap
from segmentation.engine.tiling import sliding_window

log = logging.getLogger(__name__)

#: Target size (bytes) of the float32 block processed at once when going back to the grid.
_CHUNK_BYTES = 192 * 2**20


def _no_progress(stage: str, done: float, total: float) -> None:
    """The default progress callback: ignore."""


@dataclass
class Recipe:
    """How one model sees an image (built from a manifest or from nnU-Net plans).

    Attributes:
        prepare: (tensor (Z, Y, X) float32 in model orientation, spacing_zyx) → normalised
            tensor on the model's grid.
        back_maps: (model_shape, original_shape, model_spacing, original_spacing) → three
            AxisMaps (z, y, x) from model planes to original planes.
        model_spacing: (spacing_zyx of the input in model orientation) → the model grid spacing.
        activation_first: apply sigmoid/softmax on the model grid (Delineo: probabilities go
            back) or after going back (nnU-Net: logits go back).
    """

    outputs: tuple[OutputSpec, ...]
    activation: str
    threshold: float
    patch_zyx: tuple[int, int, int]
    overlap: float
    mirror_axes: tuple[int, ...]
    size_divisor: tuple[int, int, int]
    orientation: str | None
    transpose: tuple[int, int, int]
    crop: str
    modality: str
    prepare: Callable
    back_maps: Callable
    model_spacing: Callable
    activation_first: bool
    pad_value: str = "min"  # "min": the normalised image's minimum (air); or "zero"
    nonzero_crop: bool = False

    @property
    def channels(self) -> int:
        top = max(o.channel for o in self.outputs)
        return top + 1


@dataclass
class RunInfo:
    """What a run did: device, tiles, timings, warnings (kept on the model as `last_run`)."""

    device: str = ""
    tiles: int = 0
    patch_zyx: tuple = ()
    seconds: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Predictor:
    """Callable tile → logits: folds × mirrorings averaged, under autocast on GPUs."""

    def __init__(self, networks: list, mirror_axes: tuple[int, ...], device):
        self.networks = networks
        self.device = device
        axes = [a + 2 for a in mirror_axes]
        self.flips = [()] + [c for n in range(1, len(axes) + 1) for c in _combinations(axes, n)]

    def __call__(self, tile):
        total = None
        with devices.autocast(self.device):
            for net in self.networks:
                for dims in self.flips:
                    out = net(tile.flip(dims) if dims else tile)
                    if isinstance(out, (list, tuple)):
                        out = out[0]
                    out = (out.flip(dims) if dims else out).float()
                    total = out if total is None else total.add_(out)
        return total / (len(self.networks) * len(self.flips))


def _combinations(items, n):
    import itertools

    return list(itertools.combinations(items, n))


def run(
    volume: Volume,
    recipe: Recipe,
    networks_on: Callable,
    device,
    *,
    structures: list[str] | None = None,
    on_progress: Callable[[str, float, float], None] | None = None,
    cancel: threading.Event | None = None,
    info: RunInfo | None = None,
) -> StructureSet:
    """Segment `volume`; `networks_on(device)` gives the networks (eval mode) on a device."""
    on_progress = on_progress or _no_progress
    info = info if info is not None else RunInfo()
    wanted = _select_outputs(recipe, structures)
    _check_modality(volume, recipe)
    started = time.perf_counter()
    box = _crop_box(volume, recipe)
    info.seconds["crop"] = time.perf_counter() - started
    patch = tuple(recipe.patch_zyx)
    while True:
        try:
            result = _run_on(
                volume, recipe, networks_on(device), device, box, patch, wanted, on_progress, cancel, info
            )
            break
        except Exception as error:
            devices.free_memory(device)
            if isinstance(error, Cancelled) or not devices.is_out_of_memory(error):
                raise
            device, patch = _after_out_of_memory(device, patch, recipe, volume, info, error)
    if device.type != "cpu":
        devices.free_memory(device)  # the networks stay; their activations' cache goes
    info.seconds["total"] = time.perf_counter() - started
    return result


def _after_out_of_memory(device, patch, recipe, volume, info, error):
    """Smaller tiles; when none are left, the CPU (from a GPU) or a clear error (on the CPU)."""
    import torch

    smaller = _smaller_patch(patch, recipe.size_divisor)
    if smaller is not None:
        message = f"{device.type} out of memory with tiles {patch}; retrying with tiles {smaller}"
        patch = smaller
    elif device.type != "cpu":
        message = f"{device.type} out of memory even with small tiles; continuing on the CPU (slower)"
        device, patch = torch.device("cpu"), tuple(recipe.patch_zyx)
    else:
        raise DelineoError(f"not enough memory to segment an image of {volume.shape} voxels") from error
    log.warning(message)
    info.warnings.append(message)
    return device, patch


def _select_outputs(recipe: Recipe, structures: list[str] | None) -> list[OutputSpec]:
    if not structures:
        return list(recipe.outputs)
    names = {o.name: o for o in recipe.outputs}
    missing = [s for s in structures if s not in names]
    if missing:
        raise DelineoError(
            f"the model has no structure {', '.join(map(repr, missing))}; it draws: {', '.join(names)}"
        )
    return [names[s] for s in structures]


def _check_modality(volume: Volume, recipe: Recipe) -> None:
    if volume.modality and recipe.modality and volume.modality.upper() != recipe.modality.upper():
        raise DelineoError(f"the model segments {recipe.modality} images; this image is {volume.modality}")


def _crop_box(volume: Volume, recipe: Recipe) -> tuple[slice, slice, slice]:
    full = tuple(slice(0, n) for n in volume.shape)
    box = full
    if recipe.nonzero_crop:
        box = bounding_box(volume.array != 0) or full
    if recipe.crop == "body" and recipe.modality.upper() == "CT":
        from segmentation.rules.body import body_box

        body = body_box(volume.array[box], volume.grid.spacing_zyx)
        if body is not None:
            box = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, body, strict=True))
    return box


def _smaller_patch(patch, divisor) -> tuple[int, int, int] | None:
    axis = int(np.argmax(np.asarray(patch) / np.asarray(divisor)))
    size = (patch[axis] // 2) // divisor[axis] * divisor[axis]
    if size < divisor[axis] or size < 8:
        return None
    return tuple(size if k == axis else p for k, p in enumerate(patch))


def _run_on(volume, recipe, networks, device, box, patch, wanted, on_progress, cancel, info):
    import torch

    info.device, info.patch_zyx = str(device), tuple(patch)
    clock = time.perf_counter()
    orient = Reorientation.between(volume.grid.direction, recipe.orientation)
    on_progress("Preparing image", 0, 1)
    with torch.inference_mode():
        image = torch.from_numpy(np.ascontiguousarray(volume.array[box])).to(device).float()
        image = orient.forward(image)
        image = image.permute(*recipe.transpose)
        spacing = tuple(orient.spacing(volume.grid.spacing_zyx)[a] for a in recipe.transpose)
        cropped_shape = tuple(image.shape)
        image = recipe.prepare(image, spacing)
        model_spacing = recipe.model_spacing(spacing)
        image, unpad = _pad(image, patch, recipe.pad_value)
    _check_cancel(cancel)
    on_progress("Preparing image", 1, 1)
    info.seconds["prepare"] = time.perf_counter() - clock

    clock = time.perf_counter()
    predictor = Predictor(networks, recipe.mirror_axes, device)
    accumulated = sliding_window(
        image, predictor, recipe.channels, patch, recipe.overlap, on_progress=on_progress, cancel=cancel
    )
    info.tiles = accumulated.tiles
    del image
    info.seconds["inference"] = time.perf_counter() - clock

    clock = time.perf_counter()
    result = _back_to_grid(
        volume,
        recipe,
        accumulated,
        unpad,
        cropped_shape,
        spacing,
        model_spacing,
        orient,
        box,
        wanted,
        on_progress,
        cancel,
    )
    info.seconds["structures"] = time.perf_counter() - clock
    return result


def _pad(image, patch, pad_value: str):
    """Pad (centred) to at least the patch size; return the image and the slices to undo it."""
    import torch.nn.functional as F

    shape = image.shape
    missing = [max(p - n, 0) for n, p in zip(shape, patch, strict=True)]
    if not any(missing):
        return image, tuple(slice(0, n) for n in shape)
    before = [m // 2 for m in missing]
    pads = []
    for m, b in zip(reversed(missing), reversed(before), strict=True):
        pads += [b, m - b]
    value = float(image.min()) if pad_value == "min" else 0.0
    padded = F.pad(image[None, None], pads, mode="constant", value=value)[0, 0]
    return padded, tuple(slice(b, b + n) for b, n in zip(before, shape, strict=True))


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("segmentation cancelled")


def _back_to_grid(
    volume,
    recipe,
    accumulated,
    unpad,
    cropped_shape,
    spacing,
    model_spacing,
    orient,
    box,
    wanted,
    on_progress,
    cancel,
) -> StructureSet:
    """Planes of the model grid → labels on the original grid, chunk by chunk along model z."""
    import torch

    model_shape = tuple(s.stop - s.start for s in unpad)
    maps = recipe.back_maps(model_shape, cropped_shape, model_spacing, spacing)
    channels = [o.channel for o in wanted] if recipe.activation == "sigmoid" else list(range(recipe.channels))
    plane_bytes = len(channels) * cropped_shape[1] * cropped_shape[2] * 4 * 3
    step = max(1, int(_CHUNK_BYTES // max(plane_bytes, 1)))
    # Results in model orientation (transposed): labels (softmax) or one bit per output (sigmoid).
    if recipe.activation == "softmax":
        store = np.zeros(cropped_shape, np.uint8 if recipe.channels <= 256 else np.uint16)
    else:
        store = np.zeros(cropped_shape, _bit_dtype(len(wanted)))
    chunks = list(range(0, cropped_shape[0], step))
    stage = "Building structures"
    on_progress(stage, 0, len(chunks))
    with torch.inference_mode():
        for done, start in enumerate(chunks, start=1):
            _check_cancel(cancel)
            stop = min(start + step, cropped_shape[0])
            z_map: AxisMap = maps[0].rows(start, stop)
            lo, hi = maps[0].source_range(start, stop)
            slab = accumulated.slab(unpad[0].start + lo, unpad[0].start + hi)
            slab = slab[:, :, unpad[1], unpad[2]]
            if recipe.activation == "sigmoid":
                slab = slab[channels]
            if recipe.activation_first:
                slab = torch.sigmoid(slab) if recipe.activation == "sigmoid" else torch.softmax(slab, 0)
            slab = z_map.apply(slab, 1)
            slab = maps[1].apply(slab, 2)
            slab = maps[2].apply(slab, 3)
            if recipe.activation == "softmax":
                store[start:stop] = (
                    slab.argmax(0).to(torch.uint8 if store.dtype == np.uint8 else torch.int32).cpu().numpy()
                )
            else:
                cut = (
                    recipe.threshold
                    if recipe.activation_first
                    else float(np.log(recipe.threshold / (1 - recipe.threshold)))
                )
                bits = np.zeros((stop - start, *cropped_shape[1:]), store.dtype)
                above = (slab >= cut).cpu().numpy()
                for k in range(len(wanted)):
                    bits |= above[k].astype(store.dtype) << np.array(k, store.dtype)
                store[start:stop] = bits
            del slab
            on_progress(stage, done, len(chunks))
    accumulated.logits = None
    return _structure_set(volume, recipe, store, wanted, orient, box)


def _bit_dtype(count: int):
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if count <= np.iinfo(dtype).bits:
            return dtype
    raise DelineoError(f"a model may draw at most 64 overlapping structures at once, not {count}")


def _structure_set(volume, recipe, store, wanted, orient, box) -> StructureSet:
    """Masks from the stored labels/bits, cropped per structure, placed on the volume's grid."""
    inverse = np.argsort(recipe.transpose)
    store = orient.backward(np.transpose(store, inverse))
    grid = volume.grid
    result = StructureSet(grid, volume.frame_of_reference_uid, label="Delineo auto")
    origin = [s.start for s in box]
    for k, output in enumerate(wanted):
        if recipe.activation == "softmax":
            mask = store == output.channel
        else:
            mask = (store >> np.array(k, store.dtype)) & np.array(1, store.dtype)
            mask = mask.astype(bool)
        inner = bounding_box(mask)
        if inner is None:
            array, offset = np.zeros((0, 0, 0), bool), (0, 0, 0)
        else:
            array = np.ascontiguousarray(mask[inner])
            offset = tuple(o + s.start for o, s in zip(origin, inner, strict=True))
        structure = Structure(
            output.name,
            Mask(grid, array, offset),
            output.color,
            output.roi_type,
            GenerationAlgorithm.AUTOMATIC,
        )
        result.add(structure)
    return result
