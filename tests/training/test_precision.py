"""Mixed-precision rules: CUDA's autocast dtypes; the CPU's float32 default and its bfloat16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from multitask_unet.errors import ConfigError
from multitask_unet.training import precision
from multitask_unet.training.precision import autocast, autocast_dtype, cpu_has_native_bf16


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
def test_the_cpu_trains_in_float32_by_default(mode) -> None:
    assert autocast_dtype(mode, torch.device("cpu")) is None


def test_fp16_on_the_cpu_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"amp='fp16' is not supported on cpu.*'bf16'"):
        autocast_dtype("fp16", torch.device("cpu"))


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_the_cpu_needs_native_bf16(monkeypatch, native) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    if native:
        assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    else:
        with pytest.raises(ConfigError, match=r"natively.*AVX512-BF16.*'auto' or 'off'"):
            autocast_dtype("bf16", torch.device("cpu"))


def test_native_bf16_probe_answers() -> None:
    assert isinstance(cpu_has_native_bf16(), bool)


def test_cpu_bf16_autocast_runs_depth_two_convolutions_in_float32() -> None:
    cpu = torch.device("cpu")
    x = torch.randn(1, 2, 2, 3, 4)
    w = torch.randn(3, 2, 3, 3, 3)
    with autocast(torch.bfloat16, cpu):
        deep = F.conv3d(x, w, padding=1)
        shallow = F.conv3d(torch.randn(1, 2, 4, 3, 4), w, padding=1)
        linear = F.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert deep.dtype == torch.float32
    torch.testing.assert_close(deep, F.conv3d(x, w, padding=1))
    assert shallow.dtype == torch.bfloat16 and linear.dtype == torch.bfloat16  # autocast as usual
    with autocast(None, cpu):
        assert F.conv3d(x, w, padding=1).dtype == torch.float32


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (oneDNN)")
def test_cpu_bf16_gradients_of_a_deep_stage_are_finite() -> None:
    # oneDNN's defect shows when freed memory holds NaN (it seems to read scratch memory it never
    # wrote): without the float32 fallback 20 of 30 such draws had non-finite weight gradients.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        for _ in range(20):
            junk = [torch.full((2**k,), float("nan")) for k in range(8, 22)]
            del junk
            conv = torch.nn.Conv3d(32, 32, 3, padding=1)
            x = torch.randn(2, 32, 2, 3, 4, requires_grad=True)
            with autocast(torch.bfloat16, torch.device("cpu")):
                y = conv(x)
            y.backward(torch.randn_like(y))
            grads = (conv.weight.grad, conv.bias.grad, x.grad)
            assert all(torch.isfinite(g).all() for g in grads)
    finally:
        torch.set_num_threads(threads)
