"""The Delineo desktop workstation (PyQt6 + VTK): viewing, contouring, auto-segmentation, export.

Nothing is created at import: the application, its settings and its data folder are made by
`workstation.app.launch.run` (what the `delineo` command calls) and passed down.
"""
