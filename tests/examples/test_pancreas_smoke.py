"""The pancreas example (examples/pancreas): study configs, budget mode, report, smoke mode.

The smoke test runs the grid's whole chain (plan -> preprocess -> train -> predict validation
and test -> evaluate -> comparison report) on phantoms for two variants and two iterations
each; the GPU benchmark script runs its CPU check on a tiny network.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nibabel as nib
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pancreas"
sys.path.insert(0, str(EXAMPLE))
sys.path.insert(0, str(ROOT))

import grid  # noqa: E402
import run_study  # noqa: E402

from multitask_unet.training import TrainConfig  # noqa: E402

HEADS = ("last_stage", "panda", "ovr", "attention")
STRATEGIES = ("wce", "balanced")


def test_the_grid_is_four_heads_times_two_strategies() -> None:
    assert sorted(grid.variants()) == sorted(f"{h}_{s}" for h in HEADS for s in STRATEGIES)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_study_config_follows_the_study(head: str, strategy: str) -> None:
    config = TrainConfig.load(grid.variants()[f"{head}_{strategy}"])
    assert (config.data.batch_size, config.optimization.epochs) == (8, 100)
    assert (config.model.preset, config.model.head) == ("nnunet_3d_fullres", head)
    seg, cls = config.optimization.loss.terms["seg"], config.optimization.loss.terms["cls"]
    assert (seg.loss, seg.weight, seg.deep_supervision) == ("dice_ce", 1.0, True)
    assert cls.weight == 0.3
    assert cls.loss == ("bce_ovr" if head == "ovr" else "ce")
    assert (cls.class_weights == "balanced") == (strategy == "wce")
    assert "pos_weight" not in cls.options and "weight" not in cls.options
    assert config.data.class_weights == ("none" if strategy == "wce" else "balanced")


@pytest.mark.parametrize("counts", [(1, 1, 1), (2, 3, 1)])
def test_ovr_positives_weighted_by_negatives_over_positives(counts) -> None:
    config = TrainConfig.load(grid.variants()["ovr_wce"])
    loss = config.optimization.loss.build(class_counts={"cls": list(counts)})
    expected = [(sum(counts) - n) / n for n in counts]
    assert loss.losses["cls"].pos_weight.tolist() == pytest.approx(expected)


def test_overrides_replace_nested_keys() -> None:
    config = TrainConfig.load(grid.variants()["panda_balanced"]).merged(grid.SMOKE)
    assert (config.model.preset, config.model.head) == ("tiny_residual", "panda")
    assert (config.optimization.epochs, config.optimization.iterations_per_epoch) == (1, 2)
    assert config.runtime.device == "cpu"


def test_budget_mode_is_the_library_front_door(tmp_path: Path, monkeypatch) -> None:
    """``--budget-minutes`` runs ``train(budget=...)``, predicts ``validation/`` and evaluates."""
    import multitask_unet.training.budget.planner as planner
    from multitask_unet.data.phantoms import write_phantom_dataset

    monkeypatch.setattr(planner, "measure_step_seconds", lambda m, p, b, **kw: 1e-3)
    root = write_phantom_dataset(tmp_path / "p", n_train=3, n_validation=2, n_test=0,
                                 shape=(24, 24, 12), class_counts=(1, 1, 1)).root  # fmt: skip
    summary = run_study.run_budget(root, tmp_path / "out", 0.3, workers=1)
    trained = TrainConfig.load(tmp_path / "out" / "run" / "config.yaml")
    assert (
        trained.optimization.optimizer.name == "adamw"
    )  # the budget plan's recipe, from the library
    assert summary["epochs_trained"] >= 1
    assert 0 <= summary["results"]["dice_whole_pancreas"]["estimate"] <= 1
    assert len(list((tmp_path / "out" / "predictions_validation").glob("*.nii.gz"))) == 2


def test_the_report_compares_the_studys_metrics() -> None:
    columns = grid.study_metrics(["subtype0", "subtype1"])
    assert list(columns) == ["dice_whole_pancreas", "dice_lesion", "auc_ovr_subtype0",
                             "auc_ovr_subtype1", "macro_f1"]  # fmt: skip


def test_smoke_mode_runs_the_study_chain(tmp_path: Path) -> None:
    only = ["ovr_wce", "panda_balanced"]  # both strategies; pos_weight from the counts
    summary = grid.run_smoke(tmp_path, only=only)
    out = tmp_path / "grid"
    assert sorted(summary["variants"]) == sorted(only)
    text = (out / "report" / "study_report.md").read_text()
    assert all(f"| {name} | 3 |" in text for name in only)
    assert (out / "report" / "study_report.png").stat().st_size > 1000
    test_images = sorted((tmp_path / "phantoms" / "test").glob("*_0000.nii.gz"))
    for name in only:
        for key in ("dice_whole_pancreas", "dice_lesion", "macro_f1"):
            assert 0.0 <= summary["variants"][name][key]["estimate"] <= 1.0
        pred = out / name / "predictions_test"
        with (pred / "predictions.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == len(test_images) == 3
        for row in rows:
            probs = [float(row[f"prob_subtype{k}"]) for k in range(3)]
            assert sum(probs) == pytest.approx(1.0, abs=1e-4)
            assert int(row["predicted"]) == probs.index(max(probs))
        for image in test_images:
            mask = nib.load(pred / image.name.replace("_0000", ""))
            assert mask.shape == nib.load(image).shape
    last = out / "ovr_wce" / "run" / "checkpoints" / "last.pt"
    written = last.stat().st_mtime_ns
    again = grid.run_smoke(tmp_path, only=only)  # every step finds its output: nothing redone
    assert again["variants"] == summary["variants"] and last.stat().st_mtime_ns == written


def test_gpu_study_train_cpu_check(tmp_path: Path) -> None:
    from benchmarks import gpu_study_train

    out = tmp_path / "result.json"
    argv = ["--device", "cpu", "--iterations", "2", "--warmup", "0", "--preset", "tiny_residual"]
    argv += ["--patch", "16", "32", "32", "--threads", "1", "--output", str(out)]
    assert gpu_study_train.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["head"] == "panda"
    assert result["settings"]["batch_size"] == 2
    assert result["settings"]["timed_iterations"] == 2
    assert result["results"]["iterations_per_s"] > 0
    assert result["environment"]["device"] == "cpu"
