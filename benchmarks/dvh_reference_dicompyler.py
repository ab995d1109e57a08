"""dicompyler-core 0.5.6's DVHs of the small dicompyler-breast structures, as shipped and corrected.

The "interpolated" reference in ``dvh_reference.json`` comes from dicompyler-core 0.5.6's
sub-voxel mode. In that mode the dose plane is upsampled with ``skimage.transform.rescale``,
whose output pixels tile the original pixels edge to edge. But the coordinates it assigns them
(``get_resampled_lut``) run from the first pixel centre to the centre of a pixel past the end.
So the dose sits about 3/8 of a dose pixel (0.94 mm here) away from the contours. The shift is
reported upstream (dicompyler-core pull request #192, "I noticed a shift in the interpolated DVH
calculations", still open).

This script computes, with dicompyler-core itself:

- plain: no interpolation;
- interpolated: as shipped, the reference's settings;
- corrected: the same settings, but with each upsampled pixel given the coordinate of its centre.

It prints the three as JSON; Delineo's test (`tests/planning/test_dose_dvh.py`) compares against
the corrected values. dicompyler-core 0.5.6 needs pydicom 2, so run it in its own environment:

    python -m venv /tmp/dicompyler && /tmp/dicompyler/bin/pip install dicompyler-core==0.5.6 \\
        pydicom==2.4.4 scikit-image shapely
    /tmp/dicompyler/bin/python benchmarks/dvh_reference_dicompyler.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

STRUCTURES = ("Scar", "Nodes", "Borders")
SETTINGS = {
    "interpolation_resolution": (0.625, 0.625),
    "interpolation_segments_between_planes": 2,
    "use_structure_extents": True,
}


def pixel_centre_lut(shipped):
    """A replacement for dicompyler-core's ``get_resampled_lut`` giving each upsampled pixel the
    patient coordinate of its centre: original first centre − half a pixel + (k + ½) new pixels."""

    def lut(index_extents, extents, new_pixel_spacing, min_pixel_spacing):
        columns, rows = shipped(index_extents, extents, new_pixel_spacing, min_pixel_spacing)
        if not isinstance(new_pixel_spacing, (tuple, list)):
            new_pixel_spacing = (new_pixel_spacing, new_pixel_spacing)

        def centres(first, count, spacing, new_spacing, direction):
            return first + direction * (-spacing / 2 + (np.arange(count) + 0.5) * new_spacing)

        column_direction = 1.0 if extents[2] >= extents[0] else -1.0
        row_direction = 1.0 if extents[3] >= extents[1] else -1.0
        return (
            centres(extents[0], len(columns), min_pixel_spacing[1], new_pixel_spacing[1], column_direction),
            centres(extents[1], len(rows), min_pixel_spacing[0], new_pixel_spacing[0], row_direction),
        )

    return lut


def statistics(dvh) -> dict:
    return {
        "volume_cc": round(float(dvh.volume), 4),
        "Dmean_Gy": round(float(dvh.mean), 4),
        "Dmax_Gy": round(float(dvh.max), 4),
        "D95_Gy": round(float(dvh.statistic("D95").value), 4),
        "V10Gy_cc": round(float(dvh.statistic("V10Gy").value), 4),
    }


def main() -> None:
    from dicompylercore import dicomparser, dvhcalc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    folder = args.data / "dicom" / "dicompyler-breast"
    rtss, rtdose = str(folder / "rtss.dcm"), str(folder / "rtdose.dcm")
    numbers = {s["name"]: number for number, s in dicomparser.DicomParser(rtss).GetStructures().items()}
    shipped = dvhcalc.get_resampled_lut
    results = {"plain": {}, "interpolated": {}, "corrected": {}}
    for name in STRUCTURES:
        results["plain"][name] = statistics(dvhcalc.get_dvh(rtss, rtdose, numbers[name]))
        results["interpolated"][name] = statistics(dvhcalc.get_dvh(rtss, rtdose, numbers[name], **SETTINGS))
        dvhcalc.get_resampled_lut = pixel_centre_lut(shipped)
        try:
            results["corrected"][name] = statistics(dvhcalc.get_dvh(rtss, rtdose, numbers[name], **SETTINGS))
        finally:
            dvhcalc.get_resampled_lut = shipped
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
