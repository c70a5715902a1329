"""Preprocessing: one case as nnU-Net preprocesses it, and the memory-mapped cache of a dataset.

- :mod:`~multitask_unet.data.preprocessing.case`: :func:`preprocess_case`, :func:`restore_native`;
- :mod:`~multitask_unet.data.preprocessing.cache`: :func:`~.cache.preprocess_dataset` and its
  folder of ``.npy`` arrays;
- :mod:`~multitask_unet.data.preprocessing.cropping`,
  :mod:`~multitask_unet.data.preprocessing.resampling`: the array operations behind them.
"""

from multitask_unet.data.preprocessing.case import *  # noqa: F403
from multitask_unet.data.preprocessing.case import __all__  # noqa: F401
