"""The run log: a copy of what a command prints, written once its folder exists."""

from __future__ import annotations

import sys
from pathlib import Path

from multitask_unet.cli._log import run_log


def test_lines_wait_for_the_folder_and_progress_updates_keep_their_last_state(
    tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    with run_log(run / "train.log", ["train", "DATA"]):
        print("planning")
        sys.stderr.write("\repoch 1:  10%\repoch 1:  50%\repoch 1: 100%\n")
        assert not run.exists()  # nothing written before the command makes its folder
        run.mkdir()
        print("trained 1 epoch(s)", end="")
    lines = (run / "train.log").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith("multitask-unet train DATA")
    assert lines[1:] == ["planning", "epoch 1: 100%", "trained 1 epoch(s)"]
    assert "planning" in capsys.readouterr().out  # the terminal still sees everything


def test_a_command_refused_before_any_work_leaves_no_folder(tmp_path: Path) -> None:
    with run_log(tmp_path / "run" / "train.log", ["train"]):
        print("error: bad option", file=sys.stderr)
    assert not (tmp_path / "run").exists()


def test_the_package_runs_as_a_module() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "multitask_unet.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("multitask-unet ")
