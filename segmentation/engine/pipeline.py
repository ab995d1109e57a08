"""From a `Volume` to a `StructureSet` through one or more networks.

The steps, each on the chosen device:

1. crop: to the body (CT, a margin around the patient; outside it every voxel is background) or,
   for nnU-Net models, to the non-zero region as nnU-Net does;
2. reorient to the model's orientation (views, no copy);
3. resample to the model's spacing and normalise the intensities (model-specific `Recipe`);
4. sliding window with Gaussian blending, mirroring and fold ensembling, float16 accumulation
   (or float32 features, `head.py`), autocast on GPUs, a cancel check before every layer;
5. back to the original grid with separable linear maps, each structure (softmax: all
   foreground) only in the region it occupies on the model grid, a chunk of planes at a time;
   sigmoid thresholds or softmax argmax; masks stored cropped to each structure.

A run on the CPU that cannot fit in the memory available is refused before anything is loaded
(`memory.py`). A GPU running out of memory retries with smaller tiles, then falls back to the CPU
with a warning.

Modules: the input checks are `inputs.py`, the tile function (folds, mirroring) `predictor.py`,
step 5 `back_to_grid.py`; this module runs the steps in order and handles running out of memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from planning.errors import Cancelled, DelineoError
from planning.structures import StructureSet, bounding_box
from planning.volume import Volume
from segmentation.engine import device as devices
from segmentation.engine import memory
from segmentation.engine.back_to_grid import back_to_grid, check_cancel
from segmentation.engine.inputs import check_modality, finite_voxels, select_outputs
from segmentation.engine.manifest import OutputSpec, model_title
from segmentation.engine.orientation import Reorientation
from segmentation.engine.predictor import Predictor
from segmentation.engine.tiling import sliding_window

log = logging.getLogger(__name__)


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
        network_channels: how many channels the network returns, when it computes more than
            the outputs use (a structure trained but not offered); default: up to the highest
            output channel.
        lateral_mirror: (array axis running left–right in model orientation, network channel
            order after flipping it): a mirrored left parotid is the right one, so mirroring along
            that axis swaps the ``_L``/``_R`` channels back. None: flips keep the channels (as
            nnU-Net does).
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
    network_channels: int | None = None
    lateral_mirror: tuple[int, tuple[int, ...]] | None = None

    @property
    def channels(self) -> int:
        """The number of channels the network outputs."""
        return self.network_channels or max(o.channel for o in self.outputs) + 1


@dataclass
class RunInfo:
    """What a run did: device, tiles, timings, warnings (kept on the model as `last_run`)."""

    device: str = ""
    tiles: int = 0
    patch_zyx: tuple = ()
    seconds: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


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
    name: str = "the model",
    sizing: Callable[[], tuple[list, bool]] | None = None,
) -> StructureSet:
    """Segment `volume`; `networks_on(device)` gives the networks (eval mode) on a device.
    `name`: the model's, for messages. `sizing()`: the networks on the meta device, to estimate
    the memory of a run on the CPU with, and whether they are loaded already; a run that cannot
    fit is refused before anything is loaded (`memory.check_fits`); None: no check."""
    on_progress = on_progress or _no_progress
    info = info if info is not None else RunInfo()
    wanted = select_outputs(recipe.outputs, structures, name)
    volume, filled = finite_voxels(volume)
    info.warnings += filled + check_modality(volume, recipe.modality, name)
    started = time.perf_counter()
    box = _crop_box(volume, recipe)
    info.seconds["crop"] = time.perf_counter() - started
    patch = tuple(recipe.patch_zyx)
    checked = False
    while True:
        if sizing is not None and device.type == "cpu" and not checked:
            networks, loaded = sizing()
            memory.check_fits(estimate_memory(volume.grid, box, recipe, networks, loaded, patch), name)
            checked = True
        try:
            result = _run_on(
                volume, recipe, networks_on(device), device, box, patch, wanted, on_progress, cancel, info
            )
            break
        except Exception as error:
            devices.free_memory(device)
            if isinstance(error, Cancelled) or not devices.is_out_of_memory(error):
                raise
            device, patch = _after_out_of_memory(device, patch, recipe, volume, info, error, name)
    if device.type != "cpu":
        devices.free_memory(device)  # the networks stay; their activations' cache goes
    info.seconds["total"] = time.perf_counter() - started
    return result


def _after_out_of_memory(device, patch, recipe, volume, info, error, name):
    """Smaller tiles; when none are left, the CPU (from a GPU) or a clear error naming model
    `name` and the image (on the CPU)."""
    import torch

    smaller = _smaller_patch(patch, recipe.size_divisor)
    if smaller is not None:
        message = f"{device.type} out of memory with tiles {patch}; retrying with tiles {smaller}"
        patch = smaller
    elif device.type != "cpu":
        message = f"{device.type} out of memory even with small tiles; continuing on the CPU (slower)"
        device, patch = torch.device("cpu"), tuple(recipe.patch_zyx)
    else:
        raise DelineoError(
            f"{name}: not enough memory to segment an image of {volume.shape} voxels, even on the CPU "
            f"with tiles {tuple(patch)}: close other programs, segment a smaller image, or use a GPU"
        ) from error
    log.warning(message)
    info.warnings.append(message)
    return device, patch


def estimate_memory(grid, box, recipe: Recipe, networks: list, loaded: bool, patch) -> memory.MemoryEstimate:
    """The host memory a CPU run on the `box` (z, y, x slices) of an image on `grid` holds during
    its sliding window (`memory.MemoryEstimate`): `networks` on the meta device, as `networks_on`
    gives them, `loaded` whether they are in memory already, tiles of `patch`."""
    from segmentation.engine.head import deferred_head

    orient = Reorientation.between(grid.direction, recipe.orientation)
    cropped = [box[axis].stop - box[axis].start for axis in orient.order]
    shape = [cropped[axis] for axis in recipe.transpose]
    spacing = _network_axes_spacing(orient, grid, recipe)
    target = recipe.model_spacing(spacing)
    voxels = int(
        np.prod([max(round(n * s / t), p) for n, s, t, p in zip(shape, spacing, target, patch, strict=True)])
    )
    head = deferred_head(networks) if recipe.lateral_mirror is None else None  # as `Predictor`
    channels, value_bytes = (head.in_channels, 4) if head is not None else (recipe.channels, 2)
    distinct = {id(net): net.trunk if head is not None else net for net in networks}.values()
    tile = max(memory.tile_activation_bytes(net, patch) for net in distinct)
    output = 2 * memory.FLOAT32 * channels * int(np.prod(patch))  # a tile's output and the running sum
    return memory.MemoryEstimate(
        weights=0 if loaded else memory.network_bytes(networks),
        image=memory.FLOAT32 * voxels,
        accumulation=value_bytes * channels * voxels,
        activations=tile + output,
    )


def _network_axes_spacing(orient: Reorientation, grid, recipe: Recipe) -> tuple[float, ...]:
    """The image's voxel spacing (mm) along the network's axes: reoriented, then transposed."""
    spacing = orient.spacing(grid.spacing_zyx)
    return tuple(spacing[axis] for axis in recipe.transpose)


def credit(model: str, version: str) -> str:
    """The description of every structure a model draws, written to the RTSTRUCT as its ROI
    Description: a contour can be traced to the model and version that drew it."""
    return f"Auto-contoured by {model_title(model, version)}"


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
        spacing = _network_axes_spacing(orient, volume.grid, recipe)
        cropped_shape = tuple(image.shape)
        image = recipe.prepare(image, spacing)
        model_spacing = recipe.model_spacing(spacing)
        image, unpad = _pad(image, patch, recipe.pad_value)
    check_cancel(cancel)
    on_progress("Preparing image", 1, 1)
    info.seconds["prepare"] = time.perf_counter() - clock

    clock = time.perf_counter()
    predictor = Predictor(networks, recipe.mirror_axes, device, recipe.lateral_mirror)
    accumulated = sliding_window(
        image,
        predictor,
        predictor.channels(recipe.channels),
        patch,
        recipe.overlap,
        on_progress=on_progress,
        cancel=cancel,
        head=predictor.head,
    )
    info.tiles = accumulated.tiles
    del image
    info.seconds["inference"] = time.perf_counter() - clock

    clock = time.perf_counter()
    result = back_to_grid(
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
