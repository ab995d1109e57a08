"""DVHs written out: a CSV table of their metrics, and a matplotlib plot of their cumulative curves."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

from planning.dvh.histogram import DVH, level_name
from planning.files import write_atomically


def dose_unit(units: str) -> str:
    """A dose unit as shown to a person: "Gy", "Gy(effective)", and for relative doses (fractions
    of the reference dose) "% of reference": they are shown as percentages, as V50% names them."""
    return "% of reference" if units == "relative" else units


def shown_dose(value, units: str):
    """A dose (or an array of them) in `dose_unit(units)`: a relative dose (a fraction) as a
    percentage of the reference."""
    return 100.0 * value if units == "relative" else value


def format_dose(value: float, units: str) -> str:
    """A dose for a person to read, in `dose_unit(units)`: 0.01 Gy (2 decimals), and for relative
    doses 0.01 % of the reference (95.31; a fraction to 2 decimals read 95.3 % and 95.4 % as 0.95)."""
    return f"{shown_dose(value, units):.2f}"


def format_volume(cc: float) -> str:
    """A volume in cc for a person to read: 2 decimals, more under 1 cc so that 3 significant
    digits show (0.500, 0.0340), where 2 decimals read a 0.034 cc structure as 0.03."""
    if cc <= 0 or not math.isfinite(cc):
        return f"{cc:.2f}"
    return f"{cc:.{max(2, 2 - math.floor(math.log10(cc)))}f}"


def write_table(
    dvhs: Sequence[DVH],
    path: str | os.PathLike,
    *,
    percents: Sequence[float] = (98, 95, 50, 2),
    cc: Sequence[float] = (),
    levels: Sequence[float] = (),
    dose_warnings: Sequence[str] = (),
) -> None:
    """A CSV of one row per DVH: volume, Dmean, Dmin, Dmax, D_x%, D_xcc, V_x (cc and %), how the
    structure was sampled, and its warnings, after `dose_warnings` (the dose file's: a per-fraction
    dose, relative doses), which hold for every row. Doses in the DVHs' unit (Gy, Gy(effective)),
    relative doses in % of the reference ("Dmean_%_of_reference"), as the V_x name them. A DVH
    with no volume has its row, numbers left blank, and its warnings say why (by default: a
    structure of points or open contours)."""
    unit = dvhs[0].units if dvhs else "Gy"
    dose_column = dose_unit(unit).replace(" ", "_")  # "Gy", "%_of_reference"
    header = ["structure", "volume_cc", f"Dmean_{dose_column}", f"Dmin_{dose_column}", f"Dmax_{dose_column}"]
    header += [f"D{p:g}%_{dose_column}" for p in percents] + [f"D{c:g}cc_{dose_column}" for c in cc]
    header += [f"{level_name(level, unit)}_cc" for level in levels]
    header += [f"{level_name(level, unit)}_%" for level in levels]
    header += ["sampling", "warnings"]

    def write(target: Path) -> None:
        with open(target, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            for dvh in dvhs:
                if dvh.is_empty:
                    blank = [""] * (len(header) - 4)
                    why = dvh.warnings or ["no volume: no closed contours"]  # its own reason, if any
                    warnings = [*dose_warnings, *why]
                    writer.writerow([dvh.name, "0", *blank, dvh.sampling, " | ".join(warnings)])
                    continue
                doses = [dvh.mean, dvh.min, dvh.max] + [dvh.d_percent(p) for p in percents]
                # D_xcc of a structure smaller than x cc is undefined: blank, not 0 (it read as 0 Gy)
                larger = [c for c in cc if c > dvh.volume_cc * (1 + 1e-9)]
                doses += [None if c in larger else dvh.d_cc(c) for c in cc]
                row = [dvh.volume_cc] + [None if d is None else shown_dose(d, unit) for d in doses]
                row += [dvh.v_gy(level) for level in levels] + [dvh.v_percent(level) for level in levels]
                warnings = [*dose_warnings, *dvh.warnings]
                if larger:
                    named = ", ".join(f"D{c:g}cc" for c in larger)
                    warnings.append(
                        f"{dvh.name}: {named} left blank: the structure is only {dvh.volume_cc:.3g} cc"
                    )
                cells = ["" if v is None else f"{v:.4f}" for v in row]
                writer.writerow([dvh.name, *cells, dvh.sampling, " | ".join(warnings)])

    write_atomically(path, write)


def plot_dvhs(
    dvhs: Sequence[DVH],
    *,
    colors: dict[str, tuple[int, int, int]] | None = None,
    relative=True,
    legend_beside: bool = False,
    legend: bool = True,
):
    """A matplotlib Figure of cumulative DVHs (volume in % when `relative`, else cc), its legend
    (unless not `legend`) where it hides least (for a file), or beside the axes with the layout
    redone at every size (`legend_beside`, for a window: this draws in about half the time)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained" if legend_beside else None)
    axes = figure.add_subplot()
    for dvh in dvhs:
        if dvh.is_empty:
            continue
        edges = shown_dose(dvh.bin_edges, dvh.units)
        values = dvh.cumulative()
        if relative:
            values = 100 * values / dvh.volume_cc
        color = None
        if colors and dvh.name in colors:
            color = visible_on_white(tuple(c / 255 for c in colors[dvh.name]))
        axes.plot(edges, values, label=dvh.name, color=color, linewidth=1.5)
    axes.set_xlabel(f"Dose ({dose_unit(dvhs[0].units) if dvhs else 'Gy'})")
    axes.set_ylabel("Volume (%)" if relative else "Volume (cc)")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.grid(True, alpha=0.3)
    if legend and legend_beside:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif legend:
        axes.legend(fontsize="small", loc="best")
    if not legend_beside:
        figure.tight_layout()
    return figure


def visible_on_white(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """A structure colour (0–1) darkened until it stands out on a white plot (a white or pale
    yellow BODY would draw an invisible curve); other colours unchanged."""
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    if luminance <= 0.75:
        return rgb
    return tuple(c * 0.75 / luminance for c in rgb)
