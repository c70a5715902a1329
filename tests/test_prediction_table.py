"""``predictions.csv``: one class writes it (the predictor) and reads it (the evaluation)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from multitask_unet import prediction_table
from multitask_unet.errors import DataError
from multitask_unet.prediction_table import PredictionTable

NAMES = ("subtype0", "subtype1", "subtype2")


def test_docstring_example_runs() -> None:
    result = doctest.testmod(prediction_table, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_written_bytes(tmp_path) -> None:
    path = tmp_path / "predictions.csv"
    table = PredictionTable.open(path, NAMES, uncalibrated=True)
    table.set("b", np.array([0.1, 0.2, 0.7]), 2, uncalibrated=np.array([1 / 3, 1 / 3, 1 / 3]))
    table.set("a", np.array([0.5, 0.25, 0.25]), 0, uncalibrated=np.array([0.4, 0.3, 0.3]))
    table.save()
    assert path.read_bytes() == (
        b"case_id,prob_subtype0,prob_subtype1,prob_subtype2,predicted,"
        b"uncalibrated_prob_subtype0,uncalibrated_prob_subtype1,uncalibrated_prob_subtype2\n"
        b"a,0.5,0.25,0.25,0,0.4,0.3,0.3\n"
        b"b,0.1,0.2,0.7,2,0.3333333333333333,0.3333333333333333,0.3333333333333333\n"
    )


def test_read_gives_what_was_written(tmp_path) -> None:
    path = tmp_path / "predictions.csv"
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=5)
    table = PredictionTable.open(path, NAMES)
    for i, p in enumerate(probs):
        table.set(f"case{i}", p, int(p.argmax()))
    table.save()
    read = PredictionTable.read(path)
    assert read.case_ids == tuple(f"case{i}" for i in range(5))
    assert read.class_names == NAMES and len(read) == 5 and "case3" in read
    np.testing.assert_array_equal(read.probabilities, probs)  # repr round-trips exactly
    np.testing.assert_array_equal(read.predicted, probs.argmax(axis=1))
    before = path.read_bytes()
    read.save()
    assert path.read_bytes() == before


def test_read_accepts_other_column_orders_and_no_predicted(tmp_path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("note,prob_b,case_id,prob_a\nx,0.75,c2,0.25\ny,0.1,c1,0.9\n")
    table = PredictionTable.read(path)
    assert table.case_ids == ("c2", "c1") and table.class_names == ("b", "a")
    assert table.predicted.tolist() == [0, 1]
    assert table.probabilities.tolist() == [[0.75, 0.25], [0.1, 0.9]]


def test_read_rejects_bad_rows(tmp_path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("case_id,prob_a,prob_b,predicted\nc1,0.5,0.5,2\n")
    with pytest.raises(DataError, match="line 2"):
        PredictionTable.read(path)
    path.write_text("case_id,prob_a,prob_b\nc1,0.5,0.5\nc1,0.4,0.6\n")
    with pytest.raises(DataError, match="more than once"):
        PredictionTable.read(path)


def test_open_keeps_rows_and_refuses_another_model(tmp_path) -> None:
    path = tmp_path / "predictions.csv"
    table = PredictionTable.open(path, NAMES)
    table.set("a", np.array([0.2, 0.3, 0.5]), 2)
    table.save()
    assert "a" in PredictionTable.open(path, NAMES)
    with pytest.raises(DataError, match="--overwrite"):
        PredictionTable.open(path, ("x", "y"))
    assert len(PredictionTable.open(path, ("x", "y"), reset=True)) == 0
