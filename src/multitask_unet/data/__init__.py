"""Data: the only package that touches TorchIO, NIfTI and DICOM.

Readers turn a folder into case records and :func:`validate_dataset` checks them (the reading
side, at this level: ``readers``, ``io``, ``orientation``, ``canonical``, ``validation``); then
three subpackages follow nnU-Net:

- :mod:`~multitask_unet.data.planning`: the dataset fingerprint and the plan;
- :mod:`~multitask_unet.data.preprocessing`: each case as the plan says, into a memory-mapped cache;
- :mod:`~multitask_unet.data.sampling`: balanced, foreground-oversampled, augmented patches that
  leave this package as :class:`Batch`.
"""

from multitask_unet.data.io import Volume, read_image, read_mask, write_image
from multitask_unet.data.phantoms import make_phantom, write_phantom_dataset
from multitask_unet.data.planning import Plan, PreprocessingConfig, create_plan
from multitask_unet.data.planning.fingerprint import DatasetFingerprint, compute_fingerprint
from multitask_unet.data.preprocessing import CaseProperties, preprocess_case, restore_native
from multitask_unet.data.preprocessing.cache import (
    CachedCase,
    list_cached_cases,
    load_cached_case,
    load_cached_plan,
    preprocess_dataset,
)
from multitask_unet.data.readers import LAYOUTS, DatasetIndex, read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.sampling import BalancedCaseSampler
from multitask_unet.data.sampling.augmentation import AugmentationConfig, build_augmentation
from multitask_unet.data.sampling.batch import MISSING_LABEL, Batch
from multitask_unet.data.sampling.loader import (
    LoaderConfig,
    TrainLoader,
    cache_entries,
    queue_loader,
)
from multitask_unet.data.sampling.patches import ForegroundPatchSampler
from multitask_unet.data.validation import validate_dataset
from multitask_unet.data.validation_report import Issue, ValidationReport

__all__ = [
    "LAYOUTS",
    "MISSING_LABEL",
    "AugmentationConfig",
    "BalancedCaseSampler",
    "Batch",
    "CachedCase",
    "CaseProperties",
    "CaseRecord",
    "DatasetFingerprint",
    "DatasetIndex",
    "ForegroundPatchSampler",
    "Issue",
    "LoaderConfig",
    "Plan",
    "PreprocessingConfig",
    "TrainLoader",
    "ValidationReport",
    "Volume",
    "build_augmentation",
    "cache_entries",
    "compute_fingerprint",
    "create_plan",
    "list_cached_cases",
    "load_cached_case",
    "load_cached_plan",
    "make_phantom",
    "preprocess_case",
    "preprocess_dataset",
    "queue_loader",
    "read_dataset",
    "read_image",
    "read_mask",
    "restore_native",
    "validate_dataset",
    "write_image",
    "write_phantom_dataset",
]
