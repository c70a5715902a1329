"""Sampling: from cached cases to training batches.

- :mod:`~multitask_unet.data.sampling.config`: the options (``TrainConfig.data``);
- :mod:`~multitask_unet.data.sampling.case_sampling`: which case each patch comes from;
- :mod:`~multitask_unet.data.sampling.patches`: where the patch lies in the case;
- :mod:`~multitask_unet.data.sampling.crop`: cropping a box out of (memory-mapped) arrays;
- :mod:`~multitask_unet.data.sampling.spatial`, :mod:`~multitask_unet.data.sampling.augmentation`:
  nnU-Net's augmentation;
- :mod:`~multitask_unet.data.sampling.cases`: the cases a loader reads (subjects or a cache folder);
- :mod:`~multitask_unet.data.sampling.batch`, :mod:`~multitask_unet.data.sampling.loader`: the
  :class:`~multitask_unet.data.sampling.batch.Batch` and the loader that assembles it.

The names a training loop needs are exported here, e.g.
``from multitask_unet.data.sampling import LoaderConfig, TrainLoader``.
"""

from multitask_unet.data.sampling.augmentation import AugmentationConfig, build_augmentation
from multitask_unet.data.sampling.batch import MISSING_LABEL, Batch
from multitask_unet.data.sampling.case_sampling import *  # noqa: F403
from multitask_unet.data.sampling.case_sampling import __all__ as _case_sampling_all
from multitask_unet.data.sampling.cases import CacheEntry, cache_entries
from multitask_unet.data.sampling.config import DataConfig
from multitask_unet.data.sampling.loader import LoaderConfig, TrainLoader, queue_loader
from multitask_unet.data.sampling.patches import ForegroundPatchSampler

__all__ = [
    *_case_sampling_all,
    "MISSING_LABEL",
    "AugmentationConfig",
    "Batch",
    "CacheEntry",
    "DataConfig",
    "ForegroundPatchSampler",
    "LoaderConfig",
    "TrainLoader",
    "build_augmentation",
    "cache_entries",
    "queue_loader",
]
