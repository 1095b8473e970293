"""Experiment statistics: small pure functions over per-arm summary statistics.

Every function is vectorized: pass arrays of equal (or broadcastable) shape to analyse many
experiments x metrics x variants at once, or scalars for one. Results are NamedTuples of
arrays (NumPy scalars for scalar input). Definitions follow GrowthBook's gbstats 0.8.0 where
sound; see /work/shared/notes/statistics.md.
"""

from .bayes import ExpectedLoss, chance_to_win, expected_loss
from .compare import compare
from .cuped import CupedResult, CupedSums, cuped_effect, cuped_theta
from .effects import Effect, absolute_effect, relative_effect, t_inference, welch_df
from .exact import ExactResult, rare_event_test
from .multiple import benjamini_hochberg, holm
from .noninferiority import NonInferiority, non_inferiority, non_inferiority_test
from .planner import Plan, plan, sample_size_per_arm
from .ratio import RatioSums, ratio_summary
from .sequential import half_width, sequential_effect, sequential_p_value
from .srm import SRM_THRESHOLD, SRMResult, sample_ratio_mismatch
from .summaries import ArmSummary, binary_summary, mean_summary
from .winsorize import nonzero_cap, winsorize

__all__ = [
    "SRM_THRESHOLD",
    "ArmSummary",
    "CupedResult",
    "CupedSums",
    "Effect",
    "ExactResult",
    "ExpectedLoss",
    "NonInferiority",
    "Plan",
    "RatioSums",
    "SRMResult",
    "absolute_effect",
    "benjamini_hochberg",
    "binary_summary",
    "chance_to_win",
    "compare",
    "cuped_effect",
    "cuped_theta",
    "expected_loss",
    "half_width",
    "holm",
    "mean_summary",
    "non_inferiority",
    "non_inferiority_test",
    "nonzero_cap",
    "plan",
    "rare_event_test",
    "ratio_summary",
    "relative_effect",
    "sample_ratio_mismatch",
    "sample_size_per_arm",
    "sequential_effect",
    "sequential_p_value",
    "t_inference",
    "welch_df",
    "winsorize",
]
