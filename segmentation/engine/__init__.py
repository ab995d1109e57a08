"""The inference engine: model folders in, StructureSets out.

- `manifest`: the declarative model description (JSON/TOML), validated with clear errors;
- `model`: weights checked (sha256) and loaded safely, networks kept loaded per device;
- `pipeline`: crop, reorient, resample and normalise on the device, sliding window with Gaussian
  blending, back to the original grid in bounded memory, cancel and progress;
  its parts: `inputs` (checks of what a run is asked and given), `orientation` (to the model's
  axes and back), `resample` (separable per-axis linear maps), `tiling` (tile positions and
  Gaussian blending), `predictor` (folds and mirrorings of a tile), `back_to_grid` (logits to
  structures on the original grid);
- `memory`: the host memory a CPU run needs, checked before anything is allocated;
- `plausibility`: warnings for organ volumes outside those of the model's training contours;
- `head`: networks ending in a pointwise layer with more outputs than features: features are
  blended and that layer applied where logits are read;
- `device`: CUDA > MPS > CPU unless told otherwise, autocast, out-of-memory handling.

Importing the package does not import torch (`head`, which needs it, is imported when a model
runs).
"""
