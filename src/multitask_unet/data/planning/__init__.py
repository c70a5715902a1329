"""Planning: the dataset fingerprint and the plan derived from it (nnU-Net's planner).

- :mod:`~multitask_unet.data.planning.fingerprint`: spacings, shapes and intensities of a dataset;
- :mod:`~multitask_unet.data.planning.plan`: :class:`Plan`, :func:`create_plan`;
- :mod:`~multitask_unet.data.planning.patch_size`: the patch size within a memory budget;
- :mod:`~multitask_unet.data.planning.budget_section`: the plan's ``budget`` records.
"""

from multitask_unet.data.planning.fingerprint import (
    CaseFingerprint,
    DatasetFingerprint,
    IntensityStats,
    compute_fingerprint,
)
from multitask_unet.data.planning.plan import (
    ChannelNormalization,
    Plan,
    PreprocessingConfig,
    create_plan,
    plan_target_spacing,
)

__all__ = [
    "CaseFingerprint",
    "ChannelNormalization",
    "DatasetFingerprint",
    "IntensityStats",
    "Plan",
    "PreprocessingConfig",
    "compute_fingerprint",
    "create_plan",
    "plan_target_spacing",
]
