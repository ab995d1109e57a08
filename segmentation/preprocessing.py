"""Intensity normalisation shared by training and inference, described in model manifests.

Works on numpy arrays and on torch tensors alike (the engine normalises on the device).
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
