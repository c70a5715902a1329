"""Predict under ``torchrun``: the cases shared among the ranks, one ``predictions.csv``.

Launched as ``torchrun --nproc_per_node N -m multitask_unet.cli predict ...`` (one process per
GPU, on any number of machines), every process reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (:meth:`RankInfo.from_env`) and runs on ``cuda:LOCAL_RANK`` (or the CPU).
:func:`predict_distributed` then:

1. every rank checks that ``OUT`` was predicted with its model and settings, or not at all
   (:mod:`~multitask_unet.inference.prediction_settings`; ``overwrite`` accepts any folder);
   rank 0 alone writes the record ``OUT/predict_settings.json`` and merges the part files an
   interrupted run left (below) into ``predictions.csv``; then every rank compares its
   settings with rank 0's record, so that no rank skips cases another model made;
2. every rank lists the cases not yet finished (label map, row, probabilities: the test of a
   single-process run) and takes its share of them (:func:`share_cases`: the largest inputs
   first, each to the rank with the fewest bytes so far; the same on every rank, no messages);
3. each rank writes its label maps (and ``CASE.npz``) atomically, as a single process does, and
   its rows into its own ``OUT/predictions.rank<R>.csv`` (rewritten atomically after each case);
4. after every rank is done, rank 0 merges the parts into ``OUT/predictions.csv`` (atomically,
   rows sorted by case id) and deletes them.

The process group (gloo, used only for the barriers between the steps) is joined when
``WORLD_SIZE > 1`` and left at the end. ``predictions.csv`` is written only by rank 0 and only
in steps 1 and 4, so a rank that fails (torchrun then stops the others) never leaves it
half-written; its finished cases stay in the part files and the next run, with any number of
processes, merges them and predicts only what is missing. ``OUT`` and the inputs must be the
same folders on every machine (a shared file system).

Example:
    >>> RankInfo.from_env({}).world_size
    1
    >>> shards = [share_cases(["a", "b", "c"], rank=r, world_size=2, size=len) for r in (0, 1)]
    >>> shards
    [['a', 'c'], ['b']]
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from multitask_unet.data.records import CaseRecord
from multitask_unet.devices import resolve_device
from multitask_unet.errors import ConfigError, DataError
from multitask_unet.inference.prediction_folder import (
    case_records,
    is_finished,
    merge_parts,
    output_folder,
    write_predictions,
)
from multitask_unet.inference.prediction_settings import check_agreement, claim_folder
from multitask_unet.inference.predictor import PredictionRun, Predictor
from multitask_unet.prediction_table import PredictionTable

__all__ = [
    "BARRIER_TIMEOUT",
    "RankInfo",
    "merge_parts",
    "part_path",
    "predict_distributed",
    "share_cases",
]

BARRIER_TIMEOUT = timedelta(days=7)
"""How long a rank that has finished its share waits for the slowest rank."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class RankInfo:
    """This process's place among the ``torchrun`` processes.

    Attributes:
        rank: Global rank (0 for a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RankInfo:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (default: one process).

        Raises:
            ConfigError: A variable is not a whole number, or the rank is out of range.
        """
        env = os.environ if env is None else env
        values = {}
        for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
            try:
                values[name] = int(env.get(name, default))
            except ValueError:
                raise ConfigError(
                    f"{name}={env[name]!r} is not a whole number; launch with torchrun, which "
                    "sets it, or unset it for one process"
                ) from None
        info = cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
        if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
            raise ConfigError(
                f"RANK={info.rank}, WORLD_SIZE={info.world_size}, LOCAL_RANK={info.local_rank} "
                "do not fit together (0 <= RANK < WORLD_SIZE); launch with torchrun"
            )
        return info

    @property
    def distributed(self) -> bool:
        """Several processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The rank that merges ``predictions.csv`` and prints."""
        return self.rank == 0

    def device(self, device: str | torch.device = "auto") -> torch.device:
        """``device`` for this process: ``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK``.

        Raises:
            ConfigError: Not a device, or a GPU this machine does not have (more processes
                per machine than GPUs).
        """
        target = resolve_device(device, local_rank=self.local_rank)
        if target.type == "cuda":
            count = torch.cuda.device_count()
            if target.index is not None and target.index >= count:
                raise ConfigError(
                    f"this process (LOCAL_RANK={self.local_rank}) would run on {target}, but "
                    f"this machine has {count} GPU(s); start at most {count} processes per "
                    "machine (torchrun --nproc_per_node) or pass --device cpu"
                )
            torch.cuda.set_device(target)
        return target


def part_path(output_dir: str | os.PathLike[str], rank: int) -> Path:
    """``OUT/predictions.rank<rank>.csv``: the rows one rank predicted."""
    return Path(output_dir) / f"predictions.rank{rank}.csv"


