"""Comparison of two structure sets on one image (auto vs expert, two observers): a per-structure
table of `planning.metrics` as CSV and as an HTML page with embedded plots.

Structures are paired by name (exactly, then ignoring case and punctuation, unless two names of one
set are alike so: those are named in a warning); structures found in only one set are listed as
unmatched, and sets with no pair at all are refused.
Distances are mm, volumes cc; `inf` means one of the pair is empty (see planning.metrics).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from planning.errors import Cancelled, DelineoError, GeometryError
from planning.metrics import Comparison, compare
from planning.structures import StructureSet

Progress = Callable[[str, float, float], None]

#: CSV/HTML columns: (Comparison field, heading, number format).
COLUMNS = [
    ("reference_cc", "Reference (cc)", "{:.2f}"),
    ("test_cc", "Test (cc)", "{:.2f}"),
    ("volume_difference_cc", "ΔV (cc)", "{:+.2f}"),
    ("relative_volume_difference", "ΔV (%)", "{:+.1%}"),
    ("dice", "Dice", "{:.3f}"),
    ("jaccard", "Jaccard", "{:.3f}"),
    ("sensitivity", "Sensitivity", "{:.3f}"),
    ("precision", "Precision", "{:.3f}"),
    ("hausdorff_mm", "HD (mm)", "{:.1f}"),
    ("hd95_mm", "HD95 (mm)", "{:.1f}"),
    ("mean_surface_distance_mm", "MSD (mm)", "{:.2f}"),
    ("surface_dice", "Surface Dice", "{:.3f}"),
    ("added_path_length_mm", "APL (mm)", "{:.0f}"),
    ("centroid_distance_mm", "Centroid Δ (mm)", "{:.1f}"),
]


@dataclass
class SetComparison:
    """Result of comparing a test structure set against a reference one."""

    reference_label: str
    test_label: str
    tolerance_mm: float
    rows: list[tuple[str, str, Comparison]] = field(default_factory=list)  # (ref name, test name, metrics)
    only_reference: list[str] = field(default_factory=list)
    only_test: list[str] = field(default_factory=list)
    #: names of one set equal ignoring case and punctuation, and what was done (`NameMatch`)
    same_names: list[SameNames] = field(default_factory=list)
    #: the pairs the user named (`compare_sets`'s `explicit`)
    explicit: list[tuple[str, str]] = field(default_factory=list)


def compare_sets(
    reference: StructureSet,
    test: StructureSet,
    *,
    tolerance_mm: float = 2.0,
    names: list[str] | None = None,
    explicit: list[tuple[str, str]] = (),
    reference_label: str = "reference",
    test_label: str = "test",
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SetComparison:
    """Pair structures by name (`explicit`: (reference name, test name) pairs, taken before any
    other, for names that differ: ("Lt Lung", "Lung_L")) and compute every metric for each pair."""
    if not reference.grid.same_as(test.grid):
        raise GeometryError("the two structure sets are on different image grids")
    match = match_names(
        reference.names(),
        test.names(),
        explicit=explicit,
        reference_label=reference_label,
        test_label=test_label,
    )
    pairs = match.pairs
    if not pairs:
        raise DelineoError(
            f"no structure of the {test_label} set has the name of one in the {reference_label} set, so "
            f"there is nothing to compare (structures named differently can be paired explicitly); "
            f"{reference_label}: {', '.join(reference.names()) or 'none'}; "
            f"{test_label}: {', '.join(test.names()) or 'none (empty)'}"
        )
    if names is not None:
        paired = {_key(n) for pair in pairs for n in pair}
        missing = [n for n in names if _key(n) not in paired]
        if missing:
            raise DelineoError(
                f"no structure pair named {', '.join(map(repr, missing))}; the pairs are "
                f"{', '.join(a if a == b else f'{a} ↔ {b}' for a, b in pairs) or 'none'}"
            )
        wanted = {_key(n) for n in names}
        pairs = [(a, b) for a, b in pairs if _key(a) in wanted or _key(b) in wanted]
    result = SetComparison(
        reference_label,
        test_label,
        tolerance_mm,
        [],
        match.only_reference,
        match.only_test,
        match.same_names,
        match.explicit,
    )
    for n, (a, b) in enumerate(pairs):
        if cancel is not None and cancel.is_set():
            raise Cancelled("comparison cancelled")
        result.rows.append((a, b, compare(reference[a].mask, test[b].mask, tolerance_mm=tolerance_mm)))
        if on_progress is not None:
            on_progress("Comparing structures", n + 1, len(pairs))
    return result


@dataclass(frozen=True)
class SameNames:
    """Names of one set (`side` 0 the reference, 1 the test set) that are one name ignoring case
    and punctuation ("PTV-1", "PTV_1"); `others`, those of the other set that could be any of
    them, hence paired with none; `text`, the sentence naming them and how each was paired."""

    side: int
    names: tuple[str, ...]
    others: tuple[str, ...]
    text: str


@dataclass
class NameMatch:
    """How two structure sets' names were paired.

    Attributes:
        pairs: (reference name, test name), in the reference's order.
        only_reference, only_test: names left unpaired.
        same_names: names of one set that are one name ignoring case and punctuation.
        explicit: the pairs given explicitly (also in `pairs`).
    """

    pairs: list[tuple[str, str]]
    only_reference: list[str]
    only_test: list[str]
    same_names: list[SameNames] = field(default_factory=list)
    explicit: list[tuple[str, str]] = field(default_factory=list)


def match_names(
    reference: list[str],
    test: list[str],
    *,
    explicit: list[tuple[str, str]] = (),
    reference_label: str = "reference",
    test_label: str = "test",
) -> NameMatch:
    """Pair the `explicit` (reference name, test name) pairs first, then exact names, then names
    equal ignoring case and punctuation ("GTV-1" ↔ "gtv_1"). Where two names of one set are equal
    so ("PTV-1", "PTV_1"), neither is paired but by its exact name or explicitly: which of them the
    other set's "ptv1" means is not for a guess. Raises DelineoError for an explicit pair naming a
    structure that is not in its set, or one named in two pairs."""
    explicit_pairs = _explicit_pairs(explicit, reference, test, reference_label, test_label)
    pairs = list(explicit_pairs.items())
    left = [t for t in test if t not in {b for _, b in pairs}]
    unmatched = []
    for name in (r for r in reference if r not in explicit_pairs):
        if name in left:
            pairs.append((name, name))
            left.remove(name)
        else:
            unmatched.append(name)
    only_reference = []
    for name in unmatched:
        found = [t for t in left if _key(t) == _key(name)]
        if len(found) != 1 or sum(_key(n) == _key(name) for n in unmatched) != 1:
            only_reference.append(name)
        else:
            pairs.append((name, found[0]))
            left.remove(found[0])
    pairs.sort(key=lambda pair: reference.index(pair[0]))  # in the reference's order
    match = NameMatch(pairs, only_reference, left, explicit=list(explicit_pairs.items()))
    match.same_names = _same_names(match, reference, reference_label, test_label, side=0)
    match.same_names += _same_names(match, test, test_label, reference_label, side=1)
    return match


def _explicit_pairs(
    explicit: list[tuple[str, str]],
    reference: list[str],
    test: list[str],
    reference_label: str,
    test_label: str,
) -> dict[str, str]:
    """`explicit` as reference name → test name, checked: each name in its set and in one pair."""
    for side, names, label in ((0, reference, reference_label), (1, test, test_label)):
        absent = [pair[side] for pair in explicit if pair[side] not in names]
        if absent:
            raise DelineoError(
                f"the {label} set has no structure {', '.join(map(repr, absent))} (named in an explicit "
                f"pair); its structures are {', '.join(names) or 'none'}"
            )
        seen: dict[str, tuple[str, str]] = {}
        for pair in explicit:
            if pair[side] in seen:
                raise DelineoError(
                    f"{label}'s {pair[side]!r} is in two explicit pairs: "
                    f"{'='.join(seen[pair[side]])} and {'='.join(pair)}"
                )
            seen[pair[side]] = pair
    return dict(explicit)


def parse_pair(text: str) -> tuple[str, str]:
    """'Lt Lung=Lung_L' → ('Lt Lung', 'Lung_L'): a reference name, '=', a test name."""
    reference, equals, test = text.partition("=")
    if not equals or not reference.strip() or not test.strip() or "=" in test:
        raise DelineoError(f"{text!r} is not a pair: write the reference name, '=' and the test name")
    return reference.strip(), test.strip()


def _same_names(match: NameMatch, names: list[str], label: str, other_label: str, side: int):
    """The groups of `names` (one set's, `side` 0 the reference) equal but for case and
    punctuation, each with a sentence naming them and how each was paired."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_key(name), []).append(name)
    partner = {pair[side]: pair[1 - side] for pair in match.pairs}
    unpaired = match.only_test if side == 0 else match.only_reference
    out = []
    for group in (g for g in groups.values() if len(g) > 1):
        text = f"{label}: {', '.join(group[:-1])} and {group[-1]} are one name ignoring case and punctuation"
        fates = [
            f"{n} was paired with {other_label}'s {partner[n]}" if n in partner else f"{n} was not compared"
            for n in group
        ]
        text += "; " + ", ".join(fates)
        rivals = [n for n in unpaired if _key(n) == _key(group[0])]
        if rivals:
            text += (
                f"; {other_label}'s {', '.join(rivals)} could be any of them and was paired with none "
                "(pair it explicitly)"
            )
        out.append(SameNames(side, tuple(group), tuple(rivals), text))
    return out


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


#: CSV column names that say their unit where the field name does not.
_CSV_NAMES = {"relative_volume_difference": "relative_volume_difference_fraction"}


def summary(result: SetComparison) -> str:
    """ "3 structure pairs compared, mean Dice 0.812; only in the reference (not compared, not in
    the mean): Cord": a structure missing from one set is never silently left out."""
    dice_values = [m.dice for _, _, m in result.rows]
    text = f"{len(result.rows)} structure pair(s) compared"
    if dice_values:
        text += f", mean Dice {sum(dice_values) / len(dice_values):.3f}"
    for names, where in ((result.only_reference, "reference"), (result.only_test, "test set")):
        if names:
            text += f"; only in the {where} (not compared, not in the mean): {', '.join(names)}"
    for same in result.same_names:
        text += f"; warning: {same.text}"
    return text


def write_csv(result: SetComparison, path: str | Path) -> None:
    """One row per structure pair, numbers unformatted (inf where a structure is empty); then a
    row, without numbers, for each structure found in one set only, its note saying which. A
    structure named as another of its set but for case and punctuation has that in its note."""
    blank = [""] * len(COLUMNS)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        names = [_CSV_NAMES.get(c[0], c[0]) for c in COLUMNS]
        writer.writerow(["reference_structure", "test_structure", *names, "tolerance_mm", "note"])
        for a, b, metrics in result.rows:
            values = metrics.as_dict()
            explicitly = "paired explicitly" if (a, b) in result.explicit else ""
            note = "; ".join(filter(None, [explicitly, _same_name_note(result, a, b)]))
            writer.writerow([a, b, *[_plain(values[c[0]]) for c in COLUMNS], result.tolerance_mm, note])
        for name in result.only_reference:
            note = "; ".join(
                filter(None, ["only in the reference: not compared", _same_name_note(result, name)])
            )
            writer.writerow([name, "", *blank, result.tolerance_mm, note])
        for name in result.only_test:
            note = "; ".join(
                filter(None, ["only in the test set: not compared", _same_name_note(result, b=name)])
            )
            writer.writerow(["", name, *blank, result.tolerance_mm, note])


def _same_name_note(result: SetComparison, a: str | None = None, b: str | None = None) -> str:
    """The `same_names` sentences naming reference structure `a` or test structure `b`."""
    return "; ".join(
        same.text
        for same in result.same_names
        if (a, b)[same.side] in same.names or (a, b)[1 - same.side] in same.others
    )


def write_html(result: SetComparison, path: str | Path, *, title: str = "Structure comparison") -> None:
    """A self-contained HTML page: summary, per-structure table, plots (PNG embedded)."""
    Path(path).write_text(render_html(result, title=title), encoding="utf-8")


def render_html(result: SetComparison, *, title: str = "Structure comparison") -> str:
    """The HTML page `write_html` writes, as a string."""
    rows_html = []
    for a, b, metrics in result.rows:
        values = metrics.as_dict()
        label = html.escape(a if a == b else f"{a} ↔ {b}")
        cells = "".join(f"<td>{_format(fmt, values[key])}</td>" for key, _, fmt in COLUMNS)
        rows_html.append(f"<tr><th>{label}</th>{cells}</tr>")
    headings = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in COLUMNS)
    unmatched = ""
    if result.only_reference or result.only_test:
        unmatched = (
            "<p><b>Unmatched.</b> Only in reference: "
            f"{html.escape(', '.join(result.only_reference) or 'none')}; only in test: "
            f"{html.escape(', '.join(result.only_test) or 'none')}.</p>"
        )
    for same in result.same_names:
        unmatched += f"<p><b>Names alike.</b> {html.escape(same.text)}.</p>"
    plots = "".join(
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">' for alt, data in _plots(result)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
tr th:first-child {{ text-align: left; }}
thead th {{ background: #eee; }}
img {{ max-width: 48%; margin: 0.5em 1% 0 0; }}
.note {{ color: #555; font-size: 0.85em; max-width: 60em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Reference: <b>{html.escape(result.reference_label)}</b> &nbsp;
Test: <b>{html.escape(result.test_label)}</b> &nbsp;
Surface tolerance: {result.tolerance_mm:g} mm &nbsp; {html.escape(summary(result))}</p>
{unmatched}
<table><thead><tr><th>Structure</th>{headings}</tr></thead><tbody>
{"".join(rows_html)}
</tbody></table>
<div>{plots}</div>
<p class="note">Dice, Jaccard, sensitivity (reference covered) and precision (test inside reference)
from voxel counts. Surface metrics follow DeepMind's surface-distance (area-weighted surface
elements): HD = Hausdorff, HD95 = 95th percentile, MSD = mean of the two directed mean surface
distances, surface Dice at the tolerance. APL = added path length: reference contour length, plane
by plane, farther than the tolerance from the test contour (what must be drawn). "inf" means one
structure of the pair is empty. Generated by Delineo on {datetime.now():%Y-%m-%d %H:%M}.</p>
</body></html>
"""


def _plots(result: SetComparison) -> list[tuple[str, str]]:
    """(alt text, base64 PNG) of bar charts of Dice / surface Dice and HD95 / MSD."""
    out = []
    for figure in _figures(result):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        out.append((figure.axes[0].get_title(), base64.b64encode(buffer.getvalue()).decode("ascii")))
    return out


def _figures(result: SetComparison) -> list:
    """Matplotlib figures "Overlap" (Dice, surface Dice) and "Distances" (HD95, MSD, mm). An
    infinite distance (one structure of the pair empty) gets no bar but the words "∞: empty",
    where a bar of length 0 would read as perfect agreement."""
    if not result.rows:
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [a for a, _, _ in result.rows]
    figures = []
    for title, series, xlabel in (
        ("Overlap", [("Dice", "dice"), (f"Surface Dice {result.tolerance_mm:g} mm", "surface_dice")], ""),
        ("Distances", [("HD95", "hd95_mm"), ("MSD", "mean_surface_distance_mm")], "mm"),
    ):
        figure = Figure(figsize=(7, 0.4 * len(names) + 1.5), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        height = 0.8 / len(series)
        for i, (label, key) in enumerate(series):
            values = [getattr(m, key) for _, _, m in result.rows]
            positions = [k + i * height for k in range(len(names))]
            bars = axes.barh(
                positions, [v if math.isfinite(v) else 0.0 for v in values], height=height, label=label
            )
            for position, value in zip(positions, values, strict=True):
                if not math.isfinite(value):
                    axes.text(
                        0,
                        position,
                        f" {label} ∞: empty",
                        va="center",
                        fontsize="small",
                        color=bars.patches[0].get_facecolor(),
                    )
        axes.set_yticks([k + 0.4 - height / 2 for k in range(len(names))], names)
        axes.invert_yaxis()
        axes.set_xlabel(xlabel or "fraction")
        if not xlabel:
            axes.set_xlim(0, 1)
        axes.legend(fontsize="small", loc="lower right")
        axes.set_title(title)
        figure.tight_layout()
        figures.append(figure)
    return figures


def _format(fmt: str, value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return fmt.format(value)


def _plain(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.6g}"
