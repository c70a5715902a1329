"""Inference: sliding-window prediction and the :class:`Predictor`.

- :func:`sliding_window_predict`: segmentation and classification logits of a preprocessed
  volume, window by window (nnU-Net's method, with merged classification pool states).
- :func:`gaussian_importance` and :func:`plan_windows`: its building blocks.
"""

from multitask_unet.inference.gaussian import gaussian_importance
from multitask_unet.inference.sliding_window import mirror_combinations, sliding_window_predict
from multitask_unet.inference.windows import Window, plan_windows, window_starts

__all__ = [
    "Window",
    "gaussian_importance",
    "mirror_combinations",
    "plan_windows",
    "sliding_window_predict",
    "window_starts",
]
