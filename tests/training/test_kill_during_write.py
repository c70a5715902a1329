"""kill -9 in the middle of a write: nothing half-written is read back, nothing finished is lost,
and the rerun ends where an uninterrupted run ends.

Each test runs a command in a child process (``tests/_blocked_write.py``) that stalls inside
one chosen write (a checkpoint, a cache entry, a prediction, a ``predictions.csv`` row, a
``summary.json``), with the temporary file cut to half its length; the whole process group is
then killed with SIGKILL and the command is run again.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import Prepared, config

import multitask_unet as mtu
from multitask_unet.checkpoints import load_checkpoint, save_checkpoint
from multitask_unet.data.io import read_image
from multitask_unet.data.preprocessing.cache import list_cached_cases, load_cached_case
from multitask_unet.evaluation import EvaluationConfig, evaluate
from multitask_unet.evaluation.reading import read_predictions

CHILD = Path(__file__).parents[1] / "_blocked_write.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(args: list[str], *, stall_at: str = "", nth: int = 0) -> Path | None:
    """Run the command; with ``stall_at``, kill it inside the ``nth`` write of that file name
    and return the file it was writing."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), stall_at, str(nth), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
        start_new_session=True,  # one process group: loader workers die with it
    )  # fmt: skip
    assert child.stdout is not None
    output = []
    try:
        for line in child.stdout:
            output.append(line)
            if nth and line.startswith("blocked "):
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return Path(line.removeprefix("blocked ").strip())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == 0, "".join(output[-30:])
    assert not nth, f"the command finished before write {nth} of {stall_at}"
    return None


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()]


def test_a_checkpoint_write_killed_keeps_the_last_epoch_and_resume_ends_as_uninterrupted(
    prepared: Prepared, tmp_path: Path
) -> None:
    cfg = tmp_path / "config.yaml"
    config(epochs=2, iterations_per_epoch=2).save(cfg)

    def train(run: Path, *extra: str) -> list[str]:
        if not (run / "plan.json").exists():
            run.mkdir()
            shutil.copy(prepared.cache / "plan.json", run / "plan.json")
        return ["train", str(prepared.data), "-o", str(run), "--config", str(cfg), "--cache",
                str(prepared.cache), "--workers", "1", "--no-progress", *extra]  # fmt: skip

    killed, reference = tmp_path / "killed", tmp_path / "reference"
    blocked = _run(train(killed), stall_at="last.pt", nth=2)  # the end of epoch 1 (0-based)
    assert blocked == killed / "checkpoints" / "last.pt"
    assert load_checkpoint(blocked).training["epoch"] == 0  # epoch 0's file, whole
    assert _temporaries(killed / "checkpoints")  # the cut temporary file is still there
    _run(train(killed, "--resume"))
    _run(train(reference))
    ours, theirs = (torch.load(r / "checkpoints" / "last.pt", weights_only=True)
                    for r in (killed, reference))  # fmt: skip
    assert ours["training"]["epoch"] == theirs["training"]["epoch"] == 1
    assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items())
    assert not _temporaries(killed / "checkpoints")  # the rerun removed the cut file


def test_a_cache_entry_killed_midway_is_preprocessed_again(
    prepared: Prepared, tmp_path: Path
) -> None:
    def preprocess(cache: Path) -> list[str]:
        return ["preprocess", str(prepared.data), "--plan", str(prepared.cache / "plan.json"),
                "-o", str(cache), "--workers", "1", "--no-progress"]  # fmt: skip

    cache = tmp_path / "cache"
    blocked = _run(preprocess(cache), stall_at="image.npy", nth=2)
    assert blocked is not None and not blocked.exists()
    assert len(list_cached_cases(cache)) == 1  # the finished case counts; the cut one does not
    _run(preprocess(cache))
    assert list_cached_cases(cache) == list_cached_cases(prepared.cache)
    for case_id in list_cached_cases(cache):
        ours, theirs = load_cached_case(cache, case_id), load_cached_case(prepared.cache, case_id)
        np.testing.assert_array_equal(ours.image, theirs.image)
        np.testing.assert_array_equal(ours.seg, theirs.seg)
    assert not _temporaries(cache)


@pytest.fixture
def checkpoint(prepared: Prepared, tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})})
    return save_checkpoint(
        tmp_path / "model.pt", model, plan=prepared.plan, class_names=prepared.class_names
    )


def _predict(checkpoint: Path, prepared: Prepared, out: Path) -> list[str]:
    images = sorted(str(p) for p in (prepared.data / "validation").rglob("*_0000.nii.gz"))
    assert len(images) == 2
    return ["predict", "--checkpoint", str(checkpoint), *images, "-o", str(out),
            "--mirror-axes", "", "--no-progress"]  # fmt: skip


@pytest.mark.parametrize(("stall_at", "nth"), [("*.nii.gz", 2), ("predictions.csv", 2)])
def test_a_prediction_killed_midway_keeps_the_finished_cases(
    prepared: Prepared, checkpoint: Path, tmp_path: Path, stall_at: str, nth: int
) -> None:
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    blocked = _run(_predict(checkpoint, prepared, killed), stall_at=stall_at, nth=nth)
    assert blocked is not None and blocked.parent == killed
    if blocked.name == "predictions.csv":  # the first row is there, whole
        assert len(read_predictions(blocked).case_ids) == 1
    else:
        finished = [p for p in killed.glob("*.nii.gz") if not p.name.startswith(".")]
        assert not blocked.exists() and len(finished) == 1
        # the cut temporary file is hidden from evaluate: the finished case scores
        report = evaluate(killed, prepared.data, config=EvaluationConfig(n_bootstrap=0),
                          figures=False)  # fmt: skip
        assert report.summary["cases"]["segmentation"] == 1
    _run(_predict(checkpoint, prepared, killed))
    _run(_predict(checkpoint, prepared, reference))
    for theirs in reference.glob("*.nii.gz"):
        np.testing.assert_array_equal(read_image(killed / theirs.name).array,
                                      read_image(theirs).array)  # fmt: skip
    ours, theirs = (
        read_predictions(killed / "predictions.csv"),
        read_predictions(reference / "predictions.csv"),
    )
    assert sorted(ours.case_ids) == sorted(theirs.case_ids) and len(ours.case_ids) == 2
    assert not _temporaries(killed)


def test_a_summary_killed_midway_is_written_whole_by_the_rerun(
    prepared: Prepared, checkpoint: Path, tmp_path: Path
) -> None:
    predictions = tmp_path / "predictions"
    _run(_predict(checkpoint, prepared, predictions))

    def evaluate(report: Path) -> list[str]:
        return ["evaluate", "--pred", str(predictions), "--ref", str(prepared.data), "--split",
                "validation", "-o", str(report), "--no-figures", "--n-bootstrap", "10"]  # fmt: skip

    killed, reference = tmp_path / "killed", tmp_path / "reference"
    blocked = _run(evaluate(killed), stall_at="summary.json", nth=1)
    assert blocked == killed / "summary.json" and not blocked.exists()
    _run(evaluate(killed))
    _run(evaluate(reference))
    assert filecmp.cmp(killed / "cases.csv", reference / "cases.csv", shallow=False)
    ours, theirs = (json.loads((r / "summary.json").read_text()) for r in (killed, reference))
    assert ours == theirs and "dice_foreground" in ours
    assert not _temporaries(killed)
