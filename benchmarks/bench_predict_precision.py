"""A trained model's predictions in float32 and under bfloat16 (or float16) autocast, compared.

``benchmarks/bench_predict.py`` compares precisions on untrained networks, where many voxels sit
near a tie between two labels; this benchmark asks the question of a trained checkpoint on real
cases it was not trained on: the :class:`~multitask_unet.inference.Predictor` predicts each
case twice (``dtype=None`` and ``--dtype``), everything else equal (the checkpoint's mirroring
axes, windows, post-processing off), and records per case the Dice between the two label maps
per foreground label (and each map's voxels of that label), the share of voxels whose label
differs, the largest difference of the class probabilities and whether the predicted class is
the same, and each precision's Dice against the reference mask. Times are this process's CPU
seconds (``time.process_time``) or wall seconds on CUDA, per case and precision, predicted one
after the other.

    python -m benchmarks.bench_predict_precision --checkpoint RUN/fold_0/checkpoints/last.pt \\
        --data DATA --splits RUN/splits.json --fold 0 --max-cases 8 --threads 1

Results: ``results/predict_precision-<device>.json`` (``summary``, and ``cases`` by case id).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import environment, save, sync

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def dice(a: np.ndarray, b: np.ndarray, label: int) -> float | None:
    """Dice of ``label`` between two maps, ``None`` when neither has it."""
    x, y = a == label, b == label
    total = int(x.sum()) + int(y.sum())
    return None if total == 0 else 2 * int((x & y).sum()) / total


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint of save_checkpoint")
    parser.add_argument("--data", required=True, help="the dataset with the cases and masks")
    parser.add_argument("--splits", help="splits.json of the cross-validation the model is from")
    parser.add_argument("--fold", type=int, default=0, help="its fold: the held-out cases")
    parser.add_argument("--cases", nargs="*", default=None, help="case ids (instead of --splits)")
    parser.add_argument("--max-cases", type=int, default=8)
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--note", default=None, help="other programs used the CPUs: say which")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from multitask_unet.data import read_dataset, read_mask
    from multitask_unet.inference import Predictor

    ids = args.cases
    if ids is None:
        if not args.splits:
            parser.error("give --splits FILE --fold K (held-out cases) or --cases ID ...")
        ids = json.loads(Path(args.splits).read_text())[args.fold]["val"]
    records = {r.case_id: r for r in read_dataset(args.data).records}
    missing = [i for i in ids if i not in records]
    if missing:
        parser.error(f"cases {missing} are not in {args.data}")
    chosen = [records[i] for i in ids if records[i].mask is not None][: args.max_cases]
    options = {"device": args.device, "label_weights": None, "largest_component": False}
    predictors = {
        "float32": Predictor.from_checkpoint(args.checkpoint, **options),
        args.dtype: Predictor.from_checkpoint(args.checkpoint, dtype=DTYPES[args.dtype], **options),
    }
    labels = list(range(1, predictors["float32"].model.config.num_classes))
    clock = time.perf_counter if args.device.startswith("cuda") else time.process_time
    cases: dict[str, dict[str, Any]] = {}
    for record in chosen:
        reference = np.asarray(read_mask(record.mask).array)
        out, seconds = {}, {}
        for name, predictor in predictors.items():
            sync(args.device)
            start = clock()
            out[name] = predictor.predict_case(record)
            sync(args.device)
            seconds[name] = clock() - start
        full, low = out["float32"], out[args.dtype]
        entry: dict[str, Any] = {
            "voxels_changed": float(np.mean(full.segmentation != low.segmentation)),
            **{f"dice_label_{v}": dice(low.segmentation, full.segmentation, v) for v in labels},
            **{
                f"float32_dice_label_{v}_vs_reference": dice(full.segmentation, reference, v)
                for v in labels
            },
            **{
                f"{args.dtype}_dice_label_{v}_vs_reference": dice(low.segmentation, reference, v)
                for v in labels
            },
            **{f"float32_label_{v}_voxels": int((full.segmentation == v).sum()) for v in labels},
            **{
                f"{args.dtype}_label_{v}_voxels": int((low.segmentation == v).sum()) for v in labels
            },
            **{f"seconds_{name}": s for name, s in seconds.items()},
        }
        if full.probabilities is not None and low.probabilities is not None:
            diff = np.abs(full.probabilities - low.probabilities).max()
            entry["max_probability_difference"] = float(diff)
            entry["same_predicted_class"] = full.predicted == low.predicted
        cases[record.case_id] = entry
        print(record.case_id, json.dumps(entry), flush=True)
    rows = list(cases.values())
    keys = [k for k in rows[0] if "seconds" not in k and not k.endswith(("_voxels", "_class"))]
    summary: dict[str, Any] = {
        "cases": len(rows),
        **{f"mean_{k}": _mean([c.get(k) for c in rows]) for k in keys},
        **{
            f"min_dice_label_{v}": min(
                (c[f"dice_label_{v}"] for c in rows if c[f"dice_label_{v}"] is not None),
                default=None,
            )
            for v in labels
        },
        **{
            f"max_label_{v}_voxels_difference": max(
                abs(c[f"float32_label_{v}_voxels"] - c[f"{args.dtype}_label_{v}_voxels"])
                for c in rows
            )
            for v in labels
        },
        "same_predicted_class": sum(bool(c.get("same_predicted_class")) for c in rows),
        **{
            f"median_seconds_{n}": statistics.median(c[f"seconds_{n}"] for c in rows)
            for n in predictors
        },
    }
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    note = args.note or ("other programs were running" if load > cpus / 2 else None)
    result = {
        "benchmark": "prediction_precision",
        "environment": environment(args.device, dtype=f"float32 vs {args.dtype} autocast"),
        "checkpoint": "/".join(Path(args.checkpoint).resolve().parts[-4:]),
        "cases_from": f"fold {args.fold} held out" if args.cases is None else "--cases",
        "mirror_axes": list(predictors["float32"].options["mirror_axes"]),
        "clock": "wall" if args.device.startswith("cuda") else "process",
        "machine_note": None if note is None else f"{note}; load {load:.1f} on {cpus} CPUs",
        "summary": summary,
        "cases": cases,
    }
    path = save("predict_precision", result)
    print(json.dumps(summary, indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
