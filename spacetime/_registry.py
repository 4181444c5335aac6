"""Registries of activations, vector fields, losses and time-stepping schemes.

Adding one of these is adding one entry here (and, for an activation, field or loss,
its branch in the kernels under the integer code given here).
"""

from dataclasses import dataclass

import numpy as np

from . import _kernels as K
from ._errors import ConfigError


@dataclass(frozen=True)
class Activation:
    name: str
    code: int
    positively_homogeneous: bool  # act(a z) = a act(z) for a > 0
    smooth: bool
    description: str


@dataclass(frozen=True)
class Field:
    name: str
    code: int
    formula: str
    parameters: tuple[str, ...]  # names of the per-layer parameter blocks, in order
    affine_in_controls: bool

    def is_homogeneous(self, activation: "Activation") -> bool:
        """Whether ``f(x, a u) = a f(x, u)`` for all ``a > 0``."""
        if self.name == "inside":
            return True
        if self.name == "outside":
            return activation.positively_homogeneous
        return False


@dataclass(frozen=True)
class Loss:
    name: str
    code: int
    formula: str
    target: str  # "vector", "class" or "sign"


@dataclass(frozen=True)
class Scheme:
    """An explicit Runge–Kutta scheme given by its Butcher tableau."""

    name: str
    a: np.ndarray  # shape (n_stages, n_stages), strictly lower triangular
    b: np.ndarray  # shape (n_stages,)
    c: np.ndarray  # shape (n_stages,)
    order: int

    @property
    def n_stages(self) -> int:
        return self.b.shape[0]


ACTIVATIONS = {
    a.name: a
    for a in (
        Activation("identity", K.ACT_IDENTITY, True, True, "z"),
        Activation("tanh", K.ACT_TANH, False, True, "tanh(z)"),
        Activation("sigmoid", K.ACT_SIGMOID, False, True, "1 / (1 + exp(-z))"),
        Activation("relu", K.ACT_RELU, True, False, "max(z, 0)"),
        Activation(
            "leaky_relu", K.ACT_LEAKY_RELU, True, False, "z if z > 0 else slope * z"
        ),
        Activation("softplus", K.ACT_SOFTPLUS, False, True, "log(1 + exp(z))"),
    )
}

FIELDS = {
    f.name: f
    for f in (
        Field("inside", K.FIELD_INSIDE, "w act(x) + b", ("w", "b"), True),
        Field("outside", K.FIELD_OUTSIDE, "act(w x + b)", ("w", "b"), False),
        Field(
            "bottleneck", K.FIELD_BOTTLENECK, "w act(a x + b)", ("w", "a", "b"), False
        ),
    )
}

LOSSES = {
    loss.name: loss
    for loss in (
        Loss("squared", K.LOSS_SQUARED, "1/2 |yhat - y|^2", "vector"),
        Loss("lp", K.LOSS_LP, "|yhat - y|_p^p", "vector"),
        Loss(
            "cross_entropy", K.LOSS_CROSS_ENTROPY, "logsumexp(yhat) - yhat_y", "class"
        ),
        Loss("logistic", K.LOSS_LOGISTIC, "log(1 + exp(-y yhat)), y = +-1", "sign"),
    )
}


def _scheme(name, a, b, order):
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    b = np.array(b, dtype=np.float64)
    b.setflags(write=False)
    c = a.sum(axis=1)
    c.setflags(write=False)
    return Scheme(name, a, b, c, order)


SCHEMES = {
    s.name: s
    for s in (
        _scheme("euler", [[0.0]], [1.0], 1),
        _scheme("heun", [[0.0, 0.0], [1.0, 0.0]], [0.5, 0.5], 2),
        _scheme("midpoint", [[0.0, 0.0], [0.5, 0.0]], [0.0, 1.0], 2),
        _scheme(
            "rk4",
            [
                [0.0, 0.0, 0.0, 0.0],
                [0.5, 0.0, 0.0, 0.0],
                [0.0, 0.5, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
            ],
            [1 / 6, 1 / 3, 1 / 3, 1 / 6],
            4,
        ),
    )
}


def lookup(table: dict, name, what: str):
    """Return ``table[name]`` or raise a :class:`ConfigError` naming the choices."""
    import difflib

    if isinstance(name, str) and name in table:
        return table[name]
    choices = ", ".join(sorted(table))
    close = difflib.get_close_matches(str(name), list(table), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"unknown {what} '{name}': {hint}choose one of {choices}")
