"""Finite-width neural ODEs: the model description and its parameters."""

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

import grids

from ._core import Core, build_core, flow, layer_blocks
from ._errors import ConfigError
from ._registry import ACTIVATIONS, FIELDS, SCHEMES, lookup


@dataclass(frozen=True, eq=False)
class NeuralODE:
    """A neural ODE ``x' = f(x, u(t))`` on ``[0, T]``, discretised in time.

    One layer per time step: the controls are piecewise constant, ``u_k`` on
    ``[t_k, t_{k+1})``, and each step is one step of an explicit Runge–Kutta scheme
    (forward Euler makes the network a ResNet).

    Parameters
    ----------
    n_inputs : int
        Input dimension ``d0``.
    width : int
        State dimension ``d >= d0``; inputs are zero-padded to it (augmentation).
    field : {"inside", "outside", "bottleneck"}
    activation : {"tanh", "sigmoid", "relu", "leaky_relu", "softplus", "identity"}
    time : grids.TimeGrid
        The time levels ``t_0 = 0 < ... < t_L = T``.
    scheme : {"euler", "heun", "midpoint", "rk4"}
    hidden : int
        Hidden width ``h`` of the bottleneck field (ignored otherwise).
    leaky_slope : float
        Slope of the leaky ReLU for negative arguments.

    Notes
    -----
    With forward Euler, layer ``k`` is

        x^{k+1} = x^k + (t_{k+1} - t_k) f(x^k, u_k),   x^0 = E x_in,

    and the control norm is the discrete ``L^2(0, T)`` norm
    ``||u||^2 = sum_k (t_{k+1} - t_k) |u_k|^2`` over all entries of ``u_k``.
    """

    n_inputs: int
    width: int
    time: grids.TimeGrid
    field: str = "inside"
    activation: str = "tanh"
    scheme: str = "euler"
    hidden: int = 0
    leaky_slope: float = 0.01
    _core: Core = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.time, grids.TimeGrid):
            raise ConfigError(
                f"time must be a grids.TimeGrid, got {type(self.time).__name__} "
                f"{self.time!r}: build the time levels with grids.time_grid(T, "
                "n_steps), e.g. NeuralODE(2, 3, grids.time_grid(1.0, 10))"
            )
        for name, low in (("n_inputs", 1), ("width", 1), ("hidden", 0)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Integral)
                or value < low
            ):
                raise ConfigError(
                    f"{name} must be an integer >= {low}, got {value!r}"
                )
            object.__setattr__(self, name, int(value))
        if not (
            isinstance(self.leaky_slope, numbers.Real)
            and math.isfinite(self.leaky_slope)
        ):
            raise ConfigError(
                f"leaky_slope must be a finite number, got {self.leaky_slope!r}"
            )
        if self.width < self.n_inputs:
            raise ConfigError(
                f"model width {self.width} is below the number of input features "
                f"{self.n_inputs}: set model.width to at least {self.n_inputs} "
                "(or 0 to use the number of features)"
            )
        f = lookup(FIELDS, self.field, "vector field")
        a = lookup(ACTIVATIONS, self.activation, "activation")
        s = lookup(SCHEMES, self.scheme, "time scheme")
        if f.name == "bottleneck" and self.hidden == 0:
            object.__setattr__(self, "hidden", self.width)
        n = self.time.n_steps
        h = self.hidden if f.name == "bottleneck" else self.width
        core = build_core(
            f, a, self.leaky_slope, s, [self.width] * (n + 1), [h] * n, self.time.steps
        )
        object.__setattr__(self, "_core", core)

    # -- sizes and layout -------------------------------------------------

    @property
    def core(self) -> Core:
        return self._core

    @property
    def n_steps(self) -> int:
        return self.time.n_steps

    @property
    def T(self) -> float:
        return self.time.T

    @property
    def n_params(self) -> int:
        return self._core.n_params

    @property
    def homogeneous(self) -> bool:
        """Whether ``f(x, a u) = a f(x, u)`` for every ``a > 0``."""
        return self._core.field.is_homogeneous(self._core.activation)

    def blocks(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of one layer's parameter blocks."""
        return layer_blocks(self._core.field, self.width, int(self._core.hidden[0]))

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Per-name control arrays.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)

        Returns
        -------
        dict
            ``w`` of shape (n_steps, width, width) or (n_steps, width, hidden),
            ``a`` of shape (n_steps, hidden, width) for the bottleneck, ``b`` of shape
            (n_steps, width) or (n_steps, hidden). Views into ``theta``.
        """
        per_layer = theta.reshape(self.n_steps, -1)
        out, start = {}, 0
        for name, shape in self.blocks():
            size = int(np.prod(shape))
            out[name] = per_layer[:, start : start + size].reshape(
                (self.n_steps, *shape)
            )
            start += size
        return out

    def pack(self, controls: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`unpack`: the flat parameter vector, shape (n_params,)."""
        parts = []
        for name, shape in self.blocks():
            arr = np.asarray(controls[name], dtype=np.float64)
            if arr.shape != (self.n_steps, *shape):
                raise ConfigError(
                    f"control '{name}' has shape {arr.shape}, expected "
                    f"{(self.n_steps, *shape)}: it belongs to another model"
                )
            parts.append(arr.reshape(self.n_steps, -1))
        return np.ascontiguousarray(np.concatenate(parts, axis=1).ravel())

    def init_params(self, seed=0, scale=0.1) -> np.ndarray:
        """Seeded initial controls: entries normal with std ``scale / sqrt(fan_in)``."""
        rng = np.random.default_rng(seed)
        per_layer = []
        for _, shape in self.blocks():
            fan_in = shape[-1] if len(shape) == 2 else 1
            std = scale / np.sqrt(fan_in)
            per_layer.append(rng.normal(0.0, std, size=(self.n_steps, *shape)))
        return np.ascontiguousarray(
            np.concatenate(
                [b.reshape(self.n_steps, -1) for b in per_layer], axis=1
            ).ravel()
        )

    def control_norm2(self, theta: np.ndarray) -> float:
        """Discrete ``||u||^2_{L^2(0,T)}``: ``sum_k dt_k |u_k|^2``."""
        return float(np.dot(self._core.norm_weight, theta * theta))

    def layer_norms(self, theta: np.ndarray) -> np.ndarray:
        """``|u_k|`` per layer (Euclidean norm of all entries), shape (n_steps,)."""
        return np.sqrt((theta.reshape(self.n_steps, -1) ** 2).sum(axis=1))

    def rescaled(self, T: float) -> "NeuralODE":
        """The same network on ``[0, T]``: time levels scaled by ``T / self.T``."""
        return NeuralODE(
            self.n_inputs,
            self.width,
            self.time.rescaled(T / self.T),
            self.field,
            self.activation,
            self.scheme,
            self.hidden,
            self.leaky_slope,
        )

    # -- evaluation -------------------------------------------------------

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Zero-pad inputs to the state width: shape (n_samples, width)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.n_inputs:
            raise ConfigError(
                f"inputs have {x.shape[1]} features but the model takes "
                f"{self.n_inputs}: pass inputs of the training data's layout"
            )
        out = np.zeros((x.shape[0], self.width))
        out[:, : self.n_inputs] = x
        return out

    def flow(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """States at every level, shape (n_steps + 1, n_samples, width)."""
        return flow(self._core, theta, self.embed(x))

    def describe(self) -> dict:
        """The model's settings as plain values (what a run file stores)."""
        return {
            "kind": "neural_ode",
            "field": self.field,
            "activation": self.activation,
            "scheme": self.scheme,
            "n_inputs": self.n_inputs,
            "width": self.width,
            "hidden": self.hidden,
            "leaky_slope": self.leaky_slope,
            "T": self.T,
            "n_steps": self.n_steps,
        }
