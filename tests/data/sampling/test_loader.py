"""The Batch boundary type and the training loader (subjects, cache folders, TorchIO Queue)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio

from multitask_unet.data.sampling.augmentation import AugmentationConfig
from multitask_unet.data.sampling.batch import MISSING_LABEL, Batch
from multitask_unet.data.sampling.loader import (
    LoaderConfig,
    TrainLoader,
    cache_entries,
    queue_loader,
)
from multitask_unet.errors import ConfigError, DataError, ShapeError

SHAPE = (10, 14, 12)


def _arrays(i: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    image = rng.standard_normal((1, *SHAPE)).astype(np.float32)
    seg = np.zeros((1, *SHAPE), dtype=np.uint8)
    seg[0, 3:7, 4:9, 3:8] = 1
    seg[0, 4:6, 5:7, 4:6] = 2
    return image, seg


def _subjects(labels) -> list[tio.Subject]:
    out = []
    for i, label in enumerate(labels):
        image, seg = _arrays(i)
        out.append(
            tio.Subject(
                image=tio.ScalarImage(tensor=torch.from_numpy(image)),
                seg=tio.LabelMap(tensor=torch.from_numpy(seg)),
                label=label,
                case_id=f"case{i}",
            )
        )
    return out


def _config(**kw) -> LoaderConfig:
    base = {"patch_size": (8, 8, 8), "batch_size": 2, "iterations_per_epoch": 4}
    return LoaderConfig(**{**base, **kw})


# -- Batch ---------------------------------------------------------------------------------------
def test_collate_fills_missing_targets() -> None:
    batch = Batch.collate(
        [
            {
                "image": torch.zeros(2, 3, 4, 5),
                "seg": torch.ones(1, 3, 4, 5),
                "label": 1,
                "case_id": "a",
            },
            {"image": torch.ones(2, 3, 4, 5), "seg": None, "label": None, "case_id": "b"},
        ]
    )
    assert batch.image.shape == (2, 2, 3, 4, 5) and batch.seg.shape == (2, 1, 3, 4, 5)
    assert batch.seg.dtype == torch.long and batch.seg[1].sum() == 0
    assert batch.label.tolist() == [1, MISSING_LABEL] and batch.has_label.tolist() == [True, False]
    assert batch.has_seg.tolist() == [True, False] and batch.case_id == ("a", "b")
    moved = batch.to("cpu", non_blocking=True)
    assert moved is not batch and torch.equal(moved.image, batch.image)


@pytest.mark.parametrize(
    "change",
    [
        {"image": torch.zeros(2, 1, 3, 4)},
        {"image": torch.zeros(2, 1, 3, 4, 5, dtype=torch.float64)},
        {"seg": torch.zeros(2, 1, 3, 4, 6, dtype=torch.long)},
        {"seg": torch.zeros(2, 1, 3, 4, 5)},
        {"label": torch.zeros(3, dtype=torch.long)},
        {"has_seg": torch.ones(2)},
        {"case_id": ("a",)},
    ],
)
def test_batch_rejects_wrong_shapes_and_dtypes(change) -> None:
    fields = {
        "image": torch.zeros(2, 1, 3, 4, 5),
        "seg": torch.zeros(2, 1, 3, 4, 5, dtype=torch.uint8),
        "label": torch.zeros(2, dtype=torch.long),
        "has_seg": torch.ones(2, dtype=torch.bool),
        "case_id": ("a", "b"),
    }
    with pytest.raises(ShapeError):
        Batch(**{**fields, **change})


def test_collate_rejects_mixed_patch_sizes() -> None:
    with pytest.raises(ShapeError, match="same"):
        Batch.collate([{"image": torch.zeros(1, 2, 2, 2)}, {"image": torch.zeros(1, 3, 2, 2)}])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning memory needs a CUDA device")
def test_pin_memory_keeps_values() -> None:
    batch = Batch.collate([{"image": torch.ones(1, 2, 2, 2), "label": 0, "case_id": "a"}])
    pinned = batch.pin_memory()
    assert pinned.image.is_pinned() and torch.equal(pinned.image, batch.image)


# -- TrainLoader ---------------------------------------------------------------------------------
def test_loader_yields_batches_with_case_labels() -> None:
    subjects = _subjects([0, 1, 2, None])
    loader = TrainLoader(subjects, _config())
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    by_id = {s["case_id"]: -1 if s["label"] is None else s["label"] for s in subjects}
    for b in batches:
        assert isinstance(b, Batch) and b.image.shape == (2, 1, 8, 8, 8)
        assert b.seg.dtype == torch.uint8 and b.has_seg.all()
        assert b.label.tolist() == [by_id[c] for c in b.case_id]


def test_same_seed_gives_the_same_epoch_with_or_without_workers() -> None:
    subjects = _subjects([0, 1, 1])
    a = [b.image for b in TrainLoader(subjects, _config(seed=4))]
    b = [b.image for b in TrainLoader(subjects, _config(seed=4, num_workers=2))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = [b.image for b in TrainLoader(subjects, _config(seed=5))]
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_set_epoch_draws_new_patches() -> None:
    loader = TrainLoader(_subjects([0, 1]), _config())
    first = [b.image for b in loader]
    loader.set_epoch(1)
    second = [b.image for b in loader]
    assert not all(torch.equal(x, y) for x, y in zip(first, second, strict=True))


def test_ranks_get_their_share_of_draws() -> None:
    subjects = _subjects([0, 1, 2])
    cfg = _config(augmentation=AugmentationConfig.off())
    ranks = [TrainLoader(subjects, cfg, rank=r, world_size=2) for r in range(2)]
    ids = [[c for b in loader for c in b.case_id] for loader in ranks]
    assert len(ids[0]) == len(ids[1]) == 8  # batch 2 x 4 iterations on each rank
    draws = ranks[0].case_sampler.global_indices().tolist()
    assert ids[0] == [f"case{i}" for i in draws[0::2]]
    assert ids[1] == [f"case{i}" for i in draws[1::2]]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A real preprocessing cache of tiny phantoms, made by the library's own pipeline."""
    from multitask_unet.data.phantoms import write_phantom_dataset
    from multitask_unet.data.planning.fingerprint import compute_fingerprint
    from multitask_unet.data.planning.plan import create_plan
    from multitask_unet.data.preprocessing.cache import preprocess_dataset
    from multitask_unet.data.records import CaseRecord

    root = tmp_path_factory.mktemp("loader_cache")
    index = write_phantom_dataset(
        root / "raw", n_train=3, n_validation=0, n_test=1, shape=(24, 24, 12),
        spacing=(2.0, 2.0, 3.0), class_counts=(1, 1, 1), seed=0,
    )  # fmt: skip
    records = list(index.split("train").records)
    test = index.split("test").records[0]
    unlabelled = CaseRecord("unlabelled", test.images, None, None, "test")
    fingerprint = compute_fingerprint(records, workers=1, progress=False, intensity_samples=2000)
    plan = create_plan(fingerprint, size_divisor=(4, 8, 8))
    preprocess_dataset([*records, unlabelled], plan, root / "cache", workers=1, progress=False)
    return root / "cache"


