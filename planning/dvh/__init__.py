"""Dose-volume histograms with sub-voxel sampling of the structure on the dose grid.

A structure's planar contours are sampled on a regular lattice aligned with the dose grid, finer
than it: each dose voxel is split into f × f columns in-plane, and each contour plane's slab into
sub-planes. The dose at each sample is trilinear in the dose grid; each sample carries its share
of the volume. f is chosen (`auto`) from the structure's shape, not its size: fine enough that at
most `BOUNDARY_SHARE` (5 %) of its volume lies within one sample of its contours (the band where
a sample is in or out by chance, and where D98 and Dmin are set), up to 1/8 of a dose voxel and
`SAMPLE_BUDGET` samples. A large compact structure (a BODY) is then sampled at the dose voxel
centres (f = 1, what dicompyler-core and most planning systems do), a smaller, thinner or more
convoluted one finer — dicompyler-core #243 shows DVHs of small structures off by Gy without it.
Every DVH's `sampling` gives the share it reached; one left above twice the target by the
budget says so in its warnings.

Two sources of geometry:

- **planar contours** (`Structure.contours` or an RTSTRUCT read without its images): each
  contour plane is a slab one image slice thick (`planning.contour_slabs`): reaching halfway to
  the neighbouring images, on an evenly spaced CT one slice spacing centred on it (the
  convention of treatment planning systems and of dicompyler-core), and its own slice where the
  spacing changes. A structure drawn on slices that are not neighbours (two lesions, a lone
  slice, every other slice) is separate slabs, each with its own ends, never one across the
  gap. The slices are the images' when known (a Structure's image grid, or the `slices` given);
  without images they are estimated from the contour planes of the structure set, and the DVH's
  warnings say when a structure's thickness is a guess. Inside means inside an odd number of the
  plane's contours (holes). No CT is needed. The planes must be parallel to the dose frames.
  Where the structure ends the slab reaches `end_cap_mm` past the plane: half its slice by
  default. dicompyler-core's "interpolation between planes" repeats the nearest plane on a
  finer grid from the first plane to the last, which amounts to an end cap of a sixth of the
  spacing; that, not the interpolation, is what makes its small-structure DVHs differ from the
  slab convention.
- **a mask** on its image grid: its voxels are its geometry, and each is sampled at its centre
  (at round(f × its size in dose voxels) points along an axis where it spans more than a dose
  voxel: a 5 mm CT slice on 2.5 mm dose frames is sampled twice; past `SAMPLE_BUDGET`, voxels
  much smaller than a dose voxel are sampled in blocks). A mask on the dose grid itself (OpenKBP)
  thus reads its voxels' own doses: its Dmax is the highest of them (sampling inside its edge
  voxels would mix in the dose of their neighbours outside it).

Metrics come from the samples themselves, not from histogram bins: D_x% is the lowest dose in
the hottest x % of the volume, D_xcc the same for x cc, V_xGy the volume receiving at least x Gy,
Dmean the volume-weighted mean. The histogram (default 0.01 Gy bins) is for plots and export.
Volume outside the dose grid counts with dose 0 and is reported in `warnings`.

Modules: `planning.dvh.histogram` (the `DVH` and its metrics), `planning.dvh.compute`
(`compute_dvh`), `planning.dvh.contour_sampling` and `planning.dvh.mask_sampling` (the two
geometries), `planning.dvh.polygons` (a plane's contours as polygons: area, perimeter, inside),
`planning.dvh.sampling` (the sampling limits and the warnings both geometries give) and
`planning.dvh.report` (CSV table and plot).
"""

from planning.dvh.compute import compute_dvh
from planning.dvh.histogram import DVH
from planning.dvh.report import (
    dose_unit,
    format_dose,
    format_volume,
    plot_dvhs,
    shown_dose,
    visible_on_white,
    write_table,
)
from planning.dvh.sampling import BOUNDARY_SHARE, MAX_FACTOR, SAMPLE_BUDGET, SMALL_STRUCTURE_VOXELS

__all__ = [
    "BOUNDARY_SHARE",
    "DVH",
    "MAX_FACTOR",
    "SAMPLE_BUDGET",
    "SMALL_STRUCTURE_VOXELS",
    "compute_dvh",
    "dose_unit",
    "format_dose",
    "format_volume",
    "plot_dvhs",
    "shown_dose",
    "visible_on_white",
    "write_table",
]
