"""What a segmentation run is asked for and given, checked before it starts.

The outputs named (`select_outputs`, `wanted_names`), voxels that are not numbers
(`finite_voxels`) and the image's modality and, for CT models, whether its values look like
Hounsfield units (`check_modality`). Errors are `DelineoError`s naming the model; warnings are
returned for the run's `warnings`.
"""

from __future__ import annotations

import numpy as np

from planning.errors import DelineoError
from planning.volume import Volume, typical_range
from segmentation.engine.manifest import OutputSpec

#: A CT in Hounsfield units has air (−1000 HU, around and inside the patient) below the first and
#: tissue or bone above the 99th percentile of its values; one without both is likely rescaled.
_AIR_AT_MOST_HU = -500.0
_TISSUE_AT_LEAST_HU = 0.0


def select_outputs(outputs, structures: list[str] | None, model: str = "the model") -> list[OutputSpec]:
    """The outputs named in `structures` (all when None), each once in the order first named, or
    an error naming the unknown ones (`wanted_names`)."""
    if not structures:
        return list(outputs)
    names = {o.name: o for o in outputs}
    return [names[s] for s in wanted_names(list(names), structures, model)]


def wanted_names(available: list[str], structures: list[str], model: str = "the model") -> list[str]:
    """`structures` each once, in the order first named; a DelineoError naming those not among
    `available` (the model's), and listing what it draws."""
    wanted = list(dict.fromkeys(structures))
    missing = [s for s in wanted if s not in available]
    if missing:
        raise DelineoError(
            f"{model} has no structure {', '.join(map(repr, missing))}; it draws: {', '.join(available)}"
        )
    return wanted


def finite_voxels(volume: Volume) -> tuple[Volume, list[str]]:
    """`volume` with voxels that are not numbers (NaN, ±inf) set to its lowest finite value, and a
    warning saying so; `volume` itself when every voxel is a number. (NaN spreads through a
    network's receptive field, most of a tile for a U-Net, and structures there go missing.)"""
    array = volume.array
    if array.dtype.kind != "f" or (finite := np.isfinite(array)).all():
        return volume, []
    lowest = float(array[finite].min()) if finite.any() else 0.0
    count = finite.size - int(np.count_nonzero(finite))
    warning = f"{count:,} voxels that are not numbers (NaN or infinite) were segmented as {lowest:g}"
    return volume.with_array(np.where(finite, array, lowest).astype(array.dtype)), [warning]


def modality_mismatch(image_modality: str, modality: str, model: str = "the model") -> str:
    """Why `model`, which segments `modality` images, cannot take an image of `image_modality`,
    in words; "" when it can (the same modality, or either not known)."""
    if image_modality and modality and image_modality.upper() != modality.upper():
        return f"{model} segments {modality} images; this image is {image_modality}"
    return ""


def check_modality(volume: Volume, modality: str, model: str = "the model") -> list[str]:
    """An error when `volume` is of another modality than the model segments, or, for a CT model,
    when it has no negative value at all (no air, no fat: an MR or other image given as a file,
    which states no modality, or a CT stored without its rescale); a warning (returned, for the
    run's `warnings`) when a CT's values otherwise do not look like Hounsfield units."""
    if mismatch := modality_mismatch(volume.modality, modality, model):
        raise DelineoError(mismatch)
    if modality.upper() != "CT" or not volume.array.size:
        return []
    lowest = float(volume.array.min())
    if lowest >= 0:
        raise DelineoError(
            f"{model} segments CT images in Hounsfield units (air −1000, water 0); this image has no "
            f"negative value (lowest {lowest:g}): it is not such a CT (an MR, or a CT stored without "
            "its rescale intercept)"
        )
    low, high = typical_range(volume.array)
    if low <= _AIR_AT_MOST_HU and high >= _TISSUE_AT_LEAST_HU:
        return []
    message = (
        f"{model} expects a CT in Hounsfield units (air −1000, water 0), but this image's values run "
        f"from {low:g} to {high:g} (1st–99th percentile): if it was rescaled, the contours will be wrong"
    )
    return [message]
