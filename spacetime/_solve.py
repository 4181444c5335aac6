"""The optimiser driver: scipy.optimize.minimize on the exact discrete gradient."""

import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from ._core import single_threaded_blas
from ._errors import ConfigError, TrainingDiverged

log = logging.getLogger(__name__)

METHODS = ("L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP", "trust-constr")


class _Stop(Exception):
    """Raised inside the optimiser's callbacks to end it early."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


@dataclass
class History:
    """Per-iteration record of the optimiser; iteration 0 is the starting point."""

    iteration: list = field(default_factory=list)
    objective: list = field(default_factory=list)
    risk: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    time: list = field(default_factory=list)

    def append(self, it, objective, risk, grad_norm, t):
        self.iteration.append(int(it))
        self.objective.append(float(objective))
        self.risk.append(float(risk))
        self.grad_norm.append(float(grad_norm))
        self.time.append(float(t))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "iteration": np.asarray(self.iteration, dtype=np.int64),
            "objective": np.asarray(self.objective, dtype=np.float64),
            "risk": np.asarray(self.risk, dtype=np.float64),
            "grad_norm": np.asarray(self.grad_norm, dtype=np.float64),
            "time": np.asarray(self.time, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "History":
        h = cls()
        for name in ("iteration", "objective", "risk", "grad_norm", "time"):
            getattr(h, name).extend(np.asarray(arrays[name]).tolist())
        return h

    def __len__(self):
        return len(self.iteration)


@dataclass
class Result:
    """The outcome of :func:`solve`.

    Attributes
    ----------
    z : ndarray, shape (n_variables,)
        The final optimisation variables (controls, then the output map if trained).
    status : str
        "converged", "max_iter", "time_limit", "interrupted" or "failed".
    """

    problem: object
    z: np.ndarray
    status: str
    message: str
    n_iter: int
    n_fev: int
    wall_time: float
    history: History
    method: str

    @property
    def theta(self) -> np.ndarray:
        return self.problem.split(self.z)[0]

    @property
    def controls(self) -> dict[str, np.ndarray]:
        """Trained controls by name, e.g. ``w`` of shape (n_steps, width, width)."""
        return self.problem.model.unpack(self.theta)

    @property
    def p(self) -> np.ndarray:
        return self.problem.split(self.z)[1]

    @property
    def p0(self) -> np.ndarray:
        return self.problem.split(self.z)[2]

    @property
    def complete(self) -> bool:
        return self.status in ("converged", "max_iter")

    def evaluate(self) -> dict:
        """Objective, risk, control norm, training predictions and accuracy."""
        return self.problem.evaluate(self.z)

    def predict(self, x) -> np.ndarray:
        """Outputs for new (already standardised) inputs, shape (n, n_outputs)."""
        return self.problem.predict(self.z, x)


class _Interrupts:
    """Turns the first Ctrl-C into a request to stop; a second one aborts."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.requested = False
        self._old = None

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            old = signal.getsignal(signal.SIGINT)
            # a process told to ignore interrupts (nohup, a background job, a sweep
            # worker whose sweep ignores them) keeps ignoring them
            if old is not signal.SIG_IGN:
                self._old = old
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupt received: stopping after the current evaluation")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def solve(
    problem,
    z0=None,
    *,
    method="L-BFGS-B",
    max_iter=500,
    gtol=1e-6,
    ftol=1e-12,
    max_time=None,
    seed=0,
    init_scale=0.1,
    history=None,
    progress=False,
    callback=None,
    handle_interrupt=True,
) -> Result:
    """Minimise the problem's objective from ``z0``.

    Parameters
    ----------
    problem : Problem
    z0 : ndarray, shape (n_variables,), optional
        Starting point; default ``problem.initial_point(seed, init_scale)``.
    method : str
        A gradient-based method of ``scipy.optimize.minimize``; L-BFGS-B by default.
    max_iter : int
        Maximum number of optimiser iterations (in this call).
    gtol, ftol : float
        Tolerances passed to the method (L-BFGS-B: projected gradient max-norm and
        relative reduction of the objective).
    max_time : float, optional
        Wall-clock limit in seconds; the optimiser stops cleanly when it is reached and
        the result is marked "time_limit".
    history : History, optional
        A history to continue (when resuming); iterations are numbered on from it.
    progress : bool
        Show a progress bar with the objective (tqdm).
    callback : callable, optional
        ``callback(iteration, z, objective)`` after every iteration; may raise
        ``StopIteration`` to end the run (status "interrupted").
    handle_interrupt : bool
        Turn Ctrl-C into a clean stop that returns the current iterate ("interrupted").

    Returns
    -------
    Result

    Raises
    ------
    TrainingDiverged
        When the objective or its gradient becomes NaN or infinite.
    """
    if method not in METHODS:
        raise ConfigError(
            f"unknown optimiser method '{method}': choose one of {', '.join(METHODS)}"
        )
    if not (isinstance(max_iter, int) and max_iter >= 0):
        raise ConfigError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    z = problem.initial_point(seed, init_scale) if z0 is None else np.array(z0, float)
    if z.shape != (problem.n_variables,):
        raise ConfigError(
            f"starting point has shape {z.shape}, the problem has "
            f"{problem.n_variables} variables: it belongs to another problem"
        )

    history = History() if history is None else history
    it0 = history.iteration[-1] if len(history) else 0
    t_prev = history.time[-1] if len(history) else 0.0
    start = time.perf_counter()
    state = {"it": it0, "z": z.copy(), "f": math.nan, "last": None, "nfev": 0}
    bar = None

    def fun(x):
        if interrupts.requested:
            raise _Stop("interrupted")
        f, g, info = problem._evaluate(x)
        state["nfev"] += 1
        if not (math.isfinite(f) and np.all(np.isfinite(g))):
            raise TrainingDiverged(
                f"the objective became {f} after {state['it'] - it0} iterations: "
                "the flow blew up; lower model.init_scale or the learning horizon T, "
                "raise lam, or use more layers"
            )
        state["last"] = (x.copy(), f, info["risk"], float(np.linalg.norm(g)))
        return f, g

    def record(x):
        last = state["last"]
        if last is None or not np.array_equal(last[0], x):
            fun(x)
            last = state["last"]
        state["it"] += 1
        state["z"] = x.copy()
        state["f"] = last[1]
        history.append(
            state["it"], last[1], last[2], last[3], t_prev + time.perf_counter() - start
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(objective=f"{last[1]:.6g}", grad=f"{last[3]:.2e}")
        if callback is not None:
            try:
                callback(state["it"], x, last[1])
            except StopIteration:
                raise _Stop("interrupted") from None
        if max_time is not None and time.perf_counter() - start >= max_time:
            raise _Stop("time_limit")
        if interrupts.requested:
            raise _Stop("interrupted")

    options = {"maxiter": max_iter}
    if method == "L-BFGS-B":
        options.update(gtol=gtol, ftol=ftol, maxfun=max(15000, 20 * max_iter))
    elif method in ("BFGS", "CG"):
        options.update(gtol=gtol)
    elif method == "TNC":
        options.update(gtol=gtol, ftol=ftol)
    elif method == "SLSQP":
        options.update(ftol=ftol)
    else:
        options.update(gtol=gtol)

    interrupts = _Interrupts(handle_interrupt)
    # BLAS held to one thread for the whole optimisation, not switched around each
    # evaluation: OpenBLAS threads would otherwise spin between evaluations and take
    # the cores of the kernels' threads (see _core.single_threaded_blas)
    with interrupts, single_threaded_blas():
        # the starting point is iteration 0 of a new history
        f0, _ = fun(z)
        if not len(history):
            last = state["last"]
            history.append(0, last[1], last[2], last[3], 0.0)
        state["f"] = f0
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_iter, desc="optimising", unit="it", leave=False)
        try:
            if max_iter == 0:
                # scipy would still take one step
                raise _Stop("max_iter")
            res = scipy.optimize.minimize(
                fun,
                z,
                jac=True,
                method=method,
                callback=record,
                options=options,
            )
            final = np.asarray(res.x, dtype=np.float64)
            if not np.array_equal(final, state["z"]) and state["it"] > it0:
                # some methods return a point other than the last accepted iterate
                final = state["z"] if res.fun > state["f"] else final
            nit = state["it"] - it0
            if res.success:
                status = "converged"
            elif nit >= max_iter:
                status = "max_iter"
            else:
                status = "failed"
            message = str(res.message)
        except _Stop as stop:
            final = state["z"]
            status = stop.status
            message = {
                "time_limit": f"stopped at the time limit of {max_time} s",
                "interrupted": "stopped on request (interrupt or callback)",
                "max_iter": "no iterations left in the iteration budget",
            }[stop.status]
        finally:
            if bar is not None:
                bar.close()

    wall = time.perf_counter() - start
    log.info(
        "optimiser %s: %s after %d iterations, %d evaluations, %.1f s",
        method,
        status,
        state["it"] - it0,
        state["nfev"],
        wall,
    )
    return Result(
        problem=problem,
        z=np.ascontiguousarray(final),
        status=status,
        message=message,
        n_iter=state["it"],
        n_fev=state["nfev"],
        wall_time=wall,
        history=history,
        method=method,
    )
