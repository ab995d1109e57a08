"""Argument types for numbers with a meaningful range: argparse refuses a value outside it with
a usage line naming the option (``--tolerance: must be > 0, got -2``), before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(kind: type, accept: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = rule  # argparse names the type in some messages
    return parse


positive = _number(float, lambda v: v > 0, "> 0")
non_negative = _number(float, lambda v: v >= 0, "≥ 0")
percent = _number(float, lambda v: 0 <= v <= 100, "from 0 to 100")
overlap_fraction = _number(float, lambda v: 0 <= v < 1, "from 0 to less than 1")
count = _number(int, lambda v: v >= 0, "an integer ≥ 0")
positive_count = _number(int, lambda v: v >= 1, "an integer ≥ 1")
