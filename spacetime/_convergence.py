"""Convergence of the time discretisation: observed orders of the schemes.

Two studies, both per Runge–Kutta scheme:

- *forward*: controls are given smooth functions of time; the flow of a few samples
  computed by the kernels with ``L`` steps is compared with an accurate reference
  solution of the same ODE (``scipy.integrate.solve_ivp``, DOP853) as ``L`` doubles.
  The controls are sampled at every stage time ``t_k + c_s dt_k`` (mode ``stage``:
  each stage has its own parameter set), or frozen per step at the left end
  ``u_k = u(t_k)`` (mode ``left``) or at the midpoint ``u_k = u(t_k + dt_k / 2)``
  (mode ``mid``), as in training.
- *trained*: one learning problem is solved at ``L, 2L, 4L, ...`` layers, each
  warm-started from the coarser solution, and the rate at which the optimal value and
  the trained controls settle is read off the ratio of successive differences.
- *adjoint*: the exact discrete gradient (discretise, then optimise) is compared with
  the gradient of the continuous risk for the same piecewise-constant controls
  (optimise, then discretise: the adjoint ODE solved accurately), as ``dt -> 0``.

The results go to an HDF5 analysis file, a CSV and a Markdown table, and PNG figures.
"""

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import grids

from . import _io
from ._core import build_core, flow
from ._errors import ConfigError
from ._registry import ACTIVATIONS, FIELDS, SCHEMES, lookup

log = logging.getLogger(__name__)

FORMAT = "spacetime-convergence"
FORMAT_VERSION = 1

MODES = ("stage", "left", "mid")
ERROR_FLOOR = 1e-9  # errors below this are not used in the fits (reference accuracy)
MAX_REFINEMENTS = 14  # 8 steps doubled 13 times is 65536 steps, the finest allowed
MAX_STEPS = 2**16  # finest forward grid

_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "identity": lambda z: z,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "softplus": lambda z: np.logaddexp(0.0, z),
}


def expected_order(scheme: str, mode: str) -> int:
    """The order a scheme shows against the smooth-control ODE in a sampling mode.

    Stage sampling keeps the scheme's classical order ``p``. Controls frozen per
    step differ from the smooth ones by ``O(dt)``, which caps the order at 1 for
    left-end values; midpoint values have an ``O(dt^2)`` effect on the solution (the
    difference has zero mean to first order on every step), which caps it at 2.
    """
    p = SCHEMES[scheme].order
    if mode == "stage":
        return p
    if mode == "left":
        return 1
    return min(p, 2)


# ---------------------------------------------------------------------------
# Smooth controls and models whose stages sample them


@dataclass(frozen=True)
class SmoothControls:
    """Controls ``u(t) = U0 cos(t) + U1 sin(2 t)`` for every parameter block.

    Attributes
    ----------
    field : str
    width, hidden : int
        State width ``d`` and the bottleneck's hidden width ``h``.
    u0, u1 : ndarray, shape (n_set,)
        One parameter set each, in the kernels' storage order ((W, b) or (W, A, b)).
    """

    field: str
    width: int
    hidden: int
    u0: np.ndarray
    u1: np.ndarray

    @classmethod
    def random(cls, field_name, width, hidden, seed=0, scale=1.0):
        """Coefficients drawn normal with std ``scale / sqrt(fan_in)``."""
        rng = np.random.default_rng(seed)
        f = lookup(FIELDS, field_name, "vector field")
        h = hidden if f.name == "bottleneck" else width
        if f.name == "bottleneck":
            shapes = [(width, h), (h, width), (h,)]
        else:
            shapes = [(width, width), (width,)]

        def draw():
            parts = []
            for shape in shapes:
                std = scale / math.sqrt(shape[-1] if len(shape) == 2 else 1)
                parts.append(rng.normal(0.0, std, size=shape).ravel())
            return np.concatenate(parts)

        return cls(f.name, width, h, draw(), draw())

    @property
    def n_set(self) -> int:
        return self.u0.size

    def __call__(self, t):
        """The parameter set at time(s) ``t``: shape (n_set,) or (len(t), n_set)."""
        t = np.asarray(t, dtype=np.float64)
        return np.multiply.outer(np.cos(t), self.u0) + np.multiply.outer(
            np.sin(2.0 * t), self.u1
        )

    def field_value(self, activation, t, y):
        """``f(y, u(t))`` for a batch of states ``y``, shape (n_samples, width)."""
        act = _NUMPY_ACTIVATIONS[activation]
        u = self(t)
        n, h = self.width, self.hidden
        if self.field == "bottleneck":
            w = u[: n * h].reshape(n, h)
            a = u[n * h : 2 * n * h].reshape(h, n)
            b = u[2 * n * h :]
            return act(y @ a.T + b) @ w.T
        w = u[: n * n].reshape(n, n)
        b = u[n * n :]
        if self.field == "inside":
            return act(y) @ w.T + b
        return act(y @ w.T + b)


