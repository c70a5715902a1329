"""Patches per second of the whole training input pipeline: ours vs nnU-Net 2.8's own.

Both pipelines read the same preprocessed cases (the real pancreas subset when
``../shared/data`` or ``MULTITASK_UNET_TEST_DATA`` is there, phantoms otherwise), draw cases
uniformly, oversample foreground for a third of the patches, apply nnU-Net's default
augmentation for the patch size (no deep-supervision target downsampling on either side) and
collate batches in the same number of worker processes:

- ``nnunet``: ``nnUNetDatasetBlosc2`` (the cases written in nnU-Net's preprocessed format) ->
  ``nnUNetDataLoader`` with ``nnUNetTrainer.get_training_transforms`` ->
  ``NonDetMultiThreadedAugmenter``, exactly as ``nnUNetTrainer.get_dataloaders`` builds them.
- ``ours``: :class:`multitask_unet.data.TrainLoader` over the preprocessing cache (memory maps).
- ``ours_queue``: the same sampler and augmentation on TorchIO's ``Queue`` (``queue_loader``).

Pipelines run one after another (never concurrently), alternating over ``--rounds``; the
median patches per second of each is reported with the ratio to nnU-Net, twice: with
``--workers`` worker processes (wall clock) and in one process per CPU-second (robust to other
programs sharing the CPU; the load average is recorded). Known differences at equal strength:
nnU-Net resamples the label map by one-hot linear interpolation, we use nearest neighbours; nnU-Net
crops the whole enlarged window for every patch, we crop only the part the patch needs.

    python -m benchmarks.bench_data --workers 2 --patch 64 128 192 --patch 32 96 128
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import environment, save

LABELS = {"background": 0, "pancreas": 1, "lesion": 2}
QUEUE_FILL_BATCHES = 8  # the Queue fills this many batches of patches at once, in the main process


def _whole_fills(n: int) -> int:
    """Round up to whole queue fills, so no patch made before the timer starts is counted."""
    return -(-n // QUEUE_FILL_BATCHES) * QUEUE_FILL_BATCHES


def _real_subset() -> Path | None:
    env = os.environ.get("MULTITASK_UNET_TEST_DATA")
    here = Path(__file__).resolve().parents[2] / "shared" / "data"
    for root in (Path(env) if env else None, here):
        if root is not None and (root / "pancreas_quiz_subset").is_dir():
            return root / "pancreas_quiz_subset"
    return None


def prepare_cache(
    work: Path, *, cache: Path | None, phantoms: int, real: bool = True
) -> tuple[Path, str]:
    """Preprocess the cases with the library (or reuse ``cache``); returns (folder, source)."""
    from multitask_unet.data.phantoms import write_phantom_dataset
    from multitask_unet.data.planning import create_plan
    from multitask_unet.data.planning.fingerprint import compute_fingerprint
    from multitask_unet.data.preprocessing.cache import list_cached_cases, preprocess_dataset
    from multitask_unet.data.readers import read_dataset

    subset = _real_subset() if real else None
    source = f"real: {subset.name} (../shared/data)" if subset else f"phantoms: {phantoms} cases"
    if cache is not None and (cache / "plan.json").is_file() and list_cached_cases(cache):
        return cache, source
    if subset is not None:
        index = read_dataset(subset, layout="study")
        records = [r for r in index.records if r.mask is not None]
    else:
        index = write_phantom_dataset(
            work / "phantoms", n_train=phantoms, n_validation=0, n_test=0,
            shape=(176, 128, 56), spacing=(0.73, 0.73, 2.0), seed=0,
        )  # fmt: skip
        records = list(index.records)
    fingerprint = compute_fingerprint(records, workers=2, progress=False)
    plan = create_plan(fingerprint)
    folder = cache or work / "cache"
    preprocess_dataset(records, plan, folder, workers=2, progress=False)
    return folder, source


def write_nnunet_folder(cache: Path, folder: Path, patch: tuple[int, ...]) -> list[str]:
    """The cached arrays in nnU-Net 2.8's preprocessed format (blosc2 + pkl), chunked for ``patch``."""
    from batchgenerators.utilities.file_and_folder_operations import write_pickle
    from nnunetv2.training.dataloading.nnunet_dataset import (
        comp_blosc2_params,
        nnUNetDatasetBlosc2,
    )

    from multitask_unet.data.preprocessing.cache import list_cached_cases, load_cached_case

    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for case_id in list_cached_cases(cache):
        case = load_cached_case(cache, case_id, mmap=False)
        if case.seg is None:
            continue
        data, seg = case.image.astype(np.float32), case.seg.astype(np.int16)
        locations = {
            k: np.concatenate([np.zeros((len(v), 1), np.int64), v], axis=1)
            for k, v in case.properties.class_locations_array().items()
        }
        bd, cd = comp_blosc2_params(data.shape, patch, data.itemsize)
        bs, cs = comp_blosc2_params(seg.shape, patch, seg.itemsize)
        out = str(folder / case_id)
        nnUNetDatasetBlosc2.save_case(
            data, seg, {}, out, chunks=cd, blocks=bd, chunks_seg=cs, blocks_seg=bs
        )
        write_pickle({"class_locations": locations, "spacing": [1.0, 1.0, 1.0]}, out + ".pkl")
        ids.append(case_id)
    return ids


