"""Auto-segmentation: inference engine, built-in models, training. torch is imported lazily."""
