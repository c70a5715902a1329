"""Order-preserving parallel map over worker processes, with an optional tqdm progress bar."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["parallel_map"]

T = TypeVar("T")
R = TypeVar("R")


_PRELOAD = ["multitask_unet.data.preprocessing.cache", "multitask_unet.data.planning.fingerprint"]


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
        return context
    return multiprocessing.get_context("spawn")


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 2,
    desc: str = "",
    progress: bool = True,
) -> list[R]:
    """``[fn(item) for item in items]``, computed by ``workers`` processes.

    ``workers <= 1`` runs in this process (easiest to debug). Workers are forked from a clean
    ``forkserver`` process (``spawn`` where there is none), never from this process, so that the
    parent's threads (PyTorch, BLAS, progress bars) are not forked; the server imports this
    package once per session and workers start fast from it. ``fn`` must be a module-level
    function, and a script that calls this must guard its code with
    ``if __name__ == "__main__":`` (Python's rule for these start methods). The first exception
    raised by any item is re-raised here.
    """
    results: list[R | None] = [None] * len(items)
    with tqdm(total=len(items), desc=desc, disable=not progress, unit="case") as bar:
        if workers <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                results[i] = fn(item)
                bar.update()
            return results  # type: ignore[return-value]
        context = _context()
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BrokenProcessPool as exc:
                pool.shutdown(wait=False, cancel_futures=True)
                raise RuntimeError(
                    "a worker process died: it ran out of memory, or a script started workers "
                    "without an `if __name__ == '__main__':` guard around its code. Guard the "
                    "script, lower the number of workers, or use workers=1"
                ) from exc
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return results  # type: ignore[return-value]
