"""MultiTaskUNet's input checks name the value and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet import ShapeError


def test_inputs_that_are_not_tensors_name_the_fix() -> None:
    model = mtu.create_model("tiny_plain").eval()
    batch = mtu.Batch(
        image=torch.zeros(1, 1, 8, 16, 16),
        seg=torch.zeros(1, 1, 8, 16, 16, dtype=torch.uint8),
        label=torch.tensor([0]),
        has_seg=torch.tensor([True]),
        case_id=("a",),
    )
    with pytest.raises(
        ShapeError, match=r"\(B, C, D, H, W\) torch.Tensor, got a Batch; pass batch.image"
    ):
        model(batch)
    with pytest.raises(ShapeError, match=r"got a ndarray; convert it with torch.as_tensor"):
        model(np.zeros((1, 1, 8, 16, 16), np.float32))
    assert model(batch.image)["seg"].shape == (1, 3, 8, 16, 16)
