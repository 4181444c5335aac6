"""Least-squares fits of the large-time studies: power laws and exponential decay.

Every fit here is ordinary least squares on a straight line, with a confidence
interval for the slope from Student's t-distribution:

    y_k = a + b x_k + e_k,   k = 1, ..., n,

with ``b`` and ``a`` minimising ``sum_k e_k^2``, the residual variance
``s^2 = sum_k e_k^2 / (n - 2)``, the standard error
``se(b) = s / sqrt(sum_k (x_k - mean x)^2)`` and the interval
``b +- t_{(1 + c)/2, n - 2} se(b)`` at confidence ``c``. This is the exact interval
when the residuals are independent and normal with one variance; for the curves of a
study (deterministic, not noisy) it measures how far the points are from a straight
line rather than a sampling error. With two points there is no residual degree of
freedom and the interval is infinite.

A power law ``y = C x^b`` is fitted on ``(log x, log y)``; an exponential decay
``y = C exp(-mu t)`` on ``(t, log y)`` over a window of ``t`` fixed in advance.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from ._errors import ConfigError

#: Confidence level of every interval unless told otherwise.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class LineFit:
    """A least-squares line ``y = intercept + slope x`` and its uncertainty.

    Attributes
    ----------
    slope, intercept : float
    slope_low, slope_high : float
        The confidence interval of the slope (infinite with two points).
    intercept_low, intercept_high : float
        The confidence interval of the intercept.
    slope_stderr, intercept_stderr : float
    confidence : float
    n_points : int
    dof : int
        Residual degrees of freedom ``n - 2``.
    residual_std : float
        ``s``, the standard deviation of the residuals (NaN with two points).
    """

    slope: float
    intercept: float
    slope_low: float
    slope_high: float
    intercept_low: float
    intercept_high: float
    slope_stderr: float
    intercept_stderr: float
    confidence: float
    n_points: int
    dof: int
    residual_std: float

    def covers(self, value: float) -> bool:
        """Whether the slope's confidence interval contains ``value``."""
        return self.slope_low <= value <= self.slope_high

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self, digits: int = 3) -> str:
        """``-0.97 (95% CI [-1.02, -0.92], 6 points)``."""
        pct = f"{100 * self.confidence:g}%"
        return (
            f"{self.slope:.{digits}g} ({pct} CI [{self.slope_low:.{digits}g}, "
            f"{self.slope_high:.{digits}g}], {self.n_points} points)"
        )


def fit_line(x, y, confidence: float = CONFIDENCE) -> LineFit:
    """Least-squares line through the points ``(x_k, y_k)``.

    Parameters
    ----------
    x, y : ndarray, shape (n_points,)
        At least two points with two distinct ``x``; all finite.
    confidence : float
        Level of the intervals, in (0, 1).

    Returns
    -------
    LineFit

    Raises
    ------
    ConfigError
        With fewer than two finite points, or all ``x`` equal.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ConfigError(
            f"a fit needs as many x as y values, got {x.size} and {y.size}"
        )
    if not 0 < confidence < 1:
        raise ConfigError(f"the confidence level must be in (0, 1), got {confidence}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ConfigError("a fit needs finite values: drop the NaN or infinite points")
    n = x.size
    if n < 2 or np.ptp(x) == 0:
        raise ConfigError(
            "a line fit needs at least two points with different x: give more values"
        )
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    intercept = float(ym - slope * xm)
    dof = n - 2
    if dof > 0:
        resid = y - (intercept + slope * x)
        s = math.sqrt(float(np.sum(resid**2)) / dof)
        se_b = s / math.sqrt(sxx)
        se_a = s * math.sqrt(1.0 / n + xm * xm / sxx)
        q = float(scipy.stats.t.ppf(0.5 * (1.0 + confidence), dof))
        half_b, half_a = q * se_b, q * se_a
    else:
        s = se_b = se_a = math.nan
        half_b = half_a = math.inf
    return LineFit(
        slope=slope,
        intercept=intercept,
        slope_low=slope - half_b,
        slope_high=slope + half_b,
        intercept_low=intercept - half_a,
        intercept_high=intercept + half_a,
        slope_stderr=se_b,
        intercept_stderr=se_a,
        confidence=float(confidence),
        n_points=int(n),
        dof=int(dof),
        residual_std=s,
    )


def fit_power_law(x, y, confidence: float = CONFIDENCE) -> LineFit:
    """The exponent ``b`` of ``y = C x^b``: a line fit of ``log y`` on ``log x``.

    Parameters
    ----------
    x, y : ndarray, shape (n_points,)
        Positive values.

    Returns
    -------
    LineFit
        ``slope`` is ``b``, ``intercept`` is ``log C``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if np.any(x <= 0) or np.any(y <= 0):
        raise ConfigError("a power-law fit needs positive values on both axes")
    return fit_line(np.log(x), np.log(y), confidence)


