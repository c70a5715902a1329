"""The :class:`Predictor`: from image files to label maps and class probabilities.

For each case it runs the plan's preprocessing (:func:`~multitask_unet.data.preprocessing.
preprocess_case`), :func:`~multitask_unet.inference.sliding_window_predict`, then undoes the
preprocessing (:func:`~multitask_unet.inference.export.export_logits`: logits resampled back,
softmax and argmax on the image file's grid, in nnU-Net v2's order), so that every label map has
exactly the input's shape and affine and equals nnU-Net's export of the same logits.
``label_weights`` weight that argmax (:func:`~multitask_unet.inference.decision.weighted_argmax`).
What it returns is in :mod:`~multitask_unet.inference.case_prediction`; its arguments are
checked when it is built (:mod:`~multitask_unet.inference.predictor_options`), so that a model
that cannot take the plan's images or the window fails before any case is read.

Several models sharing one plan (the folds of a cross-validation, :meth:`Predictor.from_run`)
predict as an ensemble: the segmentation logits are the mean of the models' logits (as nnU-Net
v2's multi-fold prediction), the class probabilities the mean of each model's (calibrated)
probabilities.

:meth:`Predictor.predict` writes a prediction folder in the format
:mod:`multitask_unet.evaluation.reading` reads (``predictions.csv``:
:mod:`multitask_unet.prediction_table`)::

    OUT/CASE.nii.gz        uint8 label map on the grid of the case's image
    OUT/predictions.csv    case_id, prob_<class> per class, predicted  (models with a head)
                           and uncalibrated_prob_<class> per class when a calibration is used
    OUT/CASE.npz           with save_probabilities: "probabilities", (labels, I, J, K) float16
                           softmax on the image's grid (as nnU-Net's --save_probabilities)

Every file is written atomically, after the case is fully predicted, so an interrupted run
leaves only finished files; a re-run skips the cases already finished (label map written, for
a model with a classification head a row in ``predictions.csv``, and the probabilities when
they are to be saved) unless ``overwrite``. ``OUT/predict_settings.json`` records the models
and settings that made the folder; a folder made with others is refused unless ``overwrite``
(:mod:`~multitask_unet.inference.prediction_settings`).

Example:
    >>> predictor = Predictor.from_checkpoint("model.pt", device="cuda")  # doctest: +SKIP
    >>> predictor = Predictor.from_run("crossval_run/", device="cuda")  # doctest: +SKIP
    >>> run = predictor.predict(["scans/"], "predictions/")  # doctest: +SKIP
    >>> run.predicted, run.skipped  # doctest: +SKIP
    (('case_a', 'case_b'), ())
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask_unet.checkpoints import Checkpoint, load_checkpoint
from multitask_unet.data.planning import Plan, PreprocessingConfig
from multitask_unet.data.preprocessing import PreprocessedCase, preprocess_case
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError
from multitask_unet.inference.calibration import Calibration
from multitask_unet.inference.case_prediction import CasePrediction, PredictionRun
from multitask_unet.inference.decision import Postprocessing, check_label_weights
from multitask_unet.inference.ensemble import (
    RunSource,
    check_models,
    ensemble_classify,
    ensemble_options,
    find_run,
    pick_head,
    trained_mirror_axes,
)
from multitask_unet.inference.export import export_logits
from multitask_unet.inference.inputs import collect_cases
from multitask_unet.inference.prediction_folder import predict_into
from multitask_unet.inference.predictor_options import (
    check_model_fits_plan,
    class_names_for,
    default_window_batch_size,
    per_model_calibrations,
    resolve_plan,
)
from multitask_unet.inference.sliding_window import ClsWeighting, sliding_window_predict
from multitask_unet.models import MultiTaskUNet

__all__ = ["CasePrediction", "PredictionRun", "Predictor", "trained_mirror_axes"]


class Predictor:
    """Predict cases with a model, or an ensemble of models, and their preprocessing plan.

    Args:
        model: The network (put it on ``device`` first; it is used in eval mode), or several
            networks of one plan (a fold ensemble) that agree on their input channels,
            segmentation classes and heads (see
            :func:`~multitask_unet.inference.ensemble.check_models`). ``predictor.model`` is
            the first, ``predictor.models`` all.
        plan: The :class:`~multitask_unet.data.planning.Plan` the model was trained with, its
            ``plan.json`` file, or its preprocessing config (then give ``window_size``).
        class_names: Names of the head's classes (``prob_<name>`` columns); default
            ``class0, class1, ...``.
        window_size: Sliding window; default the plan's ``patch_size``.
        overlap: Window overlap (nnU-Net: 0.5).
        mirror_axes: Axes mirrored for test-time augmentation (``()`` turns it off).
        window_batch_size: Network batch (windows and mirrored copies). ``None``: on the CPU
            the mirrored copies of one window go in one call (``2 ** len(mirror_axes)``; faster
            than one at a time: ``fp32`` vs ``fp32_b1`` in ``benchmarks/bench_predict.py``),
            elsewhere one per call (GPU memory).
        dtype: Autocast dtype (``torch.float16`` / ``torch.bfloat16``) or ``None``.
        cls_head: Head whose probabilities go to ``predictions.csv`` (default ``"cls"`` or the
            only head).
        cls_weighting: ``"ownership"`` or ``"foreground"`` (see
            :func:`~multitask_unet.inference.sliding_window_predict`).
        calibration: Calibration of ``cls_head``'s logits, or ``None``; for an ensemble one
            per model (``None`` where a model has none), or one used for every model
            (``predictor.calibrations``; ``predictor.calibration`` is the first model's).
        output_device: Where logits are accumulated (default: the model's device, as
            nnU-Net's ``perform_everything_on_device``; pass ``"cpu"`` for volumes whose
            logits do not fit in GPU memory).
        largest_component: Keep only the largest connected component of the foreground in
            the label map (:func:`~multitask_unet.inference.keep_largest_component`): for a
            single organ every other island is a false positive.
        label_weights: One weight per segmentation label (background included): the label map
            is ``argmax_k w_k p_k`` (:func:`~multitask_unet.inference.decision.weighted_argmax`),
            e.g. ``(1, 1, 16)`` to call the lesion where the network under-calls it. Choose the
            weights on cross-validation predictions. Both steps: ``predictor.postprocessing``.
        save_probabilities: Also keep the segmentation probabilities on the image's grid
            (``CasePrediction.seg_probabilities``; :meth:`predict` writes ``OUT/CASE.npz``).

    Raises:
        ConfigError: An argument the models cannot take, e.g. a plan of another number of
            image channels than the model's ``in_channels``, or a window not divisible by its
            ``size_divisor`` (see :mod:`~multitask_unet.inference.predictor_options`).
    """

    source: RunSource | None = None
    """The run folder the models came from (:meth:`from_run`), else ``None``."""

    model_files: tuple[Path | None, ...] = ()
    """The checkpoint file of each model (:meth:`from_checkpoints`; ``None`` for a checkpoint
    given loaded), or ``()`` for models given in memory. Recorded with the predictions."""

    def __init__(
        self,
        model: MultiTaskUNet | Sequence[MultiTaskUNet],
        plan: Plan | PreprocessingConfig | str | os.PathLike[str],
        *,
        class_names: Sequence[str] = (),
        window_size: Sequence[int] | None = None,
        overlap: float = 0.5,
        mirror_axes: Sequence[int] = (0, 1, 2),
        window_batch_size: int | None = None,
        dtype: torch.dtype | None = None,
        cls_head: str | None = None,
        cls_weighting: ClsWeighting = "ownership",
        calibration: Calibration | Sequence[Calibration | None] | None = None,
        output_device: torch.device | str | None = None,
        largest_component: bool = False,
        label_weights: Sequence[float] | None = None,
        save_probabilities: bool = False,
    ) -> None:
        models = [model] if isinstance(model, torch.nn.Module) else list(model)
        check_models(models)
        self.models = tuple(m.eval() for m in models)
        self.model = model = self.models[0]
        num_labels = model.config.num_classes
        weights = None if label_weights is None else check_label_weights(label_weights, num_labels)
        self.postprocessing = Postprocessing(weights, bool(largest_component))
        self.save_probabilities = save_probabilities
        self.preprocessing, self.window_size, from_plan = resolve_plan(plan, window_size)
        check_model_fits_plan(
            self.models, self.preprocessing, self.window_size, from_plan=from_plan
        )
        self.cls_head = pick_head(model, cls_head)
        self.class_names = class_names_for(model, self.cls_head, class_names)
        self.calibrations = per_model_calibrations(calibration, len(models))
        self.calibration = self.calibrations[0]
        if window_batch_size is None:
            window_batch_size = default_window_batch_size(model, mirror_axes)
        self.options: dict[str, Any] = {
            "overlap": overlap,
            "mirror_axes": tuple(mirror_axes),
            "window_batch_size": window_batch_size,
            "dtype": dtype,
            "cls_weighting": cls_weighting,
            "output_device": output_device or next(iter(model.parameters())).device,
        }

    @property
    def label_weights(self) -> tuple[float, ...] | None:
        """The weights of the label argmax, or ``None``."""
        return self.postprocessing.label_weights

    @property
    def largest_component(self) -> bool:
        """Whether only the largest foreground component is kept."""
        return self.postprocessing.largest_component

    @property
    def calibrated(self) -> bool:
        """Whether a calibration is applied (to any model of an ensemble)."""
        return any(c is not None for c in self.calibrations)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike[str] | Checkpoint,
        *,
        device: torch.device | str = "cpu",
        plan: Plan | None = None,
        calibrated: bool = True,
        **options: Any,
    ) -> Predictor:
        """A predictor for a checkpoint of :func:`~multitask_unet.checkpoints.save_checkpoint`.

        Args:
            checkpoint: The file or a loaded checkpoint.
            device: Where the network runs.
            plan: Override the checkpoint's plan.
            calibrated: Use the checkpoint's calibration of the head, when it has one.
            **options: Any keyword of :class:`Predictor`. Without ``mirror_axes``, test-time
                mirroring uses only the axes the training augmentation mirrored (when the
                checkpoint records its training config): a network never shown flipped
                anatomy gets worse, not better, from averaging flipped predictions.
        """
        return cls.from_checkpoints(
            [checkpoint], device=device, plan=plan, calibrated=calibrated, **options
        )

    @classmethod
    def from_checkpoints(
        cls,
        checkpoints: Sequence[str | os.PathLike[str] | Checkpoint],
        *,
        device: torch.device | str = "cpu",
        plan: Plan | None = None,
        calibrated: bool = True,
        names: Sequence[str] | None = None,
        **options: Any,
    ) -> Predictor:
        """An ensemble of checkpoints of one plan, as :meth:`from_checkpoint` for each.

        Without ``mirror_axes``, only the axes every model was trained mirrored on are used.
        ``names`` name the checkpoints in errors (default ``model 0``, ...).

        Raises:
            ConfigError: The checkpoints hold other plans (unless ``plan`` is given), other
                class names, or models that do not agree.
        """
        ckpts = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in checkpoints]
        models, plan, options = ensemble_options(
            ckpts, names, device=device, plan=plan, calibrated=calibrated, options=options
        )
        predictor = cls(models, plan, **options)
        predictor.model_files = tuple(
            None if isinstance(c, Checkpoint) else Path(c) for c in checkpoints
        )
        return predictor

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        device: torch.device | str = "cpu",
        postprocessing: bool = True,
        folds: Sequence[int] | None = None,
        **options: Any,
    ) -> Predictor:
        """The model of a training run, or the fold ensemble of a cross-validation folder.

        The layouts are those of :mod:`multitask_unet.inference.ensemble`; the run's
        ``postprocessing.json`` is applied when present. ``predictor.source`` says what was used.

        Args:
            run_dir: The folder.
            device: Where the networks run.
            postprocessing: Apply ``RUN/postprocessing.json``; ``label_weights`` and
                ``largest_component`` given in ``options`` override its choices.
            folds: Folds of a cross-validation folder to use (default: all).
            **options: Keywords of :meth:`from_checkpoints` and :class:`Predictor`.

        Raises:
            ConfigError: Before any checkpoint is loaded: the folder is neither kind, folds
                are unfinished or missing, ``postprocessing.json`` is broken. Then: the folds
                differ in plan, class names or models.
        """
        source = find_run(run_dir, folds, postprocessing=postprocessing)
        if source.postprocessing is not None:
            options.setdefault("label_weights", source.postprocessing.label_weights)
            options.setdefault("largest_component", source.postprocessing.largest_component)
        predictor = cls.from_checkpoints(
            source.checkpoints, device=device, names=source.names, **options
        )
        predictor.source = source
        return predictor

    # -- one case ------------------------------------------------------------------------------
    def predict_preprocessed(self, case: PreprocessedCase) -> CasePrediction:
        """Predict a preprocessed case and bring the label map back to its image's grid."""
        image = torch.from_numpy(np.ascontiguousarray(case.image))[None]
        summed: torch.Tensor | None = None
        outputs = []
        for model in self.models:
            out = sliding_window_predict(model, image, window_size=self.window_size, **self.options)
            seg = out.pop("seg")[0]  # float32 (a view of the blended logits)
            summed = seg if summed is None else summed.add_(seg)
            outputs.append({k: v[0].float().cpu() for k, v in out.items()})
            del out, seg
        assert summed is not None
        summed = summed.div_(len(self.models)) if len(self.models) > 1 else summed
        labels, native = export_logits(summed, case.properties, self.postprocessing)
        seg_probabilities = native.astype(np.float16) if self.save_probabilities else None
        del summed, native
        mean = {k: torch.stack([o[k] for o in outputs]).mean(0) for k in outputs[0]}
        logits = outputs[0] if len(outputs) == 1 else mean
        probabilities = predicted = uncalibrated = None
        if self.cls_head is not None:
            probabilities, predicted, uncalibrated = ensemble_classify(
                self.models, self.calibrations, [o[self.cls_head] for o in outputs], self.cls_head
            )
        return CasePrediction(
            case_id=case.properties.case_id,
            segmentation=labels,
            affine=np.asarray(case.properties.original_affine, dtype=np.float64),
            probabilities=probabilities,
            predicted=predicted,
            logits={k: v.numpy() for k, v in logits.items()},
            uncalibrated=uncalibrated,
            seg_probabilities=seg_probabilities,
        )

    def predict_case(self, record: CaseRecord | str | os.PathLike[str]) -> CasePrediction:
        """Read, preprocess and predict one case (a record, an image file or a DICOM folder)."""
        if not isinstance(record, CaseRecord):
            cases = collect_cases([record], num_channels=self.model.config.in_channels)
            if len(cases) != 1:
                raise ConfigError(f"{record} holds {len(cases)} cases; use predict() for many")
            record = cases[0]
        return self.predict_preprocessed(preprocess_case(record, self.preprocessing))

    # -- a folder ------------------------------------------------------------------------------
    def predict(
        self,
        inputs: Sequence[str | os.PathLike[str] | CaseRecord] | str | os.PathLike[str] | CaseRecord,
        output_dir: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: bool = True,
    ) -> PredictionRun:
        """Predict every case of ``inputs`` into ``output_dir`` (see the module docstring).

        A rerun skips the cases found finished, but only in a folder predicted with the same
        models and settings: ``OUT/predict_settings.json`` records them
        (:mod:`~multitask_unet.inference.prediction_settings`), and a folder whose record
        differs (another checkpoint, post-processing, calibration, classification head,
        pooling weights, class names or preprocessing) is refused unless ``overwrite``.

        Args:
            inputs: Image files, folders, DICOM series folders (see
                :func:`~multitask_unet.inference.inputs.collect_cases`) or case records; one or a list.
            output_dir: The prediction folder (created).
            overwrite: Predict every case again, also in a folder of other models or settings.
            progress: Show a progress bar.

        Raises:
            ConfigError: ``output_dir`` is a file, or holds predictions made with other
                settings (and not ``overwrite``).
        """
        return predict_into(self, inputs, output_dir, overwrite=overwrite, progress=progress)
