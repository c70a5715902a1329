"""``multitask-unet validate`` warns when a training subtype is too small for the case sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multitask_unet.cli import main
from multitask_unet.data.phantoms import write_phantom_dataset

SMALL = {"shape": (16, 16, 8), "spacing": (2.0, 2.0, 3.0), "seed": 0}


@pytest.fixture
def lopsided(tmp_path: Path) -> Path:
    """Train subtypes 1 / 1 / 14 (balancing would draw subtypes 0 and 1 5.3x their rate)."""
    root = tmp_path / "lopsided"
    write_phantom_dataset(
        root, n_train=16, n_validation=3, n_test=0, class_counts=(1, 1, 14), **SMALL
    )
    return root


def test_validate_prints_the_sampling_warnings(lopsided: Path, capsys) -> None:
    assert main(["validate", str(lopsided)]) == 0  # warnings never fail the check
    out = capsys.readouterr().out
    assert "Sampling of the train split (--class-weights balanced, --max-oversampling 3)" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("WARNING class")]
    assert any(
        "class subtype1 has 1 of 16 cases: balanced sampling would draw it 5.3x its natural rate"
        in ln
        and "capped at 3x (max_oversampling)" in ln
        for ln in lines
    )
    assert any("class subtype0 has 1 of 16 cases: too few" in ln for ln in lines)
    assert not any("subtype2" in ln for ln in lines)


def test_validate_checks_the_chosen_strategy(lopsided: Path, capsys) -> None:
    args = ["validate", str(lopsided), "--class-weights", "none", "--json"]
    assert main(args) == 0
    warnings = json.loads(capsys.readouterr().out)["sampling_warnings"]
    assert len(warnings) == 2 and all("too few" in w for w in warnings)
    assert main(["validate", str(lopsided), "--max-oversampling", "none"]) == 0
    assert "set max_oversampling" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["validate", str(lopsided), "--max-oversampling", "0.5"])
    assert "--max-oversampling" in capsys.readouterr().err


def test_validate_is_quiet_on_balanced_training_subtypes(tmp_path: Path, capsys) -> None:
    root = tmp_path / "balanced"
    write_phantom_dataset(
        root, n_train=15, n_validation=0, n_test=0, class_counts=(1, 1, 1), **SMALL
    )
    assert main(["validate", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Sampling of the train split" not in out and "WARNING" not in out
