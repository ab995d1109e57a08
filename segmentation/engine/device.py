"""Where inference runs: CUDA, then Apple MPS, then the CPU, unless the caller says otherwise."""

from __future__ import annotations

import contextlib

from planning.errors import DelineoError


def choose_device(requested: str | None = None):
    """The torch device for `requested` ("cuda", "cuda:1", "mps", "cpu"; None or "auto": best)."""
    import torch

    if requested in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as error:
        raise DelineoError(f"unknown device {requested!r}; use cpu, cuda or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DelineoError("device 'cuda' was asked for, but no CUDA GPU is available to PyTorch here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DelineoError("device 'mps' was asked for, but Apple MPS is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DelineoError(f"device {requested!r} is not supported; use cpu, cuda or mps")
    return device


def autocast(device):
    """fp16 autocast on GPUs (as nnU-Net and most models are trained with AMP); none on the CPU."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "mps":
        return torch.autocast("mps", dtype=torch.float16)
    return contextlib.nullcontext()


#: How torch says a device ran out of memory: CUDA and MPS ("... out of memory ..."); the CPU
#: allocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ..." on Linux
#: and macOS, "DefaultCPUAllocator: not enough memory: ..." on Windows).
_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory", "defaultcpuallocator")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is a device running out of memory: a GPU's, or the CPU's (torch's
    allocator failing, or Python's and numpy's `MemoryError`)."""
    import torch

    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in message for words in _OUT_OF_MEMORY)


def free_memory(device) -> None:
    """Give cached GPU memory back (after a run or an out-of-memory error)."""
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
