"""K-fold cross-validation as nnU-Net runs it: one plan, K folds, out-of-fold predictions.

:func:`cross_validate` pools every labelled case of a dataset (its ``train`` and ``validation``
splits), splits them into folds stratified by class (:func:`make_splits`, saved as
``RUN/splits.json``, nnU-Net's ``splits_final.json``), plans and preprocesses once (with a
``budget``, the budget planner chooses network, patch, schedule and recipe so that each fold
trains within it), trains one run per fold, predicts each fold's held-out cases with that
fold's model, and chooses post-processing on those out-of-fold predictions
(:class:`~multitask_unet.inference.postprocessing_search.PostprocessingSearch`). The run folder::

    RUN/splits.json, plan.json, preprocessed/     shared by the folds
    RUN/fold_K/                                   a training run (checkpoints/last.pt, ...)
    RUN/validation/                               out-of-fold predictions (+ CASE.npz)
    RUN/validation_postprocessed/                 the same, post-processed as chosen for the
                                                  case's fold on the other folds' cases
    RUN/postprocessing.json                       chosen on every case: applied by predict
    RUN/crossval.json                             the summary: raw and post-processed scores

``multitask-unet predict --model RUN`` then predicts with the fold ensemble and the chosen
post-processing. Every step is skipped when its output exists, so an interrupted run continues.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multitask_unet._atomic import write_text_atomic
from multitask_unet.config import check_seed
from multitask_unet.data.planning import Plan
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.sampling.loader import cache_entries
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import EvaluationConfig
from multitask_unet.provenance import environment
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.crossval_report import summarize_folds
from multitask_unet.training.pipeline import (
    PLAN_NAME,
    budget_device,
    describe_training,
    fit_cases,
    plan_dataset,
    train_config_for_plan,
)

__all__ = ["cross_validate", "labelled_records", "load_splits", "make_splits"]

SPLITS = "splits.json"
OOF = "validation"


def labelled_records(index: DatasetIndex) -> list[CaseRecord]:
    """Every case with a label map, of any split (test cases without masks are left out)."""
    return sorted((r for r in index.records if r.mask is not None), key=lambda r: r.case_id)


def make_splits(
    records: Sequence[CaseRecord], folds: int, *, seed: int = 0
) -> list[dict[str, list[str]]]:
    """Seeded folds stratified by class: ``[{"train": ids, "val": ids}, ...]``.

    scikit-learn's ``StratifiedKFold`` (``KFold`` without classes). A class with a single case
    stays in every training set and is never held out (the classification head must see each
    class in training); cases without a class form a stratum of their own.

    Raises:
        ConfigError: ``folds`` < 2, more folds than cases, more folds than the cases of
            every class (nothing left to stratify), or a seed outside 0 to ``2**32 - 1``.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    check_seed(seed, "the seed of the splits")
    ids = [r.case_id for r in records]
    if folds < 2 or folds > len(ids):
        raise ConfigError(
            f"--folds must be between 2 and the {len(ids)} labelled cases, got {folds}"
        )
    strata = np.array([-1 if r.label is None else int(r.label) for r in records])
    classes, counts = np.unique(strata, return_counts=True)
    singles = {int(c) for c, n in zip(classes, counts) if n == 1 and c >= 0}
    keep = np.array([s not in singles for s in strata])
    pool = np.flatnonzero(keep)
    always = [ids[i] for i in np.flatnonzero(~keep)]
    if len(pool) < folds:
        raise ConfigError(
            f"only {len(pool)} cases can be held out; use --folds {len(pool)} or fewer"
        )
    if (strata[pool] >= 0).any():
        largest = int(np.unique(strata[pool], return_counts=True)[1].max())
        if folds > largest:
            raise ConfigError(
                f"--folds {folds} is larger than the number of cases of every class (the "
                f"largest has {largest}); use --folds {largest} or fewer"
            )
        splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # classes smaller than the fold count: reported by train
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(pool, strata[pool]))
    return [
        {
            "train": sorted([ids[pool[i]] for i in train] + always),
            "val": sorted(ids[pool[i]] for i in held_out),
        }
        for train, held_out in parts
    ]


