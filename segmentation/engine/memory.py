"""Host memory a run needs, checked before weights are read or buffers allocated.

The GUI runs models inside the workstation process: a run the operating system kills for memory
takes the user's unsaved work with it. So a run that clearly cannot fit is refused first, with a
`NotEnoughMemory` naming the model, the estimate and what is available. The estimate
(`MemoryEstimate`) counts only the large buffers that are certainly allocated at once during
the sliding window, so it errs low: a refused run would not have fitted; an accepted one may
still run out (then the engine's smaller tiles and clear error take over, `pipeline.run`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from planning.errors import DelineoError

log = logging.getLogger(__name__)

#: Bytes of a float32 value: weights, the image and activations on the CPU.
FLOAT32 = 4
#: Where Linux says how much memory can be used without swapping (the ``MemAvailable`` line, kB).
MEMINFO = Path("/proc/meminfo")


class NotEnoughMemory(DelineoError):
    """A run that cannot fit in the memory available, refused before it starts."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run on the CPU holds at once during the sliding window, all on the host.

    Attributes:
        weights: parameters and buffers of every network (fold), float32; 0 when loaded already
            (they are then counted as used, not available).
        image: the prepared image on the model grid (padded to at least a tile), float32.
        accumulation: the blended outputs on the model grid: logits float16 (K channels), or
            features float32 with a deferred head (`head.py`).
        activations: one tile through one network, batch 1 (`tile_activation_bytes`), and its
            float32 output with the running sum over mirrorings and folds.
    """

    weights: int
    image: int
    accumulation: int
    activations: int

    @property
    def total(self) -> int:
        """The four buffers together, in bytes."""
        return self.weights + self.image + self.accumulation + self.activations

    def describe(self) -> str:
        """The estimate in words: "2.1 GiB (weights 0.1 GiB, image 0.4 GiB, ...)"."""
        names = ("weights", "image", "accumulation", "activations")
        parts = ", ".join(f"{name} {gib(getattr(self, name))}" for name in names)
        return f"{gib(self.total)} ({parts})"


def gib(size: int) -> str:
    """Bytes as GiB for messages: "3.2 GiB"."""
    return f"{size / 2**30:.1f} GiB"


def available_bytes() -> int | None:
    """Memory that can be allocated without swapping, in bytes (Linux ``MemAvailable``); None
    where unknown (another system, or a kernel without that line): the check is then skipped."""
    try:
        lines = MEMINFO.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def network_bytes(networks: list) -> int:
    """Bytes of the parameters and buffers of `networks` as float32 (each entry counted, a fold
    listed twice twice)."""
    return sum(FLOAT32 * sum(t.numel() for t in (*net.parameters(), *net.buffers())) for net in networks)


def tile_activation_bytes(network, patch_zyx: tuple[int, int, int]) -> int:
    """A rough bound, in bytes, of the float32 activations alive while `network` (on the meta
    device) runs one tile of `patch_zyx` voxels (batch 1, one input channel).

    The network runs on the meta device: shapes only, nothing allocated or computed. For each
    resolution (voxel count) met, C is the widest output of a layer there. A U-Net keeps one such
    output per resolution (the skips) until its decoder uses it, and at the widest one also holds
    the concatenation of two and a convolution's output: Σ C·V + 2·max C·V values, V the voxels
    at that resolution. Mirroring and folds run tiles one after another and add no more. A
    network that cannot run on the meta device (an operation without shapes there) counts 0:
    the estimate errs low, it never stops a run.
    """
    import torch

    widths: dict[int, int] = {}

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.ndim == 5:
            voxels = output.shape[2] * output.shape[3] * output.shape[4]
            widths[voxels] = max(widths.get(voxels, 0), output.shape[1])

    leaves = [m for m in network.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.inference_mode():
            network(torch.empty((1, 1, *patch_zyx), device="meta"))
    except Exception as error:  # any layer may refuse meta tensors
        log.info(
            "activations not estimated: %s does not run on the meta device (%s)",
            type(network).__name__,
            error,
        )
        return 0
    finally:
        for hook in hooks:
            hook.remove()
    sizes = [channels * voxels for voxels, channels in widths.items()]
    return FLOAT32 * (sum(sizes) + 2 * max(sizes, default=0))


def check_fits(estimate: MemoryEstimate, name: str, available: int | None = None) -> None:
    """Refuse a run of model `name` whose estimate exceeds the `available` bytes (default: what
    the system says now; nothing is refused where that is unknown)."""
    available = available_bytes() if available is None else available
    if available is None or estimate.total <= available:
        return
    raise NotEnoughMemory(
        f"{name} needs about {estimate.describe()} of memory for this image, {gib(available)} is "
        "available: nothing was run; segment a smaller image or fewer folds (nnU-Net), close other "
        "programs, or use a GPU"
    )
