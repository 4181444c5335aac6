"""Checking a problem's gradient against finite differences of its objective."""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._errors import ConfigError


@dataclass(frozen=True)
class GradientCheck:
    """Directional derivatives by the gradient and by finite differences.

    Attributes
    ----------
    analytic : ndarray, shape (n_directions,)
        ``grad J(z) . v`` for each random unit direction ``v``.
    numeric : ndarray, shape (n_directions,)
        The fourth-order central difference of ``J`` along ``v``.
    errors : ndarray, shape (n_directions,)
        ``|numeric - analytic| / max(|numeric|, |analytic|)``.
    step : float
    """

    analytic: np.ndarray
    numeric: np.ndarray
    errors: np.ndarray
    step: float

    @property
    def worst(self) -> float:
        return float(self.errors.max())

    def __str__(self):
        return (
            f"gradient check over {self.errors.size} random directions, step "
            f"{self.step:.1e}: worst relative error {self.worst:.2e}"
        )


def check_gradient(problem, z=None, *, n_directions=8, step=1e-4, seed=0):
    """Compare the problem's gradient with finite differences in random directions.

    Parameters
    ----------
    problem : Problem
        Anything callable as ``value, grad = problem(z)``.
    z : ndarray, shape (n_variables,), optional
        Where to check; default a seeded random starting point.
    n_directions : int
        Number of random unit directions ``v``, at least 1.
    step : float
        Finite-difference step ``h > 0`` along ``v``.
    seed : int

    Returns
    -------
    GradientCheck

    Raises
    ------
    ConfigError
        For ``n_directions < 1`` or a step that is not a finite positive number.

    Notes
    -----
    The difference quotient is the fourth-order central stencil

        (J(z - 2hv) - 8 J(z - hv) + 8 J(z + hv) - J(z + 2hv)) / (12 h),

    whose truncation error is ``O(h^4)``, so that with ``h = 1e-4`` the comparison
    is limited by rounding (about ``1e-12 |J| / h``) rather than by the stencil.
    Directions are avoided nowhere: near a kink of ReLU-type activations or of the lp
    loss with p = 1 the difference quotient is not a derivative.
    """
    if (
        isinstance(n_directions, bool)
        or not isinstance(n_directions, numbers.Integral)
        or n_directions < 1
    ):
        raise ConfigError(
            f"n_directions must be an integer >= 1, got {n_directions!r}: the check "
            "compares the gradient along that many random directions"
        )
    if not (
        isinstance(step, numbers.Real)
        and not isinstance(step, bool)
        and math.isfinite(step)
        and step > 0
    ):
        raise ConfigError(
            f"step must be a finite number > 0, got {step!r}: the finite-difference "
            "step h, e.g. 1e-4"
        )
    rng = np.random.default_rng(seed)
    if z is None:
        z = problem.initial_point(seed, 0.5)
        z = z + 0.1 * rng.standard_normal(z.shape)
    z = np.asarray(z, dtype=np.float64)
    _, grad = problem(z)
    analytic, numeric = [], []
    for _ in range(n_directions):
        v = rng.standard_normal(z.shape)
        v /= np.linalg.norm(v)
        f = [problem(z + c * step * v)[0] for c in (-2.0, -1.0, 1.0, 2.0)]
        numeric.append((f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * step))
        analytic.append(float(grad @ v))
    analytic = np.array(analytic)
    numeric = np.array(numeric)
    scale = np.maximum(np.maximum(abs(analytic), abs(numeric)), 1e-300)
    return GradientCheck(analytic, numeric, abs(numeric - analytic) / scale, step)