def test_cache_folder_source_reads_memory_maps_and_properties(cache_dir, monkeypatch) -> None:
    from multitask_unet.data.preprocessing.cache import load_cached_case

    entries = cache_entries(cache_dir)
    labelled = [e for e in entries if e.label is not None]
    assert sorted(e.label for e in labelled) == [0, 1, 2]
    subject = labelled[0].open()
    case = load_cached_case(cache_dir, labelled[0].case_id)
    assert isinstance(case.image, np.memmap)  # what open() wraps without reading
    assert torch.equal(subject["image"].data, torch.from_numpy(np.asarray(case.image)))
    expected = case.properties.class_locations_array()
    assert all(np.array_equal(subject["class_locations"][k], v) for k, v in expected.items())
    cfg = _config(foreground_probability=1.0, augmentation=AugmentationConfig.off(), num_workers=1)
    batches = list(TrainLoader(labelled, cfg))
    centres = {int(b.seg[i, 0, 4, 4, 4]) for b in batches for i in range(len(b))}
    assert centres <= {1, 2} and batches[0].label.min() >= 0
    assert all(b.has_seg.all() for b in batches)


def test_cache_folder_with_an_unlabelled_case(cache_dir) -> None:
    cfg = _config(class_weights="balanced", iterations_per_epoch=20)
    batches = list(TrainLoader(cache_dir, cfg))
    rows = [
        (c, int(lab), bool(s)) for b in batches for c, lab, s in zip(b.case_id, b.label, b.has_seg)
    ]
    unl = [r for r in rows if r[0] == "unlabelled"]
    assert unl and all(lab == MISSING_LABEL and not s for _, lab, s in unl)
    assert all(s for c, _, s in rows if c != "unlabelled")


