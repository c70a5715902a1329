"""The pancreas study with multitask_unet: the ablation grid, a CPU budget mode and a smoke mode.

Modes:

* **grid** (default, GPU): train every config of ``configs/study_*.yaml`` (four classification
  heads x two imbalance strategies, ``L = L_seg + 0.3 L_cls``, batch 8, 100 epochs) on
  ``train/``, validate on ``validation/``, predict ``test/`` (segmentations +
  ``predictions.csv`` of subtype probabilities) and write ``OUT/report/`` comparing the variants
  (``study_report.md`` + ``study_report.png``).
* **budget** (``--budget-minutes M``, CPU): train one small configuration on ``train/`` and
  evaluate on ``validation/`` within ``M`` minutes (see ``budget.py``).
* **smoke** (``--smoke``): the grid's whole chain on synthetic phantoms for a few iterations.

Usage::

    python examples/pancreas/run_study.py DATA -o runs/study                # the grid (GPU)
    python examples/pancreas/run_study.py DATA -o runs/study --only panda_balanced
    python examples/pancreas/run_study.py DATA -o runs/budget --budget-minutes 30 --threads 2
    python examples/pancreas/run_study.py DATA -o runs/budget --budget-minutes 30 --threads 2 \\
        --budget-plan auto                  # the library's budget planner (see the study page)
    python examples/pancreas/run_study.py --smoke -o /tmp/smoke
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the example's modules, when imported from elsewhere (tests)
    sys.path.insert(0, str(HERE))

from budget import HEADLINE, run_budget  # noqa: E402
from machine import environment, write_json_atomic  # noqa: E402


def _print_results(results: dict[str, dict[str, float]]) -> None:
    for key, label in HEADLINE.items():
        entry = results.get(key) or {}
        if entry.get("estimate") is None:
            print(f"  {label:<26} n/a (one class only, or no prediction)")
            continue
        low, high = entry.get("low"), entry.get("high")
        interval = f"  (95% CI {low:.3f}-{high:.3f})" if low is not None else ""
        print(f"  {label:<26} {entry['estimate']:.3f}{interval}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="study-layout dataset folder")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--budget-minutes", type=float, help="CPU budget mode: train + evaluate in this time"
    )
    parser.add_argument("--smoke", action="store_true", help="a few iterations on phantoms")
    parser.add_argument("--only", nargs="+", help="grid: run only these variants")
    parser.add_argument("--device", default="auto", help="grid: auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--budget-plan",
        choices=("auto", "planner", "fixed"),
        default="fixed",
        help="budget: the fixed config (default, cross-validated), the library's budget "
        "planner, or the planner with the fixed config as fallback (auto)",
    )
    parser.add_argument(
        "--config", type=Path, help="budget: training YAML (configs/cpu_budget.yaml)"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--results", type=Path, help="also write the summary JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        from grid import run_smoke

        summary = run_smoke(args.out)
    elif args.data is None:
        _parser().error("give the dataset folder (or --smoke)")
    elif args.budget_minutes is not None:
        summary = run_budget(
            args.data,
            args.out,
            minutes=args.budget_minutes,
            plan_mode=args.budget_plan,
            config_path=args.config,
            workers=min(2, args.threads),
        )
        summary = {"environment": environment("cpu"), **summary}
        print(f"\nvalidation cases: {summary['data']['validation_cases']}")
        _print_results(summary["results"])
        print(
            f"trained {summary['settings']['iterations_trained']} iterations; total "
            f"{summary['timings']['total_s'] / 60:.1f} min; curves: {args.out / 'run/curves.png'}"
        )
    else:
        from grid import run_grid

        summary = run_grid(args.data, args.out, only=args.only, device=args.device)
    write_json_atomic(args.out / "summary.json", summary)
    if args.results is not None:
        write_json_atomic(args.results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
