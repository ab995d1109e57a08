"""Window/level: presets and a cached lookup table from image values to grey levels (Qt-free)."""

from __future__ import annotations

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


def tissue_range(array: np.ndarray) -> tuple[int, int]:
    """The values of tissue in an image whose values are not HU (an MR): from the threshold that
    best separates the dark background from the rest (Otsu's, over the 1st–99th percentile of a
    sample) to the 99th percentile, widened to whole numbers. The default value range of the
    brush and fill on such an image, as −200 to 300 HU (no air, no bone) is on a CT."""
    sample = array[:: max(1, array.shape[0] // 8), ::4, ::4].astype(np.float64).ravel()
    low, high = (float(v) for v in np.percentile(sample, (1, 99)))
    counts, edges = np.histogram(sample[(sample >= low) & (sample <= high)], bins=256, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)
    above = below[-1] - below
    sums = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (sums / below - (sums[-1] - sums) / above) ** 2
    threshold = float(centres[np.nanargmax(between)]) if np.isfinite(between).any() else low
    return int(np.floor(threshold)), max(int(np.ceil(high)), int(np.floor(threshold)) + 1)


def auto_window(array: np.ndarray, modality: str) -> Window:
    """A starting window: soft tissue for CT, the 1st–99th percentile range otherwise."""
    if values_are_hu(modality):
        return Window(*PRESETS["Soft tissue"])
    sample = array[:: max(1, array.shape[0] // 8), ::4, ::4]
    low, high = np.percentile(sample, (1, 99))
    return Window(max(float(high - low), MIN_WIDTH), float(low + high) / 2)
