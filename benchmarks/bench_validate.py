"""Dataset validation at scale: every defect reported in one pass, and its speed next to nnU-Net's.

Writes a phantom dataset of ``--cases`` cases in the study layout and damages it with every
single-case defect the tests know (``tests/_defects.py``), each ``--repeat`` times in a case of
its own. One :func:`~multitask_unet.data.validation.validate_dataset` pass must report all of
them (the count of reported defects is in the result).

Speed is measured side by side on the undamaged dataset, copied to nnU-Net's raw layout
(``imagesTr``, ``labelsTr``, ``dataset.json``): our ``validate_dataset`` against nnU-Net's
``verify_dataset_integrity``, which does the same job (reads every image and label, checks
labels, shapes and spacings) but stops at the first error, with the same number of worker
processes. Runs alternate; medians and their ratio are reported.

    python -m benchmarks.bench_validate --cases 100 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import environment, save

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _nnunet_copy(study_root: Path, out: Path) -> Path:
    """The study-layout dataset's labelled cases in nnU-Net's raw layout."""
    from multitask_unet.data.readers import read_dataset

    index = read_dataset(study_root)
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    labelled = [r for r in index if r.mask is not None]
    for r in labelled:
        shutil.copy(r.images[0], out / "imagesTr" / f"{r.case_id}_0000.nii.gz")
        shutil.copy(r.mask, out / "labelsTr" / f"{r.case_id}.nii.gz")
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "pancreas": 1, "lesion": 2},
        "numTraining": len(labelled),
        "file_ending": ".nii.gz",
    }
    (out / "dataset.json").write_text(json.dumps(dataset, indent=1))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 128, 48))
    parser.add_argument("--repeat", type=int, default=2, help="times each defect is applied")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from _defects import CASE_DEFECTS
    from multitask_unet.data.phantoms import write_phantom_dataset
    from multitask_unet.data.validation import validate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n_defects = len(CASE_DEFECTS) * args.repeat
        if args.cases < n_defects + 4:
            parser.error(f"--cases must be at least {n_defects + 4} for {n_defects} defects")
        clean = work / "clean"
        write_phantom_dataset(
            clean, n_train=args.cases - 6, n_validation=6, n_test=0, shape=tuple(args.shape),
            class_counts=(8, 1, 1), seed=0,
        )  # fmt: skip
        nnunet_root = _nnunet_copy(clean, work / "Dataset001_Phantoms")

        def ours() -> None:
            report = validate_dataset(nnunet_root, workers=args.workers)
            assert report.ok, str(report)

        def theirs() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                verify_dataset_integrity(str(nnunet_root), num_processes=args.workers)

        times: dict[str, list[float]] = {"ours": [], "nnunet": []}
        for r in range(args.rounds):
            for name, fn in sorted({"ours": ours, "nnunet": theirs}.items(), reverse=r % 2 == 1):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

        damaged = work / "damaged"
        shutil.copytree(clean, damaged)
        from multitask_unet.data.readers import read_dataset

        index = read_dataset(damaged)
        victims = [c for c in index if c.split == "train" and c.label == 0][:n_defects]
        expected = [
            (breaker(index, case), severity, words)
            for case, (breaker, severity, words) in zip(victims, CASE_DEFECTS * args.repeat)
        ]
        start = time.perf_counter()
        report = validate_dataset(damaged, workers=args.workers)
        damaged_seconds = time.perf_counter() - start
        reported = sum(
            any(i.file == path and i.severity == sev and words in i.message for i in report.issues)
            for path, sev, words in expected
        )

    ours_s, nnunet_s = statistics.median(times["ours"]), statistics.median(times["nnunet"])
    result = {
        "benchmark": "validate",
        "cases": args.cases,
        "shape": list(args.shape),
        "workers": args.workers,
        "rounds": args.rounds,
        "clean": {
            "ours_s": times["ours"],
            "nnunet_verify_dataset_integrity_s": times["nnunet"],
            "median_ratio_ours_to_nnunet": ours_s / nnunet_s,
        },
        "damaged": {
            "defects": len(expected),
            "defect_kinds": len(CASE_DEFECTS),
            "reported": reported,
            "issues_in_report": len(report.issues),
            "ours_s": damaged_seconds,
        },
        "environment": environment("cpu"),
    }
    print(
        f"clean {args.cases} cases: ours {ours_s:.1f} s, nnU-Net {nnunet_s:.1f} s "
        f"(ratio {ours_s / nnunet_s:.2f}); damaged: {reported}/{len(expected)} defects reported "
        f"in one pass, {damaged_seconds:.1f} s"
    )
    print("saved", save("validate", result, args.output))
    return result


if __name__ == "__main__":
    main()
