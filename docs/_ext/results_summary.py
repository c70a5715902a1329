"""The benchmarks page's summary: our speed against the reference's, one row per comparison.

Every number comes from a committed result file when the site is built. :data:`EXTRACTORS`
says, for each kind of result file (matched by name), how to find the pairs of measurements
that compare our code with a reference implementation (nnU-Net, dynamic-network-architectures,
scikit-learn); a file no extractor matches, or one holding no such pair, is left out of the
summary and only shown in the details. Suite files (``suite-*.json``) repeat the headlines of
the other files and are not summarised again.

To add a benchmark: write a function ``(data, env) -> list[Pair]`` and add it to
:data:`EXTRACTORS` with the file-name pattern its results are written under.
"""

from __future__ import annotations

import fnmatch
import html
import json
import math
import re
import statistics
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results_chart import speedup_chart
from results_labels import date_of, environment, file_title, variant_label

__all__ = ["EXTRACTORS", "Pair", "Row", "render_summary", "summary_rows"]


@dataclass(frozen=True)
class Pair:
    """One comparison in one result file.

    Attributes:
        case: What was measured, in words ("batch 2, bf16 autocast, compiled").
        short: A few words for the chart ("b2 bf16 autocast, compiled").
        against: The reference implementation and its version.
        dtype: Our side's data type.
        ours: Our measurement.
        reference: The reference's measurement of the same thing.
        unit: ``"s"`` for times (lower is better), otherwise a rate such as ``"patches/s"``.
    """

    case: str
    short: str
    against: str
    dtype: str
    ours: float
    reference: float
    unit: str = "s"

    @property
    def speedup(self) -> float:
        """How many times faster ours is: reference time / our time, or our rate / theirs."""
        if self.unit == "s":
            return self.reference / self.ours
        return self.ours / self.reference


@dataclass(frozen=True)
class Row:
    """A :class:`Pair` with the benchmark, machine and date of the file it came from."""

    benchmark: str
    chart_name: str
    device: str
    date: str
    source: str
    pair: Pair


Extractor = Callable[[Mapping[str, Any], Mapping[str, Any]], list[Pair]]


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value > 0 else None


