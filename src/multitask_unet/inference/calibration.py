"""Post-hoc calibration of classification heads: temperature scaling and per-class Platt scaling.

A fitted :class:`Calibration` is an **affine map of one head's logits followed by that head's
own probability rule**::

    z'_k = scale_k * z_k + bias_k
    p    = softmax(z')                          loss_kind "ce"
    p_k  = sigmoid(z'_k) / sum_j sigmoid(z'_j)   loss_kind "bce_ovr" (one-vs-rest heads)

Two methods fill in ``scale`` and ``bias`` from the whole-case logits of labelled cases (the
validation cases after training):

* ``"temperature"`` (Guo et al. 2017): one temperature ``T`` per head, ``scale_k = 1 / T``,
  ``bias_k = 0``, chosen to minimise the negative log-likelihood of the reference classes under
  the head's rule. The search runs in float64 over ``log T`` (a grid, then a bounded Brent
  search around the best grid point) with ``T`` kept in ``temperature_bounds`` (default
  ``[0.05, 20]``); for softmax the NLL is convex in ``1 / T``, so the optimum is the global one.
  A shared positive scale is a strictly increasing map applied to every logit alike, so the
  predicted class ``argmax_k p_k`` **never changes**, for either rule.
* ``"platt"`` (Platt 1999, per class; the default for ``bce_ovr`` heads): each binary
  classifier gets its own ``sigmoid(a_k z_k + b_k)``, fitted by binary cross-entropy of class
  ``k`` against the rest with Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and
  ``1 / (N- + 2)`` (finite parameters even when a class is perfectly separated) and
  ``a_k`` kept in ``platt_scale_bounds`` (default ``[0.01, 100]``, so always positive). Each
  ``sigmoid(a_k z_k + b_k)`` is then a calibrated "class k versus the rest" probability and an
  increasing function of ``z_k``, so every per-class binary AUC is unchanged. Different maps per
  class can reorder the classes of one case, so the **predicted subtype is always taken from the
  uncalibrated logits**, ``argmax_k z_k`` (:meth:`Calibration.predict`): calibration re-states
  how sure the model is, never what it decided. Choose ``"temperature"`` for an ``ovr`` head
  when the largest written probability must always be the predicted subtype.

What calibration keeps: the predicted class (both methods); the one-vs-rest AUC of two-class
softmax heads (``p_1 = sigmoid((z_1 - z_0) / T)`` is increasing in the score the AUC ranks);
the per-class binary AUCs of ``sigmoid(z_k)`` for ``ovr`` heads (both methods). The
one-vs-rest AUC of softmax probabilities with ``K >= 3`` classes can change under a
temperature (a case's ``p_k`` depends on all of its logit gaps, whose weights change with
``T``, so two cases can swap places); pairwise (one-vs-one) AUCs of ``z_i - z_j`` never do.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(size=(4000, 3)) * 2
    >>> true_probs = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    >>> labels = (rng.random((4000, 1)) > true_probs.cumsum(axis=1)).sum(axis=1)  # drawn from p
    >>> cal = fit_temperature(3.0 * true_logits, labels)  # three times overconfident
    >>> round(cal.temperature, 1)
    3.0
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_expit, log_softmax, logsumexp

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError, ShapeError

__all__ = [
    "Calibration",
    "CalibrationMethod",
    "LossKind",
    "calibrated_probabilities",
    "fit_calibration",
    "fit_platt",
    "fit_temperature",
    "probabilities_of",
]

CalibrationMethod = Literal["temperature", "platt"]
LossKind = Literal["ce", "bce_ovr"]
_KINDS = ("ce", "bce_ovr")
_METHODS = ("identity", "temperature", "platt")
_GRID = 49  # grid points on log T before the bounded Brent refinement


@dataclass(frozen=True)
class Calibration(Config):
    """A fitted calibration of one head: ``z'_k = scale_k * z_k + bias_k``, then the head's rule.

    Build it with :func:`fit_calibration` (or :func:`fit_temperature`, :func:`fit_platt`);
    :meth:`to_dict` / :meth:`from_dict` round-trip it through a checkpoint.

    Attributes:
        method: ``"temperature"``, ``"platt"`` or ``"identity"`` (no change).
        loss_kind: The head's ``loss_kind``, which fixes the probability rule.
        scale: ``K`` positive factors (``1 / T`` for every class under ``"temperature"``).
        bias: ``K`` offsets (zeros under ``"temperature"``).
        n_cases: Cases it was fitted on.
        nll_before: NLL of those cases before calibration (nats per case); None if not fitted.
        nll_after: NLL of those cases after calibration; None if not fitted.
    """

    method: str
    loss_kind: str
    scale: tuple[float, ...]
    bias: tuple[float, ...]
    n_cases: int = 0
    nll_before: float | None = None
    nll_after: float | None = None

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ConfigError(f"calibration method {self.method!r} is not one of {_METHODS}")
        if self.loss_kind not in _KINDS:
            raise ConfigError(
                f"calibration loss_kind {self.loss_kind!r} is not one of {_KINDS} "
                "(the head's loss_kind)"
            )
        if len(self.scale) != len(self.bias) or len(self.scale) < 2:
            raise ConfigError(
                f"calibration needs one scale and one bias per class (K >= 2), got "
                f"{len(self.scale)} scales and {len(self.bias)} biases"
            )
        if not all(math.isfinite(s) and s > 0 for s in self.scale):
            raise ConfigError(f"calibration scales must be finite and > 0, got {self.scale}")
        if not all(math.isfinite(b) for b in self.bias):
            raise ConfigError(f"calibration biases must be finite, got {self.bias}")

    @classmethod
    def identity(cls, num_classes: int, loss_kind: str = "ce") -> Calibration:
        """The calibration that changes nothing."""
        return cls("identity", loss_kind, (1.0,) * num_classes, (0.0,) * num_classes)

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.scale)

    @property
    def temperature(self) -> float | None:
        """``T`` of a temperature (or identity) calibration; None for per-class Platt."""
        return 1.0 / self.scale[0] if self.method != "platt" else None

    def transform(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated logits ``(B, K)`` (float32, or float64 for float64 input)."""
        logits = _float(logits)
        self._check_width(logits.shape[-1])
        scale = torch.tensor(self.scale, dtype=logits.dtype, device=logits.device)
        bias = torch.tensor(self.bias, dtype=logits.dtype, device=logits.device)
        return logits * scale + bias

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities ``(B, K)`` from raw head logits ``(B, K)``.

        Example:
            >>> cal = Calibration("temperature", "ce", (0.5, 0.5), (0.0, 0.0))
            >>> cal.probabilities(torch.tensor([[2.0, 0.0]]))
            tensor([[0.7311, 0.2689]])
        """
        return probabilities_of(self.transform(logits), self.loss_kind)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted classes ``(B,)``: ``argmax_k z_k`` of the *uncalibrated* logits."""
        self._check_width(logits.shape[-1])
        return logits.argmax(dim=-1)

    def _check_width(self, k: int) -> None:
        if k != self.num_classes:
            raise ShapeError(
                f"logits have {k} classes but this calibration was fitted for "
                f"{self.num_classes}; refit it (multitask-unet calibrate) for this head"
            )


