"""``multitask-unet train``: help, options over the YAML file, and errors with exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _helpers import Prepared, config

from multitask_unet.cli import build_parser, main
from multitask_unet.cli.train import build_config


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--config", "--preset", "--encoder", "--head", "--epochs", "--iters-per-epoch",
                 "--batch-size", "--patch-size", "--device", "--resume", "torchrun", "YAML"):  # fmt: skip
        assert flag in text, flag


def test_command_line_overrides_the_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    config(epochs=9, optimizer={"name": "adamw", "lr": 0.002}).save(path)
    args = build_parser().parse_args(
        ["train", "DATA", "-o", "RUN", "--config", str(path), "--epochs", "4", "--head", "none",
         "--patch-size", "8", "16", "24", "--preset", "tiny_residual", "--no-progress"]
    )  # fmt: skip
    cfg = build_config(args)
    opt = cfg.optimization
    assert (opt.epochs, cfg.model.head, cfg.model.preset) == (4, None, "tiny_residual")
    assert cfg.data.patch_size == (8, 16, 24)
    assert (opt.optimizer.name, opt.optimizer.lr) == ("adamw", 0.002)  # kept from the file
    assert opt.iterations_per_epoch == 3 and not cfg.runtime.progress
    assert cfg.runtime.seed == 7 and not cfg.data.augment  # untouched sections kept too


def test_head_flag_replaces_the_heads_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    config(model={"preset": "tiny_plain", "heads": {"cls": "panda", "aux": "ovr"}}).save(path)
    argv = ["train", "DATA", "-o", "RUN", "--config", str(path)]
    assert build_config(build_parser().parse_args(argv)).model.heads == {
        "cls": "panda",
        "aux": "ovr",
    }
    cfg = build_config(build_parser().parse_args([*argv, "--head", "ovr", "--encoder", "residual"]))
    assert (cfg.model.head, cfg.model.heads, cfg.model.encoder) == ("ovr", None, "residual")


def test_dataset_errors_stop_before_training(
    prepared: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(prepared.data, data)
    mask = next((data / "train").rglob("phantom_*[0-9].nii.gz"))
    mask.write_bytes(b"not a nifti file")
    code = main(["train", str(data), "-o", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert mask.name in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_layout_that_finds_no_case_says_why(
    prepared: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code = main(["train", str(prepared.data), "-o", str(run), "--layout", "nnunet"])
    err = capsys.readouterr().err
    assert code == 2 and "no 'train' split (splits: none) as the nnunet layout reads it" in err
    assert "no cases in imagesTr/" in err and not run.exists()


def test_resume_without_a_run_is_an_error(
    prepared: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(prepared.cache / "plan.json", run / "plan.json")
    code = main(["train", str(prepared.data), "-o", str(run), "--cache", str(prepared.cache),
                 "--resume", "--no-progress", "--workers", "1"])  # fmt: skip
    assert code == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_reads_the_runs_own_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config(epochs=9, optimizer={"name": "adamw", "lr": 0.002}).save(run / "config.yaml")
    argv = ["train", "DATA", "-o", str(run), "--resume"]
    cfg = build_config(build_parser().parse_args(argv))
    assert (cfg.optimization.epochs, cfg.optimization.optimizer.name) == (9, "adamw")
    cfg = build_config(build_parser().parse_args([*argv, "--epochs", "12"]))  # train longer
    assert (cfg.optimization.epochs, cfg.optimization.optimizer.lr) == (12, 0.002)
    fresh = build_config(build_parser().parse_args(argv[:-1]))  # no --resume: the defaults
    assert fresh.optimization.epochs == 1000
