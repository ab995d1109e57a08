"""Training Delineo's own segmentation models (imports torch): data, sampling, loss, loop, evaluation."""
