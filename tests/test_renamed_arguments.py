"""Renamed keyword arguments: the new name works, the former one still works with a
``FutureWarning`` naming the new argument, and both give the same result.

- Worker processes are ``workers`` everywhere (``compute_fingerprint`` and
  ``preprocess_dataset`` said ``num_workers``); torch's and ``LoaderConfig``'s data-loading
  ``num_workers`` are another thing and keep their name.
- The class weighting is ``class_weights`` everywhere (``case_weights`` and
  ``sampling_warnings`` said ``mode``, ``losses.class_weights`` said ``method``,
  ``BalancedCaseSampler`` once said ``weights_mode``), with the words ``"balanced"``,
  ``"inverse_sqrt"`` and ``"none"``.
- The folder a call writes into is ``output_dir`` everywhere (``evaluate``, ``write_report``
  and ``write_overlays`` said ``out_dir``; ``Predictor.predict`` and the distributed
  prediction say ``output_dir``). A run folder (``run_dir``: read and written by the trainer,
  cross-validation and ``Predictor.from_run``) and the preprocessing cache (``cache_dir``) are
  other things and keep their names.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from multitask_unet._deprecation import renamed_kwargs
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.data.planning.plan import create_plan
from multitask_unet.data.preprocessing.cache import preprocess_dataset
from multitask_unet.data.readers import DatasetIndex
from multitask_unet.data.sampling import BalancedCaseSampler, case_weights, sampling_warnings
from multitask_unet.data.validation import validate_dataset
from multitask_unet.evaluation import EvaluationConfig, evaluate, write_report
from multitask_unet.evaluation.overlays import OverlayCase, write_overlays
from multitask_unet.inference import Predictor
from multitask_unet.inference.distributed import merge_parts, part_path, predict_distributed
from multitask_unet.losses import LossTermConfig, MultiTaskLossConfig, class_weights
from multitask_unet.training import train
from multitask_unet.training.crossval import cross_validate

LOPSIDED = [0] * 2 + [1] * 1 + [2] * 44
WEIGHTINGS = ("balanced", "inverse_sqrt", "none")


def _warns_renamed(old: str, new: str) -> pytest.WarningsChecker:
    return pytest.warns(FutureWarning, match=rf"\({old}=\.\.\.\) is deprecated; use {new}=\.\.\.")


@renamed_kwargs(num_workers="workers", mode="class_weights")
def _example(value: int, *, workers: int = 2, class_weights: str = "balanced") -> tuple:
    """Docstring kept."""
    return value, workers, class_weights


def test_renamed_kwargs_maps_the_old_name_and_warns_at_the_callers_line() -> None:
    assert _example(1, workers=3, class_weights="none") == (1, 3, "none")
    with _warns_renamed("num_workers", "workers") as record:
        assert _example(1, num_workers=3) == (1, 3, "balanced")
    assert record[0].filename == __file__  # points at the call, not at the helper
    assert "_example(num_workers=...)" in str(record[0].message)
    with pytest.warns(FutureWarning) as record:
        assert _example(1, num_workers=4, mode="none") == (1, 4, "none")
    assert len(record) == 2
    with pytest.raises(TypeError, match="both num_workers= and workers="):
        _example(1, num_workers=3, workers=3)
    assert list(inspect.signature(_example).parameters) == ["value", "workers", "class_weights"]
    assert _example.__name__ == "_example" and _example.__doc__ == "Docstring kept."


def test_worker_processes_are_called_workers_everywhere() -> None:
    for fn in (validate_dataset, compute_fingerprint, preprocess_dataset, train, cross_validate):
        parameters = inspect.signature(fn).parameters
        assert "workers" in parameters and "num_workers" not in parameters, fn.__name__


def test_num_workers_still_works_for_fingerprint_and_preprocessing(
    phantom_dataset: DatasetIndex, tmp_path: Path
) -> None:
    records = list(phantom_dataset.split("train").records)[:2]
    options = {"progress": False, "intensity_samples": 500}
    new = compute_fingerprint(records, workers=1, **options)
    with _warns_renamed("num_workers", "workers") as record:
        old = compute_fingerprint(records, num_workers=1, **options)
    assert "compute_fingerprint(num_workers=...)" in str(record[0].message)
    assert old.to_dict() == new.to_dict()

    plan = create_plan(new, size_divisor=(4, 8, 8))
    kept = preprocess_dataset(records, plan, tmp_path / "new", workers=1, progress=False)
    with _warns_renamed("num_workers", "workers"):
        renamed = preprocess_dataset(records, plan, tmp_path / "old", num_workers=1, progress=False)
    assert renamed == kept and len(kept.processed) == 2
    files = sorted(p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*.npy"))
    assert files
    for name in files:
        assert np.array_equal(np.load(tmp_path / "new" / name), np.load(tmp_path / "old" / name))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_mode_is_now_class_weights_for_case_weights_and_warnings(weighting: str) -> None:
    new = case_weights(LOPSIDED, class_weights=weighting)
    with _warns_renamed("mode", "class_weights") as record:
        old = case_weights(LOPSIDED, mode=weighting)
    assert "case_weights(mode=...)" in str(record[0].message)
    assert np.array_equal(old, new)
    expected = sampling_warnings(LOPSIDED, class_weights=weighting, max_oversampling=None)
    with _warns_renamed("mode", "class_weights"):
        assert sampling_warnings(LOPSIDED, mode=weighting, max_oversampling=None) == expected
    if weighting != "none":  # the message names the weighting it checked
        assert any(w.startswith(f"class 0 has 2 of 47 cases: {weighting}") for w in expected)


def test_weights_mode_is_now_class_weights_for_the_sampler() -> None:
    with _warns_renamed("weights_mode", "class_weights") as record:
        old = BalancedCaseSampler([0, 0, 1], weights_mode="inverse_sqrt", num_samples=6, seed=0)
    assert "BalancedCaseSampler(weights_mode=...)" in str(record[0].message)
    assert record[0].filename == __file__
    new = BalancedCaseSampler([0, 0, 1], class_weights="inverse_sqrt", num_samples=6, seed=0)
    assert old.class_weights == "inverse_sqrt" and list(old) == list(new)
    with pytest.raises(TypeError, match=re.escape("pass only class_weights=")):
        BalancedCaseSampler([0, 1], weights_mode="none", class_weights="none")


@pytest.mark.parametrize("weighting", ["balanced", "inverse_sqrt"])
def test_method_is_now_class_weights_for_loss_weights(weighting: str) -> None:
    counts = [62, 106, 84]
    new = class_weights(counts, class_weights=weighting)
    with _warns_renamed("method", "class_weights") as record:
        old = class_weights(counts, method=weighting)
    assert "class_weights(method=...)" in str(record[0].message)
    torch.testing.assert_close(old, new)


def test_loss_weights_take_the_case_draws_words() -> None:
    """``"none"`` (as in ``data.class_weights``) gives weight 1 for every class, so a term built
    with ``class_weights: none`` and one built from ``class_weights(counts, "none")`` agree."""
    counts = [62, 106, 84]
    torch.testing.assert_close(class_weights(counts, class_weights="none"), torch.ones(3))
    sampled = case_weights([k for k, n in enumerate(counts) for _ in range(n)],
                           class_weights="balanced", max_oversampling=None)  # fmt: skip
    balanced = class_weights(counts, class_weights="balanced")
    per_class = np.array([sampled[sum(counts[:k])] for k in range(3)])  # one case of each class
    assert np.allclose(per_class / per_class[0], (balanced / balanced[0]).numpy())
    logits, target = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, -1])
    plain = MultiTaskLossConfig(terms={"cls": LossTermConfig(loss="ce")}).build()
    explicit = LossTermConfig(
        loss="ce", options={"weight": class_weights(counts, class_weights="none")}
    )
    weighted = MultiTaskLossConfig(terms={"cls": explicit}).build()
    torch.testing.assert_close(
        plain({"cls": logits}, {"cls": target}).total,
        weighted({"cls": logits}, {"cls": target}).total,
    )


def test_the_folder_a_call_writes_is_output_dir_everywhere() -> None:
    for fn in (evaluate, write_report, write_overlays, Predictor.predict, predict_distributed,
               merge_parts, part_path):  # fmt: skip
        parameters = inspect.signature(fn).parameters
        assert "output_dir" in parameters and "out_dir" not in parameters, fn.__name__


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_out_dir_still_works_for_evaluate_write_report_and_overlays(
    phantom_dataset: DatasetIndex, tmp_path: Path
) -> None:
    pred = tmp_path / "pred"  # the reference masks as predictions
    pred.mkdir()
    records = phantom_dataset.split("validation").records
    for record in records:
        (pred / f"{record.case_id}.nii.gz").write_bytes(record.mask.read_bytes())
    options = {"split": "validation", "config": EvaluationConfig(n_bootstrap=20), "figures": False}
    root = phantom_dataset.root
    new = evaluate(pred, root, output_dir=tmp_path / "new", **options)
    with _warns_renamed("out_dir", "output_dir") as record:
        old = evaluate(pred, root, out_dir=tmp_path / "old", **options)
    assert "evaluate(out_dir=...)" in str(record[0].message)
    assert record[0].filename == __file__
    assert old.summary == new.summary and _files(tmp_path / "old") == _files(tmp_path / "new")

    write_report(new, output_dir=tmp_path / "written_new", figures=False)
    with _warns_renamed("out_dir", "output_dir"):
        write_report(new, out_dir=tmp_path / "written_old", figures=False)
    assert _files(tmp_path / "written_old") == _files(tmp_path / "written_new") != {}

    pytest.importorskip("matplotlib")
    cases = [OverlayCase(r.case_id, r.images[0], r.mask) for r in records]
    drawn = write_overlays(cases, output_dir=tmp_path / "overlays_new")
    with _warns_renamed("out_dir", "output_dir"):
        redrawn = write_overlays(cases, out_dir=tmp_path / "overlays_old")
    assert [p.name for p in redrawn] == [p.name for p in drawn] and len(drawn) == len(cases) + 1