class StageModel:
    """A neural ODE whose every Runge–Kutta stage has its own control set.

    The diagnostic counterpart of :class:`~spacetime.NeuralODE` for controls that
    vary within a step: stage ``s`` of step ``k`` uses ``u_{k,s}``, meant as the
    control at ``t_k + c_s dt_k``. It has what :class:`~spacetime.Problem` needs
    (``core``, ``embed``, ``n_params``, ``init_params``, ``control_norm2``).

    Parameters
    ----------
    n_inputs, width : int
    time : grids.TimeGrid
    field, activation, scheme : str
    hidden : int
        Bottleneck hidden width (0 = the width).

    Notes
    -----
    The control norm is the quadrature of ``int_0^T |u|^2`` by the scheme's own
    weights, ``sum_k dt_k sum_s b_s |u_{k,s}|^2``.
    """

    def __init__(
        self,
        n_inputs,
        width,
        time,
        field="inside",
        activation="tanh",
        scheme="rk4",
        hidden=0,
        leaky_slope=0.01,
    ):
        f = lookup(FIELDS, field, "vector field")
        a = lookup(ACTIVATIONS, activation, "activation")
        s = lookup(SCHEMES, scheme, "time scheme")
        self.n_inputs, self.width, self.time = int(n_inputs), int(width), time
        self.hidden = int(hidden or width) if f.name == "bottleneck" else int(width)
        n = time.n_steps
        per_set = (
            2 * width * self.hidden + self.hidden
            if f.name == "bottleneck"
            else width * width + width
        )
        self.n_set = per_set
        weight = np.repeat(
            (np.asarray(time.steps)[:, None] * s.b[None, :]).ravel(), per_set
        )
        self.core = build_core(
            f,
            a,
            leaky_slope,
            s,
            [width] * (n + 1),
            [self.hidden] * n,
            time.steps,
            norm_weight=weight,
            per_stage=True,
        )
        self.scheme = s

    @property
    def n_params(self) -> int:
        return self.core.n_params

    def stage_times(self) -> np.ndarray:
        """``t_k + c_s dt_k``, shape (n_steps, n_stages)."""
        t = np.asarray(self.time.nodes[:-1])
        dt = np.asarray(self.time.steps)
        return t[:, None] + self.scheme.c[None, :] * dt[:, None]

    def sample(self, controls) -> np.ndarray:
        """Flat parameters ``u_{k,s} = u(t_k + c_s dt_k)``, shape (n_params,).

        ``controls`` maps times of shape (m,) to parameter sets of shape (m, n_set).
        """
        return np.ascontiguousarray(controls(self.stage_times().ravel()).ravel())

    def init_params(self, seed=0, scale=0.1) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return scale * rng.standard_normal(self.n_params) / math.sqrt(self.width)

    def control_norm2(self, theta) -> float:
        return float(np.dot(self.core.norm_weight, theta * theta))

    def embed(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        out = np.zeros((x.shape[0], self.width))
        out[:, : self.n_inputs] = x
        return out


def piecewise_constant(
    controls, field_name, scheme, time, width, hidden, where, activation="tanh"
):
    """Core and flat parameters of controls frozen per step.

    Parameters
    ----------
    where : {"left", "mid"}
        ``u_k = u(t_k)`` or ``u_k = u(t_k + dt_k / 2)``.

    Returns
    -------
    core : Core
    theta : ndarray, shape (n_steps * n_set,)
    """
    f = FIELDS[field_name]
    n = time.n_steps
    core = build_core(
        f,
        ACTIVATIONS[activation],
        0.0,
        SCHEMES[scheme],
        [width] * (n + 1),
        [hidden] * n,
        time.steps,
    )
    t = np.asarray(time.nodes[:-1])
    if where == "mid":
        t = t + 0.5 * np.asarray(time.steps)
    return core, np.ascontiguousarray(controls(t).ravel())


# ---------------------------------------------------------------------------
# Forward study


def reference_solution(controls, activation, x0, T):
    """``x(T)`` of ``x' = f(x, u(t))`` by DOP853 (rtol 1e-12, atol 1e-14).

    Returns
    -------
    ndarray, shape (n_samples, width)
    """
    from scipy.integrate import solve_ivp

    shape = x0.shape

    def rhs(t, y):
        return controls.field_value(activation, t, y.reshape(shape)).ravel()

    sol = solve_ivp(
        rhs, (0.0, T), x0.ravel(), method="DOP853", rtol=1e-12, atol=1e-14
    )
    if not sol.success:
        raise RuntimeError(f"the reference solution failed: {sol.message}")
    return sol.y[:, -1].reshape(shape)


def fit_order(dt, errors, floor=ERROR_FLOOR) -> tuple[float, int]:
    """Least-squares slope of ``log error`` against ``log dt``.

    Only points with ``error > floor`` are used.

    Returns
    -------
    order : float
        NaN with fewer than two usable points.
    n_points : int
    """
    dt = np.asarray(dt, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    use = errors > floor
    if use.sum() < 2:
        return math.nan, int(use.sum())
    slope = np.polyfit(np.log(dt[use]), np.log(errors[use]), 1)[0]
    return float(slope), int(use.sum())


@dataclass
class ForwardResult:
    """Errors of one scheme, field and sampling mode under refinement.

    Attributes
    ----------
    n_steps : ndarray, shape (n_levels,)
    dt : ndarray, shape (n_levels,)
    errors : ndarray, shape (n_levels,)
        ``max_i |x_i^L - x_i(T)|_inf`` over the samples.
    order : float
        The fitted observed order; ``expected`` the one theory predicts.
    """

    scheme: str
    field: str
    mode: str
    n_steps: np.ndarray
    dt: np.ndarray
    errors: np.ndarray
    order: float
    n_fit: int
    expected: int


def forward_errors(
    scheme,
    field_name,
    mode,
    n_steps,
    *,
    T=1.0,
    width=3,
    hidden=2,
    n_samples=4,
    activation="tanh",
    seed=0,
    reference=None,
) -> ForwardResult:
    """Errors of the flow at ``T`` with smooth controls, for each number of steps.

    Parameters
    ----------
    mode : {"stage", "left", "mid"}
        How the controls are sampled (see the module's description).
    n_steps : sequence of int
        The numbers of uniform steps ``L``.
    reference : ndarray, shape (n_samples, width), optional
        A precomputed reference ``x(T)`` for the same seed and sizes.

    Notes
    -----
    With stage sampling, step ``k`` is the scheme applied to the non-autonomous ODE,

        Y_s = X^k + dt sum_{j<s} a_sj K_j,   K_s = f(Y_s, u(t_k + c_s dt)),
        X^{k+1} = X^k + dt sum_s b_s K_s,

    with ``f`` in the kernels' form; the error ``max |X^L - x(T)|`` is then
    ``O(dt^p)``.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown sampling mode {mode!r}: choose one of {MODES}")
    if activation not in _NUMPY_ACTIVATIONS:
        raise ConfigError(
            f"activation {activation!r} is not smooth enough for an order study: "
            f"choose one of {', '.join(sorted(_NUMPY_ACTIVATIONS))}"
        )
    controls = SmoothControls.random(field_name, width, hidden, seed)
    rng = np.random.default_rng(seed + 1)
    x0 = np.ascontiguousarray(rng.normal(size=(n_samples, width)))
    if reference is None:
        reference = reference_solution(controls, activation, x0, T)
    errors, dts = [], []
    for n in n_steps:
        tg = grids.time_grid(T, int(n))
        if mode == "stage":
            model = StageModel(
                width, width, tg, field_name, activation, scheme, controls.hidden
            )
            core, theta = model.core, model.sample(controls)
        else:
            core, theta = piecewise_constant(
                controls, field_name, scheme, tg, width, controls.hidden, mode,
                activation,
            )
        xL = flow(core, theta, x0)[-1]
        errors.append(float(np.max(np.abs(xL - reference))))
        dts.append(T / n)
    dts, errors = np.array(dts), np.array(errors)
    order, n_fit = fit_order(dts, errors)
    return ForwardResult(
        scheme,
        field_name,
        mode,
        np.asarray(n_steps, dtype=np.int64),
        dts,
        errors,
        order,
        n_fit,
        expected_order(scheme, mode),
    )


# ---------------------------------------------------------------------------
# Continuous adjoint against the exact discrete gradient


def _act_and_slope(activation, z):
    if activation == "tanh":
        t = np.tanh(z)
        return t, 1.0 - t * t
    if activation == "identity":
        return z, np.ones_like(z)
    if activation == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        return s, s * (1.0 - s)
    s = 0.5 * (1.0 + np.tanh(0.5 * z))  # softplus' = sigmoid
    return np.logaddexp(0.0, z), s


def _field_adjoint(field_name, activation, n, h, u, y, lam_):
    """``f(y, u)``, ``-(df/dy)^T lam`` and ``(df/du)^T lam`` summed over samples.

    Parameters
    ----------
    u : ndarray, shape (n_set,)
    y, lam_ : ndarray, shape (n_samples, n)

    Returns
    -------
    f, minus_jt : ndarray, shape (n_samples, n)
    gu : ndarray, shape (n_set,)
    """
    if field_name == "bottleneck":
        w = u[: n * h].reshape(n, h)
        a = u[n * h : 2 * n * h].reshape(h, n)
        b = u[2 * n * h :]
        s, ds = _act_and_slope(activation, y @ a.T + b)
        r = ds * (lam_ @ w)
        gu = np.concatenate([(lam_.T @ s).ravel(), (r.T @ y).ravel(), r.sum(0)])
        return s @ w.T, -(r @ a), gu
    w = u[: n * n].reshape(n, n)
    b = u[n * n :]
    if field_name == "inside":
        s, ds = _act_and_slope(activation, y)
        gu = np.concatenate([(lam_.T @ s).ravel(), lam_.sum(0)])
        return s @ w.T + b, -ds * (lam_ @ w), gu
    s, ds = _act_and_slope(activation, y @ w.T + b)
    q = ds * lam_
    gu = np.concatenate([(q.T @ y).ravel(), q.sum(0)])
    return s, -(q @ w), gu


def continuous_gradient(field_name, activation, n, h, time, theta, x0, p, target):
    """Gradient of the continuous risk for piecewise-constant controls.

    The risk is ``R(u) = (1/N) sum_i 1/2 |p x_i(T) - y_i|^2`` for the exact flow of
    ``x' = f(x, u_k)`` on ``[t_k, t_{k+1})``. Its gradient is

        dR/du_k = int_{t_k}^{t_{k+1}} sum_i (df/du)^T(x_i(t), u_k) lam_i(t) dt,

    with the adjoint ``lam' = -(df/dx)^T lam``, ``lam_i(T) = p^T (p x_i(T) - y_i)/N``:
    optimise, then discretise, here with DOP853 (rtol 1e-12, atol 1e-14) on each
    interval, the state recomputed backwards from its value at ``t_{k+1}``.

    Parameters
    ----------
    theta : ndarray, shape (n_steps * n_set,)
    x0 : ndarray, shape (n_samples, n)
    p : ndarray, shape (n_outputs, n)
    target : ndarray, shape (n_samples, n_outputs)

    Returns
    -------
    risk : float
    grad : ndarray, shape (n_steps * n_set,)
    """
    from scipy.integrate import solve_ivp

    n_samples = x0.shape[0]
    L = time.n_steps
    u = np.asarray(theta).reshape(L, -1)
    nodes = np.asarray(time.nodes)
    size = n_samples * n
    tol = {"method": "DOP853", "rtol": 1e-12, "atol": 1e-14}
    levels = [np.array(x0, dtype=np.float64)]
    for k in range(L):

        def fwd(t, y, k=k):
            f, _, _ = _field_adjoint(
                field_name, activation, n, h, u[k], y.reshape(n_samples, n),
                np.zeros((n_samples, n)),
            )
            return f.ravel()

        sol = solve_ivp(fwd, (nodes[k], nodes[k + 1]), levels[-1].ravel(), **tol)
        levels.append(sol.y[:, -1].reshape(n_samples, n))
    resid = levels[-1] @ p.T - target
    risk = 0.5 * float(np.sum(resid * resid)) / n_samples
    lam_ = resid @ p / n_samples
    grad = np.zeros_like(u)
    n_set = u.shape[1]
    for k in range(L - 1, -1, -1):

        def bwd(t, z, k=k):
            y = z[:size].reshape(n_samples, n)
            lm = z[size : 2 * size].reshape(n_samples, n)
            f, mjt, gu = _field_adjoint(field_name, activation, n, h, u[k], y, lm)
            return np.concatenate([f.ravel(), mjt.ravel(), -gu])

        z_end = np.concatenate([levels[k + 1].ravel(), lam_.ravel(), np.zeros(n_set)])
        sol = solve_ivp(bwd, (nodes[k + 1], nodes[k]), z_end, **tol)
        z = sol.y[:, -1]
        lam_ = z[size : 2 * size].reshape(n_samples, n)
        grad[k] = z[2 * size :]
    return risk, grad.ravel()


@dataclass
class AdjointResult:
    """Gap between the exact discrete gradient and the continuous one.

    Attributes
    ----------
    n_steps, dt : ndarray, shape (n_levels,)
    gaps : ndarray, shape (n_levels,)
        ``|g_discrete - g_continuous| / |g_continuous|`` (Euclidean norms).
    order : float
        The fitted rate at which the gap closes.
    """

    scheme: str
    field: str
    n_steps: np.ndarray
    dt: np.ndarray
    gaps: np.ndarray
    order: float
    n_fit: int


def adjoint_gap(
    scheme,
    field_name,
    n_steps,
    *,
    T=1.0,
    width=3,
    hidden=2,
    n_samples=4,
    n_outputs=2,
    activation="tanh",
    seed=0,
) -> AdjointResult:
    """How fast the exact discrete gradient approaches the continuous gradient.

    For each ``L``, the smooth controls are frozen at the step midpoints and the
    gradient of the discrete risk (the kernels' reverse pass, discretise then
    optimise) is compared with the gradient of the continuous risk for the same
    piecewise-constant controls (:func:`continuous_gradient`, optimise then
    discretise, solved accurately). The gap closes at the scheme's order: the
    discrete gradient is the derivative of a discrete risk that is itself within
    ``O(dt^p)`` of the continuous one.
    """
    from ._core import risk_and_grad
    from ._registry import LOSSES

    controls = SmoothControls.random(field_name, width, hidden, seed)
    rng = np.random.default_rng(seed + 2)
    x0 = np.ascontiguousarray(rng.normal(size=(n_samples, width)))
    p = rng.normal(size=(n_outputs, width)) / math.sqrt(width)
    target = np.ascontiguousarray(rng.normal(size=(n_samples, n_outputs)))
    gaps, dts = [], []
    for n in n_steps:
        tg = grids.time_grid(T, int(n))
        core, theta = piecewise_constant(
            controls, field_name, scheme, tg, width, controls.hidden, "mid",
            activation,
        )
        g_disc = risk_and_grad(
            core, theta, p, np.zeros(n_outputs), x0, target,
            LOSSES["squared"].code, 2.0,
        )[1]
        _, g_cont = continuous_gradient(
            field_name, activation, width, controls.hidden, tg, theta, x0, p, target
        )
        gaps.append(float(np.linalg.norm(g_disc - g_cont) / np.linalg.norm(g_cont)))
        dts.append(T / n)
    dts, gaps = np.array(dts), np.array(gaps)
    order, n_fit = fit_order(dts, gaps)
    return AdjointResult(
        scheme, field_name, np.asarray(n_steps, np.int64), dts, gaps, order, n_fit
    )


# ---------------------------------------------------------------------------
# Trained study


def refine_controls(theta, n_steps) -> np.ndarray:
    """Piecewise-constant controls on the grid halved: each layer's set twice.

    Parameters
    ----------
    theta : ndarray, shape (n_steps * n_set,)

    Returns
    -------
    ndarray, shape (2 * n_steps * n_set,)
    """
    return np.ascontiguousarray(
        np.repeat(np.asarray(theta).reshape(n_steps, -1), 2, axis=0).ravel()
    )


#: The arrays of a :class:`TrainedResult`, one dataset each in ``/trained/<scheme>``.
TRAINED_ARRAYS = (
    "n_steps",
    "objective",
    "risk",
    "grad_norm",
    "n_iter",
    "objective_diff",
    "control_diff",
    "objective_rate",
    "control_rate",
)


@dataclass
class TrainedResult:
    """Optimal values and controls of one problem at doubling numbers of layers.

    Attributes
    ----------
    n_steps : ndarray, shape (n_levels,)
    objective, risk : ndarray, shape (n_levels,)
    objective_diff : ndarray, shape (n_levels - 1,)
        ``|J_{2L} - J_L|``.
    control_diff : ndarray, shape (n_levels - 1,)
        ``||R u_L - u_{2L}||`` in the discrete ``L^2(0, T)`` norm of the finer grid,
        ``R`` repeating each layer's controls twice.
    objective_rate, control_rate : ndarray, shape (n_levels - 2,)
        ``log2`` of the ratios of successive differences: the observed orders.
    grad_norm : ndarray, shape (n_levels,)
        Gradient norm at each solution (how well it was solved).
    thetas : list of ndarray
        The trained controls, shape (n_steps[j] * n_set,) each.
    """

    scheme: str
    n_steps: np.ndarray
    objective: np.ndarray
    risk: np.ndarray
    grad_norm: np.ndarray
    n_iter: np.ndarray
    objective_diff: np.ndarray
    control_diff: np.ndarray
    objective_rate: np.ndarray
    control_rate: np.ndarray
    thetas: list = field(default_factory=list)

    @property
    def final_objective_rate(self) -> float:
        return float(self.objective_rate[-1]) if self.objective_rate.size else math.nan

    @property
    def final_control_rate(self) -> float:
        return float(self.control_rate[-1]) if self.control_rate.size else math.nan


def _rates(diffs):
    diffs = np.asarray(diffs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(diffs[:-1] / diffs[1:])


def trained_study(
    scheme,
    *,
    n_levels=4,
    first_steps=4,
    n_samples=100,
    width=3,
    lam=1e-2,
    T=1.0,
    field_name="inside",
    activation="tanh",
    max_iter=3000,
    gtol=1e-10,
    seed=0,
) -> TrainedResult:
    """Train one problem at ``L, 2L, 4L, ...`` layers, each from the coarser optimum.

    The problem: the spheres data in the plane (two classes), zero-padded to
    ``width``, logistic loss, control weight ``lam``, a fixed output map drawn from
    ``seed``; L-BFGS-B to a gradient max-norm ``gtol``.

    Notes
    -----
    The optimal values ``J_L`` of a consistent discretisation of order ``r`` behave
    like ``J + C dt^r``, so ``(J_L - J_{2L}) / (J_{2L} - J_{4L}) -> 2^r``; the
    reported rate is ``log2`` of that ratio, and likewise for the controls with
    ``||R u_L - u_{2L}||``.
    """
    from ._data import spheres
    from ._model import NeuralODE
    from ._problem import Problem
    from ._solve import solve

    x, y = spheres(n_samples, seed=seed, dim=2)
    y = (y > 0).astype(np.int64)
    theta = None
    out = {k: [] for k in ("objective", "risk", "grad_norm", "n_iter", "theta")}
    steps = [first_steps * 2**j for j in range(n_levels)]
    for n in steps:
        model = NeuralODE(
            2, width, grids.time_grid(T, n), field=field_name,
            activation=activation, scheme=scheme,
        )
        problem = Problem(
            model, x, y, loss="logistic", lam=lam, train_output=False,
            output_seed=seed,
        )
        z0 = None if theta is None else refine_controls(theta, n // 2)
        result = solve(
            problem,
            z0,
            max_iter=max_iter,
            gtol=gtol,
            ftol=1e-15,
            seed=seed,
            init_scale=0.5,
            handle_interrupt=False,
        )
        ev = result.evaluate()
        theta = result.theta.copy()
        out["objective"].append(ev["objective"])
        out["risk"].append(ev["risk"])
        out["grad_norm"].append(float(np.max(np.abs(problem(result.z)[1]))))
        out["n_iter"].append(result.n_iter)
        out["theta"].append(theta)
        log.info(
            "%s, L = %d: J = %.12g after %d iterations (%s)",
            scheme, n, ev["objective"], result.n_iter, result.status,
        )
    obj = np.array(out["objective"])
    obj_diff = np.abs(np.diff(obj))
    ctl_diff = []
    for j in range(n_levels - 1):
        fine_dt = T / steps[j + 1]
        d = refine_controls(out["theta"][j], steps[j]) - out["theta"][j + 1]
        ctl_diff.append(math.sqrt(fine_dt * float(np.dot(d, d))))
    ctl_diff = np.array(ctl_diff)
    return TrainedResult(
        scheme,
        np.array(steps, dtype=np.int64),
        obj,
        np.array(out["risk"]),
        np.array(out["grad_norm"]),
        np.array(out["n_iter"], dtype=np.int64),
        obj_diff,
        ctl_diff,
        _rates(obj_diff),
        _rates(ctl_diff),
        out["theta"],
    )


# ---------------------------------------------------------------------------
# The whole study, its files and its table


@dataclass
class ConvergenceStudy:
    """Everything :func:`convergence_study` computed, and where it was written."""

    forward: list
    trained: list
    settings: dict
    paths: dict = field(default_factory=dict)
    adjoint: list = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per forward series and per trained scheme (the table's rows)."""
        rows = []
        for r in self.forward:
            rows.append(
                {
                    "study": "forward",
                    "mode": r.mode,
                    "field": r.field,
                    "scheme": r.scheme,
                    "expected": r.expected,
                    "observed": r.order,
                    "points": r.n_fit,
                    "finest_error": float(r.errors[-1]),
                }
            )
        for a in self.adjoint:
            rows.append(
                {
                    "study": "adjoint",
                    "mode": "mid",
                    "field": a.field,
                    "scheme": a.scheme,
                    "expected": SCHEMES[a.scheme].order,
                    "observed": a.order,
                    "points": a.n_fit,
                    "finest_error": float(a.gaps[-1]),
                }
            )
        for t in self.trained:
            rows.append(
                {
                    "study": "trained",
                    "mode": "piecewise",
                    "field": self.settings["trained"]["field"],
                    "scheme": t.scheme,
                    "objective_rate": t.final_objective_rate,
                    "control_rate": t.final_control_rate,
                    "finest_objective": float(t.objective[-1]),
                }
            )
        return rows

    def table(self) -> str:
        """The results as Markdown tables."""
        lines = [
            "| mode | field | scheme | expected order | observed order | points |"
            " error at finest dt |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.forward:
            lines.append(
                f"| {r.mode} | {r.field} | {r.scheme} | {r.expected} | "
                f"{r.order:.2f} | {r.n_fit} | {r.errors[-1]:.2e} |"
            )
        if self.adjoint:
            lines += [
                "",
                "| gradient gap | field | scheme | expected order | observed order |"
                " points | gap at finest dt |",
                "|---|---|---|---|---|---|---|",
            ]
            for a in self.adjoint:
                lines.append(
                    f"| discrete vs continuous | {a.field} | {a.scheme} | "
                    f"{SCHEMES[a.scheme].order} | {a.order:.2f} | {a.n_fit} | "
                    f"{a.gaps[-1]:.2e} |"
                )
        if self.trained:
            lines += [
                "",
                "| scheme | layers L | optimal value J_L | dJ = abs(J_L - J_2L) |"
                " rate of J | du = L2 norm of u_L - u_2L | rate of u |"
                " max-norm of the gradient |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for t in self.trained:
                for j, n in enumerate(t.n_steps):
                    last = j < t.objective_diff.size
                    od = f"{t.objective_diff[j]:.3e}" if last else ""
                    cd = f"{t.control_diff[j]:.3e}" if last else ""
                    orate = (
                        f"{t.objective_rate[j - 1]:.2f}"
                        if 0 < j <= t.objective_rate.size
                        else ""
                    )
                    crate = (
                        f"{t.control_rate[j - 1]:.2f}"
                        if 0 < j <= t.control_rate.size
                        else ""
                    )
                    lines.append(
                        f"| {t.scheme} | {n} | {t.objective[j]:.10f} | {od} | "
                        f"{orate} | {cd} | {crate} | {t.grad_norm[j]:.1e} |"
                    )
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """The table's rows as CSV text."""
        keys = [
            "study",
            "mode",
            "field",
            "scheme",
            "expected",
            "observed",
            "points",
            "finest_error",
            "objective_rate",
            "control_rate",
            "finest_objective",
        ]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({k: row.get(k, "") for k in keys})
        return buf.getvalue()


def _choices(names, table, what, option, hint=""):
    """``names`` as a tuple, each a key of ``table`` and given once, at least one."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names:
        raise ConfigError(
            f"no {what} given: the list {option} is empty; name at least one of "
            f"{', '.join(table)}{hint}"
        )
    for name in names:
        lookup(table, name, what)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(
            f"{what} '{twice[0]}' is given twice in {option}: name each once"
        )
    return names


def convergence_study(
    out=None,
    *,
    schemes=("euler", "heun", "midpoint", "rk4"),
    fields=("inside", "bottleneck"),
    modes=MODES,
    first_steps=None,
    n_refinements=None,
    width=3,
    hidden=2,
    n_samples=4,
    T=1.0,
    trained=True,
    trained_schemes=("euler", "rk4"),
    trained_levels=None,
    trained_first_steps=None,
    trained_samples=None,
    trained_max_iter=None,
    trained_seed=3,
    adjoint=True,
    adjoint_steps=None,
    fast=False,
    overwrite=False,
    seed=0,
) -> ConvergenceStudy:
    """Observed orders of the time schemes, forward and after training.

    Parameters
    ----------
    out : path-like, optional
        A folder to write ``convergence.h5`` (the analysis file),
        ``convergence.csv``, ``convergence.md`` and the figures
        ``convergence_forward.png`` and ``convergence_trained.png``; nothing is
        written when None.
    schemes, fields, modes : sequences of str
        The forward series: every scheme, field and sampling mode
        (``stage``, ``left``, ``mid``).
    first_steps, n_refinements : int, optional
        The forward study uses ``L = first_steps * 2^j``, ``j < n_refinements``
        (default 8 and 7; ``2 <= n_refinements <= 14`` and at most 65536 steps).
    width, hidden, n_samples, T : forward problem sizes (tanh activation).
    trained : bool
        Run the trained study for ``trained_schemes`` at ``trained_levels``
        doublings of ``trained_first_steps`` layers (default 4 levels from 8
        layers, 100 samples, at most 3000 iterations).
    adjoint : bool
        Measure the gap between the exact discrete gradient and the continuous
        (optimise-then-discretise) gradient, for every scheme and field, at
        ``adjoint_steps`` steps (:func:`adjoint_gap`).
    trained_seed : int
        Seed of the data and the fixed output map of the trained study. The problem
        is not convex: with some output maps (seed 0 among them) L-BFGS-B stops
        near the saddle at ``J = log 2`` where the flow barely moves the data, and
        the optimal values at successive depths then do not settle; the default
        draws a map for which every depth reaches a separating minimum.
    fast : bool
        A quick version: five forward levels from 8 steps, three trained levels of
        4 to 16 layers on 40 samples, at most 400 iterations, adjoint gaps at 4, 8
        and 16 steps. Only the sizes left at None take these values: a size that
        is given is used as it is.
    overwrite : bool
        Replace existing output files.

    Returns
    -------
    ConvergenceStudy

    Raises
    ------
    ConfigError
        Before any work, for an empty or unknown name in a list, a name given twice,
        or a size out of range.
    """
    schemes = _choices(schemes, SCHEMES, "time scheme", "schemes (--schemes)")
    fields = _choices(fields, FIELDS, "vector field", "fields (--fields)")
    modes = _choices(modes, dict.fromkeys(MODES), "sampling mode", "modes (--modes)")
    if trained:
        trained_schemes = _choices(
            trained_schemes, SCHEMES, "time scheme",
            "trained_schemes (--trained-schemes)",
            hint=" (or skip the trained study: trained = False, --no-trained)",
        )
    fast_values = {
        "first_steps": (first_steps, 8, 8),
        "n_refinements": (n_refinements, 7, 5),
        "trained_levels": (trained_levels, 4, 3),
        "trained_first_steps": (trained_first_steps, 8, 4),
        "trained_samples": (trained_samples, 100, 40),
        "trained_max_iter": (trained_max_iter, 3000, 400),
    }
    sizes = {}
    for name, (given, default, quick) in fast_values.items():
        value = (quick if fast else default) if given is None else given
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        sizes[name] = int(value)
    first_steps, n_refinements = sizes["first_steps"], sizes["n_refinements"]
    trained_levels = sizes["trained_levels"]
    trained_first_steps = sizes["trained_first_steps"]
    trained_samples = sizes["trained_samples"]
    trained_max_iter = sizes["trained_max_iter"]
    if adjoint_steps is None:
        adjoint_steps = (4, 8, 16) if fast else (4, 8, 16, 32, 64)
    if first_steps < 1:
        raise ConfigError(f"first_steps must be at least 1, got {first_steps}")
    if not 2 <= n_refinements <= MAX_REFINEMENTS:
        raise ConfigError(
            f"n_refinements (--refinements) must be between 2 and {MAX_REFINEMENTS}, "
            f"got {n_refinements}: the order is fitted to at least two step sizes, "
            f"and {MAX_REFINEMENTS} step sizes from 8 steps reach {MAX_STEPS} steps"
        )
    if first_steps * 2 ** (n_refinements - 1) > MAX_STEPS:
        raise ConfigError(
            f"{first_steps} steps refined {n_refinements - 1} times is "
            f"{first_steps * 2 ** (n_refinements - 1)} steps, more than the "
            f"{MAX_STEPS} allowed: give fewer refinements or fewer first steps"
        )
    paths = {}
    if out is not None:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"output '{folder}' is a file: give a folder")
        for name in (
            "convergence.h5",
            "convergence.csv",
            "convergence.md",
            "convergence_forward.png",
            "convergence_trained.png",
            "convergence_adjoint.png",
        ):
            paths[name] = _io.check_output_path(
                folder / name, overwrite, how="--overwrite (overwrite=True in Python)"
            )

    steps = [first_steps * 2**j for j in range(n_refinements)]
    forward = []
    for f in fields:
        controls = SmoothControls.random(f, width, hidden, seed)
        x0 = np.random.default_rng(seed + 1).normal(size=(n_samples, width))
        ref = reference_solution(controls, "tanh", x0, T)
        for mode in modes:
            for s in schemes:
                r = forward_errors(
                    s, f, mode, steps, T=T, width=width, hidden=hidden,
                    n_samples=n_samples, seed=seed, reference=ref,
                )
                log.info(
                    "forward %s %s %s: order %.3f (%d points)",
                    mode, f, s, r.order, r.n_fit,
                )
                forward.append(r)
    adjoint_results = []
    if adjoint:
        for f in fields:
            for s in schemes:
                a = adjoint_gap(
                    s, f, adjoint_steps, T=T, width=width, hidden=hidden,
                    n_samples=n_samples, seed=seed,
                )
                log.info("adjoint gap %s %s: order %.3f", f, s, a.order)
                adjoint_results.append(a)
    trained_results = []
    if trained:
        for s in trained_schemes:
            trained_results.append(
                trained_study(
                    s,
                    n_levels=trained_levels,
                    first_steps=trained_first_steps,
                    n_samples=trained_samples,
                    max_iter=trained_max_iter,
                    seed=trained_seed,
                )
            )
    settings = {
        "forward": {
            "T": T,
            "width": width,
            "hidden": hidden,
            "n_samples": n_samples,
            "activation": "tanh",
            "controls": "u(t) = U0 cos(t) + U1 sin(2t)",
            "reference": "solve_ivp DOP853 rtol 1e-12 atol 1e-14",
            "error_floor": ERROR_FLOOR,
            "n_steps": steps,
        },
        "trained": {
            "data": "spheres (dim 2), zero-padded",
            "width": 3,
            "field": "inside",
            "activation": "tanh",
            "loss": "logistic",
            "lam": 1e-2,
            "T": 1.0,
            "output_map": "fixed",
            "n_samples": trained_samples,
            "first_steps": trained_first_steps,
            "levels": trained_levels,
            "seed": trained_seed,
        },
        "adjoint": {
            "n_steps": list(adjoint_steps),
            "loss": "squared, 2 outputs, fixed output map",
            "controls": "smooth controls frozen at the step midpoints",
            "continuous": "forward and adjoint by DOP853 per step, rtol 1e-12",
        },
        "seed": seed,
        "fast": bool(fast),
    }
    study = ConvergenceStudy(
        forward, trained_results, settings, adjoint=adjoint_results
    )
    if out is not None:
        write_study(study, paths)
        study.paths = {k: Path(v) for k, v in paths.items()}
    return study


def write_study(study: ConvergenceStudy, paths: dict) -> None:
    """Write the analysis file, the tables and the figures: all of them or none.

    Every file is written under a temporary name first and the names are changed only
    when all are complete, so an error (or Ctrl-C) leaves no partial set of files.
    """
    with _io.atomic_paths(paths) as tmps:
        _write_files(study, tmps)


def _write_files(study: ConvergenceStudy, paths: dict) -> None:
    import h5py

    with h5py.File(paths["convergence.h5"], "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["settings"] = json.dumps(study.settings)
        f.attrs["provenance"] = json.dumps(_io.provenance(study.settings["seed"]))
        fw = f.create_group("forward")
        for r in study.forward:
            g = fw.require_group(f"{r.mode}/{r.field}/{r.scheme}")
            g.create_dataset("n_steps", data=r.n_steps)
            g.create_dataset("dt", data=r.dt)
            g.create_dataset("error", data=r.errors)
            g.attrs["observed_order"] = r.order
            g.attrs["expected_order"] = r.expected
            g.attrs["n_fit_points"] = r.n_fit
        ad = f.create_group("adjoint")
        for a in study.adjoint:
            g = ad.require_group(f"{a.field}/{a.scheme}")
            g.create_dataset("n_steps", data=a.n_steps)
            g.create_dataset("dt", data=a.dt)
            g.create_dataset("gap", data=a.gaps)
            g.attrs["observed_order"] = a.order
            g.attrs["expected_order"] = SCHEMES[a.scheme].order
            g.attrs["n_fit_points"] = a.n_fit
        tr = f.create_group("trained")
        for t in study.trained:
            g = tr.create_group(t.scheme)
            for name in TRAINED_ARRAYS:
                g.create_dataset(name, data=getattr(t, name))
            ctl = g.create_group("controls")
            for n, theta in zip(t.n_steps, t.thetas, strict=True):
                ctl.create_dataset(f"L{int(n)}", data=theta)
    for name, text in (
        ("convergence.csv", study.csv()),
        ("convergence.md", study.table()),
    ):
        paths[name].write_text(text, encoding="utf-8")
    _figure_forward(study, paths["convergence_forward.png"])
    _figure_trained(study, paths["convergence_trained.png"])
    _figure_adjoint(study, paths["convergence_adjoint.png"])


def _save_png(fig, path):
    with open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)


def _figure_forward(study, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    modes = [m for m in MODES if any(r.mode == m for r in study.forward)]
    fields = list(dict.fromkeys(r.field for r in study.forward))
    fig = Figure(figsize=(4.2 * len(fields), 3.4 * max(len(modes), 1)))
    FigureCanvasAgg(fig)
    titles = {
        "stage": "controls at every stage time",
        "left": "controls frozen per step, u(t_k)",
        "mid": "controls frozen per step, u(t_k + dt/2)",
    }
    axes = fig.subplots(max(len(modes), 1), max(len(fields), 1), squeeze=False)
    for i, mode in enumerate(modes):
        for j, fname in enumerate(fields):
            ax = axes[i, j]
            for r in study.forward:
                if r.mode != mode or r.field != fname:
                    continue
                ax.loglog(
                    r.dt,
                    r.errors,
                    "o-",
                    ms=3,
                    label=f"{r.scheme} (slope {r.order:.2f})",
                )
            lowest = min(
                (float(r.errors.min()) for r in study.forward
                 if r.mode == mode and r.field == fname),
                default=1.0,
            )
            if lowest < 10 * ERROR_FLOOR:
                ax.axhline(ERROR_FLOOR, color="0.6", lw=0.8, ls=":")
            ax.set_title(f"{fname}: {titles[mode]}", fontsize=9)
            ax.set_xlabel("dt")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("max error at T")
            ax.legend(fontsize=7)
            ax.grid(True, which="major", lw=0.3)
    fig.tight_layout()
    _save_png(fig, path)


def _figure_trained(study, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(8.4, 3.4))
    FigureCanvasAgg(fig)
    ax_j, ax_u = fig.subplots(1, 2)
    for t in study.trained:
        layers = t.n_steps[1:]
        ax_j.loglog(
            layers,
            t.objective_diff,
            "o-",
            ms=3,
            label=f"{t.scheme} (rate {t.final_objective_rate:.2f})",
        )
        ax_u.loglog(
            layers,
            t.control_diff,
            "o-",
            ms=3,
            label=f"{t.scheme} (rate {t.final_control_rate:.2f})",
        )
    ax_j.set_title("optimal value: |J_L - J_2L|", fontsize=9)
    ax_u.set_title("controls: ||u_L - u_2L|| in L2(0, T)", fontsize=9)
    for ax in (ax_j, ax_u):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("layers 2L of the finer level")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", lw=0.3)
        if study.trained:
            ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, path)


def _figure_adjoint(study, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fields = list(dict.fromkeys(a.field for a in study.adjoint)) or ["none"]
    fig = Figure(figsize=(4.2 * len(fields), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    for ax, fname in zip(axes, fields, strict=True):
        for a in study.adjoint:
            if a.field == fname:
                ax.loglog(a.dt, a.gaps, "o-", ms=3,
                          label=f"{a.scheme} (slope {a.order:.2f})")
        ax.set_title(f"{fname}: discrete vs continuous gradient", fontsize=9)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("dt")
        ax.set_ylabel("relative gap")
        ax.grid(True, which="major", lw=0.3)
        if study.adjoint:
            ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, path)
