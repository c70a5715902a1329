"""Training on a time budget: choose spacing, patch, network, batch, schedule and recipe.

:func:`plan_for_budget` turns a wall-clock budget (``"30m"``) on a device into a plan whose
training finishes within it. It starts from nnU-Net's target spacing and considers, for every
spacing factor (1x to 2.5x by default, coarsened as nnU-Net's ``3d_lowres``), a ladder of patch
sizes (nnU-Net's patch rule under a voxel cap: the shape of the median case at that spacing,
multiples of the network's ``size_divisor``), every model preset and batch size of the
:class:`BudgetSearch` (see :mod:`~multitask_unet.training.budget.candidates`). For each candidate it runs a few real training steps (forward,
backward and optimiser step on random tensors of the patch size, after one warm-up step) and
computes how many steps fit ``budget - trials - overhead``. The smallest candidate of each preset
is measured first (least capable preset first), then the others from the cheapest up; once one
is too slow (confirmed by a second measurement), larger ones of the same preset are skipped, and
measuring stops when ``max_trial_fraction`` of the budget (or ``max_trial_seconds``) is spent.
The candidates the choice is then made from are measured a second time, the faster measurement
counting, so that one passing slow spell of the machine cannot decide the plan.

**Score.** Feasible candidates reach at least ``min_iterations * 2 / batch_size`` steps (the
same number of patches as ``min_iterations`` steps at batch 2). Context first, then capacity,
then resolution: among feasible candidates whose patch covers at least ``min_coverage`` of the
median case, the most capable preset wins (the order of ``presets``; nnU-Net likewise fixes its
network and shrinks the patch, never the other way round); within it, the candidates reaching
``target_iterations`` steps, if any (more steps were worth more than a finer spacing below it),
at the finest spacing where it reaches that coverage, with its largest patch, then the larger
batch and more steps. When no
feasible candidate reaches ``min_coverage``, the largest coverage wins (candidates within
``coverage_tolerance`` of it ranked the same way). Every candidate, its measured step time and
the reason for the choice are stored in ``plan.budget``
(:class:`~multitask_unet.data.planning.budget_section.PlanBudget`).

Without a budget nothing here runs: ``create_plan`` keeps nnU-Net's rules.

Example:
    >>> from multitask_unet.data.phantoms import write_phantom_dataset
    >>> from multitask_unet.data.readers import read_dataset
    >>> from multitask_unet.data.planning.fingerprint import compute_fingerprint
    >>> import tempfile
    >>> root = write_phantom_dataset(tempfile.mkdtemp(), n_train=2, n_validation=0, n_test=0,
    ...                              shape=(16, 16, 16)).root
    >>> fp = compute_fingerprint(read_dataset(root).split("train").records, workers=1,
    ...                          intensity_samples=1000, progress=False)
    >>> search = BudgetSearch(presets=("tiny_plain",), patch_voxels=(8**3, 16**3),
    ...                       min_iterations=10)
    >>> plan = plan_for_budget(fp, "5m", search=search, measure=lambda m, p, b: 0.5)
    >>> plan.budget.preset, plan.budget.chosen.status, plan.budget.iterations >= 10
    ('tiny_plain', 'chosen', True)
    >>> budget_train_config(plan).runtime.fit_minutes == plan.budget.train_minutes
    True
"""

from multitask_unet.data.planning.budget_section import BudgetCandidate, PlanBudget, parse_duration
from multitask_unet.training.budget.candidates import (
    candidate_grid,
    lowres_spacing,
    patch_for_voxels,
)
from multitask_unet.training.budget.planner import plan_for_budget
from multitask_unet.training.budget.recipe import (
    BUDGET_RECIPE,
    MAX_LENGTHENING,
    apply_recipe,
    budget_train_config,
    recipe_sections,
)
from multitask_unet.training.budget.search import BudgetSearch
from multitask_unet.training.budget.trial import StepTimer, device_description, measure_step_seconds

__all__ = [
    "BUDGET_RECIPE",
    "MAX_LENGTHENING",
    "BudgetCandidate",
    "BudgetSearch",
    "PlanBudget",
    "StepTimer",
    "apply_recipe",
    "budget_train_config",
    "candidate_grid",
    "device_description",
    "lowres_spacing",
    "measure_step_seconds",
    "parse_duration",
    "patch_for_voxels",
    "plan_for_budget",
    "recipe_sections",
]
