"""Options shared by several commands mean one thing and are checked the same way."""

from __future__ import annotations

import pytest

from multitask_unet.cli import build_parser


@pytest.mark.parametrize("command", ["validate", "plan", "preprocess", "train", "crossval"])
@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_workers_must_be_a_whole_number_of_at_least_one(command, workers, capsys) -> None:
    with pytest.raises(SystemExit):
        output = [] if command == "validate" else ["-o", "RUN"]
        build_parser().parse_args([command, "DATA", *output, "--workers", workers])
    assert f"--workers: must be a whole number >= 1, got '{workers}'" in capsys.readouterr().err


def test_workers_defaults() -> None:
    parse = build_parser().parse_args
    assert parse(["train", "DATA", "-o", "RUN"]).workers == 2
    assert parse(["validate", "DATA"]).workers is None  # the library's choice
