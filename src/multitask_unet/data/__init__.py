"""Data: the only package that touches TorchIO, NIfTI and DICOM.

Readers turn a folder into case records, :func:`validate_dataset` checks them, planning and
preprocessing follow nnU-Net into a memory-mapped cache, and the training loader samples
balanced, foreground-oversampled, augmented patches that leave this package as :class:`Batch`.
"""

from multitask_unet.data.augmentation import AugmentationConfig, build_augmentation
from multitask_unet.data.batch import MISSING_LABEL, Batch
from multitask_unet.data.cache import (
    CachedCase,
    list_cached_cases,
    load_cached_case,
    load_cached_plan,
    preprocess_dataset,
)
from multitask_unet.data.fingerprint import DatasetFingerprint, compute_fingerprint
from multitask_unet.data.io import Volume, read_image, read_mask, write_image
from multitask_unet.data.loader import LoaderConfig, TrainLoader, cache_entries, queue_loader
from multitask_unet.data.patches import ForegroundPatchSampler
from multitask_unet.data.phantoms import make_phantom, write_phantom_dataset
from multitask_unet.data.planning import Plan, PreprocessingConfig, create_plan
from multitask_unet.data.preprocessing import CaseProperties, preprocess_case, restore_native
from multitask_unet.data.readers import LAYOUTS, DatasetIndex, read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.data.report import Issue, ValidationReport
from multitask_unet.data.sampling import BalancedCaseSampler
from multitask_unet.data.validation import validate_dataset

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
