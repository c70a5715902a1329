"""Run every benchmark and write one JSON plus a Markdown table.

    python -m benchmarks.run --device cpu --quick
    python -m benchmarks.run --device cuda          # a lent GPU; budgeted for < 8 minutes

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
    return {
        f"b{b} {name} speed vs nnU-Net": e["speedup_vs_nnunet"]
        for b, entries in r["by_batch"].items()
        for name, e in entries.items()
        if name != "nnunet"
    }


def suite(device: str, quick: bool) -> list[tuple[str, list[str], Path, Headline, int]]:
    """(name, argv, result file, headline extractor, timeout in s) for every benchmark."""
    cuda = device.startswith("cuda")
    q = ["--quick"] if quick else []
    reps = ["--repeats", "2" if quick else "5"]
    return [
        ("network", ["benchmarks.bench_network", "--device", device, *reps],
         RESULTS / f"network-nnunet_3d_fullres_plain-{device.split(':')[0]}.json", _network, 900),
        ("heads", ["benchmarks.bench_heads", "--device", device, "--reps", "2" if quick else "5",
                   "--out", str(RESULTS / f"heads-{device.split(':')[0]}.json")],
         RESULTS / f"heads-{device.split(':')[0]}.json", _heads, 900),
        ("data", ["benchmarks.bench_data", "--patch", "32", "96", "128", *(["--rounds", "1"] if quick else [])],
         RESULTS / "bench_data-cpu.json", _data, 900),
        ("predict", ["benchmarks.bench_predict", "--device", device, "--repeats", "2" if quick else "3"],
         RESULTS / f"predict-small_plain-{device.split(':')[0]}.json", _predict, 900),
        ("train_step", ["benchmarks.bench_train_step", "--device", device, *q,
                        *(["--compile"] if cuda and not quick else [])],
         RESULTS / f"train_step-{device.split(':')[0]}.json", _train_step, 1200),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, small sizes")
    parser.add_argument("--only", nargs="+", help="run only these benchmarks (by name)")
    args = parser.parse_args(argv)
    rows: dict[str, Any] = {}
    failed = []
    for name, cmd, result_file, headline, timeout in suite(args.device, args.quick):
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        print(f"== {name}: python -m {' '.join(cmd)}", flush=True)
        try:
            subprocess.run([sys.executable, "-m", *cmd], check=True, timeout=timeout)
            rows[name] = {
                "seconds": round(time.perf_counter() - start, 1),
                "file": result_file.name,
                **headline(json.loads(result_file.read_text())),
            }
        except (subprocess.SubprocessError, OSError, KeyError, ValueError) as exc:
            failed.append(name)
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
    device = args.device.split(":")[0]
    result = {
        "benchmark": "suite",
        "environment": environment(args.device),
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
