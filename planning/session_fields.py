"""Checked values of a session file: each check returns the value as Delineo uses it, or raises a
`ValueError` saying in words where the value is (which entry, of which structure), what it holds
and what was expected, e.g. ``session.json: structure 'GTV' has ROI number 'x', not a whole
number ≥ 1``. `planning.session` reads session.json and structures.npz through these.
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np

from planning.structures import CLOSED_TYPES

#: Geometric types a saved planar contour or marker may have (DICOM RT ROI contours).
CONTOUR_TYPES = (*CLOSED_TYPES, "OPEN_PLANAR", "POINT")


def shown(value, limit: int = 60) -> str:
    """`value` as the message shows it: its repr, cut short when long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry(plain, key: str, where: str):
    """`plain[key]`, or a ValueError saying that `where` has no such entry."""
    if not isinstance(plain, dict) or key not in plain:
        raise ValueError(f"{where} has no {key!r} entry")
    return plain[key]


def mapping(value, where: str) -> dict:
    """`value` when it is a JSON object."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} is {shown(value)}, not an object of named entries")
    return value


def sequence(value, where: str, what: str) -> list:
    """`value` when it is a JSON list."""
    if not isinstance(value, list):
        raise ValueError(f"{where} has {what} {shown(value)}, not a list")
    return value


def is_number(value) -> bool:
    """A finite JSON number (not true or false; nor an integer too large for a float, which JSON
    allows)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def is_whole(value) -> bool:
    """A JSON whole number: an int, or a float without fraction (not true or false), within a
    float's range."""
    return is_number(value) and float(value).is_integer()


def whole(value, where: str, what: str, low: int | None = None, high: int | None = None) -> int:
    """`value` when it is a whole number (at least `low`, at most `high`)."""
    if not is_whole(value) or (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bound = f" from {low} to {high}"
        else:
            bound = f" ≥ {low}" if low is not None else f" ≤ {high}" if high is not None else ""
        raise ValueError(f"{where} has {what} {shown(value)}, not a whole number{bound}")
    return int(value)


def numbers(value, where: str, what: str, count: int, *, integer: bool = False, low=None) -> tuple:
    """`value` when it is a list of `count` finite numbers (whole, and at least `low`, if asked)."""
    fits = is_whole if integer else is_number
    if not (
        isinstance(value, list)
        and len(value) == count
        and all(fits(v) and (low is None or v >= low) for v in value)
    ):
        kind = "whole numbers" if integer else "numbers"
        bound = "" if low is None else f" ≥ {low}"
        raise ValueError(f"{where} has {what} {shown(value)}, not {_count_words(count)} {kind}{bound}")
    return tuple(int(v) if integer else float(v) for v in value)


def _count_words(count: int) -> str:
    return {3: "three", 9: "nine"}.get(count, str(count))


def text(value, where: str, what: str, *, empty: bool = True) -> str:
    """`value` when it is a string (not empty, unless `empty`)."""
    if not isinstance(value, str) or not (empty or value.strip()):
        raise ValueError(f"{where} has {what} {shown(value)}, not {'a' if empty else 'a non-empty'} text")
    return value


def texts(value, where: str, what: str) -> list[str]:
    """`value` when it is a list of strings."""
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{where} has {what} {shown(value)}, not a list of texts")
    return value


def flag(value, where: str, what: str) -> bool:
    """`value` when it is true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{where} has {what} {shown(value)}, not true or false")
    return value


def one_of(value, choices, where: str, what: str):
    """`value` as a member of the enum `choices` (or `value` itself when `choices` is a tuple of
    strings), when it is one of them."""
    names = [c.value for c in choices] if isinstance(choices, type) and issubclass(choices, Enum) else choices
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"{where} has {what} {shown(value)}, not one of {', '.join(names)}")
    return choices(value) if isinstance(choices, type) else value


def colour(value, where: str) -> tuple[int, int, int]:
    """`value` when it is three whole numbers 0–255."""
    if not (
        isinstance(value, list) and len(value) == 3 and all(is_whole(c) and 0 <= c <= 255 for c in value)
    ):
        raise ValueError(f"{where} has colour {shown(value)}, not three numbers 0–255")
    return tuple(int(c) for c in value)


def packed_bits(packed: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """The bool array of `shape` saved bit-packed (`np.packbits`) as `packed`, `where` (e.g.
    "structures.npz: the mask of structure 'GTV' (s0_mask)"), when it holds exactly those bits:
    a shorter array would be read as voxels left out."""
    count = int(np.prod(shape))
    needed = (count + 7) // 8
    if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != needed:
        raise ValueError(
            f"{where} is {packed.size} {packed.dtype} value(s) of shape {packed.shape}, not the "
            f"{needed} bytes of {'×'.join(map(str, shape))} yes/no values"
        )
    return np.unpackbits(packed, count=count).astype(bool).reshape(shape)


def contour_arrays(
    points: np.ndarray, counts: np.ndarray, pieces: int, what: str, key: str
) -> list[np.ndarray]:
    """The point arrays, (N, 3) LPS mm, of the `pieces` contours saved under `key` in
    structures.npz: all points in one array, and how many belong to each contour."""
    where = f"structures.npz: the contours of {what} ({key})"
    if points.dtype.kind not in "fiu" or points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{where} have points of shape {points.shape} ({points.dtype}), not (N, 3) numbers")
    if counts.dtype.kind not in "iu" or counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"{where} have point counts {shown(counts.tolist())}, not whole numbers ≥ 0")
    if len(counts) != pieces or int(counts.sum()) != len(points):
        raise ValueError(
            f"{where} have {len(counts)} point count(s) adding up to {int(counts.sum())} for "
            f"{pieces} contour(s) of {len(points)} points"
        )
    if not pieces:
        return []
    return np.split(points.astype(np.float64), np.cumsum(counts)[:-1])