def nnunet_pipeline(
    folder: Path, patch: tuple[int, ...], batch: int, workers: int
) -> Iterator[Any]:
    """nnU-Net's training loader, built as ``nnUNetTrainer.get_dataloaders`` does."""
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import (
        NonDetMultiThreadedAugmenter,
    )
    from nnunetv2.configuration import ANISO_THRESHOLD
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    # nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size, 3D branch
    dummy_2d = (max(patch) / patch[0]) > ANISO_THRESHOLD
    rotation = (-np.pi, np.pi) if dummy_2d else (-np.pi / 6, np.pi / 6)
    initial = get_patch_size(patch, rotation, rotation, rotation, (0.85, 1.25))
    if dummy_2d:
        initial[0] = patch[0]
    labels = LabelManager(LABELS, None)
    transforms = nnUNetTrainer.get_training_transforms(
        patch, rotation, None, (0, 1, 2), dummy_2d, use_mask_for_norm=[False],
        is_cascaded=False, foreground_labels=labels.foreground_labels,
    )  # fmt: skip
    loader = nnUNetDataLoader(
        nnUNetDatasetBlosc2(str(folder)), batch, initial, patch, labels,
        oversample_foreground_percent=0.33, transforms=transforms,
    )  # fmt: skip
    if workers == 0:  # in this process, as nnU-Net's SingleThreadedAugmenter
        while True:
            yield next(loader)
    aug = NonDetMultiThreadedAugmenter(
        loader, None, workers, max(6, workers // 2), None, False, 0.002
    )
    try:
        while True:
            yield next(aug)
    finally:
        aug._finish()


def ours_pipeline(cache: Path, patch: tuple[int, ...], batch: int, workers: int) -> Iterator[Any]:
    from multitask_unet.data.sampling.loader import LoaderConfig, TrainLoader

    cfg = LoaderConfig(
        patch_size=patch, batch_size=batch, iterations_per_epoch=100_000, num_workers=workers,
        class_weights="none",  # nnU-Net draws cases uniformly
    )  # fmt: skip
    yield from TrainLoader(cache, cfg)


def queue_pipeline(cache: Path, patch: tuple[int, ...], batch: int, workers: int) -> Iterator[Any]:
    from multitask_unet.data.sampling.loader import LoaderConfig, cache_entries, queue_loader

    subjects = [e.open() for e in cache_entries(cache)]
    cfg = LoaderConfig(
        patch_size=patch, batch_size=batch, iterations_per_epoch=100_000, num_workers=workers,
        class_weights="none",
    )  # fmt: skip
    max_length = QUEUE_FILL_BATCHES * batch
    yield from queue_loader(subjects, cfg, samples_per_volume=4, max_length=max_length)


def patches_per_second(
    make: Callable[[], Iterator[Any]],
    *,
    batches: int,
    warmup: int,
    batch: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Patches per second of ``clock`` (wall time, or this process's CPU time without workers)."""
    it = make()
    try:
        for _ in range(warmup):  # includes starting the workers
            next(it)
        start = clock()
        for _ in range(batches):
            next(it)
        return batches * batch / (clock() - start)
    finally:
        it.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patch", type=int, nargs=3, action="append", help="D H W (repeatable)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=25, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="reuse (or create) this preprocessing cache")
    parser.add_argument("--phantoms", type=int, default=12, help="cases without real data")
    parser.add_argument("--no-real", action="store_true", help="use phantoms even with real data")
    parser.add_argument("--output", type=Path, help="folder of the JSON (default: results/)")
    parser.add_argument("--pipelines", nargs="+", default=["nnunet", "ours", "ours_queue"])
    args = parser.parse_args(argv)
    patches = [tuple(p) for p in (args.patch or [[64, 128, 192], [32, 96, 128]])]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.filterwarnings("ignore", category=UserWarning)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache, source = prepare_cache(
            work, cache=args.cache, phantoms=args.phantoms, real=not args.no_real
        )
        from multitask_unet.data.preprocessing.cache import list_cached_cases, load_cached_case

        shapes = [load_cached_case(cache, c).image.shape[1:] for c in list_cached_cases(cache)]
        results = []
        for patch in patches:
            folder = work / f"nnunet_{'x'.join(map(str, patch))}"
            write_nnunet_folder(cache, folder, patch)
            makers = {
                "nnunet": lambda w, p=patch, f=folder: nnunet_pipeline(f, p, args.batch_size, w),
                "ours": lambda w, p=patch: ours_pipeline(cache, p, args.batch_size, w),
                "ours_queue": lambda w, p=patch: queue_pipeline(cache, p, args.batch_size, w),
            }
            row: dict[str, Any] = {"patch_size": list(patch)}
            # 1) the pipelines as used, with workers (wall clock); 2) in one process, CPU time
            # per patch, which other programs sharing the CPU do not distort
            for key, workers, clock in (
                ("workers", args.workers, time.perf_counter),
                ("single_process_cpu", 0, time.process_time),
            ):
                rates: dict[str, list[float]] = {name: [] for name in args.pipelines}
                for _ in range(args.rounds):
                    for name in args.pipelines:
                        queue = name == "ours_queue"
                        rate = patches_per_second(
                            lambda n=name, w=workers, m=makers: m[n](w),
                            batches=_whole_fills(args.batches) if queue else args.batches,
                            warmup=_whole_fills(args.warmup) if queue else args.warmup,
                            batch=args.batch_size,
                            clock=clock,
                        )
                        rates[name].append(rate)
                        print(f"{patch} {key:>18} {name:>10}: {rate:6.1f} patches/s", flush=True)
                median = {k: statistics.median(v) for k, v in rates.items()}
                entry: dict[str, Any] = {"patches_per_s": median, "runs": rates}
                if "nnunet" in median:
                    entry["ratio_vs_nnunet"] = {
                        k: v / median["nnunet"] for k, v in median.items() if k != "nnunet"
                    }
                row[key] = entry
            results.append(row)
            print(row, flush=True)
    result = {
        "benchmark": "bench_data",
        "environment": environment("cpu"),
        "data": {
            "source": source,
            "cases": len(shapes),
            "median_shape": np.median(shapes, 0).tolist(),
        },
        "settings": {
            "batch_size": args.batch_size,
            "workers": args.workers,
            "timed_batches": args.batches,
            "warmup_batches": args.warmup,
            "rounds": args.rounds,
            "foreground_share": 0.33,
            "augmentation": "nnU-Net default for the patch size (both pipelines)",
        },
        "results": results,
        "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]},
    }
    print("saved", save("bench_data", result, args.output))
    return result


if __name__ == "__main__":
    main()
