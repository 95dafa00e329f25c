"""Calibration fitted on the validation split: a softmax temperature, or an age interval."""
from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15
INTERVAL_COVERAGE = 0.8   # the age interval holds the 10th..90th percentile of validation residuals


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(targets, dtype=int)]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The T minimising the validation NLL of softmax(logits / T), searched over log T."""
    from scipy.optimize import minimize_scalar

    if len(logits) == 0:
        return 1.0
    found = minimize_scalar(lambda log_t: nll(logits, targets, math.exp(log_t)),
                            bounds=(math.log(low), math.log(high)), method="bounded",
                            options={"xatol": 1e-4})
    return float(math.exp(found.x))


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """|accuracy - confidence| of the top class, averaged over equal-width bins weighted by their size."""
    if len(probs) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(probs))


def fit_age_interval(predicted: np.ndarray, targets: np.ndarray, coverage: float = INTERVAL_COVERAGE) -> dict:
    """Offsets in years added to a prediction: the residual (true - predicted) quantiles around it."""
    if len(predicted) == 0:
        return {"low": -5.0, "high": 5.0, "coverage": coverage}
    residual = np.asarray(targets, float) - np.asarray(predicted, float)
    tail = (1.0 - coverage) / 2.0
    low, high = np.quantile(residual, [tail, 1.0 - tail])
    return {"low": round(float(low), 3), "high": round(float(high), 3), "coverage": coverage}


def years_from(outputs: np.ndarray) -> np.ndarray:
    """What the app shows: the regression output, never below zero (hub.models.AttributeModel._age)."""
    return np.maximum(np.asarray(outputs, float).reshape(len(outputs), -1)[:, 0], 0.0)