def load_splits(
    path: str | os.PathLike[str], case_ids: Sequence[str]
) -> list[dict[str, list[str]]]:
    """Read ``splits.json`` and check that it speaks of exactly the dataset's labelled cases."""
    path = Path(path)
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
        folds = [(list(s["train"]), list(s["val"])) for s in splits]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{path} is not a list of {{'train': [...], 'val': [...]}} folds ({error}); "
            "delete it to split again"
        ) from None
    known = set(case_ids)
    named = {c for train, val in folds for c in (*train, *val)}
    if named - known or len(folds) < 2:
        raise ConfigError(
            f"{path} names cases the dataset does not have ({sorted(named - known)[:5]}) or "
            "fewer than 2 folds; delete it to split again, or point at the dataset it was made for"
        )
    both = [(k, sorted(set(train) & set(val))) for k, (train, val) in enumerate(folds)]
    both = [(k, ids) for k, ids in both if ids]
    if both:
        k, ids = both[0]
        raise ConfigError(
            f"{path}: fold {k} both trains on and holds out {ids[:5]}; a held-out case must not "
            "be in its fold's training set. Fix the file, or delete it to split again"
        )
    return [{"train": train, "val": val} for train, val in folds]


def cross_validate(
    data: str | os.PathLike[str] | DatasetIndex,
    run_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    folds: int | None = None,
    budget: str | float | None = None,
    search: object | None = None,
    seed: int = 0,
    only: Sequence[int] | None = None,
    layout: str = "auto",
    workers: int = 2,
    intensity_samples: int = 10**8,
    planner: Callable[[DatasetIndex], Plan] | None = None,
    evaluation: EvaluationConfig | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Cross-validate: splits, one plan, a run per fold, out-of-fold predictions, post-processing.

    Args:
        data: A dataset folder, manifest, or a read index; every labelled case takes part.
        run_dir: The cross-validation folder (see the module docstring).
        config: The :class:`TrainConfig` of every fold (a budget plan's choices are applied).
        folds: Number of folds (default 5, as nnU-Net; or as many as ``RUN/splits.json``).
        budget: Wall-clock budget of each fold, e.g. ``"30m"``: planned once, by measured
            trial steps, so that each fold's training and prediction fit it.
        search: The budget planner's search (default: the device's).
        seed: Seed of the splits (the folds' training uses ``config.runtime.seed``).
        only: Train and predict only these folds now (post-processing is chosen once every
            fold is done).
        planner: Makes the plan from the validated dataset instead of nnU-Net's rules (e.g.
            from nnU-Net plans, :func:`~multitask_unet.interop.nnunet_plans.plan_from_nnunet`,
            fingerprinting :func:`labelled_records`); called only when ``RUN/plan.json`` does
            not exist yet. Excludes ``budget``.
        evaluation: How the out-of-fold predictions are scored (default: 200 bootstrap
            resamples, one region per foreground label of the dataset and their union).
        layout, workers, intensity_samples, verbose: As :func:`~multitask_unet.training.train`.

    Returns:
        The summary written to ``RUN/crossval.json`` (None-valued scores until all folds ran).

    Raises:
        DataError: The dataset has errors.
        ConfigError: A bad fold count or ``seed``, a ``splits.json`` of another dataset, both
            ``budget`` and ``planner``, or a budget too small for any candidate; all before
            anything is written.
    """
    from multitask_unet.data.planning.budget_section import parse_duration
    from multitask_unet.data.preprocessing.cache import preprocess_dataset
    from multitask_unet.data.validation import validate_dataset
    from multitask_unet.inference import Predictor
    from multitask_unet.inference.prediction_folder import write_predictions

    started = time.perf_counter()
    check_seed(seed, "the seed of the splits")
    if budget is not None:
        parse_duration(budget)
        if planner is not None:
            raise ConfigError("a budget plans the run itself; give either budget or planner")
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    index = data if isinstance(data, DatasetIndex) else read_dataset(data, layout=layout)
    records = labelled_records(index)
    by_id = {r.case_id: r for r in records}
    splits_path = run_dir / SPLITS
    if splits_path.is_file():
        splits = load_splits(splits_path, list(by_id))
        if folds is not None and folds != len(splits):
            raise ConfigError(
                f"{splits_path} holds {len(splits)} folds, not {folds}; leave out --folds to "
                "continue it, or choose a new run folder"
            )
    else:
        splits = make_splits(records, 5 if folds is None else folds, seed=seed)
    wanted = list(range(len(splits))) if only is None else sorted(set(only))
    if any(not 0 <= k < len(splits) for k in wanted):
        raise ConfigError(f"--only {wanted}: folds are numbered 0 to {len(splits) - 1}")
    validate_dataset(index).raise_if_errors()
    plan_path = run_dir / PLAN_NAME
    if plan_path.is_file():
        plan = Plan.load(plan_path)
    elif planner is not None:
        plan = planner(index)
    else:
        plan = plan_dataset(
            index, records, config, budget=budget, search=search, workers=workers,
            intensity_samples=intensity_samples, started=started,
        )  # fmt: skip
        if verbose and plan.budget is not None:
            print(f"budget plan: {plan.budget.reason}")
    run_dir.mkdir(parents=True, exist_ok=True)  # splits and plan are written once both exist
    if not splits_path.is_file():
        write_text_atomic(splits_path, json.dumps(splits, indent=1))
    if not plan_path.is_file():
        plan.save(plan_path)
    index = index.with_found_labels(plan.preprocessing.labels)
    cache = run_dir / "preprocessed"
    preprocess_dataset(records, plan, cache, workers=workers, progress=config.runtime.progress)
    entries = {e.case_id: e for e in cache_entries(cache)}
    config = train_config_for_plan(plan, config)
    if verbose:
        print("\n".join(describe_training(config, plan, index, records)))

    device = budget_device(config.runtime.device)
    for k in wanted:
        fold_dir = run_dir / f"fold_{k}"
        done = fold_dir / "fold.json"
        if done.is_file():
            continue
        fold_started = time.perf_counter()
        last = fold_dir / "checkpoints" / "last.pt"
        trained = fold_dir / "trained.json"  # training finished; a rerun only predicts
        if verbose:
            print(
                f"fold {k}: {len(splits[k]['train'])} training, {len(splits[k]['val'])} held-out cases"
            )
        if not trained.is_file():
            result = fit_cases(
                config, fold_dir, plan=plan, entries=entries, index=index,
                train_ids=splits[k]["train"], resume=last.is_file(),
            )  # fmt: skip
            record = {"fold": k, "epochs": result.epochs,
                      "train_seconds": round(time.perf_counter() - fold_started, 1)}  # fmt: skip
            write_text_atomic(trained, json.dumps(record, indent=1))
        record = json.loads(trained.read_text(encoding="utf-8"))
        predicting = time.perf_counter()
        predictor = Predictor.from_checkpoint(last, device=device, save_probabilities=True)
        # one folder for every fold's model (disjoint cases): no predict_settings.json record
        held_out = [by_id[c] for c in splits[k]["val"]]
        write_predictions(predictor, held_out, run_dir / OOF, overwrite=False, progress=False)
        record["predict_seconds"] = round(time.perf_counter() - predicting, 1)
        write_text_atomic(done, json.dumps(record, indent=1))

    finished = [k for k in range(len(splits)) if (run_dir / f"fold_{k}" / "fold.json").is_file()]
    scoring = evaluation or EvaluationConfig(n_bootstrap=200)  # regions: the dataset's labels
    summary = summarize_folds(run_dir, index, splits, finished, scoring)
    summary["budget"] = None if budget is None else str(budget)
    summary["environment"] = environment(device)
    write_text_atomic(run_dir / "crossval.json", json.dumps(summary, indent=1))
    return summary
