"""Operator counts of one run outside the network's forward calls, from ``torch.profiler``.

Timings on a shared machine move with the load; what a function does around its network
(operator calls, host-device synchronisations, large allocations) does not, so prediction
benchmarks record both (``benchmarks/bench_predict.py``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

__all__ = ["count_ops", "labelled"]

NETWORK = "benchmarks.network"  # profiler label of every network call


@contextlib.contextmanager
def labelled(modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Mark every forward of ``modules`` as one ``NETWORK`` range for the profiler."""
    open_ranges: list[Any] = []

    def enter(*_: Any) -> None:
        open_ranges.append(torch.profiler.record_function(NETWORK).__enter__())

    def leave(*_: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    hooks = [h for m in modules for h in (m.register_forward_pre_hook(enter),
                                          m.register_forward_hook(leave))]  # fmt: skip
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def count_ops(
    fn: Callable[[], Any], modules: Sequence[torch.nn.Module], *, window: int, volume: int
) -> dict[str, Any]:
    """What ``fn`` does outside the forwards of ``modules`` (:func:`labelled`), from one run.

    Counts, on every thread (nnU-Net copies windows in a second one): top-level operator calls,
    host-device synchronisations (``aten::_local_scalar_dense``: ``.item()``, ``bool(t)``),
    and operator calls that allocate (their own memory, children excluded) at least
    ``4 * window`` bytes (one float32 channel of a window, ``window`` voxels), with the MiB they
    total; ``largest_allocations``: the count of each allocation size (MiB) from ``2 * volume``
    bytes up (one float16 channel of the ``volume`` voxels; batches of windows can be as large).
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with labelled(modules), torch.profiler.profile(activities=activities, profile_memory=True) as p:
        fn()
    events = list(p.events())

    def in_network(e: Any) -> bool:
        while e is not None:
            if e.name == NETWORK:
                return True
            e = e.cpu_parent
        return False

    outside = [e for e in events if e.name != "[memory]" and not in_network(e)]
    top = Counter(e.name for e in outside if e.cpu_parent is None)
    sizes = [max(e.self_cpu_memory_usage, e.self_device_memory_usage) for e in outside]
    big = [s for s in sizes if s >= 4 * window]
    return {
        "top_level_ops": sum(top.values()),
        "host_syncs": sum(1 for e in outside if e.name == "aten::_local_scalar_dense"),
        "window_allocations": len(big),
        "allocated_mib": sum(big) / 2**20,
        "network_calls": sum(1 for e in events if e.name == NETWORK),
        "most_called": dict(top.most_common(8)),
        "largest_allocations": {
            f"{size / 2**20:.4g} MiB": count
            for size, count in sorted(Counter(s for s in sizes if s >= 2 * volume).items())[::-1]
        },
    }
