"""Does a result look like what the model learnt? Warnings for volumes no training case had.

A model trained on head-and-neck CTs, run on an abdomen, still draws something: a spinal cord,
a few cc of "parotid". Nothing in the image says the model is the wrong one, but the volumes do.
A model's manifest may give, for each organ, the smallest and largest volume of that organ in
its training contours (``training_volume_cc``). A drawn organ outside that range is named in a
warning; when most organs are smaller than in any training case (or not drawn at all), one
warning says the image does not look like the model's training images (body site, field of view).
An organ not drawn at all is otherwise no warning here: callers say it was not found, which is
usual when it lies outside the field of view.
"""

from __future__ import annotations


def volume_warnings(structures, outputs, model: str) -> list[str]:
    """Warnings for the drawn `structures` (a StructureSet) whose volume lies outside their
    output's ``training_volume_cc`` (`outputs`: the model's OutputSpecs); none for outputs with no
    recorded range or not drawn in this run."""
    ranges = {o.name: o.training_volume_cc for o in outputs if o.training_volume_cc is not None}
    checked = [(s.name, s.volume_cc, ranges[s.name]) for s in structures if s.name in ranges]
    smaller = [(name, cc, span) for name, cc, span in checked if cc < span[0]]
    larger = [(name, cc, span) for name, cc, span in checked if cc > span[1]]
    if len(smaller) >= 2 and 2 * len(smaller) >= len(checked):
        listing = ", ".join(f"{name} {cc:.1f} cc ({_span(span)})" for name, cc, span in smaller)
        return [
            f"This image does not look like {model}'s training images: {listing} came out smaller "
            "than in any of its training cases (their range in brackets). Check that the model suits "
            "the image's body site and field of view; these contours are unlikely to be usable."
        ]
    return [
        f"{name}: {cc:.1f} cc, {'smaller' if cc < span[0] else 'larger'} than in any of {model}'s "
        f"training cases ({_span(span)}); review it."
        for name, cc, span in smaller + larger
        if cc > 0  # one not drawn at all is said as not found (often outside the field of view)
    ]


def _span(span: tuple[float, float]) -> str:
    return f"{span[0]:.1f}–{span[1]:.1f} cc"
