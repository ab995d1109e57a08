"""Network architectures a model manifest can name, built from declarative parameters.

A manifest says ``"architecture": {"name": "<registered name>", "params": {...}}``; the engine
calls `build_network(name, params)`. Architectures register themselves with `@register("name")`.
Nothing here is unpickled: weights are loaded separately (safetensors) into the built network.
"""

from __future__ import annotations

from collections.abc import Callable

_BUILDERS: dict[str, Callable[..., object]] = {}


def register(name: str):
    """Class or factory decorator: make an architecture available to manifests as `name`."""

    def decorator(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"architecture {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorator


def build_network(name: str, params: dict):
    """A fresh `torch.nn.Module` of architecture `name` built with keyword `params`."""
    _load_builtin_architectures()
    if name not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS)) or "none"
        raise ValueError(f"unknown network architecture {name!r}; known: {known}")
    return _BUILDERS[name](**params)


def _load_builtin_architectures() -> None:
    """Import the modules that register Delineo's own architectures (they import torch)."""
    import importlib
    import pkgutil

    import segmentation.architectures as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