def probabilities_of(logits: torch.Tensor, loss_kind: str) -> torch.Tensor:
    """The heads' probability rule for ``loss_kind``, keeping float64 when given float64.

    Equals ``head.probabilities(logits)`` of a head with that ``loss_kind`` (softmax for
    ``"ce"``; ``sigmoid(z_k) / sum_j sigmoid(z_j)`` for ``"bce_ovr"``).
    """
    logits = _float(logits)
    if loss_kind == "ce":
        return logits.softmax(dim=-1)
    if loss_kind == "bce_ovr":
        scores = torch.sigmoid(logits)
        return scores / scores.sum(dim=-1, keepdim=True)
    raise ConfigError(f"loss_kind {loss_kind!r} is not one of {_KINDS}")


def calibrated_probabilities(
    logits: torch.Tensor, loss_kind: str, calibration: Calibration | None = None
) -> torch.Tensor:
    """Probabilities ``(B, K)`` of raw logits, calibrated when ``calibration`` is given."""
    if calibration is None:
        return probabilities_of(logits, loss_kind)
    if calibration.loss_kind != loss_kind:
        raise ConfigError(
            f"calibration was fitted for a {calibration.loss_kind!r} head, not {loss_kind!r}"
        )
    return calibration.probabilities(logits)


def fit_calibration(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    loss_kind: str = "ce",
    method: CalibrationMethod | Literal["auto"] = "auto",
) -> Calibration:
    """Fit a head's calibration on whole-case logits of labelled cases.

    Args:
        logits: ``(N, K)`` raw logits of the head (e.g. from the sliding-window predictor).
        labels: ``(N,)`` reference classes in ``[0, K)``.
        loss_kind: The head's ``loss_kind`` (``head.loss_kind``).
        method: ``"temperature"``, ``"platt"`` (``bce_ovr`` heads only) or ``"auto"``
            (temperature for ``"ce"``, Platt for ``"bce_ovr"``).

    Returns:
        The fitted :class:`Calibration`.
    """
    if method == "auto":
        method = "platt" if loss_kind == "bce_ovr" else "temperature"
    if method == "temperature":
        return fit_temperature(logits, labels, loss_kind=loss_kind)
    if method == "platt":
        if loss_kind != "bce_ovr":
            raise ConfigError(
                f"Platt scaling calibrates one-vs-rest (bce_ovr) heads; this head's loss_kind is "
                f"{loss_kind!r}: use method='temperature'"
            )
        return fit_platt(logits, labels)
    raise ConfigError(f"calibration method {method!r} is not one of auto, temperature, platt")


