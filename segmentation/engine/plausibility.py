"""Does a result look like what the model learnt? Warnings for volumes no training case had.

A model trained on head-and-neck CTs, run on an abdomen, still draws something: a spinal cord,
a few cc of "parotid". Nothing in the image says the model is the wrong one, but the volumes do.
A model's manifest may give, for each organ, the smallest and largest volume of that organ in
its training contours (``training_volume_cc``). A drawn organ outside that range is named in a
warning, which says so when the organ reaches the edge of the image (only part of it may be in
view). When most organs are not found or come out smaller than in any training case, one warning
says so instead: the image shows another body site, or only part of the region the model was
trained on. An organ not drawn at all is otherwise no warning here: callers say it was not
found, which is usual when it lies outside the field of view.
"""

from __future__ import annotations

import numpy as np


def volume_warnings(structures, outputs, model: str) -> list[str]:
    """Warnings for the drawn `structures` (a StructureSet) whose volume lies outside their
    output's ``training_volume_cc`` (`outputs`: the model's OutputSpecs); none for outputs with no
    recorded range or not drawn in this run."""
    ranges = {o.name: o.training_volume_cc for o in outputs if o.training_volume_cc is not None}
    checked = [(s, s.volume_cc, ranges[s.name]) for s in structures if s.name in ranges]
    smaller = [(s, cc, span) for s, cc, span in checked if cc < span[0]]
    larger = [(s, cc, span) for s, cc, span in checked if cc > span[1]]
    if len(smaller) >= 2 and 2 * len(smaller) >= len(checked):
        listing = ", ".join(f"{s.name} {_volume(cc)} ({_span(span)})" for s, cc, span in smaller)
        return [
            f"Most organs {model} draws were not found or came out smaller than in any of its training "
            f"cases (their range in brackets): {listing}. The image may show another body site, or "
            "only part of the region the model was trained on: check that the model suits the image, "
            "and review every contour."
        ]
    return [
        f"{s.name}: {_cc(cc)}, {'smaller' if cc < span[0] else 'larger'} than in any of {model}'s "
        f"training cases ({_span(span)}); review it{_EDGE if cc < span[0] and _at_edge(s.mask) else ''}."
        for s, cc, span in smaller + larger
        if cc > 0  # one not drawn at all is said as not found (often outside the field of view)
    ]


#: Said of an organ whose volume is odd and that reaches the edge of the image.
_EDGE = " (it reaches the edge of the image: only part of it may be in view)"


def _volume(cc: float) -> str:
    return "not found" if cc == 0 else _cc(cc)


def _span(span: tuple[float, float]) -> str:
    return f"{_cc(span[0])[:-3]}–{_cc(span[1])}"


def _cc(cc: float) -> str:
    """A volume for a message: one decimal, or two significant digits under 1 cc (a few voxels
    of a fine CT are 0.04 cc, not "0.0 cc")."""
    return f"{cc:.1f} cc" if cc >= 1 else f"{cc:.2g} cc"


def _at_edge(mask) -> bool:
    """Whether `mask` has voxels on the first or last plane of its grid along some axis."""
    box = mask.box
    for axis, (part, size) in enumerate(zip(box, mask.grid.shape, strict=True)):
        if part.start == 0 and np.take(mask.array, 0, axis=axis).any():
            return True
        if part.stop == size and np.take(mask.array, -1, axis=axis).any():
            return True
    return False