def _input_bytes(record: CaseRecord) -> int:
    total = 0
    for path in record.images:
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def share_cases(
    cases: Sequence[_T], *, rank: int, world_size: int, size: Callable[[_T], int]
) -> list[_T]:
    """The cases of ``rank``: the largest first, each to the rank with the least so far.

    Every rank computes the same split from the same list (ties: input order, lowest rank), so
    the shares are disjoint and together hold every case.

    Args:
        cases: The cases to predict.
        rank: This process's rank.
        world_size: Number of processes.
        size: The work of a case (for inputs: their bytes on disk).
    """
    order = sorted(range(len(cases)), key=lambda i: (-size(cases[i]), i))
    load = [0] * world_size
    mine = []
    for i in order:
        target = min(range(world_size), key=lambda r: (load[r], r))
        load[target] += max(size(cases[i]), 1)
        if target == rank:
            mine.append(cases[i])
    return mine


@contextlib.contextmanager
def _process_group(ranks: RankInfo) -> Iterator[None]:
    """Join the gloo group for the barriers when several processes run and none is joined."""
    joined = ranks.distributed and not dist.is_initialized()
    if joined:
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        if joined:
            dist.destroy_process_group()


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def predict_distributed(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike[str] | CaseRecord],
    output_dir: str | os.PathLike[str],
    *,
    ranks: RankInfo | None = None,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
) -> PredictionRun:
    """:meth:`Predictor.predict <multitask_unet.inference.Predictor.predict>` on every rank.

    Call it on every process with the same arguments (see the module docstring). With one
    process it merges leftover parts, then predicts as :meth:`Predictor.predict` does.

    Args:
        predictor: This rank's predictor (on :meth:`RankInfo.device`).
        inputs: Files, folders or case records, as :meth:`Predictor.predict` takes them.
        output_dir: The prediction folder, the same one for every rank.
        ranks: This process's place (default: :meth:`RankInfo.from_env`).
        overwrite: Predict finished cases again.
        progress: Show a progress bar (of this rank's share).
        verbose: Print each rank's number of cases to standard error.

    Returns:
        On every rank, the cases predicted by all ranks and those skipped.

    Raises:
        ConfigError: ``output_dir`` holds predictions made with other settings (and not
            ``overwrite``), or this rank's settings differ from rank 0's.
        DataError: After every rank finished, a case's outputs are missing from rank 0's view
            of ``output_dir`` (it is not one shared folder).
    """
    ranks = RankInfo.from_env() if ranks is None else ranks
    head = predictor.cls_head is not None
    names, calibrated = predictor.class_names, predictor.calibrated
    records = case_records(inputs, predictor.model.config.in_channels)
    out = output_folder(output_dir)
    settings = claim_folder(
        out,
        predictor,
        overwrite=overwrite,
        case_ids=[r.case_id for r in records],
        write=ranks.is_main,
    )
    if ranks.is_main and head:  # rows of an interrupted run
        merge_parts(out, names, uncalibrated=calibrated, reset=overwrite)
    if not ranks.distributed:
        done, skipped, csv_path = write_predictions(
            predictor, records, out, overwrite=overwrite, progress=progress
        )
        return PredictionRun(out, done, skipped, csv_path)
    with _process_group(ranks):
        _barrier()  # rank 0 has recorded the settings and merged
        check_agreement(out, settings, predictor, rank=ranks.rank)
        table = None
        if head:
            table = PredictionTable.open(
                out / "predictions.csv", names, reset=overwrite, uncalibrated=calibrated
            )
        save = predictor.save_probabilities
        finished = {r.case_id for r in records if is_finished(out, r.case_id, table, save)}
        todo = [r for r in records if overwrite or r.case_id not in finished]
        _barrier()  # every rank has looked before any rank writes
        mine = share_cases(todo, rank=ranks.rank, world_size=ranks.world_size, size=_input_bytes)
        if verbose:  # one line per rank, so that a log shows every rank's share
            print(f"rank {ranks.rank} of {ranks.world_size}: {len(mine)} case(s)", file=sys.stderr)
        part = part_path(out, ranks.rank)
        write_predictions(predictor, mine, out, overwrite=True, progress=progress, table_path=part)
        _barrier()  # every rank is done
        if ranks.is_main and todo:
            merge_parts(out, names, uncalibrated=calibrated, reset=overwrite)
            _check_complete(out, todo, predictor)
    skipped = tuple(r.case_id for r in records if r not in todo)
    csv_path = out / "predictions.csv" if head else None
    return PredictionRun(out, tuple(r.case_id for r in todo), skipped, csv_path)


def _check_complete(out: Path, todo: Sequence[CaseRecord], predictor: Predictor) -> None:
    """Refuse an output folder in which rank 0 misses what the other ranks wrote."""
    table = None
    if predictor.cls_head is not None:
        table = PredictionTable.open(
            out / "predictions.csv", predictor.class_names, uncalibrated=predictor.calibrated
        )
    save = predictor.save_probabilities
    missing = [r.case_id for r in todo if not is_finished(out, r.case_id, table, save)]
    if missing:
        raise DataError(
            f"after every rank finished, rank 0 does not find the outputs of {len(missing)} "
            f"case(s) in {out} (e.g. {missing[:3]}); give an output folder that every machine "
            "shares"
        )
