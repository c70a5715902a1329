"""``crossval --plans``: an nnU-Net plans file gives every fold's network and the one plan."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from _nnunet_plans import PHANTOMS, TINY, write_plans

from multitask_unet.cli import main
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning import Plan, compute_fingerprint
from multitask_unet.data.readers import read_dataset
from multitask_unet.interop import plan_from_nnunet
from multitask_unet.training.crossval import labelled_records

# Six training cases, two of each class, and two test cases with masks: crossval pools the eight
# labelled cases (and fingerprints them all, not only the training split).
CROSSVAL_PHANTOMS = {**PHANTOMS, "n_train": 6, "class_counts": (2, 2, 2)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crossval_plans") / "phantoms"
    write_phantom_dataset(root, **CROSSVAL_PHANTOMS)
    return root


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_plans(tmp_path_factory.mktemp("crossval_plans") / "nnunet")


@pytest.fixture(scope="module")
def crossval_run(data: Path, plans: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("crossval_plans") / "run"
    argv = ["crossval", str(data), "-o", str(run), "--folds", "2", "--plans", str(plans),
            "--configuration", "3d_fullres", *TINY]  # fmt: skip
    assert main(argv) == 0
    return run


def test_crossval_takes_the_plan_and_network_over(
    data: Path, plans: Path, crossval_run: Path
) -> None:
    run = crossval_run
    # The plan of every fold is the plans' configuration with the labelled cases' fingerprint.
    fingerprint = compute_fingerprint(
        labelled_records(read_dataset(data)), intensity_samples=1000, workers=1, progress=False
    )
    expected = plan_from_nnunet(plans, "3d_fullres", fingerprint=fingerprint)
    assert Plan.load(run / "plan.json") == expected
    assert (expected.patch_size, expected.batch_size) == ((8, 16, 16), 2)
    for k in range(2):
        model = yaml.safe_load((run / f"fold_{k}" / "config.yaml").read_text())["model"]
        assert model["preset"] is None and model["encoder"]["channels"] == [4, 8, 16]
        assert model["encoder"]["kernel_sizes"][0] == [1, 3, 3]
        assert (run / f"fold_{k}" / "fold.json").is_file()
    assert json.loads((run / "crossval.json").read_text())["finished_folds"] == [0, 1]
    assert "plan taken over from" in (run / "crossval.log").read_text()


def test_the_same_command_continues_the_run(data: Path, plans: Path, crossval_run: Path) -> None:
    run = crossval_run
    before = {p: p.stat().st_mtime_ns for p in run.glob("fold_*/checkpoints/last.pt")}
    plan = (run / "plan.json").read_text()
    argv = ["crossval", str(data), "-o", str(run), "--plans", str(plans), *TINY]
    assert main(argv) == 0
    assert (run / "plan.json").read_text() == plan
    assert before == {p: p.stat().st_mtime_ns for p in run.glob("fold_*/checkpoints/last.pt")}


def test_a_run_planned_from_other_plans_is_refused(
    data: Path, plans: Path, crossval_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken_over = Plan.load(crossval_run / "plan.json")
    other = dataclasses.replace(
        taken_over,
        preprocessing=dataclasses.replace(taken_over.preprocessing, target_spacing=(1.0, 1.0, 1.0)),
    )
    run = tmp_path / "run"
    run.mkdir()
    other.save(run / "plan.json")
    written = (run / "plan.json").read_text()
    argv = ["crossval", str(data), "-o", str(run), "--folds", "2", "--plans", str(plans), *TINY]
    assert main(argv) == 2
    assert "plan.json was not taken over from" in capsys.readouterr().err
    # Nothing but the log of the refused command is added to the run folder.
    assert sorted(p.name for p in run.iterdir()) == ["crossval.log", "plan.json"]
    assert (run / "plan.json").read_text() == written


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--configuration", "3d_lowres"], r"no configuration '3d_lowres'; available: "
                                           r"\['3d_fullres'\]"),
        (["--budget", "5m"], "drop --budget"),
        (["--preset", "tiny_plain"], "drop --preset"),
    ],
)  # fmt: skip
def test_bad_plans_options_are_refused_and_nothing_is_written(
    data: Path,
    plans: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    run = tmp_path / "run"
    argv = ["crossval", str(data), "-o", str(run), "--folds", "2", "--plans", str(plans)]
    assert main([*argv, *extra, *TINY]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not run.exists()


def test_a_missing_plans_file_is_refused(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, missing = tmp_path / "run", tmp_path / "nnunet" / "nnUNetPlans.json"
    assert main(["crossval", str(data), "-o", str(run), "--plans", str(missing), *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not run.exists()
