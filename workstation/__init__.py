"""Delineo's desktop workstation (PyQt6 + VTK) and its command line."""
