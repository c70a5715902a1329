"""Temperature and Platt scaling: recovery of known miscalibration, invariants, round trips."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import load_checkpoint, save_checkpoint
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.evaluation.calibration_metrics import expected_calibration_error
from multitask_unet.evaluation.classification import roc_auc_ovr
from multitask_unet.inference.calibration import (
    Calibration,
    calibrated_probabilities,
    fit_calibration,
    fit_platt,
    fit_temperature,
    probabilities_of,
)


def sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row drawn from the row's probabilities."""
    return (rng.random(len(probs))[:, None] > probs.cumsum(axis=1)).sum(axis=1)


def calibrated_data(n: int, k: int, loss_kind: str, seed: int):
    """Logits u whose head-rule probabilities are the true class probabilities."""
    rng = np.random.default_rng(seed)
    u = 1.5 * rng.standard_normal((n, k)) + (0.0 if loss_kind == "ce" else -1.0)
    probs = probabilities_of(torch.from_numpy(u), loss_kind).numpy()
    return u, sample(probs, rng)


def ovr_gaussian_data(n: int, mu: float, seed: int):
    """y uniform over 3 classes, x_k ~ N(+mu, 1) if y = k else N(-mu, 1).

    Then P(y = k | x_k) = sigmoid(2 mu x_k + log(1/2)) exactly: the true Platt map of x_k.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3)) + np.where(np.eye(3, dtype=bool)[y], mu, -mu)
    return x, y


@pytest.mark.parametrize("loss_kind", ["ce", "bce_ovr"])
@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_temperature_recovers_known_miscalibration(loss_kind, true_t):
    u, y = calibrated_data(4000, 3, loss_kind, seed=int(10 * true_t))
    cal = fit_temperature(true_t * u, y, loss_kind=loss_kind)
    assert cal.temperature == pytest.approx(true_t, rel=0.1)
    assert cal.nll_after <= cal.nll_before + 1e-12
    assert cal.n_cases == 4000


def test_temperature_is_the_nll_minimum():
    u, y = calibrated_data(500, 4, "ce", seed=1)
    cal = fit_temperature(2.0 * u, y)
    logits = torch.from_numpy(2.0 * u)

    def nll(t: float) -> float:
        p = probabilities_of(logits / t, "ce").numpy()
        return float(-np.mean(np.log(p[np.arange(len(y)), y])))

    t = cal.temperature
    assert nll(t) == pytest.approx(cal.nll_after, rel=1e-9)
    assert nll(t) <= min(nll(t * 1.01), nll(t / 1.01))


@pytest.mark.parametrize(
    ("scale", "shift"), [((1.0, 1.0, 1.0), (0, 0, 0)), ((3.0, 0.5, 1.5), (1, -2, 0.5))]
)
def test_platt_recovers_per_class_maps(scale, shift):
    mu = 1.0
    x, y = ovr_gaussian_data(9000, mu, seed=2)
    c, d = np.array(scale), np.array(shift)
    cal = fit_platt(c * x + d, y)
    true_a = 2 * mu / c
    true_b = math.log(0.5) - true_a * d
    np.testing.assert_allclose(cal.scale, true_a, rtol=0.08)
    np.testing.assert_allclose(cal.bias, true_b, atol=0.12)
    assert cal.method == "platt" and cal.temperature is None


def test_platt_stays_finite_when_a_class_is_separated():
    z = np.array([[5.0, -5.0], [4.0, -4.0], [-4.0, 4.0], [-6.0, 6.0]])
    cal = fit_platt(z, np.array([0, 0, 1, 1]))
    assert all(0.01 <= a <= 100 and math.isfinite(a) for a in cal.scale)
    assert all(math.isfinite(b) for b in cal.bias)


@pytest.mark.parametrize("loss_kind", ["ce", "bce_ovr"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_temperature_never_changes_the_predicted_class(loss_kind, k):
    rng = np.random.default_rng(k)
    z = torch.from_numpy(3 * rng.standard_normal((400, k)))
    for t in (0.05, 0.7, 3.0, 20.0):
        cal = Calibration("temperature", loss_kind, (1 / t,) * k, (0.0,) * k)
        probs = cal.probabilities(z)
        # The predicted class keeps the largest probability (ties only by float saturation).
        assert torch.equal(probs.gather(1, z.argmax(1, keepdim=True))[:, 0], probs.max(1).values)
        if t >= 0.7:
            assert torch.equal(probs.argmax(1), z.argmax(1))
        assert torch.equal(cal.predict(z), z.argmax(1))


def test_platt_prediction_is_the_uncalibrated_argmax_even_when_probabilities_reorder():
    cal = Calibration("platt", "bce_ovr", (1.0, 1.0), (-3.0, 0.0))
    z = torch.tensor([[1.0, 0.0], [2.0, -2.0]])
    probs = cal.probabilities(z)
    assert probs[0].argmax() == 1  # the per-class maps cross for this case
    assert cal.predict(z).tolist() == [0, 0]


def test_fitted_calibration_keeps_the_predicted_class_on_new_cases():
    x, y = ovr_gaussian_data(3000, 1.0, seed=4)
    z = torch.from_numpy(x * np.array([2.0, 1.0, 0.5]))
    for method in ("temperature", "platt"):
        cal = fit_calibration(z[:1500], y[:1500], loss_kind="bce_ovr", method=method)
        assert torch.equal(cal.predict(z[1500:]), z[1500:].argmax(1))


def test_two_class_auc_is_unchanged_by_temperature():
    u, y = calibrated_data(600, 2, "ce", seed=5)
    z = torch.from_numpy(4 * u)
    cal = fit_temperature(z, y)
    before = roc_auc_ovr(y, probabilities_of(z, "ce").numpy())
    after = roc_auc_ovr(y, cal.probabilities(z).numpy())
    np.testing.assert_array_equal(before, after)
    assert abs(cal.temperature - 4) < 1  # and the fit did change the probabilities


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_ovr_binary_aucs_are_unchanged(method):
    x, y = ovr_gaussian_data(800, 0.7, seed=6)
    z = torch.from_numpy(x * np.array([3.0, 1.0, 0.3]) + np.array([1.0, 0.0, -1.0]))
    cal = fit_calibration(z, y, loss_kind="bce_ovr", method=method)
    before = roc_auc_ovr(y, torch.sigmoid(z).numpy())
    after = roc_auc_ovr(y, torch.sigmoid(cal.transform(z)).numpy())
    np.testing.assert_array_equal(before, after)


def pair_auc(p: np.ndarray, y: np.ndarray, i: int, j: int) -> float:
    """AUC of class j against class i on their cases, scored by p_j / (p_i + p_j)."""
    pair = (y == i) | (y == j)
    ratio = p[pair, j] / (p[pair, i] + p[pair, j])
    return roc_auc_ovr((y[pair] == j).astype(np.int64), np.stack([1 - ratio, ratio], axis=1))[1]


def test_pairwise_aucs_are_unchanged_by_temperature_for_three_classes():
    u, y = calibrated_data(600, 3, "ce", seed=7)
    z = torch.from_numpy(0.3 * u)
    cal = fit_temperature(z, y)
    p_before, p_after = probabilities_of(z, "ce").numpy(), cal.probabilities(z).numpy()
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert pair_auc(p_before, y, i, j) == pair_auc(p_after, y, i, j)


def test_calibration_lowers_ece_on_held_out_cases():
    u, y = calibrated_data(6000, 3, "ce", seed=8)
    z = torch.from_numpy(3.0 * u)
    cal = fit_temperature(z[:3000], y[:3000])
    before = expected_calibration_error(y[3000:], probabilities_of(z[3000:], "ce").numpy())
    after = expected_calibration_error(y[3000:], cal.probabilities(z[3000:]).numpy())
    assert before > 0.1 and after < 0.04


@pytest.mark.parametrize(("head", "loss_kind"), [("panda", "ce"), ("ovr", "bce_ovr")])
def test_probability_rule_is_the_heads_rule(head, loss_kind):
    model = mtu.create_model("tiny_plain", heads={"cls": (head, {"num_classes": 3})})
    assert model.heads["cls"].loss_kind == loss_kind
    z = torch.randn(5, 3) * 3
    identity = Calibration.identity(3, loss_kind)
    torch.testing.assert_close(identity.probabilities(z), model.heads["cls"].probabilities(z))
    torch.testing.assert_close(calibrated_probabilities(z, loss_kind), identity.probabilities(z))


def test_float64_logits_stay_float64():
    cal = Calibration("temperature", "ce", (0.5, 0.5), (0.0, 0.0))
    assert cal.probabilities(torch.zeros(1, 2, dtype=torch.float64)).dtype == torch.float64
    assert cal.probabilities(torch.zeros(1, 2, dtype=torch.float16)).dtype == torch.float32


def test_identity_round_trips_through_json():
    identity = Calibration.identity(3, "bce_ovr")
    assert Calibration.from_dict(json.loads(json.dumps(identity.to_dict()))) == identity


def test_round_trip_through_dict_and_checkpoint(tmp_path):
    x, y = ovr_gaussian_data(300, 1.0, seed=9)
    cal = fit_platt(x, y)
    assert Calibration.from_dict(cal.to_dict()) == cal
    model = mtu.create_model("tiny_plain", heads={"cls": ("ovr", {"num_classes": 3})})
    path = save_checkpoint(tmp_path / "m.pt", model, calibration={"cls": cal.to_dict()})
    loaded = load_checkpoint(path).calibration
    assert Calibration.from_dict(loaded["cls"]) == cal


def test_temperature_on_the_bound_warns():
    rng = np.random.default_rng(10)
    z = 5 * rng.standard_normal((300, 3))  # confident logits, labels unrelated to them
    with pytest.warns(UserWarning, match="bound"):
        cal = fit_temperature(z, rng.integers(0, 3, 300))
    assert cal.temperature == pytest.approx(20.0, rel=1e-3)


def test_no_warning_for_an_ordinary_fit():
    u, y = calibrated_data(500, 3, "ce", seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_temperature(2 * u, y)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"method": "cubic", "loss_kind": "ce", "scale": (1.0, 1.0), "bias": (0.0, 0.0)},
            ConfigError,
            "method",
        ),
        (
            {"method": "platt", "loss_kind": "bce", "scale": (1.0, 1.0), "bias": (0.0, 0.0)},
            ConfigError,
            "loss_kind",
        ),
        (
            {"method": "platt", "loss_kind": "bce_ovr", "scale": (1.0, -1.0), "bias": (0.0, 0.0)},
            ConfigError,
            "> 0",
        ),
        (
            {"method": "platt", "loss_kind": "bce_ovr", "scale": (1.0,), "bias": (0.0, 0.0)},
            ConfigError,
            "per class",
        ),
    ],
)
def test_invalid_calibrations_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        Calibration(**kwargs)


def test_fit_input_errors():
    z = np.zeros((4, 3))
    with pytest.raises(ShapeError, match="labels"):
        fit_temperature(z, np.array([0, 1, 3, 0]))
    with pytest.raises(ShapeError):
        fit_temperature(z, np.array([0, 1]))
    with pytest.raises(ConfigError, match="temperature"):
        fit_calibration(z, np.array([0, 1, 2, 0]), loss_kind="ce", method="platt")
    with pytest.raises(ConfigError, match="at least one"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    with pytest.raises(ShapeError, match="refit"):
        Calibration.identity(3).probabilities(torch.zeros(2, 4))


def test_one_vs_rest_auc_of_softmax_can_move_with_three_classes():
    # The documented limit: p_0 mixes both gaps z_j - z_0, and T reweights them. Case A has two
    # moderate gaps, case B one tiny and one huge gap; their order on p_0 flips with T.
    z = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.9, -10.0]], dtype=torch.float64)
    y = np.array([0, 1])
    sharp = Calibration("temperature", "ce", (1.0,) * 3, (0.0,) * 3)
    flat = Calibration("temperature", "ce", (0.1,) * 3, (0.0,) * 3)
    assert roc_auc_ovr(y, sharp.probabilities(z).numpy())[0] == 1.0
    assert roc_auc_ovr(y, flat.probabilities(z).numpy())[0] == 0.0
    assert torch.equal(sharp.predict(z), flat.predict(z))
