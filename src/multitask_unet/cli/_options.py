"""Options that several commands share, spelled one way.

- **Lists of numbers** are separate words: ``--patch-size 32 64 64``, ``--target-spacing 2 0.7
  0.7``, ``--mirror-axes 0 1 2``, ``--label-weights 1 1 16``; the older comma form
  (``2,0.7,0.7``) is still read.
- **``--device``** is ``auto`` by default (CUDA when there is one, else the CPU) wherever a
  network runs.
- **Worker counts**: ``--workers`` are the processes that read and preprocess files;
  ``--loader-workers`` (train) the data-loading workers of each training process.
- **Batches**: ``--batch-size`` is the training batch; the windows per network call of the
  sliding-window predictor are ``--window-batch``.
- **Seeds** (``--seed``, ``--split-seed``) are whole numbers from 0 to 2**32 - 1 and sample
  counts (``--intensity-samples``) at least 1, refused while the command line is read.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "add_device_option",
    "add_predictor_options",
    "numbers",
    "positive_int",
    "predictor_options",
    "seed",
]

_DTYPES = ("float32", "float16", "bfloat16")


def numbers(
    words: Sequence[str] | None,
    kind: Callable[[str], Any],
    flag: str,
    *,
    count: int | None = None,
    example: str = "",
) -> tuple[Any, ...] | None:
    """The numbers of a list option (``None`` when it was not given).

    Words may also hold comma-separated numbers (``"2,0.7,0.7"``, the older form); an empty
    word gives none (``--mirror-axes ''``).

    Raises:
        ConfigError: A word is not a number of ``kind``, or there are not ``count`` of them.
    """
    from multitask_unet.errors import ConfigError

    if words is None:
        return None
    values = [v for word in words for v in word.replace(",", " ").split()]
    what = f"{count} " if count else ""
    try:
        out = tuple(kind(v) for v in values)
    except ValueError:
        raise ConfigError(
            f"{flag} takes {what}numbers as separate words, e.g. {flag} {example}; got "
            f"{' '.join(words)!r}"
        ) from None
    if count is not None and len(out) != count:
        raise ConfigError(
            f"{flag} takes {count} numbers, e.g. {flag} {example}; got {len(out)}: "
            f"{' '.join(words)!r}"
        )
    return out


def seed(text: str) -> int:
    """An argparse type: a random seed, a whole number from 0 to 2**32 - 1 (NumPy's range,
    :func:`~multitask_unet.config.check_seed`)."""
    from multitask_unet.config import SEED_MAX, check_seed

    try:
        return check_seed(int(text))
    except ValueError:  # ConfigError is one too
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 0 to {SEED_MAX}, got {text!r}"
        ) from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def add_workers_option(
    parser: argparse.ArgumentParser | Any,
    *,
    default: int | None = 2,
    what: str = "processes reading and preprocessing files",
) -> None:
    """``--workers N`` (a whole number >= 1); ``default`` None is the library's choice."""
    shown = "up to 4" if default is None else str(default)
    parser.add_argument(
        "--workers", type=positive_int, default=default, metavar="N", help=f"{what} ({shown})"
    )


def add_device_option(parser: argparse.ArgumentParser | Any, *, what: str) -> None:
    """``--device`` (default ``auto``)."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEV",
        help=f"{what}: auto (default: CUDA when available, else the CPU), cpu, cuda or cuda:N",
    )


def add_predictor_options(group: argparse.ArgumentParser | Any) -> None:
    """The sliding-window predictor's options (predict, calibrate)."""
    add_device_option(group, what="where the network runs")
    group.add_argument(
        "--dtype",
        default="float32",
        choices=_DTYPES,
        help="network precision (float16 / bfloat16 use autocast; default float32)",
    )
    group.add_argument("--overlap", type=float, default=0.5, help="window overlap (0.5)")
    group.add_argument(
        "--mirror-axes",
        nargs="*",
        default=None,
        metavar="AXIS",
        help="axes mirrored for test-time augmentation, e.g. --mirror-axes 0 1 2; none given: "
        "no mirroring (default: the axes the model was trained to mirror)",
    )
    group.add_argument(
        "--window-batch",
        type=int,
        default=None,
        metavar="N",
        help="windows (with their mirrored copies) per network call; default: one window's "
        "mirrored copies on the CPU, 1 on GPUs",
    )
    group.add_argument(  # the former name of --window-batch
        "--batch-size", dest="window_batch", type=int, help=argparse.SUPPRESS
    )
    group.add_argument(
        "--cls-weighting",
        default="ownership",
        choices=["ownership", "foreground"],
        help="voxel weights of classification pooling (default ownership)",
    )


def predictor_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :class:`~multitask_unet.inference.Predictor` from the options."""
    import torch

    options: dict[str, Any] = {
        "overlap": args.overlap,
        "window_batch_size": args.window_batch,
        "dtype": None if args.dtype == "float32" else getattr(torch, args.dtype),
        "cls_weighting": args.cls_weighting,
    }
    axes = numbers(args.mirror_axes, int, "--mirror-axes", example="0 1 2")
    if axes is not None:  # not given: the axes the checkpoint was trained to mirror
        options["mirror_axes"] = axes
    return options
