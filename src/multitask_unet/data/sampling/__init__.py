"""Sampling: from cached cases to training batches.

- :mod:`~multitask_unet.data.sampling.config`: the options (``TrainConfig.data``);
- :mod:`~multitask_unet.data.sampling.case_sampling`: which case each patch comes from;
- :mod:`~multitask_unet.data.sampling.patches`: where the patch lies in the case;
- :mod:`~multitask_unet.data.sampling.crop`: cropping a box out of (memory-mapped) arrays;
- :mod:`~multitask_unet.data.sampling.spatial`, :mod:`~multitask_unet.data.sampling.augmentation`:
  nnU-Net's augmentation;
- :mod:`~multitask_unet.data.sampling.batch`, :mod:`~multitask_unet.data.sampling.loader`: the
  :class:`~multitask_unet.data.sampling.batch.Batch` and the loader that assembles it.
"""

from multitask_unet.data.sampling.case_sampling import *  # noqa: F403
from multitask_unet.data.sampling.case_sampling import __all__  # noqa: F401
