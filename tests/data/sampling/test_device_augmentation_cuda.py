"""The device backend on a GPU gives the CPU's result for the same draws (noise left out).

Parameter draws come from one CPU generator, so the same seed gives the same draws on any
device; only the noise is drawn on the device. With noise off, the augmented images agree to
float32 rounding and the labels on all but grid-sampling ties.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from multitask_unet.data.phantoms import make_phantom
from multitask_unet.data.sampling.augmentation import AugmentationConfig
from multitask_unet.data.sampling.device_augmentation import DeviceAugmentation

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _windows(augment: DeviceAugmentation, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, segs = [], []
    for i in range(n):
        image, mask = make_phantom(i % 3, shape=augment.window_size, seed=i)
        images.append(torch.from_numpy(image).float()[None])
        segs.append(torch.from_numpy(mask).long()[None])
    return torch.stack(images), torch.stack(segs)


def test_cuda_equals_cpu_for_the_same_draws() -> None:
    config = dataclasses.replace(AugmentationConfig(), p_noise=0.0)
    augment = DeviceAugmentation(config, patch_size=(32, 48, 48), seed=3)
    image, seg = _windows(augment, 8)
    draws = augment.draw(8, 1)
    cpu_image, cpu_seg = augment.apply(image.clone(), seg.clone(), draws)
    gpu_image, gpu_seg = augment.apply(image.cuda(), seg.cuda(), draws)
    assert gpu_image.is_cuda and gpu_seg.dtype == seg.dtype
    scale = float(cpu_image.abs().max())
    assert torch.allclose(gpu_image.cpu(), cpu_image, atol=1e-4 * scale, rtol=1e-4)
    assert (gpu_seg.cpu() == cpu_seg).float().mean() > 0.999
    assert set(gpu_seg.unique().tolist()) <= set(seg.unique().tolist())
