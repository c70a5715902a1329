"""The :class:`Predictor`: from image files to label maps and class probabilities.

For each case it runs the plan's preprocessing (:func:`~multitask_unet.data.preprocessing.
preprocess_case`), :func:`~multitask_unet.inference.sliding_window_predict`, then undoes the
preprocessing (:func:`~multitask_unet.data.preprocessing.restore_native`: softmax
probabilities are resampled back, as nnU-Net does, and the argmax is taken on the image file's
grid), so that every label map has exactly the input's shape and affine. ``label_weights`` weight
that argmax (:func:`~multitask_unet.inference.decision.weighted_argmax`).

:meth:`Predictor.predict` writes a prediction folder in the format
:mod:`multitask_unet.evaluation.inputs` reads::

    OUT/CASE.nii.gz        uint8 label map on the grid of the case's image
    OUT/predictions.csv    case_id, prob_<class> per class, predicted  (models with a head)
                           and uncalibrated_prob_<class> per class when a calibration is used
    OUT/CASE.npz           with save_probabilities: "probabilities", (labels, I, J, K) float16
                           softmax on the image's grid (as nnU-Net's --save_probabilities)

Every file is written atomically, after the case is fully predicted, so an interrupted run
leaves only finished files; a re-run skips the cases already finished (label map written, for
a model with a classification head a row in ``predictions.csv``, and the probabilities when
they are to be saved) unless ``overwrite``.

Example:
    >>> predictor = Predictor.from_checkpoint("model.pt", device="cuda")  # doctest: +SKIP
    >>> run = predictor.predict(["scans/"], "predictions/")  # doctest: +SKIP
    >>> run.predicted, run.skipped  # doctest: +SKIP
    (('case_a', 'case_b'), ())
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask_unet._atomic import save_npz_atomic
from multitask_unet.checkpoints import Checkpoint, load_checkpoint
from multitask_unet.data.io import write_image
from multitask_unet.data.planning import Plan, PreprocessingConfig
from multitask_unet.data.preprocessing import PreprocessedCase, preprocess_case, restore_native
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError
from multitask_unet.inference.calibration import Calibration
from multitask_unet.inference.decision import check_label_weights, weighted_argmax
from multitask_unet.inference.inputs import collect_cases
from multitask_unet.inference.postprocessing import keep_largest_component
from multitask_unet.inference.results import PredictionTable, remove_stale_temps
from multitask_unet.inference.sliding_window import ClsWeighting, sliding_window_predict
from multitask_unet.models import MultiTaskUNet

__all__ = ["CasePrediction", "PredictionRun", "Predictor", "trained_mirror_axes"]


@dataclass(frozen=True, eq=False)
class CasePrediction:
    """The prediction of one case.

    Attributes:
        case_id: The case.
        segmentation: ``(I, J, K)`` label map (uint8) on the grid of the image file.
        affine: The image file's ``(4, 4)`` affine (save the label map with it).
        probabilities: ``(K,)`` class probabilities of the classification head, or ``None``.
        predicted: Predicted class (argmax of the head's logits), or ``None``.
        logits: Raw ``(K,)`` logits of every classification head, by head name.
        uncalibrated: ``(K,)`` probabilities before calibration when a calibration was
            applied, else ``None``.
        seg_probabilities: ``(labels, I, J, K)`` float16 segmentation probabilities on the
            image file's grid, with ``save_probabilities``; else ``None``.
    """

    case_id: str
    segmentation: np.ndarray
    affine: np.ndarray
    probabilities: np.ndarray | None
    predicted: int | None
    logits: dict[str, np.ndarray]
    uncalibrated: np.ndarray | None = None
    seg_probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class PredictionRun:
    """What :meth:`Predictor.predict` did.

    Attributes:
        output_dir: The prediction folder.
        predicted: Cases predicted in this run.
        skipped: Cases found finished and left as they were.
        csv_path: ``OUT/predictions.csv``, or ``None`` for a model without classification head.
    """

    output_dir: Path
    predicted: tuple[str, ...]
    skipped: tuple[str, ...]
    csv_path: Path | None


def _pick_head(model: MultiTaskUNet, name: str | None) -> str | None:
    heads = list(model.heads)
    if name is not None:
        if name not in heads:
            raise ConfigError(f"the model has no head {name!r}; its heads: {heads or 'none'}")
        return name
    if "cls" in heads:
        return "cls"
    if len(heads) > 1:
        raise ConfigError(f"the model has several heads {heads}; choose one with cls_head=...")
    return heads[0] if heads else None


class Predictor:
    """Predict cases with a model and its preprocessing plan.

    Args:
        model: The network (put it on ``device`` first; it is used in eval mode).
        plan: The :class:`~multitask_unet.data.planning.Plan` (or its preprocessing config)
            the model was trained with.
        class_names: Names of the head's classes (``prob_<name>`` columns); default
            ``subtype0, subtype1, ...``.
        window_size: Sliding window; default the plan's ``patch_size``.
        overlap: Window overlap (nnU-Net: 0.5).
        mirror_axes: Axes mirrored for test-time augmentation (``()`` turns it off).
        window_batch_size: Network batch (windows and mirrored copies). ``None``: on the CPU
            the mirrored copies of one window go in one call (``2 ** len(mirror_axes)``; four
            times faster than one at a time in ``benchmarks/bench_predict.py``), elsewhere one
            per call (GPU memory).
        dtype: Autocast dtype (``torch.float16`` / ``torch.bfloat16``) or ``None``.
        cls_head: Head whose probabilities go to ``predictions.csv`` (default ``"cls"`` or the
            only head).
        cls_weighting: ``"ownership"`` or ``"foreground"`` (see
            :func:`~multitask_unet.inference.sliding_window_predict`).
        calibration: Calibration of ``cls_head``'s logits, or ``None``.
        output_device: Where logits are accumulated (default: the model's device, as
            nnU-Net's ``perform_everything_on_device``; pass ``"cpu"`` for volumes whose
            logits do not fit in GPU memory).
        largest_component: Keep only the largest connected component of the foreground in
            the label map (:func:`~multitask_unet.inference.keep_largest_component`): for a
            single organ every other island is a false positive.
        label_weights: One weight per segmentation label (background included): the label map
            is ``argmax_k w_k p_k`` (:func:`~multitask_unet.inference.decision.weighted_argmax`),
            e.g. ``(1, 1, 16)`` to call the lesion where the network under-calls it. Choose the
            weights on cross-validation predictions.
        save_probabilities: Also keep the segmentation probabilities on the image's grid
            (``CasePrediction.seg_probabilities``; :meth:`predict` writes ``OUT/CASE.npz``).
    """

    def __init__(
        self,
        model: MultiTaskUNet,
        plan: Plan | PreprocessingConfig,
        *,
        class_names: Sequence[str] = (),
        window_size: Sequence[int] | None = None,
        overlap: float = 0.5,
        mirror_axes: Sequence[int] = (0, 1, 2),
        window_batch_size: int | None = None,
        dtype: torch.dtype | None = None,
        cls_head: str | None = None,
        cls_weighting: ClsWeighting = "ownership",
        calibration: Calibration | None = None,
        output_device: torch.device | str | None = None,
        largest_component: bool = False,
        label_weights: Sequence[float] | None = None,
        save_probabilities: bool = False,
    ) -> None:
        self.model = model.eval()
        self.largest_component = largest_component
        self.label_weights = (
            None
            if label_weights is None
            else check_label_weights(label_weights, model.config.num_classes)
        )
        self.save_probabilities = save_probabilities
        self.preprocessing = plan.preprocessing if isinstance(plan, Plan) else plan
        if window_size is None:
            if not isinstance(plan, Plan):
                raise ConfigError("give window_size, or a Plan whose patch_size sets it")
            window_size = plan.patch_size
        self.window_size = tuple(int(k) for k in window_size)
        self.cls_head = _pick_head(model, cls_head)
        num = model.heads[self.cls_head].num_classes if self.cls_head else 0
        names = tuple(class_names) or tuple(f"subtype{k}" for k in range(num))
        if self.cls_head and len(names) != num:
            raise ConfigError(
                f"{len(names)} class names {names} for the {num} classes of head "
                f"{self.cls_head!r}; give one name per class"
            )
        self.class_names = names
        self.calibration = calibration
        if window_batch_size is None:
            on_cpu = all(p.device.type == "cpu" for p in model.parameters())
            window_batch_size = 2 ** len(tuple(mirror_axes)) if on_cpu else 1
        self.options: dict[str, Any] = {
            "overlap": overlap,
            "mirror_axes": tuple(mirror_axes),
            "window_batch_size": window_batch_size,
            "dtype": dtype,
            "cls_weighting": cls_weighting,
            "output_device": output_device or next(iter(model.parameters())).device,
        }

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
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        model = ckpt.build_model(device=device)
        head = _pick_head(model, options.pop("cls_head", None))
        if "mirror_axes" not in options:
            trained = trained_mirror_axes(ckpt.training)
            if trained is not None:
                options["mirror_axes"] = trained
        calibration = None
        slot = ckpt.calibration if calibrated else None
        if head and isinstance(slot, Mapping) and head in (slot.get("heads") or {}):
            calibration = Calibration.from_dict(slot["heads"][head])
        return cls(
            model,
            plan if plan is not None else ckpt.load_plan(),
            class_names=options.pop("class_names", ckpt.class_names),
            cls_head=head,
            calibration=calibration,
            **options,
        )

    # -- one case ------------------------------------------------------------------------------
    def predict_preprocessed(self, case: PreprocessedCase) -> CasePrediction:
        """Predict a preprocessed case and bring the label map back to its image's grid."""
        image = torch.from_numpy(np.ascontiguousarray(case.image))[None]
        out = sliding_window_predict(
            self.model, image, window_size=self.window_size, **self.options
        )
        probs = out.pop("seg")[0].softmax(dim=0).cpu().numpy()
        native = restore_native(probs, case.properties)
        del probs
        if self.label_weights is None:
            dtype = torch.uint8 if native.shape[0] <= 256 else torch.int16
            labels = torch.from_numpy(np.ascontiguousarray(native)).argmax(dim=0).to(dtype).numpy()
        else:
            labels = weighted_argmax(native, self.label_weights)
        seg_probabilities = native.astype(np.float16) if self.save_probabilities else None
        del native
        if self.largest_component:
            labels = keep_largest_component(labels)
        logits = {k: v[0].float().cpu() for k, v in out.items()}
        probabilities = predicted = uncalibrated = None
        if self.cls_head is not None:
            z = logits[self.cls_head][None]
            head = self.model.heads[self.cls_head]
            p = self.calibration.probabilities(z) if self.calibration else head.probabilities(z)
            probabilities = p[0].double().numpy()
            if self.calibration is not None:
                uncalibrated = head.probabilities(z)[0].double().numpy()
            predicted = int(z.argmax(dim=-1))
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
        inputs: Sequence[str | os.PathLike[str] | CaseRecord],
        output_dir: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: bool = True,
    ) -> PredictionRun:
        """Predict every case of ``inputs`` into ``output_dir`` (see the module docstring).

        Args:
            inputs: Image files, folders, DICOM series folders (see
                :func:`~multitask_unet.inference.inputs.collect_cases`) or case records.
            output_dir: The prediction folder (created).
            overwrite: Predict finished cases again.
            progress: Show a progress bar.
        """
        records = [r for r in inputs if isinstance(r, CaseRecord)]
        paths = [p for p in inputs if not isinstance(p, CaseRecord)]
        records += collect_cases(paths, num_channels=self.model.config.in_channels) if paths else []
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        table = None
        if self.cls_head is not None:
            table = PredictionTable.open(
                out / "predictions.csv",
                self.class_names,
                reset=overwrite,
                uncalibrated=self.calibration is not None,
            )
        done, skipped = [], []
        from tqdm.auto import tqdm

        for record in tqdm(records, desc="predict", unit="case", disable=not progress):
            seg_path = out / f"{record.case_id}.nii.gz"
            prob_path = out / f"{record.case_id}.npz"
            finished = (
                seg_path.is_file()
                and (table is None or record.case_id in table)
                and (prob_path.is_file() or not self.save_probabilities)
            )
            if finished and not overwrite:
                skipped.append(record.case_id)
                continue
            prediction = self.predict_case(record)
            remove_stale_temps(seg_path)
            if prediction.seg_probabilities is not None:
                remove_stale_temps(prob_path)
                save_npz_atomic(prob_path, probabilities=prediction.seg_probabilities)
            write_image(seg_path, prediction.segmentation, prediction.affine)
            if table is not None:
                table.set(
                    record.case_id,
                    prediction.probabilities,
                    prediction.predicted,
                    uncalibrated=prediction.uncalibrated,
                )
                table.save()
            done.append(record.case_id)
        return PredictionRun(out, tuple(done), tuple(skipped), table.path if table else None)


def trained_mirror_axes(training: Mapping[str, Any] | None) -> tuple[int, ...] | None:
    """Axes the training augmentation mirrored, read from a checkpoint's ``training`` slot.

    ``None`` when the checkpoint does not record a training config (e.g. converted weights).
    """
    config = (training or {}).get("config")
    if not isinstance(config, Mapping):
        return None
    if not config.get("augment", True):
        return ()
    augmentation = config.get("augmentation")
    if not isinstance(augmentation, Mapping):  # None: nnU-Net's recipe mirrors every axis
        return (0, 1, 2)
    if float(augmentation.get("p_mirror", 0.5)) <= 0:
        return ()
    return tuple(int(a) for a in augmentation.get("mirror_axes", (0, 1, 2)))
