"""The scale of a value range on an image that is not a CT (the brush and fill's Min / max)."""

import numpy as np

from workstation.app.windowing import WHOLE, ValueScale, tissue_range, value_scale


def _head(scale: float = 1.0, dtype=np.int16) -> np.ndarray:
    """A dark background around a block of tissue with values 300–799, times `scale`."""
    rng = np.random.default_rng(0)
    array = np.zeros((20, 128, 128), dtype)
    array[:, 30:100, 30:100] = rng.integers(300, 800, (20, 70, 70))
    return (array * scale).astype(dtype if scale == 1.0 else np.float32)


def test_whole_values_keep_whole_numbers_and_the_tissue_range_scales_with_the_values():
    assert value_scale(_head()) == WHOLE
    assert value_scale(_head().astype(np.float32)) == WHOLE  # whole values in a float image
    low, high = tissue_range(_head())
    assert isinstance(low, int) and isinstance(high, int) and 0 < low < 300 and high == 799  # its brightest
    scale = value_scale(_head(1 / 1000))
    assert scale == ValueScale(3, 0.01)
    assert tissue_range(_head(1 / 1000), scale) == (low / 1000, high / 1000)  # float32's error aside


def test_a_smaller_span_takes_more_decimals_and_a_larger_one_none():
    assert value_scale(_head(1 / 20000)) == ValueScale(4, 0.001)  # values up to 0.04
    assert value_scale(_head(10.5)) == WHOLE  # up to 8390, not whole: whole numbers are fine enough
