"""Rule-based CT contours that need no weights: External (BODY), Lung_L, Lung_R, Bone.

`RuleModel` offers them through the same interface as network models, so the CLI and the GUI
list and run them like any other model (``delineo segment CT --model ct_rules``).
"""

from segmentation.rules.model import RuleModel

__all__ = ["RuleModel"]
