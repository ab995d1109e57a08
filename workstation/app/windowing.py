"""Window/level: presets and a cached lookup table from image values to grey levels (Qt-free)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planning.volume import values_are_hu

#: (width, level) in HU of the usual CT windows.
PRESETS: dict[str, tuple[float, float]] = {
    "Soft tissue": (400.0, 40.0),
    "Lung": (1500.0, -600.0),
    "Bone": (1800.0, 400.0),
    "Brain": (80.0, 40.0),
    "Liver": (150.0, 30.0),
    "Mediastinum": (350.0, 50.0),
}
MIN_WIDTH = 1.0
#: The starting window of the image (`auto_window`), offered beside the CT presets for any image.
AUTOMATIC = "Automatic"


@dataclass(frozen=True)
class Window:
    """A display window: values ≤ level − width/2 are black, ≥ level + width/2 white."""

    width: float
    level: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", max(float(self.width), MIN_WIDTH))
        object.__setattr__(self, "level", float(self.level))

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    def describe(self) -> str:
        return f"W {self.width:.0f} L {self.level:.0f}"


class GreyMapper:
    """Maps image planes to uint8 grey levels through a window; integer images use a table.

    For 16-bit images (the usual CT) the table has one entry per possible value, so mapping a
    512×512 slice is one `numpy.take`, with no arithmetic per pixel.
    """

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self._window: Window | None = None
        self._table: np.ndarray | None = None

    def _build(self, window: Window) -> None:
        if self.dtype in (np.dtype(np.int16), np.dtype(np.uint16), np.dtype(np.uint8), np.dtype(np.int8)):
            bits = self.dtype.itemsize * 8
            codes = np.arange(2**bits, dtype=np.int64)
            values = codes.astype(f"u{self.dtype.itemsize}").view(self.dtype).astype(np.float64)
            self._table = _to_grey(values, window)
        else:
            self._table = None
        self._window = window

    def __call__(self, plane: np.ndarray, window: Window) -> np.ndarray:
        """A C-contiguous uint8 copy of `plane` windowed."""
        if window != self._window:
            self._build(window)
        if self._table is not None:
            codes = plane.view(f"u{self.dtype.itemsize}")
            return np.ascontiguousarray(np.take(self._table, codes))
        return np.ascontiguousarray(_to_grey(plane.astype(np.float32), window))


def _to_grey(values: np.ndarray, window: Window) -> np.ndarray:
    scaled = (values - window.low) * (255.0 / window.width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ValueScale:
    """How finely a value range on an image is given (the brush and fill's Min / max boxes).

    Attributes:
        decimals: decimals shown; 0 when the image's values are whole numbers.
        step: what the boxes' arrows add (1 on whole values; about a hundredth of the image's
            1st–99th percentile span otherwise, e.g. 0.01 on values normalised to 0–1).
    """

    decimals: int
    step: float

    def floor(self, value: float) -> float:
        """`value` rounded down to the scale's decimals (an int when it has none); one within a
        thousandth of a decimal above (float32's error on 0.231) counts as on it."""
        scaled = math.floor(value * 10**self.decimals + 1e-3) / 10**self.decimals
        return int(scaled) if self.decimals == 0 else scaled

    def ceil(self, value: float) -> float:
        """`value` rounded up to the scale's decimals (an int when it has none); one within a
        thousandth of a decimal below counts as on it."""
        scaled = math.ceil(value * 10**self.decimals - 1e-3) / 10**self.decimals
        return int(scaled) if self.decimals == 0 else scaled

    def round(self, value: float) -> float:
        """`value` at the scale's decimals (an int when it has none)."""
        return int(round(value)) if self.decimals == 0 else round(float(value), self.decimals)


#: Whole numbers, step 1: HU on a CT, and any image whose values are whole numbers.
WHOLE = ValueScale(0, 1.0)
#: The most decimals a value range is given with (values spanning a millionth or less).
MAX_DECIMALS = 9


def _sample(array: np.ndarray) -> np.ndarray:
    """About one voxel in 16 of 8 planes of `array`, as float64."""
    return array[:: max(1, array.shape[0] // 8), ::4, ::4].astype(np.float64).ravel()


def value_scale(array: np.ndarray) -> ValueScale:
    """The scale of a value range on an image whose values are not HU: whole numbers when its
    values are (an MR on its scanner's scale, 0–1059), else decimals for about a thousandth of
    its 1st–99th percentile span and a step of ten of those (3 decimals and 0.01 on values
    normalised to 0–1; none and 1 from a span of about 3000 up)."""
    if array.dtype.kind in "iub":
        return WHOLE
    sample = _sample(array)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0 or np.array_equal(sample, np.round(sample)):
        return WHOLE
    low, high = np.percentile(sample, (1, 99))
    span = float(high - low) or float(np.abs(sample).max()) or 1.0
    decimals = min(max(0, 3 - round(math.log10(span))), MAX_DECIMALS)
    return ValueScale(decimals, 10.0 ** (1 - decimals) if decimals >= 1 else 1.0)


def tissue_range(
    array: np.ndarray, scale: ValueScale = WHOLE, largest: float | None = None
) -> tuple[float, float]:
    """The values of tissue in an image whose values are not HU (an MR): from the threshold that
    best separates the dark background from the rest (Otsu's, over the 1st–99th percentile of a
    sample) to the image's largest value, widened to the decimals of `scale` (whole numbers
    unless given). The default value range of the brush and fill on such an image: it keeps them
    off the background and leaves out no tissue however bright (an enhancing tumour, fluid);
    unlike HU on a CT, an MR's values name no tissue to leave out. `largest`: the image's
    largest value when the caller has it already (it reads every voxel)."""
    sample = _sample(array)
    sample = sample[np.isfinite(sample)]
    low, high = (float(v) for v in np.percentile(sample, (1, 99)))
    if largest is None:
        with np.errstate(invalid="ignore"):
            largest = float(np.nanmax(array))
    largest = largest if math.isfinite(largest) else float(sample.max())
    counts, edges = np.histogram(sample[(sample >= low) & (sample <= high)], bins=256, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)
    above = below[-1] - below
    sums = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (sums / below - (sums[-1] - sums) / above) ** 2
    threshold = float(centres[np.nanargmax(between)]) if np.isfinite(between).any() else low
    start = scale.floor(threshold)
    return start, max(scale.ceil(largest), scale.round(start + 10.0**-scale.decimals))


def auto_window(array: np.ndarray, modality: str) -> Window:
    """A starting window: soft tissue for CT, the 1st–99th percentile range otherwise."""
    if values_are_hu(modality):
        return Window(*PRESETS["Soft tissue"])
    low, high = np.percentile(_sample(array), (1, 99))
    return Window(max(float(high - low), MIN_WIDTH), float(low + high) / 2)
