"""A careless user's command lines get a clear error naming the value and the fix, never a
traceback, and are refused before any work (no folder written, no dataset read)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import load_checkpoint, save_checkpoint
from multitask_unet.cli import main
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning import create_plan
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.data.readers import read_dataset


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mistakes") / "phantoms"
    write_phantom_dataset(root, n_train=3, n_validation=0, n_test=1, shape=(16, 16, 8))
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, phantoms: Path) -> Path:
    """A random-weight ``tiny_plain`` checkpoint with a plan of the phantoms."""
    train = read_dataset(phantoms).split("train").records
    fingerprint = compute_fingerprint(train, intensity_samples=1000, workers=1, progress=False)
    plan = create_plan(fingerprint, size_divisor=4, gpu_memory_gb=0.05)
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})})
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    return save_checkpoint(path, model, plan=plan, class_names=("a", "b", "c"))


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of a command line that argparse refuses (exit code 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def failed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of a command that stops with ``error: ...`` (exit code 2, no traceback)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("train.yaml", "optimization:\n  epochs: [1\n", "is not valid YAML: line 3, column 1"),
        ("tabs.yaml", "optimization:\n\tepochs: 1\n", "is not valid YAML: line 2"),
        ("train.json", "{epochs: 1}", "is not valid JSON"),
        ("seed.yaml", "runtime: {seed: -4}\n", "runtime.seed must be from 0 to"),
    ],
)
def test_a_broken_config_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    config = tmp_path / name
    config.write_text(text)
    err = failed(["train", str(tmp_path / "data"), "-o", str(tmp_path / "run"), "--config",
                  str(config)], capsys)  # fmt: skip
    assert expected in err and str(config) in err
    assert not (tmp_path / "run").exists()


def test_a_broken_plan_file_and_a_config_folder_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("not json")
    err = failed(["preprocess", str(tmp_path), "--plan", str(plan), "-o", str(tmp_path / "c")],
                 capsys)  # fmt: skip
    assert f"{plan} is not valid JSON" in err and "line 1, column 1" in err
    err = failed(["train", str(tmp_path), "-o", str(tmp_path / "run"), "--config", str(tmp_path)],
                 capsys)  # fmt: skip
    assert f"config file {tmp_path} is a folder" in err


def test_outputs_that_cannot_be_written_are_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dataset does not even exist: the output is checked before anything is read."""
    data, file = str(tmp_path / "missing"), tmp_path / "notes.txt"
    file.write_text("x")
    below = str(file / "run")
    for argv in (
        ["train", data, "-o", str(file)],
        ["train", data, "-o", below],
        ["train", data, "-o", str(tmp_path / "run"), "--cache", str(file)],
        ["crossval", data, "-o", str(file)],
        ["preprocess", data, "--plan", "plan.json", "-o", str(file)],
        ["evaluate", "--pred", data, "--ref", data, "-o", str(file)],
        ["predict", data, "--checkpoint", "m.pt", "-o", str(file)],
        ["predict", data, "--checkpoint", "m.pt", "-o", below],
    ):
        err = refused(argv, capsys)
        assert f"{file} is a file, not a folder" in err, argv
    err = refused(["plan", data, "-o", str(tmp_path)], capsys)
    assert f"{tmp_path} is a folder; give a file path, e.g. {tmp_path / 'plan.json'}" in err
    err = refused(["plan", data, "-o", str(file / "plan.json")], capsys)
    assert f"{file} is a file, not a folder" in err
    new = str(tmp_path / "new") + "/"  # a folder meant, a file would be written
    err = refused(["calibrate", data, "--checkpoint", "m.pt", "-o", new], capsys)
    assert f"{new} is a folder; give a file path" in err
    assert not (tmp_path / "new").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "DATA", "-o", "RUN", "--seed", "-1"],
        ["crossval", "DATA", "-o", "RUN", "--split-seed", str(2**32)],
        ["evaluate", "--pred", "P", "--ref", "DATA", "-o", "REPORT", "--seed", "-1"],
        ["plan", "DATA", "-o", "plan.json", "--intensity-samples", "0"],
        ["train", "DATA", "-o", "RUN", "--intensity-samples", "-5"],
        ["train", "DATA", "-o", "RUN", "--init-weights", "missing.pt"],
    ],
)
def test_bad_numbers_and_missing_weights_are_refused(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    flag, value = argv[-2], argv[-1]
    err = refused(argv, capsys)
    assert f"argument {flag}" in err and value in err


def test_resume_and_fresh_run_are_checked_before_the_dataset(
    tmp_path: Path, phantoms: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    small = ["--preset", "tiny_plain", "--epochs", "1", "--intensity-samples", "1000",
             "--workers", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    err = failed(["train", str(phantoms), "-o", str(run), "--resume", *small], capsys)
    assert "nothing to resume" in err and not run.exists()  # no plan or cache written
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    err = failed(["train", str(phantoms), "-o", str(run), *small], capsys)
    assert "already holds a run" in err and sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "train.log",
    ]


def test_a_run_folder_given_as_checkpoint_names_the_file_in_it(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(checkpoint.read_bytes())
    for argv in (
        ["predict", str(tmp_path), "-o", str(tmp_path / "pred"), "--checkpoint", str(run)],
        ["calibrate", str(tmp_path), "--checkpoint", str(run)],
    ):
        err = failed(argv, capsys)
        assert f"checkpoint {run} is a folder" in err
        assert f"e.g. {run / 'checkpoints' / 'last.pt'}" in err and "--model RUN" in err


def test_a_mirror_axis_given_twice_is_refused(
    tmp_path: Path, phantoms: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", str(phantoms / "test"), "-o", str(tmp_path / "pred"), "--checkpoint",
            str(checkpoint), "--device", "cpu", "--no-progress", "--mirror-axes", "0", "0"]  # fmt: skip
    err = failed(argv, capsys)
    assert "mirror_axes (0, 0) must be distinct spatial axes 0..2" in err


def test_a_file_the_system_refuses_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import multitask_unet.cli.models as models

    def refuse(_args: object) -> int:
        raise PermissionError(13, "Permission denied", "/data/run/plan.json")

    monkeypatch.setattr(models, "run", refuse)
    err = failed(["models"], capsys)
    assert "error: /data/run/plan.json: Permission denied" in err


def test_a_folder_predicted_by_another_model_is_refused_and_overwrite_is_passed_on(
    tmp_path: Path, phantoms: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library's refusal (tests/inference/test_prediction_settings.py) reaches the command
    line as an error naming --overwrite, and --overwrite reaches the library."""
    torch.manual_seed(1)
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})})
    saved = load_checkpoint(checkpoint)
    other = save_checkpoint(tmp_path / "other.pt", model, plan=saved.load_plan(),
                            class_names=saved.class_names)  # fmt: skip
    out = tmp_path / "pred"
    argv = ["predict", str(phantoms / "test"), "-o", str(out), "--device", "cpu", "--no-progress",
            "--mirror-axes", ""]  # fmt: skip
    assert main([*argv, "--checkpoint", str(checkpoint)]) == 0
    err = failed([*argv, "--checkpoint", str(other)], capsys)
    assert f"{out} holds predictions made with other settings (another model:" in err
    assert "--overwrite" in err
    assert main([*argv, "--checkpoint", str(other), "--overwrite"]) == 0
    assert "predicted 1 case(s)" in capsys.readouterr().out


def test_an_unrecognised_dataset_names_the_layout_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = failed(["plan", str(tmp_path), "-o", str(tmp_path / "plan.json")], capsys)
    assert f"No dataset layout recognises {tmp_path}" in err and "--layout NAME" in err
