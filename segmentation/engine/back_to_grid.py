"""Step 5 of a run (see `segmentation.engine.pipeline`): model-grid logits back to structures.

The blended logits on the model grid (an `Accumulated`: channels, then the network's axes, in
model orientation) are mapped back to the original (z, y, x) grid with separable linear maps
(`segmentation.engine.resample.AxisMap`), each structure only in the region it occupies, a chunk
of planes at a time; then sigmoid thresholds or softmax argmax give masks, stored cropped to each
structure.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from planning.booleans import keep_largest
from planning.errors import Cancelled
from planning.structures import GenerationAlgorithm, Mask, Structure, StructureSet, bounding_box
from segmentation.engine.orientation import Reorientation

#: Target size (bytes) of the float32 block processed at once when going back to the grid.
_CHUNK_BYTES = 192 * 2**20


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise `Cancelled` when `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("segmentation cancelled")


def back_to_grid(
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
    """Model-grid logits → structures on the original grid, each computed only in its region.

    Linear interpolation is a weighted mean: where every model voxel around a point is below a
    sigmoid threshold (or has background as its argmax), so is the interpolated value. So each
    structure (all foreground, for softmax) is found on the model grid first, and only the
    original voxels whose interpolation touches that region are computed, a chunk of planes at a
    time: memory and time follow the structures' size, not the image's.
    """
    model_shape = tuple(s.stop - s.start for s in unpad)
    maps = recipe.back_maps(model_shape, cropped_shape, model_spacing, spacing)
    logits = accumulated.crop(unpad)
    result = StructureSet(volume.grid, volume.frame_of_reference_uid, label="Delineo auto")
    origin = np.array([s.start for s in box])
    stage = "Building structures"
    if recipe.activation == "softmax":
        jobs = [list(range(recipe.channels))]
    else:
        jobs = [[o.channel] for o in wanted]
    on_progress(stage, 0, len(jobs))
    for done, channels in enumerate(jobs, start=1):
        check_cancel(cancel)
        decision, region = _model_decision(logits, channels, recipe)
        if region is None:
            crops = {}
        else:
            labels, start = _resample_region(logits, channels, region, decision, maps, recipe, cancel)
            crops = _crops(labels, start, recipe, wanted, channels)
        for output in (
            wanted if recipe.activation == "softmax" else [o for o in wanted if o.channel == channels[0]]
        ):
            array, offset = crops.get(output.channel, (np.zeros((0, 0, 0), bool), (0, 0, 0)))
            if array.size:
                array, offset = _to_volume(array, offset, recipe.transpose, orient, cropped_shape)
                offset = tuple(int(o) for o in origin + offset)
            mask = Mask(volume.grid, array, offset)
            if output.keep_largest:
                mask = keep_largest(mask)
            result.add(
                Structure(output.name, mask, output.color, output.roi_type, GenerationAlgorithm.AUTOMATIC)
            )
        on_progress(stage, done, len(jobs))
    accumulated.values = None
    return result


def _model_decision(logits, channels, recipe, chunk: int = 16):
    """The decision of every model voxel (softmax: argmax label, int16; sigmoid: logit ≥ the
    threshold's logit, bool) and the bounding box (model grid) of its foreground, or None.
    `logits`: an `Accumulated`."""
    import torch

    softmax = recipe.activation == "softmax"
    cut = _logit(recipe.threshold)
    decision = torch.empty(
        logits.shape[1:], dtype=torch.int16 if softmax else torch.bool, device=logits.device
    )
    hits = [np.zeros(n, bool) for n in logits.shape[1:]]
    with torch.inference_mode():
        for start in range(0, logits.shape[1], chunk):
            slab = logits.planes(start, start + chunk, channels)
            decided = argmax_channels(slab) if softmax else slab[0] >= cut
            decision[start : start + chunk] = decided
            found = decided != 0 if softmax else decided
            rows_zy = found.any(2)
            hits[0][start : start + found.shape[0]] = rows_zy.any(1).cpu().numpy()
            hits[1] |= rows_zy.any(0).cpu().numpy()
            hits[2] |= found.any(1).any(0).cpu().numpy()
    if not hits[0].any():
        return decision, None
    region = []
    for axis_hits in hits:
        where = np.flatnonzero(axis_hits)
        region.append(slice(int(where[0]), int(where[-1]) + 1))
    return decision, tuple(region)


def _resample_region(logits, channels, region, decision, maps, recipe, cancel, batch: int = 2**18):
    """Labels (softmax: uint8/16 argmax; sigmoid: bool) on the original voxels that `region`
    reaches, and the (transposed-model) index of their first voxel.

    With two-tap maps (linear, nearest), a point whose (up to) eight surrounding model voxels
    share one decision (argmax, or side of the threshold) keeps it after interpolation (a
    weighted mean of values that all favour it): where most points of a chunk of planes are
    such, only the others, near boundaries, are interpolated over every channel; otherwise the
    whole chunk is (separable maps).
    """
    import torch

    rows = []
    for axis_map, part in zip(maps, region, strict=True):
        reach = np.flatnonzero((axis_map.first < part.stop) & (axis_map.stop > part.start))
        rows.append((int(reach[0]), int(reach[-1]) + 1))
    sources = [m.source_range(a, b) for m, (a, b) in zip(maps, rows, strict=True)]
    submaps = [m.rows(a, b) for m, (a, b) in zip(maps, rows, strict=True)]
    box = logits.crop(tuple(slice(lo, hi) for lo, hi in sources), channels)
    softmax = recipe.activation == "softmax"
    # probabilities go back (not linear in the logits), or logits
    activation = functools.partial(_probabilities, softmax=softmax) if recipe.activation_first else None
    threshold = recipe.threshold if recipe.activation_first else _logit(recipe.threshold)
    shape = [b - a for a, b in rows]
    labels = np.zeros(shape, (np.uint8 if recipe.channels <= 256 else np.uint16) if softmax else bool)
    step = max(1, int(_CHUNK_BYTES // max(len(channels) * shape[1] * shape[2] * 4 * 3, 1)))
    corners = (
        _Corners(box, decision[tuple(slice(lo, hi) for lo, hi in sources)], maps, rows, sources, softmax)
        if all(int((m.stop - m.first).max()) <= 2 for m in maps)
        else None
    )
    with torch.inference_mode():
        for start in range(0, shape[0], step):
            check_cancel(cancel)
            stop = min(start + step, shape[0])
            if corners is not None:
                out = corners.decide(start, stop, recipe.activation_first, threshold, batch)
                if out is not None:
                    labels[start:stop] = out.cpu().numpy()
                    continue
            lo, hi = submaps[0].source_range(start, stop)
            slab = box.mapped(lo, hi, (submaps[0].rows(start, stop), submaps[1], submaps[2]), activation)
            decided = argmax_channels(slab) if softmax else slab[0] >= threshold
            labels[start:stop] = decided.cpu().numpy()
    return labels, np.array([a for a, _ in rows])


class _Corners:
    """The model-grid decision of every voxel of a box, and the eight corners (two taps per
    axis) around each original voxel, for deciding points without interpolating them."""

    def __init__(self, box, decision, maps, rows, sources, softmax: bool):
        self.box, self.decision, self.softmax = box, decision, softmax
        self.taps = [
            _taps(m, a, b, lo, box.device) for m, (a, b), (lo, _) in zip(maps, rows, sources, strict=True)
        ]

    def decide(self, start, stop, activation_first, threshold, batch, most: float = 0.8):
        """Decisions for original planes [start, stop), or None when under `most` of the points
        are settled by their corners (interpolating the whole chunk is then cheaper)."""
        import torch

        z = [t[start:stop] for t in self.taps[0]]
        y, x = self.taps[1], self.taps[2]
        corners = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
        first = self.decision[z[0][:, None, None], y[0][None, :, None], x[0][None, None, :]]
        uniform = torch.ones_like(first, dtype=torch.bool)
        for a, b, c in corners[1:]:
            uniform &= self.decision[z[a][:, None, None], y[b][None, :, None], x[c][None, None, :]] == first
        if float(uniform.float().mean()) < most:
            return None
        out = first.clone()
        where = torch.nonzero(~uniform, as_tuple=True)
        for lo in range(0, where[0].numel(), batch):
            iz, iy, ix = (w[lo : lo + batch] for w in where)
            total = 0
            for a, b, c in corners:
                values = self.box.points(z[a][iz], y[b][iy], x[c][ix])
                if activation_first:
                    values = _probabilities(values, self.softmax)
                total = total + values * (z[2 + a][iz] * y[2 + b][iy] * x[2 + c][ix])
            out[iz, iy, ix] = total.argmax(0).to(out.dtype) if self.softmax else total[0] >= threshold
        return out


def argmax_channels(slab):
    """``slab.argmax(0)`` of a (K, ...) tensor as int16, the same labels (ties go to the lowest
    channel) computed as a running maximum over the channels: 3× faster on CPUs, where torch
    reduces across the slowest axis with strided reads."""
    import torch

    best = slab[0].clone()
    labels = torch.zeros(slab.shape[1:], dtype=torch.int16, device=slab.device)
    for channel in range(1, slab.shape[0]):
        labels.masked_fill_(slab[channel] > best, channel)
        torch.maximum(best, slab[channel], out=best)
    return labels


def _probabilities(logits, softmax: bool):
    """Softmax over the channels (first axis) or sigmoid of each channel."""
    import torch

    return torch.softmax(logits, 0) if softmax else torch.sigmoid(logits)


def _logit(probability: float) -> float:
    """The logit at which a sigmoid reaches `probability`: thresholds applied to raw logits."""
    return float(np.log(probability / (1 - probability)))


def _taps(axis_map, start: int, stop: int, offset: int, device):
    """(first index, second index, first weight, second weight) of outputs [start, stop) of a
    two-tap map, indices relative to `offset`; a second tap of weight 0 repeats the first."""
    import torch

    rows = np.arange(start, stop)
    first = axis_map.first[start:stop]
    second = np.minimum(first + 1, axis_map.n_in - 1)
    w1 = axis_map.matrix[rows, first]
    w2 = np.where(second > first, axis_map.matrix[rows, second], 0.0)
    second = np.where(w2 != 0, second, first)
    index = [torch.as_tensor(v - offset, dtype=torch.long, device=device) for v in (first, second)]
    weight = [torch.as_tensor(v, dtype=torch.float32, device=device) for v in (w1, w2)]
    return (*index, *weight)


def _crops(labels, start, recipe, wanted, channels) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """channel → (mask cropped to its bounding box, index of its first voxel)."""
    from scipy import ndimage as ndi

    if recipe.activation != "softmax":
        inner = bounding_box(labels)
        if inner is None:
            return {}
        return {channels[0]: (np.ascontiguousarray(labels[inner]), start + [s.start for s in inner])}
    values = [o.channel for o in wanted]
    objects = ndi.find_objects(labels, max_label=max(values))
    crops = {}
    for value in values:
        inner = objects[value - 1]
        if inner is not None:
            crops[value] = (labels[inner] == value, start + [s.start for s in inner])
    return crops


def _to_volume(array, start, transpose, orient: Reorientation, cropped_shape):
    """A box of the transposed model-oriented crop → the same box in the volume's axis order."""
    inverse = np.argsort(transpose)
    array = np.transpose(array, inverse)
    start = np.asarray(start)[inverse]
    shape = np.asarray(cropped_shape)[inverse]
    for k in range(3):
        if orient.flip[k]:
            array = np.flip(array, k)
            start[k] = shape[k] - start[k] - array.shape[k]
    back = np.argsort(orient.order)
    return np.ascontiguousarray(np.transpose(array, back)), start[back]
