"""The learning problem: regularised empirical risk and its exact gradient."""

import math

import numpy as np

from ._core import RunningCost, risk_and_grad
from ._errors import ConfigError, DataError
from ._registry import LOSSES, lookup


def n_outputs_for(loss: str, task: str, n_classes: int, n_targets: int) -> int:
    """Output dimension ``m`` the loss needs for a task."""
    if task == "regression":
        return n_targets
    if loss == "cross_entropy":
        return n_classes
    if loss == "logistic":
        return 1
    return 1 if n_classes == 2 else n_classes


def encode_targets(loss: str, task: str, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Targets in the form the kernels take.

    Parameters
    ----------
    y : ndarray, shape (n_samples,) of int classes, or (n_samples, n_targets)

    Returns
    -------
    ndarray, shape (n_samples, n_columns)
        The class index (cross-entropy); +1/-1 (logistic, and squared or lp losses on
        two classes); a one-hot vector (squared or lp losses on more classes); the
        target vector (regression).
    """
    spec = lookup(LOSSES, loss, "loss")
    if task == "regression":
        if spec.target != "vector":
            raise ConfigError(
                f"the {loss} loss needs class labels but the task is regression: "
                "use loss = 'squared' or 'lp'"
            )
        return np.ascontiguousarray(np.asarray(y, np.float64).reshape(len(y), -1))
    y = np.asarray(y, dtype=np.int64)
    if spec.target == "class":
        return np.ascontiguousarray(y[:, None].astype(np.float64))
    if n_classes == 2:
        return np.ascontiguousarray((2.0 * y - 1.0)[:, None])
    if spec.target == "sign":
        raise ConfigError(
            f"the logistic loss is for two classes, the data have {n_classes}: "
            "use loss = 'cross_entropy'"
        )
    return np.ascontiguousarray(np.eye(n_classes)[y])


def accuracy(yhat: np.ndarray, y: np.ndarray, task: str) -> float:
    """Fraction of correct classes: argmax of the outputs, or their sign if m = 1."""
    if task == "regression" or len(y) == 0:
        return math.nan
    pred = (yhat[:, 0] > 0).astype(np.int64) if yhat.shape[1] == 1 else yhat.argmax(1)
    return float(np.mean(pred == np.asarray(y)))


def mean_loss(yhat, targets, loss: str, loss_p: float = 2.0) -> float:
    """The empirical risk ``(1/N) sum_i l(yhat_i, t_i)`` of outputs against targets.

    The per-sample losses are those of the kernels (``_kernels.loss_and_slope``),
    computed here with NumPy for outputs already at hand (the test predictions).

    Parameters
    ----------
    yhat : ndarray, shape (n_samples, n_outputs)
        Outputs ``P x_i(T) + p0``.
    targets : ndarray, shape (n_samples, n_columns)
        Encoded targets, as :func:`encode_targets` returns them.
    loss : {"cross_entropy", "logistic", "squared", "lp"}
    loss_p : float
        Exponent of the lp loss.

    Returns
    -------
    float
        NaN when there are no samples.
    """
    name = lookup(LOSSES, loss, "loss").name
    yhat = np.asarray(yhat, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    n = len(yhat)
    if n == 0:
        return math.nan
    if yhat.ndim != 2 or targets.ndim != 2 or len(targets) != n:
        raise DataError(
            f"outputs of shape {yhat.shape} and targets of shape {targets.shape} do "
            "not match: pass one row of each per sample"
        )
    if name == "squared":
        per_sample = 0.5 * np.sum((yhat - targets) ** 2, axis=1)
    elif name == "lp":
        per_sample = np.sum(np.abs(yhat - targets) ** loss_p, axis=1)
    elif name == "cross_entropy":
        c = targets[:, 0].astype(np.int64)
        top = yhat.max(axis=1)
        spread = np.sum(np.exp(yhat - top[:, None]), axis=1)
        per_sample = top + np.log(spread) - yhat[np.arange(n), c]
    else:  # logistic: log(1 + exp(-y yhat)) with y = +-1, without overflow
        z = -targets[:, 0] * yhat[:, 0]
        per_sample = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return float(np.sum(per_sample) / n)


class Problem:
    """``min_u  E(x(T)) + lam ||u||^2  (+ reg |p|^2 when P is trained)``.

    Parameters
    ----------
    model : NeuralODE
        Or any model with ``core``, ``embed``, ``n_params`` and ``control_norm2``.
    x : ndarray, shape (n_samples, n_inputs)
    y : ndarray, shape (n_samples,) of int classes, or (n_samples, n_targets)
    loss : {"cross_entropy", "logistic", "squared", "lp"}
    lam : float
        Weight ``lam >= 0`` of the control norm.
    task : {"classification", "regression"}
    n_classes : int, optional
        Default: ``max(y) + 1`` for classification.
    p, p0 : ndarray, optional
        The output map ``P x = p x + p0``, shapes (n_outputs, width) and (n_outputs,):
        the fixed map when ``train_output`` is False, the starting point otherwise.
        Default: drawn from ``output_seed``, entries normal with std
        ``1 / sqrt(width)``, and ``p0 = 0``.
    train_output : bool
        Whether ``p`` and ``p0`` are optimised with the controls.
    output_reg : float
        Weight of ``|p|^2`` (Frobenius) in the objective when the map is trained.
    running_cost : RunningCost or dict, optional
        The turnpike objective's running cost ``beta int_0^T R(x(t)) dt``: a
        :class:`~spacetime.RunningCost`, or a dict with keys ``kind``
        ("tracking" or "risk"), ``beta``, and for tracking ``exponent``,
        ``smoothing`` and optionally ``targets`` (default: for each sample the point
        nearest its embedded input on ``{x : P x = y_i}``, which needs a fixed output
        map and vector targets). Needs the same width at every level.
    loss_p : float
        Exponent ``p >= 1`` of the lp loss.
    memory_budget_mib : float, optional
        Memory (MiB) the reverse pass may keep for states before it switches to
        checkpointing; default 512. The gradient does not depend on it.

    Notes
    -----
    The optimisation variables are ``z = (theta, p, p0)`` (or ``theta`` alone when the
    output map is fixed). The objective is

        J(z) = (1/N) sum_i l(p X_i^L + p0, y_i) + lam sum_k dt_k |u_k|^2
               + output_reg |p|^2,

    evaluated by the forward pass of the scheme, and its gradient by the reverse pass
    of the same scheme: the exact gradient of the discrete J.
    """

    def __init__(
        self,
        model,
        x,
        y,
        *,
        loss="cross_entropy",
        lam=1e-3,
        task="classification",
        n_classes=None,
        p=None,
        p0=None,
        train_output=True,
        output_reg=0.0,
        output_seed=0,
        loss_p=2.0,
        memory_budget_mib=None,
        running_cost=None,
    ):
        self.model = model
        if memory_budget_mib is not None and not memory_budget_mib >= 0:
            raise ConfigError(
                f"memory_budget_mib must be >= 0 (or None), got {memory_budget_mib!r}"
            )
        self.memory_budget_mib = memory_budget_mib
        self.loss = lookup(LOSSES, loss, "loss").name
        if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
            raise ConfigError(f"lam must be a number >= 0, got {lam!r}")
        if not (math.isfinite(output_reg) and output_reg >= 0):
            raise ConfigError(f"output_reg must be >= 0, got {output_reg!r}")
        if self.loss == "lp" and not loss_p >= 1:
            raise ConfigError(f"loss_p must be >= 1, got {loss_p!r}")
        self.lam = float(lam)
        self.task = task
        self.output_reg = float(output_reg)
        self.loss_p = float(loss_p)
        self.train_output = bool(train_output)

        x = np.asarray(x, dtype=np.float64)
        self.x0 = np.ascontiguousarray(model.embed(x))
        self.y = np.asarray(y)
        if len(self.y) != len(self.x0):
            raise DataError(
                f"inputs have {len(self.x0)} samples but labels have {len(self.y)}: "
                "pass one label per sample"
            )
        if len(self.y) == 0:
            raise DataError("the training set is empty: provide at least one sample")
        if not np.all(np.isfinite(self.x0)):
            raise DataError("inputs hold NaN or inf: remove or impute those samples")
        if task == "classification":
            self.n_classes = int(n_classes or int(self.y.max()) + 1)
            n_targets = 0
        else:
            self.n_classes = 0
            n_targets = self.y.reshape(len(self.y), -1).shape[1]
        self.targets = encode_targets(self.loss, task, self.y, self.n_classes)
        if not np.all(np.isfinite(self.targets)):
            raise DataError("labels hold NaN or inf: remove those samples")
        self.n_outputs = n_outputs_for(self.loss, task, self.n_classes, n_targets)

        n_last = int(model.core.widths[-1])
        if p is None:
            rng = np.random.default_rng(output_seed)
            p = rng.normal(0.0, 1.0 / math.sqrt(n_last), size=(self.n_outputs, n_last))
        if p0 is None:
            p0 = np.zeros(self.n_outputs)
        p = np.array(p, dtype=np.float64, ndmin=2)
        p0 = np.array(p0, dtype=np.float64, ndmin=1)
        if p.shape != (self.n_outputs, n_last) or p0.shape != (self.n_outputs,):
            raise ConfigError(
                f"the output map has shapes {p.shape} and {p0.shape}, expected "
                f"{(self.n_outputs, n_last)} and {(self.n_outputs,)}"
            )
        self.p = p
        self.p0 = p0
        self.running = self._running_cost(running_cost)
        self._loss_code = lookup(LOSSES, self.loss, "loss").code
        self.n_evaluations = 0

    def _running_cost(self, spec):
        if spec is None:
            return None
        if isinstance(spec, dict):
            unknown = set(spec) - {"kind", "beta", "exponent", "smoothing", "targets"}
            if unknown:
                raise ConfigError(
                    f"unknown running-cost keys {sorted(unknown)}: use kind, beta, "
                    "exponent, smoothing, targets"
                )
            spec = RunningCost(
                kind=spec.get("kind", "tracking"),
                beta=spec.get("beta", 1.0),
                targets=spec.get("targets"),
                exponent=spec.get("exponent", 2.0),
                smoothing=spec.get("smoothing", 0.0),
            )
        core = self.model.core
        if spec.kind not in ("tracking", "risk"):
            raise ConfigError(
                f"unknown running cost '{spec.kind}': choose 'tracking' or 'risk'"
            )
        if not (math.isfinite(spec.beta) and spec.beta >= 0):
            raise ConfigError(f"the running cost's beta must be >= 0, got {spec.beta}")
        if not (spec.exponent >= 1 and spec.smoothing >= 0):
            raise ConfigError(
                "the tracking exponent must be >= 1 and the smoothing >= 0, got "
                f"{spec.exponent} and {spec.smoothing}"
            )
        if np.any(core.widths != core.widths[0]) or np.any(core.tr_has):
            raise ConfigError(
                "a running cost needs the same grid at every level: use one fixed "
                "grid (no width schedule or moving nodes)"
            )
        if spec.kind == "risk":
            return spec
        targets = spec.targets
        if targets is None:
            targets = self.nearest_targets()
        targets = np.ascontiguousarray(targets, dtype=np.float64)
        if targets.shape != self.x0.shape:
            raise ConfigError(
                f"tracking targets have shape {targets.shape}, expected "
                f"{self.x0.shape} (one state per sample)"
            )
        weights = core.out_weight if core.out_weight is not None else None
        return RunningCost(
            "tracking",
            float(spec.beta),
            targets,
            float(spec.exponent),
            float(spec.smoothing),
            weights,
        )

    def nearest_targets(self) -> np.ndarray:
        """For each sample, the point of ``{x : P x = y_i}`` nearest its input.

        Returns
        -------
        ndarray, shape (n_samples, width)
            ``xbar_i = x_i + p^+ (y_i - p x_i - p0)`` with ``p^+`` the pseudo-inverse
            (in the grid's weighted inner product for a space-time network).
        """
        if self.train_output:
            raise ConfigError(
                "tracking targets with P xbar = y need a fixed output map: set "
                "output_map.trained = false"
            )
        if LOSSES[self.loss].target == "class":
            raise ConfigError(
                "tracking targets need vector labels y with P xbar = y; the "
                "cross-entropy loss has classes: use the logistic, squared or lp loss"
            )
        w = self.model.core.out_weight
        p_eff = self.p if w is None else self.p * w
        residual = self.targets - (self.x0 @ p_eff.T + self.p0)
        if w is None:
            return self.x0 + residual @ np.linalg.pinv(p_eff).T
        # minimal correction in the norm sum_j w_j d_j^2: d = W^-1 p_eff^T c
        gram = (p_eff / w) @ p_eff.T
        return self.x0 + (residual @ np.linalg.pinv(gram).T) @ (p_eff / w)

    # -- the optimisation variables ---------------------------------------

    @property
    def n_variables(self) -> int:
        n = self.model.n_params
        if self.train_output:
            n += self.p.size + self.p0.size
        return n

    def split(self, z: np.ndarray):
        """``(theta, p, p0)`` from the optimisation variables ``z``."""
        n = self.model.n_params
        theta = z[:n]
        if not self.train_output:
            return theta, self.p, self.p0
        m, c = self.p.shape
        return theta, z[n : n + m * c].reshape(m, c), z[n + m * c :]

    def join(self, theta, p=None, p0=None) -> np.ndarray:
        """Optimisation variables from controls (and the output map if trained)."""
        if not self.train_output:
            return np.ascontiguousarray(theta, dtype=np.float64)
        p = self.p if p is None else p
        p0 = self.p0 if p0 is None else p0
        return np.concatenate([theta, np.ravel(p), np.ravel(p0)]).astype(np.float64)

    def initial_point(self, seed=0, scale=0.1) -> np.ndarray:
        return self.join(self.model.init_params(seed, scale))

    # -- objective --------------------------------------------------------

    def variables(self, z) -> np.ndarray:
        """``z`` as a float64 vector, checked against the problem's variables.

        Raises
        ------
        ConfigError
            When ``z`` is not a vector of ``n_variables`` finite numbers.
        """
        try:
            z = np.ascontiguousarray(z, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(
                f"the variables z must be an array of numbers, got "
                f"{type(z).__name__}: pass a vector such as problem.initial_point()"
            ) from None
        self._check_shape(z)
        if not np.all(np.isfinite(z)):
            bad = int(np.count_nonzero(~np.isfinite(z)))
            raise ConfigError(
                f"the variables z hold NaN or inf at {bad} of their {z.size} entries: "
                "the objective is defined only at finite values; look for where z "
                "was computed"
            )
        return z

    def _check_shape(self, z):
        n = self.n_variables
        if z.shape != (n,):
            parts = f"{self.model.n_params} controls"
            if self.train_output:
                parts += f", then the {self.p.size + self.p0.size} entries of p and p0"
            raise ConfigError(
                f"the variables z have shape {z.shape}, the problem has {n} "
                f"({parts}): pass a vector of length {n}, such as "
                "problem.initial_point() or problem.join(theta)"
            )

    def value_and_grad(self, z: np.ndarray):
        """The objective ``J(z)`` and its exact gradient, shape (n_variables,).

        Raises
        ------
        ConfigError
            When ``z`` is not a vector of ``n_variables`` finite numbers.
        """
        value, grad, _ = self._evaluate(self.variables(z))
        return value, grad

    __call__ = value_and_grad

    def _evaluate(self, z):
        z = np.ascontiguousarray(z, dtype=np.float64)
        self._check_shape(z)
        theta, p, p0 = self.split(z)
        core = self.model.core
        risk, g_theta, g_p, g_p0, yhat, running = risk_and_grad(
            core,
            theta,
            p,
            p0,
            self.x0,
            self.targets,
            self._loss_code,
            self.loss_p,
            memory_budget_mib=self.memory_budget_mib,
            running=self.running,
        )
        self.n_evaluations += 1
        reg = self.lam * float(np.dot(core.norm_weight, theta * theta))
        g_theta += (2.0 * self.lam) * core.norm_weight * theta
        value = risk + reg + running
        if self.train_output:
            if self.output_reg:
                value += self.output_reg * float(np.sum(p * p))
                g_p = g_p + (2.0 * self.output_reg) * p
            grad = np.concatenate([g_theta, g_p.ravel(), g_p0])
        else:
            grad = g_theta
        return value, grad, {"risk": risk, "reg": reg, "yhat": yhat, "running": running}

    def evaluate(self, z: np.ndarray) -> dict:
        """Objective, risk, control norm, predictions and accuracy at ``z``."""
        z = self.variables(z)
        value, grad, info = self._evaluate(z)
        theta = self.split(z)[0]
        return {
            "objective": value,
            "risk": info["risk"],
            "running_cost": info["running"],
            "control_norm": math.sqrt(self.model.control_norm2(theta)),
            "grad_norm": float(np.linalg.norm(grad)),
            "predictions": info["yhat"],
            "accuracy": accuracy(info["yhat"], self.y, self.task),
        }

    def empirical_risk(self, yhat: np.ndarray, y: np.ndarray) -> float:
        """The mean loss of outputs ``yhat`` against labels ``y``: the risk term of
        the objective, without the control norm, the output map's regulariser or a
        running cost (the test risk, for the test predictions and labels).

        Parameters
        ----------
        yhat : ndarray, shape (n_samples, n_outputs)
        y : ndarray
            Labels in the form of the training labels: class indices, or targets of
            shape (n_samples, n_targets).

        Returns
        -------
        float
            NaN when there are no samples.
        """
        if len(y) == 0:
            return math.nan
        targets = encode_targets(self.loss, self.task, y, self.n_classes)
        return mean_loss(yhat, targets, self.loss, self.loss_p)

    def predict(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Outputs ``P x(T)`` for new inputs, shape (n_samples, n_outputs)."""
        theta, p, p0 = self.split(self.variables(z))
        return predict(self.model, theta, p, p0, x)


def predict(model, theta, p, p0, x) -> np.ndarray:
    """Outputs ``P x(T)`` of ``model`` for inputs ``x``.

    Returns
    -------
    ndarray, shape (n_samples, n_outputs)
    """
    states = model.flow(theta, x)
    last = states[-1, :, : int(model.core.widths[-1])]
    w = model.core.out_weight
    p_eff = p if w is None else p * w
    return last @ p_eff.T + p0
