"""The dose-volume histogram of one structure: its samples' doses and volumes, and the metrics
(D_x%, D_xcc, V_x, Dmean) and histograms read from them. Doses in Gy (or the dose's unit),
volumes in cc.

Doses are kept in float32, the precision of the dose grid they are read from (a `Dose` holds
float32 and its trilinear samples are float32 values): a DVH of 4 million samples holds 16 MB
of doses, not 32, and its metrics are those of the float64 samples, bit for bit. Doses given in
float64 are rounded by at most 2^-24 of their value (4 µGy at 70 Gy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from planning.dvh.volumes import SampleVolumes


@dataclass
class DVH:
    """The dose-volume histogram of one structure.

    Attributes:
        name: structure name.
        doses: sample doses, sorted descending (Gy), float32.
        volumes_cc: the volume (cc) each sample stands for, same order, as `SampleVolumes` (an
            array given is converted): an index into a table of the few distinct volumes, none
            when all are equal (a mask's voxels). A DVH of 4 million samples holds 16 MB of
            doses and at most 4 MB of volumes.
        bin_width: histogram bin width (Gy).
        units: "Gy", "Gy(effective)" (a biologically weighted dose) or "relative".
        sampling: how the structure was sampled, in words.
        warnings: small structure, outside the dose grid, ...
    """

    name: str
    doses: np.ndarray
    volumes_cc: SampleVolumes  # an array given is converted
    bin_width: float = 0.01
    units: str = "Gy"
    sampling: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.doses = np.asarray(self.doses, np.float32)
        if not isinstance(self.volumes_cc, SampleVolumes):
            self.volumes_cc = SampleVolumes.of(self.volumes_cc)

    # -- summary ------------------------------------------------------------------------------

    @property
    def volume_cc(self) -> float:
        """The structure's volume the samples stand for, in cc."""
        return float(self.volumes_cc.first(self.doses.size))

    @property
    def is_empty(self) -> bool:
        return self.volume_cc == 0

    @property
    def max(self) -> float:
        """The highest sampled dose (0 when empty)."""
        return float(self.doses[0]) if self.doses.size else 0.0

    @property
    def min(self) -> float:
        """The lowest sampled dose (0 when empty)."""
        return float(self.doses[-1]) if self.doses.size else 0.0

    @property
    def mean(self) -> float:
        """The volume-weighted mean dose (0 when empty)."""
        if self.is_empty:
            return 0.0
        return self.volumes_cc.weighted_sum(self.doses) / self.volume_cc

    def d_percent(self, percent: float) -> float:
        """D_x%: the minimum dose of the hottest `percent` % of the volume."""
        return self.d_cc(self.volume_cc * percent / 100.0)

    def d_cc(self, cc: float) -> float:
        """D_xcc: the minimum dose of the hottest `cc` cm³ (0 when larger than the structure)."""
        if self.is_empty or cc > self.volume_cc * (1 + 1e-9):
            return 0.0
        index = max(self.volumes_cc.count_reaching(cc * (1 - 1e-12)) - 1, 0)
        return float(self.doses[min(index, self.doses.size - 1)])

    def _count_at_least(self, levels):
        """How many samples receive at least each dose of `levels` (a number or an array), as if
        compared in float64: against float32 doses a level is first raised to the nearest float32
        at or above it (a level rounded down would count the doses just below it)."""
        levels = np.asarray(levels, np.float64)
        rounded = levels.astype(np.float32)
        thresholds = np.where(rounded < levels, np.nextafter(rounded, np.float32(np.inf)), rounded)
        ascending = self.doses[::-1]  # a view: negating the doses would copy them at every call
        return self.doses.size - np.searchsorted(ascending, thresholds, side="left")

    def v_gy(self, dose: float) -> float:
        """V_x: volume in cc receiving at least `dose`."""
        return float(self.volumes_cc.first(int(self._count_at_least(dose))))

    def v_percent(self, dose: float) -> float:
        """V_x as a percentage of the structure's volume: the share receiving at least `dose`."""
        return 100.0 * self.v_gy(dose) / self.volume_cc if not self.is_empty else 0.0

    # -- histograms ---------------------------------------------------------------------------

    @property
    def bin_edges(self) -> np.ndarray:
        """Histogram bin edges, `bin_width` apart, from 0 to the first edge at or above the maximum dose."""
        count = max(1, int(math.ceil(self.max / self.bin_width + 1e-9)))
        return np.arange(count + 1) * self.bin_width

    def differential(self) -> np.ndarray:
        """Volume (cc) per bin [edge_i, edge_i+1), the last bin holding every dose from its
        lower edge up."""
        at_least = self.cumulative()
        return at_least[:-1] - np.append(at_least[1:-1], 0.0)

    def cumulative(self) -> np.ndarray:
        """Volume (cc) receiving at least each bin edge's dose (one value per edge)."""
        return self.volumes_cc.first(self._count_at_least(self.bin_edges))

    def statistics(self, dose_levels: Sequence[float] = (), percents: Sequence[float] = (95, 50, 2)) -> dict:
        """A flat dict of the usual numbers (doses in `units`, cc) for tables; V_x keyed by
        `level_name` ("V20Gy_cc", "V50%_cc" for a relative 0.5)."""
        out = {
            "volume_cc": self.volume_cc,
            "Dmean": self.mean,
            "Dmin": self.min,
            "Dmax": self.max,
        }
        for p in percents:
            out[f"D{p:g}%"] = self.d_percent(p)
        for level in dose_levels:
            out[f"{level_name(level, self.units)}_cc"] = self.v_gy(level)
        return out


def level_name(level: float, units: str) -> str:
    """A V_x's name with its dose level in `units`: "V20Gy", "V20Gy(effective)", and for
    relative doses (fractions of the planning system's reference dose) a percentage of it,
    as clinicians write it: 0.5 → "V50%"."""
    if units == "relative":
        return f"V{100 * level:.6g}%"
    return f"V{level:g}{units}"
