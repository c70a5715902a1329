"""Inference: sliding-window prediction and the :class:`Predictor`.

- :func:`sliding_window_predict`: segmentation and classification logits of a preprocessed
  volume, window by window (nnU-Net's method, with merged classification pool states).
- :func:`gaussian_importance` and :func:`plan_windows`: its building blocks.
- :func:`keep_largest_component`: nnU-Net's largest-connected-component post-processing.
- :func:`weighted_argmax` and :func:`label_weight_dice`: label maps from probabilities with
  per-label weights, and the scores that choose the weights on cross-validation predictions.
- :class:`Postprocessing`: the post-processing chosen for a run (``postprocessing.json``).
- :func:`export_logits`: segmentation logits on the preprocessed grid to a label map on the
  image file's grid, in nnU-Net v2's order.
- :class:`Predictor`: image files in, ``CASE.nii.gz`` label maps on the input's grid and
  ``predictions.csv`` out (``multitask-unet predict``), with one model or the fold ensemble of
  a cross-validation (:meth:`Predictor.from_run`; :class:`RunSource` says what it used).
"""

from multitask_unet.inference.decision import Postprocessing, label_weight_dice, weighted_argmax
from multitask_unet.inference.ensemble import RunSource
from multitask_unet.inference.export import export_logits
from multitask_unet.inference.gaussian import gaussian_importance
from multitask_unet.inference.inputs import collect_cases
from multitask_unet.inference.postprocessing import keep_largest_component
from multitask_unet.inference.predictor import CasePrediction, PredictionRun, Predictor
from multitask_unet.inference.sliding_window import mirror_combinations, sliding_window_predict
from multitask_unet.inference.windows import Window, plan_windows, window_starts

__all__ = [
    "CasePrediction",
    "Postprocessing",
    "PredictionRun",
    "Predictor",
    "RunSource",
    "Window",
    "collect_cases",
    "export_logits",
    "gaussian_importance",
    "keep_largest_component",
    "label_weight_dice",
    "mirror_combinations",
    "plan_windows",
    "sliding_window_predict",
    "weighted_argmax",
    "window_starts",
]
