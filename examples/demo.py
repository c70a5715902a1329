"""`make demo`: CT phantoms -> train a small multi-task U-Net on the CPU -> predict -> evaluate.

Steps (each skipped when its output already exists, so an interrupted demo continues):

1. write synthetic CT phantoms (pancreas, lesion, lesion subtype 0/1/2) in the study's layout;
2. train with ``examples/configs/demo.yaml`` (validate -> plan -> preprocess -> train, resumable);
3. predict the held-out test phantoms with the :class:`~multitask_unet.inference.Predictor`
   (label maps on the input grid + ``predictions.csv`` of class probabilities);
4. evaluate against the phantoms' masks and subtypes and write the report with its figures.

It prints whole-pancreas Dice, lesion Dice, macro-F1 and one-vs-rest AUC with 95% bootstrap
intervals and writes ``OUT/demo_summary.json`` with those numbers, the timings and the machine.

Usage::

    python examples/demo.py --out demo_out
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.readers import read_dataset
from multitask_unet.evaluation import PANCREAS_REGIONS, EvaluationConfig, evaluate
from multitask_unet.inference import Predictor
from multitask_unet.provenance import environment, write_json_atomic
from multitask_unet.training import TrainConfig, train

HERE = Path(__file__).parent
PHANTOMS = {
    "n_train": 60,
    "n_validation": 12,
    "n_test": 24,
    "shape": (48, 48, 32),
    "spacing": (1.25, 1.25, 2.0),
    "seed": 0,
}
#: Summary keys of the evaluation report printed by the demo, with their labels.
HEADLINE = {
    "dice_whole_pancreas": "whole-pancreas Dice",
    "dice_lesion": "lesion Dice",
    "macro_f1": "macro-F1",
    "auc_ovr_macro": "one-vs-rest AUC (macro)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument(
        "--config", type=Path, default=HERE / "configs" / "demo.yaml", help="training config"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: the README's numbers, reproducible bit for bit)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: Path = args.out
    timings: dict[str, float] = {}

    start = time.perf_counter()
    data = out / "phantoms"
    if not (data / "dataset.json").is_file():
        print(f"[1/4] writing {sum(PHANTOMS[k] for k in PHANTOMS if k.startswith('n_'))} phantoms")
        write_phantom_dataset(data, **PHANTOMS)
    timings["phantoms_s"] = time.perf_counter() - start

    start = time.perf_counter()
    run = out / "run"
    config = TrainConfig.load(args.config)
    print(f"[2/4] training {config.model.preset} + {config.model.head} head on the CPU")
    result = train(
        data,
        run,
        config,
        resume=(run / "checkpoints" / "last.pt").is_file(),
        intensity_samples=10**6,
        workers=min(2, args.threads),
    )
    timings["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    checkpoint = run / "checkpoints" / "last.pt"  # the final weights, as nnU-Net predicts
    print(f"[3/4] predicting the test phantoms with {checkpoint}")
    # No mirroring test-time augmentation: 8x faster on the CPU, nearly the same Dice here.
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", mirror_axes=())
    test = read_dataset(data).split("test").records
    predictor.predict(list(test), out / "predictions", progress=False)
    timings["predict_s"] = time.perf_counter() - start

    start = time.perf_counter()
    print(f"[4/4] evaluating into {out / 'report'}")
    scoring = EvaluationConfig(regions=PANCREAS_REGIONS)  # the phantoms are pancreas crops
    report = evaluate(out / "predictions", data, output_dir=out / "report", split="test",
                      config=scoring)  # fmt: skip
    timings["evaluate_s"] = time.perf_counter() - start

    print(f"\nheld-out test phantoms: {len(test)}")
    print(report.format_summary(HEADLINE))
    steps = config.optimization.iterations_per_epoch
    print(
        f"\ntrained {result.epochs} epochs x {steps} iterations in "
        f"{timings['train_s'] / 60:.1f} min; total {sum(timings.values()) / 60:.1f} min; "
        f"report: {out / 'report'}, curves: {run / 'curves.png'}"
    )
    summary = {
        "results": {key: report.summary[key] for key in HEADLINE if key in report.summary},
        "epochs": result.epochs,
        "timings": timings,
        "environment": environment("cpu"),
    }
    write_json_atomic(out / "demo_summary.json", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
