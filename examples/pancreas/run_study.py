"""The pancreas study with multitask_unet: the ablation grid, a CPU budget mode and a smoke mode.

Modes:

* **grid** (default, GPU): train every config of ``configs/study_*.yaml`` (four classification
  heads x two imbalance strategies, ``L = L_seg + 0.3 L_cls``, batch 8, 100 epochs) on
  ``train/``, validate on ``validation/``, predict ``test/`` (segmentations +
  ``predictions.csv`` of subtype probabilities) and write ``OUT/report/`` comparing the variants
  (``study_report.md`` + ``study_report.png``).
* **budget** (``--budget-minutes M``, CPU): the library's ``train --budget`` on ``train/``
  (planning and training within ``M`` minutes), then prediction and evaluation of
  ``validation/``. Cross-validation is the library's ``multitask-unet crossval``.
* **smoke** (``--smoke``): the grid's whole chain on synthetic phantoms for a few iterations.

Usage::

    python examples/pancreas/run_study.py DATA -o runs/study                # the grid (GPU)
    python examples/pancreas/run_study.py DATA -o runs/study --only panda_balanced
    python examples/pancreas/run_study.py DATA -o runs/budget --budget-minutes 30
    python examples/pancreas/run_study.py --smoke -o /tmp/smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the grid module beside this script
    sys.path.insert(0, str(HERE))

from multitask_unet.data.readers import read_dataset  # noqa: E402
from multitask_unet.evaluation import (  # noqa: E402
    PANCREAS_REGIONS,
    EvaluationConfig,
    evaluate,
    format_summary,
)
from multitask_unet.inference import Predictor  # noqa: E402
from multitask_unet.provenance import environment, write_json_atomic  # noqa: E402
from multitask_unet.training import train  # noqa: E402

#: The study's regions: the whole pancreas (labels 1 and 2) and the lesion (label 2).
SCORING = EvaluationConfig(regions=PANCREAS_REGIONS)
#: Evaluation summary keys reported, with their labels.
HEADLINE = {
    "dice_whole_pancreas": "whole-pancreas Dice",
    "dice_lesion": "lesion Dice",
    "macro_f1": "macro-F1",
    "auc_ovr_macro": "one-vs-rest AUC (macro)",
}


def run_budget(data: Path, out: Path, minutes: float, *, workers: int = 2) -> dict[str, Any]:
    """``train --budget`` on ``train/``, then predict and evaluate ``validation/``."""
    index = read_dataset(data)
    started = time.perf_counter()
    result = train(index, out / "run", budget=f"{minutes:g}m", workers=workers)
    trained = time.perf_counter()
    predictor = Predictor.from_run(out / "run")
    predictor.predict(index.split("validation").records, out / "predictions_validation")
    report = evaluate(out / "predictions_validation", index.root, config=SCORING,
                      output_dir=out / "report_validation", split="validation")  # fmt: skip
    return {
        "mode": "cpu_budget",
        "budget_minutes": minutes,
        "epochs_trained": result.epochs,
        "results": {k: report.summary[k] for k in HEADLINE if k in report.summary},
        "timings": {
            "plan_and_train_s": trained - started,
            "predict_and_evaluate_s": time.perf_counter() - trained,
        },
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="study-layout dataset folder")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--budget-minutes", type=float, help="budget mode: plan and train in this time"
    )
    parser.add_argument("--smoke", action="store_true", help="a few iterations on phantoms")
    parser.add_argument("--only", nargs="+", help="grid: run only these variants")
    parser.add_argument("--device", default="auto", help="grid: auto, cpu, cuda, cuda:N")
    parser.add_argument("--results", type=Path, help="also write the summary JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        from grid import run_smoke

        summary = run_smoke(args.out)
    elif args.data is None:
        _parser().error("give the dataset folder (or --smoke)")
    elif args.budget_minutes is not None:
        summary = run_budget(args.data, args.out, args.budget_minutes)
        summary["environment"] = environment("cpu")
        print(format_summary(summary["results"], HEADLINE))
    else:
        from grid import run_grid

        summary = run_grid(args.data, args.out, only=args.only, device=args.device)
    write_json_atomic(args.out / "summary.json", summary)
    if args.results is not None:
        write_json_atomic(args.results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
