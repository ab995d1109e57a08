"""Surface meshes of structures, in patient millimetres (DICOM LPS).

- `planning.surfaces.mesh`: the `Surface` type (points, triangles, normals), vtkPolyData
  conversions and vertex normals.
- `planning.surfaces.build`: `build_surfaces` and `surfaces_from_label_map`, the meshing pipeline
  (its docstring gives the steps) and the layers overlapping structures are meshed in.
- `planning.surfaces.options`: `SurfaceOptions`, and the progress and cancel plumbing of a run.
- `planning.surfaces.surface_nets`: the quad mesh of a label map and its smoothing (steps 2–3).
- `planning.surfaces.simplify`: patches, their simplification and their assembly into closed
  surfaces (step 4).
- `planning.surfaces.voxels`: between surfaces and voxels: a voxel set's exact boundary, and the
  voxels inside a surface.

Writing surfaces to files is `planning.mesh_export`; what makes them closed and manifold is
`planning.surface_topology`.
"""
