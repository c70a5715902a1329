"""``torchrun --nproc_per_node 2 -m multitask_unet.cli predict`` on the CPU against one process.

Every run is a subprocess with ``OMP_NUM_THREADS=1``, so both sides compute with the same
thread count and their files can be compared byte for byte: the label maps voxel for voxel,
``predictions.csv`` as text (rows sorted by case id on both sides).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from multitask_unet.data.io import read_image
from multitask_unet.inference.distributed import RankInfo, merge_parts, part_path, share_cases
from multitask_unet.prediction_table import PredictionTable

TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _predict(
    checkpoint: Path, inputs: list[Path], out: Path, *, nproc: int
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable]
    if nproc > 1:
        command += [
            "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        ]  # fmt: skip
    command += [
        "-m", "multitask_unet.cli", "predict", "--checkpoint", str(checkpoint),
        *map(str, inputs), "-o", str(out), "--device", "cpu", "--mirror-axes", "--no-progress",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def _label_maps(out: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p).array for p in sorted(out.glob("*.nii.gz"))}


def _assert_same_folder(got: Path, expected: Path) -> None:
    maps, reference = _label_maps(got), _label_maps(expected)
    assert sorted(maps) == sorted(reference) and maps
    for name, array in reference.items():
        np.testing.assert_array_equal(maps[name], array, err_msg=name)
    assert (got / "predictions.csv").read_text() == (expected / "predictions.csv").read_text()
    assert not list(got.glob("predictions.rank*.csv")), "part files are merged and deleted"


@pytest.fixture(scope="module")
def reference(phantom_root: Path, tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """The prediction folder of one process."""
    out = tmp_path_factory.mktemp("single") / "pred"
    stdout = _ok(_predict(tiny_checkpoint, [phantom_root / "test"], out, nproc=1))
    assert "predicted 3 case(s), skipped 0" in stdout
    return out


def test_two_ranks_write_what_one_process_writes_and_a_rerun_redoes_only_the_missing_case(
    phantom_root: Path, tiny_checkpoint: Path, reference: Path, tmp_path: Path,
    tiny_plan, checkpoint_factory,
) -> None:  # fmt: skip
    out = tmp_path / "pred"
    done = _predict(tiny_checkpoint, [phantom_root / "test"], out, nproc=2)
    assert _ok(done).count("predicted 3 case(s), skipped 0") == 1  # rank 0 alone prints
    shares = dict(re.findall(r"rank (\d) of 2: (\d+) case\(s\)", done.stderr))
    assert sorted(shares) == ["0", "1"] and min(map(int, shares.values())) >= 1  # both worked
    assert sum(map(int, shares.values())) == 3
    _assert_same_folder(out, reference)

    gone = sorted(out.glob("*.nii.gz"))[1]
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz") if p != gone}
    gone.unlink()
    stdout = _ok(_predict(tiny_checkpoint, [phantom_root / "test"], out, nproc=2))
    assert "predicted 1 case(s), skipped 2" in stdout
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept  # the others untouched
    _assert_same_folder(out, reference)

    record = (out / "predict_settings.json").read_text()  # rank 0 wrote it, as one process
    assert record == (reference / "predict_settings.json").read_text()
    other = checkpoint_factory(tmp_path / "other.pt", tiny_plan, seed=1)
    done = _predict(other, [phantom_root / "test"], out, nproc=2)
    assert done.returncode != 0, done.stdout  # every rank refuses before any rank skips
    assert f"{out} holds predictions made with other settings (another model:" in done.stderr
    assert (out / "predict_settings.json").read_text() == record
    _assert_same_folder(out, reference)


def test_a_failed_rank_leaves_no_predictions_csv_and_one_process_finishes_the_run(
    phantom_root: Path, tiny_checkpoint: Path, reference: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(phantom_root / "test", inputs)
    broken = inputs / "broken_0000.nii.gz"
    broken.write_bytes(b"not an image")  # the smallest input: last in its rank's share
    out = tmp_path / "pred"
    done = _predict(tiny_checkpoint, [inputs], out, nproc=2)
    assert done.returncode != 0, done.stdout
    assert not (out / "predictions.csv").exists()  # only rank 0 writes it, after every rank
    kept = [c for p in out.glob("predictions.rank*.csv") for c in PredictionTable.read(p).case_ids]
    assert kept, "the failing rank predicted a case before the broken one; its row is kept"
    assert all((out / f"{case_id}.nii.gz").is_file() for case_id in kept)
    finished = {p.name for p in out.glob("*.nii.gz")}

    broken.unlink()
    stdout = _ok(_predict(tiny_checkpoint, [inputs], out, nproc=1))
    assert f"predicted {3 - len(finished)} case(s), skipped {len(finished)}" in stdout
    _assert_same_folder(out, reference)


def test_shares_are_disjoint_cover_every_case_and_balance_sizes() -> None:
    sizes = {"a": 5, "b": 9, "c": 1, "d": 4, "e": 4}
    shares = [share_cases(list(sizes), rank=r, world_size=3, size=sizes.get) for r in range(3)]
    assert sorted(c for share in shares for c in share) == sorted(sizes)
    assert shares == [["b"], ["a", "c"], ["d", "e"]]
    assert share_cases([], rank=0, world_size=2, size=len) == []


def test_rank_info_reads_torchrun_variables_and_refuses_bad_ones() -> None:
    from multitask_unet.errors import ConfigError

    assert RankInfo.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == RankInfo(
        3, 4, 1
    )
    assert not RankInfo.from_env({}).distributed
    with pytest.raises(ConfigError, match="RANK=4"):
        RankInfo.from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        RankInfo.from_env({"WORLD_SIZE": "two"})


def test_merge_keeps_the_rows_of_the_csv_and_of_every_part(tmp_path: Path) -> None:
    names = ("x", "y")
    table = PredictionTable.open(tmp_path / "predictions.csv", names)
    table.set("a", np.array([0.5, 0.5]), 0)
    table.save()
    for rank, case in ((0, "c"), (1, "b")):
        part = PredictionTable.open(part_path(tmp_path, rank), names)
        part.set(case, np.array([0.25, 0.75]), 1)
        part.save()
    assert merge_parts(tmp_path, names) == tmp_path / "predictions.csv"
    assert PredictionTable.read(tmp_path / "predictions.csv").case_ids == ("a", "b", "c")
    assert not list(tmp_path.glob("predictions.rank*.csv"))
    assert merge_parts(tmp_path, names) is None  # nothing left to merge


def test_more_processes_than_gpus_is_refused_by_name(monkeypatch) -> None:
    import torch

    from multitask_unet.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"LOCAL_RANK=1.*1 GPU.*--nproc_per_node"):
        RankInfo(rank=1, world_size=2, local_rank=1).device("auto")
    assert RankInfo(rank=1, world_size=2, local_rank=1).device("cpu").type == "cpu"


def test_one_process_rerun_takes_the_rows_an_interrupted_torchrun_run_left(
    phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A torchrun run stopped after a rank wrote a case: its part file holds the case's row.
    A rerun in one process merges it (the case counts as finished) instead of leaving it for a
    later torchrun run to merge over newer rows."""
    from multitask_unet.inference import Predictor

    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    images = sorted((phantom_root / "test").glob("*_0000.nii.gz"))[:2]
    out = tmp_path / "pred"
    first = predictor.predict(images, out, progress=False)
    table = PredictionTable.read(out / "predictions.csv")
    row = table.case_ids.index(first.predicted[0])
    part = PredictionTable.open(part_path(out, 1), table.class_names)
    part.set(first.predicted[0], table.probabilities[row], int(table.predicted[row]))
    part.save()  # as rank 1 left it
    merged = PredictionTable.open(out / "predictions.csv", table.class_names)
    del merged.rows[first.predicted[0]]  # the row only rank 1's part holds
    merged.save()
    again = predictor.predict(images, out, progress=False)
    assert again.predicted == () and set(again.skipped) == set(first.predicted)
    assert sorted(PredictionTable.read(out / "predictions.csv").case_ids) == sorted(first.predicted)
    assert not list(out.glob("predictions.rank*.csv"))
