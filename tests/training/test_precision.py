"""Mixed-precision rules: CUDA's autocast dtypes; the CPU trains in float32 and says so."""

from __future__ import annotations

import pytest
import torch

from multitask_unet.errors import ConfigError
from multitask_unet.training.precision import autocast_dtype, cpu_has_native_bf16


@pytest.mark.parametrize(
    ("mode", "bf16_supported", "expected"),
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float16),
        ("bf16", False, torch.bfloat16),
        ("fp16", True, torch.float16),
        ("off", True, None),
    ],
)
def test_cuda_dtypes(monkeypatch, mode, bf16_supported, expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert autocast_dtype(mode, torch.device("cuda")) is expected


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_the_cpu_trains_in_float32(mode) -> None:
    assert autocast_dtype(mode, torch.device("cpu")) is None


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_half_precision_on_the_cpu_is_refused_with_the_fix(mode) -> None:
    with pytest.raises(
        ConfigError, match=rf"amp='{mode}' is not supported on cpu.*'auto' or 'off'"
    ):
        autocast_dtype(mode, torch.device("cpu"))


def test_native_bf16_probe_answers() -> None:
    assert isinstance(cpu_has_native_bf16(), bool)
