"""End-to-end training loop: our ``Trainer``'s epoch loop vs nnU-Net 2.8's ``nnUNetTrainer`` loop.

Both loops train the same network (built from one nnU-Net architecture description: ours
through ``config_from_plans``) with their own loss, optimiser, precision and augmentation,
reading the same preprocessed cases (the real subset of ``../shared/data`` or
``MULTITASK_UNET_TEST_DATA``, phantoms otherwise), with ``k`` data-loading worker processes:

- ``nnunet``: its real trainer objects: ``initialize()``, ``on_train_start()`` (its
  ``get_dataloaders``: ``nnUNetDataLoader`` + its augmentation in ``NonDetMultiThreadedAugmenter``
  with ``nnUNet_n_proc_DA = k``), then ``train_step(next(dataloader_train))`` as
  ``run_training`` iterates. It compiles the network on CUDA by default (``--compile off``
  sets ``nnUNet_compile=f``); fp16 autocast with a ``GradScaler`` on CUDA.
- ``ours``: the ``Trainer``'s epoch loop (``Trainer._train_epoch``, after ``Trainer._build``)
  over a :class:`~multitask_unet.data.TrainLoader` with ``num_workers = k``, cases drawn
  uniformly as nnU-Net does, nnU-Net's augmentation for the patch size. ``ours_device`` is the
  same with ``AugmentationConfig(backend="device")`` where the library has that option.

Every loop runs ``--warmup`` iterations, then (with ``--drain``, the default on CUDA) more until
a batch had to be waited for, at most as many as the loader holds ready (so batches prepared
before the clock starts do not inflate the rate), then ``--timed`` iterations. The wait is the
time spent in ``next()`` on the loader. Step-only speed is the same loop over one fixed batch
held in (pinned) host memory: no loader work, the host-to-device copy remains.

Result ``results/train_loop-<device>.json``:

- ``environment`` (device, dtype, versions, date), ``machine`` (``cpu_model``, ``cpu_count``,
  ``gpu_name``), ``machine_shared`` / ``machine_note`` (other programs on the CPUs meanwhile),
  ``settings``, ``data`` (source, cases), ``plans`` (network, patch, batch per plan),
  ``step_only`` (per plan: ``ours`` and ``nnunet`` timings).
- ``rows``: one per (``plan``, ``k``, ``variant``: ``ours`` or ``ours_device``) with ``ours_it_per_s``, ``nnunet_it_per_s``,
  ``ratio`` (ours / nnU-Net), ``ours_wait_fraction``, ``nnunet_wait_fraction`` (share of the
  timed wall time spent waiting for a batch), ``step_only_it_per_s`` (ours),
  ``ours_vs_step_only``, ``nnunet_step_only_it_per_s``, ``ours_peak_memory_mib``,
  ``nnunet_peak_memory_mib`` (CUDA: ``max_memory_allocated`` during the timed iterations,
  counting only the loop's own resident tensors; CPU: null), ``peak_memory_ratio`` and
  ``timings`` (iterations, seconds, warm-up iterations of each side).
- ``targets``: issue #24's goals per plan and variant (set for CUDA) with their values.

    python -m benchmarks.bench_train_loop --device cpu --quick
    python -m benchmarks.bench_train_loop --device cuda --plans study --k 2 4 1 8 --compile off
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from benchmarks.common import environment, machine, save, write_nnunet_dataset
from benchmarks.train_loop_sides import (
    PLANS,
    LoopTimer,
    NnunetLoop,
    OurLoop,
    depth,
    device_augmentation,
)

TARGETS = {"k2_vs_nnunet": 2.0, "k2_vs_step_only": 0.9, "k4_vs_nnunet": 1.3, "memory": 1.1}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def assemble_row(
    plan: str, k: int, variant: str, ours: dict[str, Any], nnunet: dict[str, Any],
    step_only: dict[str, Any], nnunet_step_only: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """One result row from the timings (:meth:`LoopTimer.result`) of the loops."""
    return {
        "plan": plan,
        "k": k,
        "variant": variant,
        "ours_it_per_s": ours["it_per_s"],
        "nnunet_it_per_s": nnunet["it_per_s"],
        "ratio": _ratio(ours["it_per_s"], nnunet["it_per_s"]),
        "ours_wait_fraction": ours["wait_fraction"],
        "nnunet_wait_fraction": nnunet["wait_fraction"],
        "step_only_it_per_s": step_only["it_per_s"],
        "ours_vs_step_only": _ratio(ours["it_per_s"], step_only["it_per_s"]),
        "nnunet_step_only_it_per_s": nnunet_step_only["it_per_s"],
        "ours_peak_memory_mib": ours["peak_memory_mib"],
        "nnunet_peak_memory_mib": nnunet["peak_memory_mib"],
        "peak_memory_ratio": _ratio(ours["peak_memory_mib"], nnunet["peak_memory_mib"]),
        "timings": {"ours": ours, "nnunet": nnunet},
    }


def targets(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Issue #24's goals per ``plan/variant``: each measured value with its bound and verdict."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        checks = out.setdefault(f"{row['plan']}/{row['variant']}", {})
        found = {
            2: [("k2_vs_nnunet", row["ratio"]), ("k2_vs_step_only", row["ours_vs_step_only"])],
            4: [("k4_vs_nnunet", row["ratio"])],
        }.get(row["k"], [])
        found.append((f"k{row['k']}_memory", row["peak_memory_ratio"]))
        for name, value in found:
            bound = TARGETS["memory" if name.endswith("memory") else name]
            if value is None:
                continue
            met = value <= bound if name.endswith("memory") else value >= bound
            checks[name] = {"value": value, "bound": bound, "met": met}
    return out


def _dtype(device: str) -> str:
    if not device.startswith("cuda"):
        return "float32"
    return "ours: autocast bf16 (the Trainer's amp='auto'); nnU-Net: autocast fp16 + GradScaler"


def _variants(plan: str, args: argparse.Namespace, cache: Path, work: Path,
              result: dict[str, Any]) -> dict[str, OurLoop]:  # fmt: skip
    """Our loop, and ``ours_device`` where the library offers device-side augmentation."""
    kw = {"compile": args.compile}
    loops = {"ours": OurLoop(cache, plan, args.device, run_dir=work / "run", **kw)}
    augmentation = device_augmentation(PLANS[plan]["patch"])
    if args.no_device_variant or augmentation is None:
        why = "--no-device-variant" if args.no_device_variant else "no AugmentationConfig.backend"
        result["variants_skipped"] = {"ours_device": why}
        return loops
    try:
        loops["ours_device"] = OurLoop(cache, plan, args.device, run_dir=work / "run_device",
                                       augmentation=augmentation, **kw)  # fmt: skip
    except Exception as exc:  # an option still in the making: report it, time the rest
        result["variants_skipped"] = {"ours_device": f"{type(exc).__name__}: {exc}"}
    return loops


def measure_plan(plan: str, args: argparse.Namespace, cache: Path, work: Path,
                 result: dict[str, Any], started: float) -> None:  # fmt: skip
    """Step-only speeds, then every ``k`` for every loop of one plan; saves after each ``k``."""
    spec, device = PLANS[plan], args.device
    folder = write_nnunet_dataset(cache, work / plan, architecture=spec["architecture"],
                                  patch=spec["patch"], batch=spec["batch"])  # fmt: skip

    def timer(side: str, k: int | None) -> LoopTimer:
        drain = depth(side, k) if args.drain and k is not None else 0
        return LoopTimer(device, args.warmup, drain, args.timed)

    ours = _variants(plan, args, cache, work, result)
    nnunet = NnunetLoop(folder, device, compile=args.compile, log=work / "nnunet.log")
    try:
        step_only = {"ours": ours["ours"].run(timer("ours", None), None)}
        nnunet.workers(args.k[0])  # for one batch: the workers are stopped before the clock
        step_only["nnunet"] = nnunet.run(timer("nnunet", None), fixed=True)
        result["step_only"][plan] = step_only
        print(f"{plan} step-only it/s: ours {step_only['ours']['it_per_s']:.2f}, "
              f"nnU-Net {step_only['nnunet']['it_per_s']:.2f}", flush=True)  # fmt: skip
        for i, k in enumerate(args.k):
            if time.perf_counter() - started > args.budget_s:
                result["stopped_early"] = f"--budget-s {args.budget_s} reached before {plan} k={k}"
                return
            sides = ["nnunet", *ours]
            sides = sides[i % len(sides) :] + sides[: i % len(sides)]  # rotate the order
            timings: dict[str, dict[str, Any]] = {}
            for side in sides:
                if side == "nnunet":  # fresh loaders, as ours: no batch is ready before
                    nnunet.workers(k)
                    timings[side] = nnunet.run(timer(side, k))
                    nnunet.close()
                else:
                    timings[side] = ours[side].run(timer("ours", k), k)
                print(f"{plan} k={k} {side:>11}: {timings[side]['it_per_s']:.2f} it/s, waiting "
                      f"{timings[side]['wait_fraction']:.0%}", flush=True)  # fmt: skip
            for name in ours:
                row = assemble_row(plan, k, name, timings[name], timings["nnunet"],
                                   step_only["ours"], step_only["nnunet"])  # fmt: skip
                result["rows"].append(row)
            result["targets"] = targets(result["rows"])
            save("train_loop", result, args.output)  # a time-out keeps what was measured
    finally:
        nnunet.close()


def shared_note(note: str | None, load: float, cpus: int) -> str | None:
    """Why the CPUs were not this benchmark's alone: ``--shared-note``, or a load average above
    half the CPUs at the start (the end's is this benchmark's own, and only recorded)."""
    note = note or None  # an empty --shared-note says nothing
    if note is None and load > cpus / 2:
        note = "other programs were running"
    return (
        None
        if note is None
        else f"{note}; 1-minute load average {load:.1f} on {cpus} CPUs at the start"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.bench_train_loop``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="the small plan, k=1 2, few steps")
    parser.add_argument("--plans", nargs="+", choices=sorted(PLANS), help="default: CUDA both")
    parser.add_argument("--k", type=int, nargs="+", help="worker processes (default 1 2 4 8)")
    parser.add_argument("--warmup", type=int, help="iterations before the clock (default 5)")
    parser.add_argument("--timed", type=int, help="timed iterations (default 20; CPU 10)")
    parser.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="warm up until the loader's ready batches are used (CUDA default)",
    )
    parser.add_argument(
        "--compile",
        choices=("auto", "off"),
        default="auto",
        help="auto: each trainer's default (both compile on CUDA)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=float("inf"),
        help="start no new k after this many seconds",
    )
    parser.add_argument("--no-device-variant", action="store_true")
    parser.add_argument("--cache", type=Path, help="reuse (or create) this preprocessing cache")
    parser.add_argument("--phantoms", type=int, default=12, help="cases without real data")
    parser.add_argument("--no-real", action="store_true", help="use phantoms even with real data")
    parser.add_argument("--output", type=Path, help="folder of the JSON (default: results/)")
    parser.add_argument("--shared-note", help="other programs used the CPUs meanwhile: say which")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.plans = args.plans or (["study", "small"] if cuda and not args.quick else ["small"])
    args.k = args.k or ([1, 2] if args.quick or not cuda else [1, 2, 4, 8])
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    args.timed = args.timed or (5 if args.quick else 20 if cuda else 10)
    args.drain = cuda if args.drain is None else args.drain
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.perf_counter()
    note = shared_note(args.shared_note, os.getloadavg()[0], os.cpu_count() or 1)
    settings = ("plans", "k", "warmup", "timed", "drain", "compile", "quick")
    result: dict[str, Any] = {
        "benchmark": "train_loop",
        "environment": environment(args.device, _dtype(args.device)),
        "machine": machine(args.device),
        "machine_shared": note is not None,
        "machine_note": note,
        "settings": {k: getattr(args, k) for k in settings},
        "plans": {
            p: {key: PLANS[p][key] for key in ("network", "patch", "batch")} for p in args.plans
        },
        "step_only": {},
        "rows": [],
    }
    from benchmarks.bench_data import prepare_cache
    from multitask_unet.data.preprocessing.cache import list_cached_cases

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache, source = prepare_cache(
            work, cache=args.cache, phantoms=args.phantoms, real=not args.no_real
        )
        result["data"] = {"source": source, "cases": len(list_cached_cases(cache))}
        for plan in args.plans:
            measure_plan(plan, args, cache, work, result, started)
            if "stopped_early" in result:
                break
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["environment"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    path = save("train_loop", result, args.output)
    for row in result["rows"]:
        print(f"{row['plan']:>5} k={row['k']} {row['variant']:>7}: ours {row['ours_it_per_s']:.2f} "
              f"it/s, nnU-Net {row['nnunet_it_per_s']:.2f} it/s, x{row['ratio']:.2f}; "
              f"{row['ours_vs_step_only']:.2f} of step-only")  # fmt: skip
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