def fit_temperature(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    loss_kind: str = "ce",
    temperature_bounds: tuple[float, float] = (0.05, 20.0),
) -> Calibration:
    """Temperature scaling: the ``T`` in ``temperature_bounds`` minimising the NLL.

    Args:
        logits: ``(N, K)`` raw logits.
        labels: ``(N,)`` reference classes.
        loss_kind: ``"ce"`` or ``"bce_ovr"``; the probability rule the NLL is taken under.
        temperature_bounds: ``(low, high)``, ``0 < low < 1 < high``.

    Warns:
        UserWarning: the optimum lies on a bound (the logits carry almost no information about
            the labels, or far too few cases).
    """
    z, y = _check_inputs(logits, labels)
    low, high = temperature_bounds
    if not 0 < low < 1 < high < math.inf:
        raise ConfigError(f"temperature_bounds must satisfy 0 < low < 1 < high, got {(low, high)}")

    def nll(log_t: float) -> float:
        return _nll(z * math.exp(-log_t), y, loss_kind)

    grid = np.linspace(math.log(low), math.log(high), _GRID)
    values = [nll(g) for g in grid]
    best = int(np.argmin(values))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, _GRID - 1)]
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    log_t = float(result.x) if result.fun <= values[best] else float(grid[best])
    t = math.exp(log_t)
    if min(abs(log_t - math.log(low)), abs(log_t - math.log(high))) < 1e-3:
        warnings.warn(
            f"fitted temperature {t:.3g} lies on the bound {temperature_bounds}; the logits carry "
            f"little information about the {y.size} labels (check the cases and labels)",
            stacklevel=2,
        )
    k = z.shape[1]
    return Calibration(
        method="temperature",
        loss_kind=loss_kind,
        scale=(1.0 / t,) * k,
        bias=(0.0,) * k,
        n_cases=int(y.size),
        nll_before=_nll(z, y, loss_kind),
        nll_after=nll(log_t),
    )


def fit_platt(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    platt_scale_bounds: tuple[float, float] = (0.01, 100.0),
) -> Calibration:
    """Per-class Platt scaling of a one-vs-rest head: ``sigmoid(a_k z_k + b_k)`` per class.

    Args:
        logits: ``(N, K)`` raw one-vs-rest logits.
        labels: ``(N,)`` reference classes.
        platt_scale_bounds: ``(low, high)`` bounds of every ``a_k``, ``0 < low < high``.
    """
    z, y = _check_inputs(logits, labels)
    low, high = platt_scale_bounds
    if not 0 < low < high < math.inf:
        raise ConfigError(f"platt_scale_bounds must satisfy 0 < low < high, got {(low, high)}")
    scale, bias = [], []
    for k in range(z.shape[1]):
        a, b = _platt_1d(z[:, k], y == k, bounds=(low, high))
        scale.append(a)
        bias.append(b)
    return Calibration(
        method="platt",
        loss_kind="bce_ovr",
        scale=tuple(scale),
        bias=tuple(bias),
        n_cases=int(y.size),
        nll_before=_nll(z, y, "bce_ovr"),
        nll_after=_nll(z * np.array(scale) + np.array(bias), y, "bce_ovr"),
    )


def _platt_1d(
    score: np.ndarray, positive: np.ndarray, *, bounds: tuple[float, float]
) -> tuple[float, float]:
    """Fit ``sigmoid(a s + b)`` by BCE with Platt's targets; convex in ``(a, b)``."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    target = np.where(positive, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        x = params[0] * score + params[1]
        value = -np.mean(target * log_expit(x) + (1 - target) * log_expit(-x))
        residual = np.exp(log_expit(x)) - target
        return float(value), np.array([np.mean(residual * score), np.mean(residual)])

    start = np.array([min(max(1.0, bounds[0]), bounds[1]), 0.0])
    result = minimize(
        loss, start, jac=True, method="L-BFGS-B", bounds=[bounds, (None, None)],
        options={"ftol": 1e-12, "gtol": 1e-9, "maxiter": 500},
    )  # fmt: skip
    return float(result.x[0]), float(result.x[1])


def _nll(z: np.ndarray, y: np.ndarray, loss_kind: str) -> float:
    """Mean ``-log p_y`` in float64 under the head rule of ``loss_kind``."""
    rows = np.arange(y.size)
    if loss_kind == "ce":
        return float(-np.mean(log_softmax(z, axis=1)[rows, y]))
    if loss_kind == "bce_ovr":
        log_s = log_expit(z)
        return float(-np.mean(log_s[rows, y] - logsumexp(log_s, axis=1)))
    raise ConfigError(f"loss_kind {loss_kind!r} is not one of {_KINDS}")


def _check_inputs(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    z = _numpy(logits).astype(np.float64)
    y = _numpy(labels)
    if z.ndim != 2 or z.shape[1] < 2 or y.shape != (z.shape[0],):
        raise ShapeError(
            f"calibration needs logits (N, K >= 2) and labels (N,), got {z.shape} and {y.shape}"
        )
    if z.shape[0] == 0:
        raise ConfigError("calibration needs at least one labelled case; got none")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise ShapeError(
            f"labels must be integers in [0, {z.shape[1]}), got values from {y.min()} to {y.max()}"
        )
    if not np.all(np.isfinite(z)):
        raise ShapeError("logits must be finite; found NaN or inf (check the predictor's output)")
    return z, y.astype(np.int64)


def _numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _float(logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    return logits if logits.dtype == torch.float64 else logits.float()
