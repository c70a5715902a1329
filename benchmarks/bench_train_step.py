"""Training-step throughput and peak memory: our step vs nnU-Net's ``nnUNetTrainer.train_step``.

Both sides train the same ResEnc-M-sized network (DNA's, and ours with DNA's weights) with
the same loss (nnU-Net's Dice+CE under deep supervision; ours through
``multitask_unet.losses``), SGD with Nesterov momentum 0.99 and gradient clipping at 12, on
the same random batch, with ``cudnn.benchmark`` on (as nnU-Net's ``run_training`` sets it).
nnU-Net's side is its ``train_step`` body: autocast + ``GradScaler`` on CUDA only, and the
loss returned as a NumPy value (a GPU synchronisation per step); ours adds the loss to a sum
on the device, as our ``Trainer`` does. On CUDA its
trainer compiles the network and the Dice term by default (``nnUNet_compile``), so the
reference there is ``nnunet`` (compiled, its default) with ``nnunet_eager`` beside it. Our side
is measured in variants: float32, AMP (bf16), channels-last, and ``torch.compile`` (the
``Trainer``'s default on CUDA; ``reduce-overhead`` adds CUDA graphs). On CUDA our optimiser is
fused, as the ``Trainer``'s is there (``_unfused`` isolates that).

Peak memory is the step's own: ``max_memory_allocated`` during one step minus what was
allocated before it (weights, optimiser state and the inputs of every variant stay resident
between steps and are left out). A variant that runs out of memory is reported as such.

    python -m benchmarks.bench_train_step --device cuda --batch 2 8 --compile
    python -m benchmarks.bench_train_step --device cpu --quick
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.bench_network import ARCHS, build_dna, build_ours
from benchmarks.common import environment, interleaved_times, save, summary, sync

ARCH = "nnunet_3d_fullres_resenc_m"
NUM_CLASSES = 3


def _targets(batch: int, patch: tuple[int, ...], device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, NUM_CLASSES, (batch, 1, *patch), generator=g).to(device)


def nnunet_step(
    batch: int, patch: tuple[int, ...], device: str, *, compile: bool = False
) -> Callable[[], None]:
    """nnU-Net 2.8's train_step with its loss, optimiser and deep-supervision targets.

    ``compile`` does what its trainer does by default on CUDA: ``torch.compile`` the network
    and the Dice term.
    """
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from multitask_unet.losses import deep_supervision_scales, downsample_seg_target

    net = build_dna(ARCHS[ARCH]).to(device)
    strides = ARCHS[ARCH]["arch_kwargs"]["strides"]
    scales = deep_supervision_scales(strides)
    weights = torch.tensor([1 / 2**i for i in range(len(scales))])
    weights[-1] = 0
    loss = DeepSupervisionWrapper(
        DC_and_CE_loss(
            {"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False},
            {},
            weight_ce=1,
            weight_dice=1,
            ignore_label=None,
            dice_class=MemoryEfficientSoftDiceLoss,
        ),
        (weights / weights.sum()).tolist(),
    )
    if compile:
        loss.loss.dc = torch.compile(loss.loss.dc)
    opt = torch.optim.SGD(net.parameters(), 0.01, weight_decay=3e-5, momentum=0.99, nesterov=True)
    cuda = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    x = torch.randn(batch, 1, *patch, device=device)
    full = _targets(batch, patch, device)
    target = [t.float() for t in downsample_seg_target(full, scales)]

    forward: Any = torch.compile(net) if compile else net

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        ctx = torch.autocast("cuda", enabled=True) if cuda else contextlib.nullcontext()
        with ctx:
            out = loss(forward(x), target)
        if scaler is not None:
            scaler.scale(out).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            out.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            opt.step()
        out.detach().cpu().numpy()  # train_step returns the loss as a NumPy value: a GPU sync

    return step


def our_step(
    batch: int,
    patch: tuple[int, ...],
    device: str,
    *,
    amp: bool = False,
    channels_last: bool = False,
    compile: str = "off",
    fused: bool | None = None,
) -> Callable[[], None]:
    """Our training step: MultiTaskUNet + DeepSupervisionLoss(DiceCELoss), same optimiser.

    ``compile`` is a ``TrainConfig.runtime.compile`` setting; ``fused`` (None: on CUDA) the optimiser's
    kernels, as the ``Trainer`` chooses them.
    """
    from multitask_unet.losses import DeepSupervisionLoss, DiceCELoss, check_labels, labels_checked
    from multitask_unet.training import OptimizerConfig, build_optimizer
    from multitask_unet.training.compiling import compiled

    model = build_ours(ARCHS[ARCH]).to(device)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = compiled(model, compile, torch.device(device))
    loss = DeepSupervisionLoss(DiceCELoss())
    fused = device.startswith("cuda") if fused is None else fused
    opt = build_optimizer(model.parameters(), OptimizerConfig(), fused=fused)  # nnU-Net's SGD
    x = torch.randn(batch, 1, *patch, device=device).contiguous(memory_format=fmt)
    target = _targets(batch, patch, "cpu")
    check_labels(target, NUM_CLASSES, "benchmark")  # on the CPU, as the Trainer does
    target = target.to(device)

    running = torch.zeros((), device=device)

    def step() -> None:
        nonlocal running
        opt.zero_grad(set_to_none=True)
        with (
            labels_checked(),
            torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=amp),
        ):
            out = net(x)
            value = loss([out["seg"], *out["seg_deep"]], target)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12)
        opt.step()
        running = running + value.detach().float()  # the Trainer's sums stay on the device

    return step


GRAPHED_MEMORY = (
    "not measured: CUDA graphs allocate the step's memory in their private pool when they are "
    "captured, before the measured step, so 'allocated during the step' misses it"
)


def peak_cuda_mib(step: Callable[[], None], device: str) -> float | None:
    """Memory one step allocates above what is resident before it, in MiB (CUDA only)."""
    if not device.startswith("cuda"):
        return None
    sync(device)
    torch.cuda.empty_cache()
    resident = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    sync(device)
    return (torch.cuda.max_memory_allocated() - resident) / 2**20


def variants(cuda: bool, quick: bool, compile: bool, batch: int) -> dict[str, dict[str, Any]]:
    """Our step's variants by name: their :func:`our_step` options.

    On CUDA float32 is timed at batch 2 only: at batch 8 it needs about twice AMP's memory
    next to five other resident networks, and nobody trains that way on a GPU.
    """
    out: dict[str, dict[str, Any]] = {"fp32": {}} if not cuda or batch <= 2 else {}
    if not cuda:
        out["channels_last"] = {"channels_last": True}
    if cuda or not quick:
        out["amp_bf16"] = {"amp": True}
        out["amp_bf16_channels_last"] = {"amp": True, "channels_last": True}
    if compile and cuda:
        out["amp_bf16_compile"] = {"amp": True, "compile": "default"}  # the Trainer's default
        out["amp_bf16_compile_unfused"] = {"amp": True, "compile": "default", "fused": False}
        out["amp_bf16_reduce_overhead"] = {"amp": True, "compile": "reduce-overhead"}
    elif compile:
        out["fp32_compile"] = {"compile": "default"}
    return out


def _first_step(name: str, build: Callable[[], Callable[[], None]], device: str):
    """Build a step and run it once; None (after freeing its memory) if it runs out of memory."""
    try:
        start = time.perf_counter()
        step = build()
        step()
        sync(device)
        # Progress on stdout: a compiled variant spends minutes here on a fresh machine.
        print(f"{name}: built and first step in {time.perf_counter() - start:.1f} s", flush=True)
        return step
    except torch.OutOfMemoryError:
        print(f"{name}: out of memory", flush=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    results: dict[str, Any] = {
        "benchmark": "train_step",
        "environment": environment(device, "fp16-amp (nnU-Net) / see variants"),
        "arch": ARCH,
        "patch": list(args.patch),
        "reference": "nnunet (compiled on CUDA, as its trainer's default)" if cuda else "nnunet",
        "by_batch": {},
    }
    for batch in args.batch:
        patch = tuple(args.patch)
        builders: dict[str, Callable[[], Callable[[], None]]] = {
            "nnunet": functools.partial(nnunet_step, batch, patch, device, compile=cuda),
        }
        if cuda:
            builders["nnunet_eager"] = functools.partial(nnunet_step, batch, patch, device)
        for name, options in variants(cuda, args.quick, args.compile, batch).items():
            builders[f"ours_{name}"] = functools.partial(our_step, batch, patch, device, **options)
        if args.only:  # the reference always runs
            builders = {k: v for k, v in builders.items() if k == "nnunet" or k in args.only}
        steps, entry = {}, {}
        for name, build in builders.items():
            step = _first_step(name, build, device)
            if step is None:
                entry[name] = {"error": "out of memory"}
            else:
                steps[name] = step
        times = interleaved_times(steps, device=device, repeats=args.repeats, warmup=args.warmup)
        for name, step in steps.items():
            s = summary(times[name])
            entry[name] = {**s, "steps_per_s": 1 / s["median_s"]}
            if name.endswith("reduce_overhead"):
                entry[name] |= {"peak_memory_mib": None, "peak_memory_note": GRAPHED_MEMORY}
            else:
                entry[name]["peak_memory_mib"] = peak_cuda_mib(step, device)
        base = entry["nnunet"].get("median_s")
        for e in entry.values():
            if "median_s" in e:
                e["speedup_vs_nnunet"] = base / e["median_s"] if base else None
        results["by_batch"][str(batch)] = entry
        save(args.name, results)  # after each batch size: a time-out keeps what was measured
        del steps
        if cuda:
            torch.cuda.empty_cache()
    return results


def step_names() -> list[str]:
    """Every step ``--only`` can name: the references and our variants on either device."""
    names = {"nnunet", "nnunet_eager"}
    for cuda, quick, compile in itertools.product((False, True), repeat=3):
        for batch in (2, 8):  # float32 is left out on CUDA above batch 2
            names |= {f"ours_{name}" for name in variants(cuda, quick, compile, batch)}
    return sorted(names)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.bench_train_step``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="small patch, batch 2, fewer repeats")
    parser.add_argument("--patch", type=int, nargs=3, default=None)
    parser.add_argument("--batch", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=step_names(),
        metavar="STEP",
        help="time only these steps (and the reference): %(choices)s",
    )
    parser.add_argument("--name", default="train_step", help="result file: NAME-<device>.json")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.patch is None:
        args.patch = (64, 128, 192) if cuda and not args.quick else (32, 64, 64)
    if args.batch is None:
        args.batch = [2] if args.quick or not cuda else [2, 8]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 10
    result = run(args)
    path = save(args.name, result)
    for batch, entry in result["by_batch"].items():
        for name, e in entry.items():
            if "median_s" not in e:
                print(f"batch {batch}  {name:28s} {e['error']}")
                continue
            mem = "" if e["peak_memory_mib"] is None else f"  peak {e['peak_memory_mib']:.0f} MiB"
            speed = e["speedup_vs_nnunet"]
            print(
                f"batch {batch}  {name:28s} {e['median_s']:.3f} s/step  x{speed:.2f}{mem}"
                if speed
                else f"batch {batch}  {name:28s} {e['median_s']:.3f} s/step"
            )
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
