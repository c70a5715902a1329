"""``TrainConfig.compile`` and the fused optimiser: which mode runs where, and what is refused.

Compiled training itself runs on a GPU (``test_cuda.py``): compiling on the 2-core CI machine
would take minutes for no speed-up.
"""

from __future__ import annotations

import pytest
import torch

from multitask_unet.errors import ConfigError
from multitask_unet.training import OptimizerConfig, RuntimeConfig, TrainConfig, build_optimizer
from multitask_unet.training.compiling import COMPILE_MODES, compile_mode, compiled

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("setting", "device", "mode"),
    [
        ("auto", CPU, None),  # no speed-up measured on the CPU
        ("auto", CUDA, "default"),  # nnU-Net's default on CUDA
        ("off", CUDA, None),
        ("default", CPU, "default"),
        ("reduce-overhead", CUDA, "reduce-overhead"),
        ("max-autotune", CPU, "max-autotune"),
    ],
)
def test_compile_mode_by_setting_and_device(
    setting: str, device: torch.device, mode: str | None
) -> None:
    assert compile_mode(setting, device) == mode


def test_an_eager_setting_returns_the_model_itself() -> None:
    model = torch.nn.Conv3d(1, 1, 1)
    assert compiled(model, "auto", CPU) is model
    assert compiled(model, "off", CUDA) is model
    assert compiled(model, "default", CPU) is not model  # wrapped, compiled at its first call


def test_unknown_settings_are_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="compile must be one of auto, off, default"):
        RuntimeConfig(compile="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"got 'on'"):
        compile_mode("on", CPU)


def test_compile_is_saved_but_may_change_on_resume() -> None:
    config = TrainConfig(runtime=RuntimeConfig(compile="reduce-overhead"))
    assert TrainConfig.from_yaml(config.to_yaml()).runtime.compile == "reduce-overhead"
    assert TrainConfig().resumable_dict() == config.resumable_dict()


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_the_fused_optimiser_makes_the_same_update(name: str) -> None:
    torch.manual_seed(0)
    start = torch.randn(40)
    grads = [torch.randn(40) for _ in range(3)]
    results = []
    for fused in (False, True):
        param = torch.nn.Parameter(start.clone())
        optimizer = build_optimizer([param], OptimizerConfig(name=name, lr=0.01), fused=fused)
        assert optimizer.defaults["fused"] is (True if fused else None)
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        results.append(param.detach())
    assert not torch.equal(results[0], start)
    torch.testing.assert_close(results[1], results[0], rtol=1e-6, atol=1e-7)


def test_train_command_sets_compile_with_the_config_s_choices() -> None:
    from multitask_unet.cli import build_parser
    from multitask_unet.cli.train import build_config

    parser = build_parser()
    args = parser.parse_args(["train", "DATA", "-o", "RUN", "--compile", "reduce-overhead"])
    assert build_config(args).runtime.compile == "reduce-overhead"
    default = build_config(parser.parse_args(["train", "DATA", "-o", "RUN"]))
    assert default.runtime.compile == "auto"
    train = next(a for a in parser._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "compile")  # fmt: skip
    assert tuple(train.choices) == COMPILE_MODES