def _get(data: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _median(values: Any) -> float | None:
    if isinstance(values, list) and values and all(_number(v) for v in values):
        return float(statistics.median(values))
    return _number(values)


def _shape(value: Any) -> str:
    return "×".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _version(env: Mapping[str, Any], key: str) -> str:
    return f" {env[key]}" if env.get(key) else ""


def _pair(case: str, short: str, against: str, dtype: Any, ours: Any, ref: Any, unit: str = "s"):
    """A :class:`Pair`, or ``None`` when either measurement is missing or not positive."""
    ours, ref = _number(ours), _number(ref)
    if ours is None or ref is None:
        return None
    return Pair(case, short, against, str(dtype or "not recorded"), ours, ref, unit)


def network(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_network``: one training step of the same network, ours against DNA's."""
    arch = data.get("arch", "network")
    case = f"{arch}, patch {_shape(data.get('patch'))}, batch {data.get('batch')}"
    if data.get("clock"):
        case += f" ({data['clock']})"
    against = "dynamic-network-architectures" + _version(env, "dynamic_network_architectures")
    ours, ref = _get(data, "ours", "median_s"), _get(data, "dna", "median_s")
    return [_pair(case, str(arch), against, env.get("dtype"), ours, ref)]


def train_step(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_train_step``: each of our variants against nnU-Net's step at each batch size."""
    against = f"nnU-Net{_version(env, 'nnunetv2')} train_step"
    note = str(data.get("reference") or "").removeprefix("nnunet").strip(" ()")
    against += f" ({note})" if note else ""
    pairs: list[Pair | None] = []
    for batch, entries in (data.get("by_batch") or {}).items():
        ref = _get(entries, "nnunet", "median_s")
        for name, entry in entries.items() if isinstance(entries, Mapping) else ():
            if name.startswith("ours"):
                words = variant_label(name)
                dtype = "bfloat16 autocast" if "bf16" in name else "float32"
                ours = _get(entry, "median_s")
                pairs.append(
                    _pair(f"batch {batch}, {words}", f"b{batch} {words}", against, dtype, ours, ref)
                )
    return pairs


def train_loop(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_train_loop`` (``train_loop-<device>.json``): training iterations per second.

    Expected shape, read loosely: a list of rows at the top level (``rows``) or one level down,
    each a mapping with ``k`` (data-loading workers), ``ours_it_per_s`` and ``nnunet_it_per_s``,
    and optionally ``plan`` and ``variant`` (``ours``, ``ours_device``). Rows missing a number
    (a side that did not finish) are skipped.
    """
    candidates = [*data.values()]
    candidates += [
        v for value in data.values() if isinstance(value, Mapping) for v in value.values()
    ]
    against = f"nnU-Net{_version(env, 'nnunetv2')} nnUNetTrainer loop"
    dtype = str(env.get("dtype") or "")
    if dtype.startswith("ours:"):  # "ours: autocast bf16 (...); nnU-Net: ..." -> ours' part
        dtype = dtype.removeprefix("ours:").split(";")[0].split("(")[0].strip()
    pairs: list[Pair | None] = []
    for value in candidates:
        if not (isinstance(value, list) and all(isinstance(r, Mapping) for r in value)):
            continue
        for row in value:
            if {"k", "ours_it_per_s", "nnunet_it_per_s"} <= row.keys():
                k, variant = row["k"], str(row.get("variant") or "ours")
                words = [f"plan {row['plan']}"] if row.get("plan") else []
                words.append(f"{k} data-loading workers")
                words += [variant_label(variant)] if variant != "ours" else []
                short = " ".join([f"k={k}", *words[2 if row.get("plan") else 1 :]])
                ours, ref = row["ours_it_per_s"], row["nnunet_it_per_s"]
                pairs.append(_pair(", ".join(words), short, against, dtype, ours, ref, "it/s"))
    return pairs


def bench_data(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_data``: patches per second of our loaders and nnU-Net's, in worker processes."""
    workers = _get(data, "settings", "workers")
    against = f"nnU-Net{_version(env, 'nnunetv2')} nnUNetDataLoader"
    pairs: list[Pair | None] = []
    for entry in data.get("results") or []:
        rates, patch = _get(entry, "workers", "patches_per_s"), _shape(_get(entry, "patch_size"))
        for key, loader in (("ours", "TrainLoader"), ("ours_queue", "TorchIO Queue")):
            case = f"patch {patch}, {workers} workers, {loader}"
            ours, ref = _get(rates, key), _get(rates, "nnunet")
            pairs.append(
                _pair(case, f"{patch} {loader}", against, env.get("dtype"), ours, ref, "patches/s")
            )
    return pairs


def predict(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_predict``: sliding-window prediction of one volume, each of our variants."""
    arch, volume = data.get("arch", "network"), _shape(data.get("volume_shape"))
    against = f"nnU-Net{_version(env, 'nnunetv2')} nnUNetPredictor"
    ref = _get(data, "nnunet", "median_s")
    pairs: list[Pair | None] = []
    for name, entry in (data.get("ours") or {}).items():
        autocast = str(_get(entry, "autocast_dtype") or "")
        dtype = f"{autocast.removeprefix('torch.')} autocast" if autocast else env.get("dtype")
        case = f"{arch}, volume {volume}, {variant_label(name)}"
        ours = _get(entry, "median_s")
        pairs.append(_pair(case, f"{arch} {variant_label(name)}", against, dtype, ours, ref))
    return pairs


def validate(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_validate``: median time of one pass over the undamaged dataset."""
    cases, workers = data.get("cases"), data.get("workers")
    against = f"nnU-Net{_version(env, 'nnunetv2')} verify_dataset_integrity"
    ours = _median(_get(data, "clean", "ours_s"))
    ref = _median(_get(data, "clean", "nnunet_verify_dataset_integrity_s"))
    case = f"{cases} cases, {workers} workers, median of the rounds"
    return [_pair(case, f"{cases} cases", against, env.get("dtype"), ours, ref)]


def classification_metrics(data: Mapping[str, Any], env: Mapping[str, Any]) -> list[Pair | None]:
    """``bench_classification_metrics``: the metrics of every bootstrap resample."""
    resamples, cases, classes = data.get("resamples"), data.get("cases"), data.get("classes")
    case = f"{resamples} bootstrap resamples of {cases} cases, {classes} classes"
    ours, ref = _get(data, "seconds", "ours_numpy"), _get(data, "seconds", "sklearn")
    return [_pair(case, f"{resamples} resamples", "scikit-learn", env.get("dtype"), ours, ref)]


#: File-name pattern, benchmark name, its short name in the chart, extractor. The summary keeps
#: this order; a new benchmark adds one line here and its extractor above.
EXTRACTORS: tuple[tuple[str, str, str, Callable[..., list[Pair | None]]], ...] = (
    ("network-*.json", "Network forward + backward", "network", network),
    ("train_step-*.json", "Training step", "train step", train_step),
    ("bench_data*.json", "Training input pipeline", "data", bench_data),
    ("train_loop-*.json", "Training loop", "train loop", train_loop),
    ("predict-*.json", "Sliding-window prediction", "predict", predict),
    ("validate-*.json", "Dataset validation", "validate", validate),
    ("classification_metrics-*.json", "Classification metrics", "metrics", classification_metrics),
)


def summary_rows(paths: list[Path], *, root: Path) -> list[Row]:
    """The comparisons in ``paths``, in the order of :data:`EXTRACTORS`, then by file name."""
    rows: list[Row] = []
    for pattern, benchmark, chart_name, extract in EXTRACTORS:
        for path in sorted(p for p in paths if fnmatch.fnmatch(p.name, pattern)):
            rel = path.relative_to(root).as_posix()
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{rel} is not valid JSON ({exc}); fix or remove the file"
                ) from None
            if not isinstance(data, Mapping):
                continue
            env = environment(data)
            names = ("device_name", "gpu_name", "cpu_model", "gpu", "processor", "device")
            device = str(next((env[k] for k in names if env.get(k)), "not recorded"))
            for pair in extract(data, env):
                if pair is not None:
                    rows.append(Row(benchmark, chart_name, device, date_of(env), rel, pair))
    return rows


def _value(value: float, unit: str) -> str:
    return f"{value:.3g} {unit}"


def render_summary(glob: str, *, root: Path) -> str:
    """Markdown for the summary: an explanation, the table, and the chart of speed-ups."""
    rows = summary_rows([p for p in root.glob(glob) if p.is_file()], root=root)
    if not rows:
        return (
            f"*Not yet measured: no result file matching `{glob}` compares us with a reference.*\n"
        )
    header = ["#", "benchmark", "against", "device", "dtype (ours)", "date", "ours", "reference"]
    header.append("speed-up")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * (len(header) - 3) + "--:|" * 3]
    for i, row in enumerate(rows, 1):
        p = row.pair
        title = file_title(Path(row.source))
        cells = [
            str(i),
            f"**{row.benchmark}**: {p.case} <small>([details](#{_anchor(title)}))</small>",
            p.against,
            row.device,
            p.dtype,
            row.date,
            _value(p.ours, p.unit),
            _value(p.reference, p.unit),
            f"**{p.speedup:.3g}×**",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    labels = [
        f"{i}. {row.chart_name}, {row.pair.short}, {row.device}" for i, row in enumerate(rows, 1)
    ]
    chart = speedup_chart(labels, [row.pair.speedup for row in rows])
    caption = (
        "Speed-up of ours against the reference, from the table above (log scale; right of "
        "the line at 1×: ours is faster)."
    )
    return "\n".join(
        [
            "**Speed-up** is the reference's time divided by ours (for rates: our patches or "
            "iterations per second divided by the reference's): **above 1, ours is faster**; "
            "below 1, slower. Times are medians over the repetitions each file records; each "
            "comparison ran both sides on the same machine. *details* leads to the result file's "
            "section below.",
            "",
            *lines,
            "",
            f'<figure class="results-chart">\n{chart}\n'
            f"<figcaption>{html.escape(caption)}</figcaption>\n</figure>",
            "",
        ]
    )


def _anchor(title: str) -> str:
    """The id Python-Markdown's ``toc`` gives a heading with this text (its default slugify)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)
