"""Intensity normalisation shared by training and inference, described in model manifests.

`normalize` works on numpy arrays and on torch tensors alike (the engine normalises on the device);
`resample` (torch) is the one spacing change used for training inputs and for inference.
A manifest's ``"normalization"`` is one of:

- ``{"type": "ct", "clip": [low, high], "mean": m, "std": s}``: HU clipped, then (x − m) / s;
- ``{"type": "zscore"}``: (x − mean) / std over the non-zero voxels of the image (MR);
- ``{"type": "none"}``.
"""

from __future__ import annotations


def normalize(image, spec: dict):
    """Normalised copy of `image` (float32 numpy array or torch tensor) following `spec`."""
    kind = spec.get("type", "none")
    if kind == "ct":
        low, high = spec["clip"]
        return (image.clip(low, high) - float(spec["mean"])) / max(float(spec["std"]), 1e-6)
    if kind == "zscore":
        foreground = image[image != 0]
        if foreground.numel() if hasattr(foreground, "numel") else foreground.size:
            mean, std = float(foreground.mean()), float(foreground.std())
        else:
            mean, std = 0.0, 1.0
        return (image - mean) / max(std, 1e-6)
    if kind == "none":
        return image * 1.0
    raise ValueError(f"unknown normalization type {kind!r}; expected ct, zscore or none")


def resample(image, spacing_from_zyx, spacing_to_zyx, mode: str = "trilinear", size_zyx=None):
    """`image` (torch tensor (..., Z, Y, X)) resampled from one voxel spacing to another (mm).

    The first voxel's centre stays where it is (the grid origin is unchanged): output voxel i
    samples the input at index ``i * spacing_to / spacing_from`` along each axis, clamped to the
    input's edge. The output shape is ``round(Z * spacing_from / spacing_to)`` per axis, or
    `size_zyx` when given (use it to go back exactly: ``resample(p, to, from, size_zyx=original)``).
    ``"trilinear"`` returns float32 (float64 input stays float64); ``"nearest"`` keeps the dtype
    (label maps). Separable, so memory stays a few copies of the larger of input and output, and
    it runs on the tensor's device. Leading dimensions (channels) are resampled alike.
    """
    import torch

    if mode not in ("trilinear", "nearest"):
        raise ValueError(f"unknown resampling mode {mode!r}; expected trilinear or nearest")
    if image.ndim < 3:
        raise ValueError(f"resample needs a (..., Z, Y, X) tensor, got shape {tuple(image.shape)}")
    spacing_from = [float(s) for s in spacing_from_zyx]
    spacing_to = [float(s) for s in spacing_to_zyx]
    if len(spacing_from) != 3 or len(spacing_to) != 3 or min(spacing_from + spacing_to) <= 0:
        raise ValueError(
            f"spacings must be 3 positive values (z, y, x), got {spacing_from} and {spacing_to} mm"
        )
    shape_in = image.shape[-3:]
    if size_zyx is None:
        size_zyx = [
            max(1, round(n * a / b)) for n, a, b in zip(shape_in, spacing_from, spacing_to, strict=True)
        ]
    if mode == "trilinear" and not image.is_floating_point():
        image = image.float()
    out = image
    for axis, (n_in, n_out, a, b) in enumerate(
        zip(shape_in, size_zyx, spacing_from, spacing_to, strict=True)
    ):
        dim = image.ndim - 3 + axis
        if n_in == int(n_out) and a == b:
            continue
        # positions in float64 on the CPU (Apple MPS has no float64), then the indices and
        # weights moved to the image's device
        position = (torch.arange(int(n_out), dtype=torch.float64) * (b / a)).clamp(0, n_in - 1)
        if mode == "nearest":
            nearest = torch.floor(position + 0.5).long().clamp(max=n_in - 1)
            out = _take(out, dim, nearest.to(image.device))
            continue
        low = position.floor().long()
        high = (low + 1).clamp(max=n_in - 1)
        view = [1] * out.ndim
        view[dim] = -1
        weight = (position - low).to(device=image.device, dtype=out.dtype).view(view)
        low, high = low.to(image.device), high.to(image.device)
        below = _take(out, dim, low)
        out = below.add_(weight * (_take(out, dim, high) - below))
    return out


def _take(tensor, dim: int, index):
    """`tensor.index_select(dim, index)` by advanced indexing (several times faster on CPUs)."""
    return tensor[(slice(None),) * dim + (index,)]
