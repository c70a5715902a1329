"""``--plans FILE --configuration NAME``: take over an nnU-Net plans file (``train``, ``crossval``).

The plans' configuration gives the network (``plans_network``, merged into the ``model``
section by :func:`~multitask_unet.cli.train.build_config`) and the plan (``plans_planner``,
handed to :func:`~multitask_unet.training.train` or
:func:`~multitask_unet.training.crossval.cross_validate` as their ``planner``). Every check that
needs no fingerprint runs before the command writes anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from multitask_unet.errors import ConfigError

__all__ = ["PLANS_EPILOG", "add_plans_options", "plans_network", "plans_planner"]

DEFAULT_CONFIGURATION = "3d_fullres"

PLANS_EPILOG = """\
With --plans, an nnU-Net plans file gives the network (--preset, --encoder and --budget are
refused with it) and the plan (spacing, normalisation, labels, patch and batch size);
--patch-size and --batch-size still override the plans' values, --head adds a classification
head (default panda) and --init-weights loads the model's checkpoint_final.pth. See
docs/how-to/nnunet.md.
"""


def add_plans_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--plans FILE`` and ``--configuration NAME``."""
    parser.add_argument(
        "--plans",
        type=Path,
        metavar="FILE",
        help="take over an nnU-Net plans file (nnUNetPlans.json, or a trained model's "
        "plans.json, with its dataset.json next to it): its network replaces the preset and "
        "its preprocessing, patch and batch size the planning; with --init-weights "
        "checkpoint_final.pth its weights too",
    )
    parser.add_argument(
        "--configuration",
        metavar="NAME",
        help=f"configuration of --plans to take over (default {DEFAULT_CONFIGURATION})",
    )


def configuration(args: argparse.Namespace) -> str:
    """The configuration of ``--plans`` to take over (``--configuration``, default 3d_fullres)."""
    return getattr(args, "configuration", None) or DEFAULT_CONFIGURATION


def plans_network(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """The ``model`` entries that build the network of ``--plans`` (checked against the flags).

    Raises:
        ConfigError: ``--preset``, ``--encoder`` or ``--budget`` given too, a config file that
            sets the encoder or decoder, a missing or malformed plans file, an unknown
            configuration or a 2D one.
    """
    from multitask_unet.interop.nnunet import config_from_plans
    from multitask_unet.training.model_spec import ModelSpec

    clash = [f"--{k}" for k in ("preset", "encoder", "budget") if getattr(args, k, None)]
    if clash:
        raise ConfigError(
            f"--plans gives the network and the plan; drop {', '.join(clash)} (or --plans)"
        )
    if config.model.encoder is not None or config.model.decoder is not None:
        raise ConfigError(
            f"--plans gives the network; remove model.encoder and model.decoder from {args.config}"
        )
    name = configuration(args)
    network = config_from_plans(args.plans, name, in_channels=1, num_classes=2)
    if network.spatial_dims != 3:
        raise ConfigError(
            f"configuration {name!r} of {args.plans} is {network.spatial_dims}D; training is 3D: "
            "choose a 3d configuration with --configuration"
        )
    spec = ModelSpec.from_model_config(network)
    return {"preset": None, "encoder": spec.encoder, "decoder": spec.decoder}


def plans_planner(
    args: argparse.Namespace,
    config: Any,
    *,
    records: Callable[[Any], Sequence[Any]],
    continuing: bool,
) -> tuple[Any, Callable[[Any], Any]]:
    """The dataset index and the planner that takes ``--plans`` over, checked before any work.

    The labels come from the ``dataset.json`` next to the plans file, else from the dataset.

    Args:
        args: The command's arguments (``data``, ``layout``, ``output``, ``plans``,
            ``configuration``, ``workers``, ``intensity_samples``).
        config: The run's :class:`~multitask_unet.training.TrainConfig`.
        records: The cases of the validated index whose fingerprint the plan records (the cases
            the command trains on: ``train``'s training split, ``crossval``'s labelled cases).
        continuing: Whether the command continues a run whose ``RUN/plan.json`` exists
            (``train --resume``; ``crossval`` always does): that plan's preprocessing must then
            be the plans'. Otherwise an existing plan is refused.

    Raises:
        ConfigError: An existing plan the command may not continue, plans whose channels or
            labels are not the dataset's, or no labels to take (no ``dataset.json`` next to the
            plans file and none declared by the dataset).
    """
    from multitask_unet.data.planning import Plan, compute_fingerprint
    from multitask_unet.data.readers import read_dataset
    from multitask_unet.interop.nnunet_plans import plan_from_nnunet, preprocessing_from_nnunet
    from multitask_unet.training.pipeline import PLAN_NAME

    existing = args.output / PLAN_NAME
    if existing.is_file() and not continuing:
        raise ConfigError(
            f"{existing} exists; --plans writes the run's plan from nnU-Net's "
            "plans: give a new run folder (or --resume the run that took them over)"
        )
    index = read_dataset(args.data, layout=args.layout)
    name, sibling = configuration(args), args.plans.parent / "dataset.json"
    if sibling.is_file():
        labels_from: Any = sibling
    elif index.label_names:
        labels_from = {"labels": dict(index.label_names)}
    else:
        raise ConfigError(
            f"no dataset.json next to {args.plans} and {args.data} declares no labels; put "
            "nnU-Net's dataset.json of these plans next to the plans file"
        )
    preprocessing = preprocessing_from_nnunet(args.plans, name, dataset_json=labels_from)
    channels = len(preprocessing.normalization)
    if channels != len(index.channel_names):
        raise ConfigError(
            f"{args.plans} ({name}) normalises {channels} image channel(s) but {args.data} has "
            f"{len(index.channel_names)} ({', '.join(index.channel_names)}); take over plans "
            "made for data with the same channels"
        )
    declared = sorted(set(index.label_names.values()))
    if declared and declared != list(preprocessing.labels):
        raise ConfigError(
            f"{args.data} declares labels {declared} but the plans' dataset.json "
            f"{list(preprocessing.labels)}; the network's segmentation outputs are the plans' "
            "labels: take over plans made for these labels"
        )
    if existing.is_file() and Plan.load(existing).preprocessing != preprocessing:
        raise ConfigError(
            f"{existing} was not taken over from {args.plans} (configuration {name}): its "
            "preprocessing differs; give a new run folder, or continue the run with the plans "
            "it was started with"
        )

    def planner(validated: Any) -> Any:
        fingerprint = compute_fingerprint(
            records(validated),
            intensity_samples=args.intensity_samples,
            workers=args.workers,
            progress=config.runtime.progress,
        )
        plan = plan_from_nnunet(args.plans, name, fingerprint=fingerprint, dataset_json=labels_from)
        print(f"plan taken over from {args.plans} (configuration {name})")
        return plan

    return index, planner