def test_loader_rejects_empty_sources(tmp_path) -> None:
    with pytest.raises(DataError, match="preprocess"):
        TrainLoader(tmp_path, _config())
    with pytest.raises(DataError, match="no cases"):
        TrainLoader([], _config())
    with pytest.raises(DataError, match=r"tio\.Subject or CacheEntry"):
        TrainLoader([np.zeros(3)], _config())


def test_loader_config_round_trips_and_validates() -> None:
    cfg = _config(augmentation=AugmentationConfig(p_elastic=0.2), lesion_label=2)
    assert LoaderConfig.from_dict(cfg.to_dict()) == cfg
    assert _config().augmentation_config() == AugmentationConfig.nnunet((8, 8, 8))
    with pytest.raises(ConfigError):
        _config(batch_size=0)
    with pytest.raises(ConfigError):
        _config(class_weights="square")


def test_loader_config_caps_oversampling_in_both_loaders() -> None:
    assert _config().max_oversampling == 3.0
    assert LoaderConfig.from_dict(_config(max_oversampling=None).to_dict()).max_oversampling is None
    with pytest.raises(ConfigError, match=r"max_oversampling must be at least 1, got 0\.5.*None"):
        _config(max_oversampling=0.5)
    subjects = _subjects([0] + [1] * 9)  # 1 / 9 cases: balancing would draw case 0 5x its rate
    for cap, share in ((2.0, 0.2), (None, 0.5)):
        cfg = _config(max_oversampling=cap)
        sampler = TrainLoader(subjects, cfg).case_sampler
        assert sampler.max_oversampling == cap and np.isclose(sampler.weights[0], share)
        queue = queue_loader(subjects, cfg, samples_per_volume=2, max_length=4)
        assert np.isclose(queue.dataset.subject_sampler.weights[0], share)


def test_patch_size_is_three_sizes_stored_as_a_tuple() -> None:
    assert _config(patch_size=[8, 8, 8]).patch_size == (8, 8, 8)
    with pytest.raises(ConfigError, match=r"patch_size must be three positive sizes \(D, H, W\)"):
        _config(patch_size=(8, 8))


def test_queue_loader_yields_batches() -> None:
    loader = queue_loader(_subjects([0, 1, 2]), _config(), samples_per_volume=2, max_length=4)
    batches = list(loader)
    assert len(batches) == 4 and all(b.image.shape == (2, 1, 8, 8, 8) for b in batches)
    assert all(b.label.tolist() == [int(c[-1]) for c in b.case_id] for b in batches)


def test_queue_loader_draws_new_cases_each_epoch() -> None:
    subjects = _subjects([0, 1, 2, 0, 1, 2, 0, 1, 2])
    cfg = _config(augmentation=AugmentationConfig.off())
    loader = queue_loader(subjects, cfg, samples_per_volume=2, max_length=4)  # 4 of 9 cases

    def cases_of_epoch(epoch: int | None) -> list[str]:
        if epoch is not None:
            loader.set_epoch(epoch)
        return sorted(c for b in loader for c in b.case_id)

    first = cases_of_epoch(None)
    assert cases_of_epoch(0) == first  # epoch 0 unless told otherwise
    later = [cases_of_epoch(e) for e in (1, 2, 3)]
    assert any(cases != first for cases in later)
    assert cases_of_epoch(2) == later[1]  # the draws are a function of (seed, epoch)


def test_balanced_loader_makes_study_subtypes_uniform_in_batches() -> None:
    counts = (62, 106, 84)  # the study's imbalanced training subtypes
    image, seg = torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4, dtype=torch.uint8)
    subjects = [
        tio.Subject(image=tio.ScalarImage(tensor=image), seg=tio.LabelMap(tensor=seg), label=k)
        for k, n in enumerate(counts)
        for _ in range(n)
    ]
    cfg = LoaderConfig(
        patch_size=(4, 4, 4), batch_size=25, iterations_per_epoch=40,
        augmentation=AugmentationConfig.off(), seed=11,
    )  # fmt: skip
    labels = torch.cat([b.label for b in TrainLoader(subjects, cfg)]).numpy()
    n = len(labels)
    freq = np.bincount(labels, minlength=3) / n
    # 4 sigma = 0.06 here, while unweighted draws would give subtype 1 a share of 0.42
    assert np.all(np.abs(freq - 1 / 3) <= 4 * np.sqrt(2 / 9 / n))
