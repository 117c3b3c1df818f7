"""Bjøntegaard delta rate and delta PSNR between two rate–distortion curves.

BD-rate: the average relative rate difference of `test` against `anchor` at equal
quality, in percent (negative: `test` needs fewer bits). Both curves are fitted as
log(rate) as a function of quality, the fits are integrated over the quality interval
both curves cover, and the mean log difference d gives (exp(d) − 1)·100.
BD-PSNR (BD-quality): the mean quality difference at equal rate, fitted as quality
as a function of log(rate) over the common log-rate interval.

Fits (`method`):
- "pchip" (default): piecewise cubic Hermite interpolation through the points (monotone,
  no overshoot), the piecewise-cubic variant of the JVET common test conditions.
- "cubic": the original third-order polynomial least-squares fit (Bjøntegaard,
  VCEG-M33, 2001), kept for comparison with older papers.

Points per curve: the cubic fit needs 4; pchip needs 2 (with 2 points it is the straight
line between them in log-rate, so a 2- or 3-point curve gives a cruder but well-defined
BD figure; 4 or more is the usual practice). Quality is PSNR in dB or MS-SSIM in dB;
rate is bpp (any unit: only ratios matter).

`quality_at_rate` evaluates the same fit (quality as a function of log-rate) at given
rates: how a single RD point compares with a curve at its own rate.

References:
  G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
  VCEG-M33, 2001; F. Bossen et al., JVET common test conditions (piecewise cubic).
"""

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["METHODS", "MIN_POINTS", "bd_psnr", "bd_rate", "quality_at_rate"]

METHODS = ("pchip", "cubic")
MIN_POINTS = {"pchip": 2, "cubic": 4}


def _curve(rate: Sequence[float], quality: Sequence[float], name: str, method: str):
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; choose from {METHODS}")
    rate = np.asarray(rate, np.float64)
    quality = np.asarray(quality, np.float64)
    if rate.shape != quality.shape or rate.ndim != 1:
        raise ValueError(f"{name}: rate and quality must be two lists of equal length")
    if len(rate) < MIN_POINTS[method]:
        raise ValueError(
            f"{name}: the {method} fit needs at least {MIN_POINTS[method]} RD points, "
            f"got {len(rate)}"
        )
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(quality))):
        raise ValueError(f"{name}: RD points must be finite")
    if np.any(rate <= 0):
        raise ValueError(f"{name}: rates must be positive")
    order = np.argsort(rate)
    return np.log(rate[order]), quality[order]


def _fit(xs: np.ndarray, ys: np.ndarray, method: str):
    """y(x) fitted by `method` (already validated by `_curve`), with (low, high) → ∫y dx."""
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    if method == "cubic":
        polynomial = np.poly1d(np.polyfit(xs, ys, 3))
        antiderivative = polynomial.integ()
        return polynomial, lambda low, high: antiderivative(high) - antiderivative(low)
    if np.any(np.diff(xs) <= 0):
        raise ValueError(
            "pchip needs distinct values on the fitted axis (two RD points share one)"
        )
    spline = PchipInterpolator(xs, ys, extrapolate=False)
    return spline, spline.integrate


def _mean_over(xs, ys, low: float, high: float, method: str) -> float:
    """Mean of the fit y(x) over [low, high]."""
    _, integrate = _fit(xs, ys, method)
    return float(integrate(low, high)) / (high - low)


def _overlap(a: np.ndarray, b: np.ndarray, axis: str) -> tuple[float, float]:
    low, high = max(a.min(), b.min()), min(a.max(), b.max())
    if not high > low:
        raise ValueError(f"the two curves do not overlap in {axis}")
    return float(low), float(high)


def _mean_delta(anchor, test, method: str, along: str) -> float:
    """Mean of test's fit minus anchor's over the common interval of the `along` axis.

    along="quality": log-rate as a function of quality (BD-rate);
    along="rate": quality as a function of log-rate (BD-PSNR).
    """
    log_a, q_a = _curve(*anchor, "anchor", method)
    log_t, q_t = _curve(*test, "test", method)
    if along == "quality":
        (x_a, y_a), (x_t, y_t) = (q_a, log_a), (q_t, log_t)
    else:
        (x_a, y_a), (x_t, y_t) = (log_a, q_a), (log_t, q_t)
    low, high = _overlap(x_a, x_t, along)
    return _mean_over(x_t, y_t, low, high, method) - _mean_over(
        x_a, y_a, low, high, method
    )


def bd_rate(
    anchor_rate, anchor_quality, test_rate, test_quality, method="pchip"
) -> float:
    """BD-rate of `test` against `anchor`, in percent, over their common quality range."""
    anchor, test = (anchor_rate, anchor_quality), (test_rate, test_quality)
    return float((np.exp(_mean_delta(anchor, test, method, "quality")) - 1) * 100)


def bd_psnr(
    anchor_rate, anchor_quality, test_rate, test_quality, method="pchip"
) -> float:
    """BD-PSNR (BD-quality) of `test` against `anchor`, in dB, over the common rates."""
    anchor, test = (anchor_rate, anchor_quality), (test_rate, test_quality)
    return _mean_delta(anchor, test, method, "rate")


def quality_at_rate(rate, quality, at_rate, method="pchip") -> np.ndarray:
    """The curve's fitted quality at each of `at_rate` (NaN outside the curve's rates).

    The fit is BD-PSNR's: quality as a function of log-rate. No extrapolation: a rate
    below the curve's lowest or above its highest gets NaN.
    """
    log_rate, q = _curve(rate, quality, "curve", method)
    x = np.log(np.asarray(at_rate, np.float64))
    fitted, _ = _fit(log_rate, q, method)
    inside = (x >= log_rate[0]) & (x <= log_rate[-1])
    return np.where(inside, fitted(x), np.nan)