@dataclass(frozen=True)
class DecayFit:
    """An exponential decay ``y = C exp(-mu t)`` fitted on a window of ``t``.

    Attributes
    ----------
    mu, C : float
        The rate and the constant.
    mu_low, mu_high : float
        Confidence interval of ``mu``.
    C_low, C_high : float
        Confidence interval of ``C`` (the exponential of the intercept's).
    window : tuple of float
        The window ``[t_start, t_end]`` the points were taken from.
    n_points : int
        Points inside the window with ``y > 0``.
    line : LineFit
        The underlying fit of ``log y`` on ``t`` (its slope is ``-mu``).
    """

    mu: float
    C: float
    mu_low: float
    mu_high: float
    C_low: float
    C_high: float
    window: tuple
    n_points: int
    line: LineFit


def fit_decay(t, y, window, confidence: float = CONFIDENCE) -> DecayFit:
    """Fit ``y = C exp(-mu t)`` by least squares on ``log y`` for ``t`` in a window.

    Parameters
    ----------
    t, y : ndarray, shape (n_points,)
    window : (float, float)
        The closed interval of ``t`` used; points outside it, and points with
        ``y <= 0`` (no logarithm), are left out.

    Returns
    -------
    DecayFit

    Raises
    ------
    ConfigError
        With fewer than two usable points in the window.
    """
    t = np.asarray(t, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    a, b = float(window[0]), float(window[1])
    if not a < b:
        raise ConfigError(f"a fit window needs start < end, got [{a}, {b}]")
    keep = (t >= a) & (t <= b) & (y > 0) & np.isfinite(y)
    if keep.sum() < 2:
        raise ConfigError(
            f"the window [{a:g}, {b:g}] holds {int(keep.sum())} usable points; a "
            "decay fit needs two or more: widen the window or use smaller steps"
        )
    line = fit_line(t[keep], np.log(y[keep]), confidence)
    return DecayFit(
        mu=-line.slope,
        C=math.exp(line.intercept),
        mu_low=-line.slope_high,
        mu_high=-line.slope_low,
        C_low=_exp(line.intercept_low),
        C_high=_exp(line.intercept_high),
        window=(a, b),
        n_points=int(keep.sum()),
        line=line,
    )


def _exp(v: float) -> float:
    if v == math.inf:
        return math.inf
    if v == -math.inf:
        return 0.0
    return math.exp(min(v, 700.0))


#: The default window rule of the turnpike study, as fractions of the smallest T.
WINDOW_FRACTIONS = (0.1, 0.5)


def window_rule(horizons, fractions=WINDOW_FRACTIONS) -> tuple[float, float]:
    """The fit window fixed in advance from the horizons alone.

    Parameters
    ----------
    horizons : sequence of float
        The horizons ``T`` of the study.
    fractions : (float, float)
        ``0 <= f0 < f1 <= 1``.

    Returns
    -------
    (float, float)
        ``[f0 T_min, f1 T_min]`` with ``T_min`` the smallest horizon: one window for
        every ``T``, inside every horizon, that depends on no computed value.
    """
    f0, f1 = (float(f) for f in fractions)
    if not 0 <= f0 < f1 <= 1:
        raise ConfigError(
            f"window fractions must satisfy 0 <= f0 < f1 <= 1, got {fractions}"
        )
    t_min = min(float(t) for t in horizons)
    return (f0 * t_min, f1 * t_min)


def spread(values) -> float:
    """``(max - min) / mean`` of positive values (NaN when the mean is not > 0)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or not v.mean() > 0:
        return math.nan
    return float((v.max() - v.min()) / v.mean())
