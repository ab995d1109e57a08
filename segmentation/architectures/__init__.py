"""Delineo's own network architectures; each module registers itself with `segmentation.networks`."""
