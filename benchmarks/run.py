"""Run every benchmark and write one JSON plus a Markdown table.

    python -m benchmarks.run --device cpu --quick
    python -m benchmarks.run --device cuda          # a lent GPU; under 10 minutes

Each benchmark runs in its own process (so one failure or memory spike does not end the
suite) and writes its own result file under ``benchmarks/results/``; this runner collects
the headline ratios into ``results/suite-<device>.json`` and ``results/suite-<device>.md``.
Nothing here gates the tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, environment, save

Headline = Callable[[dict[str, Any]], dict[str, Any]]


def _network(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "time ours/DNA": r["time_ratio"],
        "saved activations ours/DNA": r["saved_activations_ratio"],
    }


def _heads(r: dict[str, Any]) -> dict[str, Any]:
    ratios = {k: v.get("median_ratio") for k, v in r["results"].items() if isinstance(v, dict)}
    return {f"{k} / seg only": v for k, v in ratios.items() if v is not None and k != "seg_only"}


def _data(r: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for entry in r["results"]:
        pps = entry["workers"]["patches_per_s"]
        out[f"patches/s ours/nnU-Net {'x'.join(map(str, entry['patch_size']))}"] = (
            pps["ours"] / pps["nnunet"]
        )
    return out


def _predict(r: dict[str, Any]) -> dict[str, Any]:
    return {f"time ours({k})/nnU-Net": v["ratio_to_nnunet"] for k, v in r["ours"].items()} | {
        f"Dice ours({k}) vs nnU-Net": v["dice_vs_nnunet"] for k, v in r["ours"].items()
    }


def _train_step(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for b, entries in r["by_batch"].items():
        ref = entries.get("nnunet", {})
        for name, e in entries.items():
            if name == "nnunet":
                continue
            if "median_s" not in e:
                out[f"b{b} {name}"] = e.get("error", "failed")
                continue
            out[f"b{b} {name} speed vs nnU-Net"] = e["speedup_vs_nnunet"]
            if e.get("peak_memory_mib") and ref.get("peak_memory_mib"):
                out[f"b{b} {name} peak memory vs nnU-Net"] = (
                    e["peak_memory_mib"] / ref["peak_memory_mib"]
                )
    return out


def _validate(r: dict[str, Any]) -> dict[str, Any]:
    damaged = r["damaged"]
    return {
        "time ours/nnU-Net verify_dataset_integrity": r["clean"]["median_ratio_ours_to_nnunet"],
        "defects reported in one pass": f"{damaged['reported']}/{damaged['defects']}",
    }


def _train_loop(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in r["rows"]:
        name = f"{row['plan']} k={row['k']}" + (
            "" if row["variant"] == "ours" else f" {row['variant']}"
        )
        out[f"{name} it/s ours/nnU-Net"] = row["ratio"]
        out[f"{name} it/s ours/step-only"] = row["ours_vs_step_only"]
        if row.get("peak_memory_ratio") is not None:
            out[f"{name} peak memory ours/nnU-Net"] = row["peak_memory_ratio"]
    return out


def _study_train(r: dict[str, Any]) -> dict[str, Any]:
    res = r["results"]
    return {
        "iterations/s (eager)": res["iterations_per_s"],
        "peak memory GiB": res["peak_memory_allocated_gib"],
    }


#: The suite's CUDA training-step variants at batch 2 (compiling dominates their time, so the
#: suite keeps to these); ``benchmarks/gpu_session.sh b2 b8`` times CUDA graphs and batch 8 too.
TRAIN_STEP_CUDA = ("nnunet_eager", "ours_amp_bf16", "ours_amp_bf16_compile")


def suite(device: str, quick: bool) -> list[tuple[str, list[str], Path, Headline, int]]:
    """(name, argv, result file, headline extractor, timeout in s) for every benchmark.

    On CUDA the data pipeline and dataset validation (CPU work that a GPU does not change) are
    left out, and so is the training loop against nnU-Net's (``gpu_session.sh loop`` runs it
    in a call of its own: its worker counts and nnU-Net's data loading take minutes); the
    study's training speed is added, and the training step (batch 2,
    :data:`TRAIN_STEP_CUDA`, most of it compiling) runs last, so that a time-out there loses nothing else; the timeouts add up
    to 540 s, so the whole run fits 10 minutes. The training step and the study's speed go to
    ``*-suite-cuda.json`` files, beside the fuller runs of ``gpu_session.sh`` and
    ``gpu_study_train.py`` rather than over them.
    """
    cuda = device.startswith("cuda")
    dev = device.split(":")[0]
    q = ["--quick"] if quick else []
    reps = ["--repeats", "2" if quick else "5"]
    entries = {
        "network": (["benchmarks.bench_network", "--device", device, *reps],
                    RESULTS / f"network-nnunet_3d_fullres_plain-{dev}.json", _network, 900),
        "heads": (["benchmarks.bench_heads", "--device", device, "--reps", "2" if quick else "5",
                   "--out", str(RESULTS / f"heads-{dev}.json")],
                  RESULTS / f"heads-{dev}.json", _heads, 900),
        "data": (["benchmarks.bench_data", "--patch", "32", "96", "128",
                  *(["--rounds", "1"] if quick else [])],
                 RESULTS / "bench_data-cpu.json", _data, 900),
        "predict": (["benchmarks.bench_predict", "--device", device,
                     "--repeats", "2" if quick else "3"],
                    RESULTS / f"predict-small_plain-{dev}.json", _predict, 900),
        "train_step": (["benchmarks.bench_train_step", "--device", device, *q],
                       RESULTS / f"train_step-{dev}.json", _train_step, 1200),
        "validate": (["benchmarks.bench_validate", "--rounds", "1" if quick else "3"],
                     RESULTS / "validate-cpu.json", _validate, 900),
        "train_loop": (["benchmarks.bench_train_loop", "--device", device, *q],
                       RESULTS / f"train_loop-{dev}.json", _train_loop, 900),
    }  # fmt: skip
    if not cuda:
        return [(name, *entry) for name, entry in entries.items()]
    if not quick:  # GPU-sized inputs: the CPU defaults would time kernel launches
        entries["network"][0].extend(["--patch", "128", "128", "128", "--batch", "2"])
        entries["heads"][0].extend(["--size", "128", "128", "128", "--batch", "2"])
        entries["train_step"] = (  # its own file: gpu_session.sh writes the fuller one
            [*entries["train_step"][0], "--compile", "--repeats", "5", "--batch", "2",
             "--only", *TRAIN_STEP_CUDA, "--name", "train_step-suite"],
            RESULTS / f"train_step-suite-{dev}.json", _train_step, 900,
        )  # fmt: skip
        entries["predict"][0].extend(
            ["--arch", "nnunet_3d_fullres_plain", "--patch", "64", "128", "128",
             "--shape", "128", "256", "256"]
        )  # fmt: skip
        entries["predict"] = (
            entries["predict"][0],
            RESULTS / f"predict-nnunet_3d_fullres_plain-{dev}.json",
            _predict,
            900,
        )
    study = RESULTS / "study_train-suite-cuda.json"  # 30 eager steps; the study's file has 50
    entries["study_train"] = (
        ["benchmarks.gpu_study_train", "--device", device, "--iterations", "10" if quick else "30",
         "--compile", "off",  # eager: compiling would take minutes of the suite's ten
         "--output", str(study)],
        study, _study_train, 900,
    )  # fmt: skip
    timeouts = {"study_train": 60, "network": 35, "heads": 40, "predict": 75, "train_step": 330}
    return [
        (name, entries[name][0], entries[name][1], entries[name][2], timeouts[name])
        for name in ("study_train", "network", "heads", "predict", "train_step")
    ]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.run``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, small sizes")
    parser.add_argument("--only", nargs="+", help="run only these benchmarks (by name)")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: build the suite table from the result files already written",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows: dict[str, Any] = {}
    environments: list[dict[str, Any] | None] = []
    failed = []
    for name, cmd, result_file, headline, timeout in suite(args.device, args.quick):
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            if args.collect:
                if not result_file.exists():
                    continue
            else:
                print(f"== {name}: python -m {' '.join(cmd)}", flush=True)
                subprocess.run([sys.executable, "-m", *cmd], check=True, timeout=timeout)
            data = json.loads(result_file.read_text())
            environments.append(data.get("environment"))
            rows[name] = {
                "seconds": None if args.collect else round(time.perf_counter() - start, 1),
                "file": result_file.name,
                **headline(data),
            }
        except (subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
            failed.append(name)
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
    device = args.device.split(":")[0]
    result = {
        "benchmark": "suite",
        # Collected: the machine the results were measured on, not this one.
        "environment": next(filter(None, environments), None)
        if args.collect
        else environment(args.device),
        "quick": args.quick,
        "rows": rows,
    }
    path = save("suite", result)
    lines = [
        f"# Benchmarks on {result['environment']['device_name']} ({device})",
        "",
        f"torch {result['environment']['torch']}, multitask_unet {result['environment']['multitask_unet']}, "
        f"{result['environment']['date']}{', quick' if args.quick else ''}",
        "",
        "| benchmark | measure | value |",
        "|---|---|---|",
    ]
    for name, row in rows.items():
        for key, value in row.items():
            if key in ("file", "seconds"):
                continue
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            lines.append(f"| {name} | {key} | {text} |")
    md = path.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"-> {path}, {md}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
