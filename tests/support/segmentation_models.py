"""Tiny models with known answers for the engine's tests.

`Pointwise` is a 1×1×1 convolution: each output channel is ``gain · (x − threshold)`` of the
normalised intensity, so a model made of it draws exactly "HU above a threshold" — the engine's
geometry (crop, orientation, resampling there and back, tiles) can be checked against analytic
shapes. `write_model` writes a model folder (manifest + safetensors) around it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from planning.geometry import Grid
from planning.volume import Volume
from segmentation.networks import register


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run faster on one thread (and the test machine's cores are shared)."""
    torch = _torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _torch():
    import torch

    return torch


@register("test_pointwise")
def pointwise(channels: int, delay_s: float = 0.0, layers: int = 1, fail_above: int | None = None):
    """A pointwise network; `delay_s` per layer (a slow CPU network), `fail_above` voxels per
    tile raise a CUDA-style out-of-memory error (tiles too big for the device)."""
    torch = _torch()

    class Sleep(torch.nn.Module):
        def forward(self, x):
            if not x.is_meta:  # shapes only (the memory estimate) compute nothing
                time.sleep(delay_s)
            return x

    class Pointwise(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.slow = torch.nn.Sequential(*[Sleep() for _ in range(layers)])
            self.head = torch.nn.Conv3d(1, channels, 1)

        def forward(self, x):
            if fail_above is not None and x[0, 0].numel() > fail_above:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.head(self.slow(x))

    return Pointwise()


def write_model(
    folder: Path,
    thresholds_hu: list[float],
    *,
    activation: str = "sigmoid",
    names: list[str] | None = None,
    spacing_xyz=(2.0, 2.0, 3.0),
    patch_zyx=(16, 32, 32),
    orientation: str | None = None,
    crop: str = "body",
    params: dict | None = None,
    gain: float = 40.0,
) -> Path:
    """A model drawing "HU > threshold" per output. Sigmoid: channel k is gain·(x − t_k).
    Softmax: background 0, channel k is Σ_{j≤k} gain·(x − t_j), so with increasing thresholds
    label k wins between t_k and t_{k+1}."""
    from safetensors.torch import save_file

    torch = _torch()
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"Region_{i}" for i in range(len(thresholds_hu))]
    channels = len(thresholds_hu) + (activation == "softmax")
    scale = 1000.0  # normalisation: HU / 1000
    weight = torch.zeros(channels, 1, 1, 1, 1)
    bias = torch.zeros(channels)
    for i, threshold in enumerate(thresholds_hu):
        if activation == "softmax":
            weight[i + 1] = gain * (i + 1)
            bias[i + 1] = -gain * sum(thresholds_hu[: i + 1]) / scale
        else:
            weight[i] = gain
            bias[i] = -gain * threshold / scale
    save_file({"head.weight": weight, "head.bias": bias}, str(folder / "weights.safetensors"))
    digest = hashlib.sha256((folder / "weights.safetensors").read_bytes()).hexdigest()
    manifest = {
        "name": folder.name,
        "version": "0.1",
        "description": "test model: HU thresholds",
        "modality": "CT",
        "architecture": {"name": "test_pointwise", "params": {"channels": channels, **(params or {})}},
        "weights": {"file": "weights.safetensors", "sha256": digest},
        "preprocessing": {
            "spacing_xyz": list(spacing_xyz),
            "normalization": {"type": "ct", "clip": [-1000, 1000], "mean": 0.0, "std": scale},
            "crop": crop,
        },
        "inference": {
            "patch_size_zyx": list(patch_zyx),
            "overlap": 0.5,
            "activation": activation,
            "threshold": 0.5,
            "size_divisor": 4,
        },
        "outputs": [{"channel": i + (activation == "softmax"), "name": n} for i, n in enumerate(names)],
        "card": "MODEL_CARD.md",
    }
    if orientation:
        manifest["preprocessing"]["orientation"] = orientation
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (folder / "MODEL_CARD.md").write_text("# Test model\nResearch use only.\n")
    return folder


def phantom(shape=(30, 64, 60), spacing_xyz=(1.0, 1.0, 2.5), direction=None) -> tuple[Volume, dict]:
    """A CT: air around an elliptic body (40 HU) holding a 300 HU and an 800 HU sphere (14 and
    8 mm radius, apart). Returns the volume and the analytic masks."""
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    sz, sy, sx = spacing_xyz[2], spacing_xyz[1], spacing_xyz[0]
    centre = [(n - 1) / 2 for n in shape]
    body = ((y - centre[1]) * sy / 28) ** 2 + ((x - centre[2]) * sx / 26) ** 2 <= 1

    def sphere(c, r):
        return ((z - c[0]) * sz) ** 2 + ((y - c[1]) * sy) ** 2 + ((x - c[2]) * sx) ** 2 <= r * r

    big = sphere((centre[0], centre[1] - 4, centre[2] - 6), 14.0) & body
    small = sphere((centre[0] + 2, centre[1] + 10, centre[2] + 12), 8.0) & body
    hu = np.full(shape, -1000, np.int16)
    hu[body] = 40
    hu[big] = 300
    hu[small] = 800
    grid = Grid(shape, spacing_xyz, (-30.0, -40.0, 10.0), np.eye(3) if direction is None else direction)
    return Volume(hu, grid, modality="CT"), {"body": body, "big": big, "small": small}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)
