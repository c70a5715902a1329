"""The run folder read without training: the checkpoint to predict with, a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import Prepared, config, trainer

from multitask_unet.errors import ConfigError
from multitask_unet.training import TrainResult, run_checkpoint, train
from multitask_unet.training.run_folder import finished_run


def _touch(run: Path, *names: str) -> None:
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in names:
        (run / "checkpoints" / name).write_bytes(b"")


def test_the_best_checkpoint_when_the_run_validated(tmp_path: Path) -> None:
    _touch(tmp_path, "last.pt", "best.pt")
    assert run_checkpoint(tmp_path, prefer="best") == tmp_path / "checkpoints" / "best.pt"
    assert run_checkpoint(tmp_path) == tmp_path / "checkpoints" / "last.pt"  # as predict --model


def test_the_last_checkpoint_without_validation(tmp_path: Path) -> None:
    _touch(tmp_path, "last.pt")
    assert run_checkpoint(tmp_path) == tmp_path / "checkpoints" / "last.pt"


def test_a_folder_without_a_trained_run_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path, "best.pt")  # best.pt alone: no complete run
    with pytest.raises(ConfigError, match=r"holds no trained run .*last\.pt does not exist"):
        run_checkpoint(tmp_path)
    _touch(tmp_path, "last.pt")
    with pytest.raises(ConfigError, match="prefer must be 'best' or 'last', got 'first'"):
        run_checkpoint(tmp_path, prefer="first")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(prepared: Prepared, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One epoch of one step, validated: last.pt, best.pt and metrics.csv."""
    run = tmp_path_factory.mktemp("finished")
    cfg = config(epochs=1, iterations_per_epoch=1, val_every=1)
    return trainer(prepared, run, cfg, val=True).fit()


def test_a_finished_run_reads_its_result(trained: TrainResult) -> None:
    cfg = config(epochs=1, iterations_per_epoch=1, val_every=1)
    done = finished_run(trained.run_dir, cfg)
    assert done is not None
    assert (done.epochs, done.best_score) == (1, trained.best_score)
    assert done.metrics == pytest.approx(trained.metrics)
    assert run_checkpoint(trained.run_dir, prefer="best").name == "best.pt"


def test_a_run_with_epochs_left_or_none_is_not_finished(
    trained: TrainResult, tmp_path: Path
) -> None:
    assert finished_run(trained.run_dir, config(epochs=2, iterations_per_epoch=1)) is None
    assert finished_run(tmp_path, config(epochs=1)) is None  # no last.pt


def test_a_finished_run_with_other_options_is_refused(trained: TrainResult) -> None:
    changed = config(epochs=1, iterations_per_epoch=1, seed=8)
    with pytest.raises(ConfigError, match=r"cannot resume .*'runtime\.seed'"):
        finished_run(trained.run_dir, changed)


def test_train_resuming_a_finished_run_returns_before_reading_the_data(
    trained: TrainResult, tmp_path: Path
) -> None:
    cfg = config(epochs=1, iterations_per_epoch=1, val_every=1)
    result = train(tmp_path / "no_dataset", trained.run_dir, cfg, resume=True, verbose=False)
    assert (result.epochs, result.best_score) == (1, trained.best_score)
