"""Space-time networks: neural ODEs whose neuron index is a point of a box Ω.

The state of a sample is a function ``x(t, ξ)`` on Ω (an interval or a rectangle) and
the controls are kernels on Ω × Ω and functions on Ω. On each time level the state
lives on a grid ``G_k`` of ``n_k`` nodes with quadrature weights ``ω``; between levels
a fixed linear transfer ``Π_k`` moves it to the next grid. The discrete network is a
ResNet whose layer ``k`` has width ``n_k``.
"""

import math

import numpy as np

import grids

from ._core import Core, build_core, flow, layer_blocks
from ._errors import ConfigError
from ._registry import ACTIVATIONS, FIELDS, SCHEMES, lookup


def input_grid(n_inputs: int, image_shape=None, domain=None) -> grids.Grid:
    """The grid on which raw inputs are given.

    An image of shape ``(h, w)`` is a function on the unit square sampled at pixel
    centres (the midpoint tensor grid, row-major like the flattened image); a vector
    of ``n_inputs`` values is sampled at the midpoints of ``n_inputs`` equal cells of
    the interval.
    """
    if image_shape is not None:
        if math.prod(image_shape) != n_inputs:
            raise ConfigError(
                f"image shape {tuple(image_shape)} does not hold {n_inputs} features"
            )
        dom = domain or ((0.0, 1.0), (0.0, 1.0))
        return grids.tensor_grid("midpoint", tuple(image_shape), dom)
    return grids.grid("midpoint", n_inputs, domain or (0.0, 1.0))


class SpaceTimeNetwork:
    """A space-time network discretised on a moving grid.

    Parameters
    ----------
    moving : grids.MovingGrid
        One grid per time level; its time grid is the network's.
    inputs : grids.Grid
        Grid of the raw inputs (see :func:`input_grid`); they are carried onto the
        first level's grid by the transfer (identity if the grids agree).
    field : {"inside", "outside", "bottleneck"}
        The bottleneck's inner variable lives on the layer's own grid.
    activation, scheme, leaky_slope
        As for :class:`~spacetime.NeuralODE`.
    transfer : {"linear", "lagrange", "l2"}
        How states move between consecutive grids.
    transfer_order : int
        Degree of the Lagrange transfer.
    l2_coordinates : bool
        Optimise ``phi = sqrt(c) * theta`` instead of the kernel values ``theta``,
        where ``c`` holds the weights of the discrete control norm, so that the
        Euclidean norm the optimiser sees is the discrete ``L^2`` norm of the
        controls (mesh-independent steps).

    Notes
    -----
    Layer ``k`` with grid nodes ``ξ_j`` and weights ``ω_j`` (``j < n_k``) is the
    quadrature form of the field, e.g. for the inside field

        F_k(X)_j = sum_l w_k(ξ_j, ξ_l) ω_l act(X_l) + b_k(ξ_j),

    stepped by the Runge–Kutta scheme and followed by the transfer,

        X^{k+1} = Π_k ( X^k + dt_k sum_s b_s K_s ).

    Outside: ``act(sum_l w_jl ω_l X_l + b_j)``; bottleneck:
    ``sum_m w_jm ω_m act(sum_l a_ml ω_l X_l + b_m)``. The kernels therefore run with
    the effective matrices ``W_jl = w_jl ω_l``, the finite-width network of width
    ``n_k``. The output is ``P X = sum_j p_j ω_j X^L_j + p0`` and the control norm

        ||u||^2 = sum_k dt_k ( sum_jl ω_j ω_l (w_jl^2 + a_jl^2) + sum_j ω_j b_j^2 ).
    """

    kind = "spacetime"

    def __init__(
        self,
        moving: grids.MovingGrid,
        inputs: grids.Grid,
        *,
        field="inside",
        activation="tanh",
        scheme="euler",
        leaky_slope=0.01,
        transfer="linear",
        transfer_order=3,
        l2_coordinates=False,
    ):
        self.moving = moving
        self.time = moving.time
        self.inputs = inputs
        self.field = lookup(FIELDS, field, "vector field").name
        self.activation = lookup(ACTIVATIONS, activation, "activation").name
        self.scheme = lookup(SCHEMES, scheme, "time scheme").name
        self.leaky_slope = float(leaky_slope)
        self.transfer = transfer
        self.transfer_order = int(transfer_order)
        self.l2_coordinates = bool(l2_coordinates)
        if inputs.dim != moving.dim:
            raise ConfigError(
                f"inputs live on a {inputs.dim}-D grid but the network's grids are "
                f"{moving.dim}-D: give spacetime.widths for a {inputs.dim}-D domain"
            )

        f = FIELDS[self.field]
        widths = np.array(moving.widths, dtype=np.int64)
        n_steps = moving.n_steps
        self.n_inputs = inputs.n_nodes
        self.width = int(widths.max())
        self._embedding = grids.transfer(
            inputs, moving[0], transfer, order=self.transfer_order
        )
        pis = grids.transfers(moving, transfer, order=self.transfer_order)

        # per-parameter quadrature factors, in the kernels' layout
        self._blocks = [layer_blocks(f, int(n), int(n)) for n in widths[:-1]]
        scale = []
        for k, blocks in enumerate(self._blocks):
            w = moving[k].weights
            for name, _ in blocks:
                scale.append(np.ones_like(w) if name == "b" else np.tile(w, w.size))
        scale = np.concatenate(scale)
        self._norm_physical = self._physical_norm_weights()
        norm = self._norm_physical
        self._coordinate = np.ones_like(norm)
        if self.l2_coordinates:
            self._coordinate = 1.0 / np.sqrt(norm)
            scale = scale * self._coordinate
            norm = np.ones_like(norm)
        self._core = build_core(
            f,
            ACTIVATIONS[self.activation],
            self.leaky_slope,
            SCHEMES[self.scheme],
            widths,
            widths[:-1],
            self.time.steps,
            scale=scale,
            norm_weight=norm,
            out_weight=moving[n_steps].weights,
            transfers=pis,
        )

    def _physical_norm_weights(self):
        out = []
        for k in range(self.moving.n_steps):
            w = self.moving[k].weights
            dt = self.time.steps[k]
            for name, _ in self._blocks[k]:
                out.append(dt * w if name == "b" else dt * np.outer(w, w).ravel())
        return np.concatenate(out)

    # -- the interface shared with NeuralODE ------------------------------

    @property
    def core(self) -> Core:
        return self._core

    @property
    def n_steps(self) -> int:
        return self.moving.n_steps

    @property
    def T(self) -> float:
        return self.time.T

    @property
    def n_params(self) -> int:
        return self._core.n_params

    @property
    def widths(self) -> tuple[int, ...]:
        return self.moving.widths

    @property
    def homogeneous(self) -> bool:
        return FIELDS[self.field].is_homogeneous(ACTIVATIONS[self.activation])

    def physical(self, theta: np.ndarray) -> np.ndarray:
        """Kernel and bias values from the optimisation coordinates."""
        return theta * self._coordinate

    def coordinates(self, values: np.ndarray) -> np.ndarray:
        """Optimisation coordinates from kernel and bias values."""
        return values / self._coordinate

    def unpack(self, theta: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Controls per layer: ``w`` (n_k, n_k), ``a`` (n_k, n_k), ``b`` (n_k,).

        Values of the kernels at the grid nodes, ``w[j, l] = w(t_k, ξ_j, ξ_l)``.
        """
        values = self.physical(np.asarray(theta, dtype=np.float64))
        out, start = [], 0
        for blocks in self._blocks:
            layer = {}
            for name, shape in blocks:
                size = math.prod(shape)
                layer[name] = values[start : start + size].reshape(shape)
                start += size
            out.append(layer)
        return out

    def pack(self, controls) -> np.ndarray:
        """Inverse of :meth:`unpack`: optimisation coordinates, shape (n_params,)."""
        parts = []
        if len(controls) != self.n_steps:
            raise ConfigError(
                f"{len(controls)} layers of controls given, the network has "
                f"{self.n_steps}"
            )
        for k, blocks in enumerate(self._blocks):
            for name, shape in blocks:
                arr = np.asarray(controls[k][name], dtype=np.float64)
                if arr.shape != shape:
                    raise ConfigError(
                        f"control '{name}' of layer {k} has shape {arr.shape}, "
                        f"expected {shape}: it belongs to another grid"
                    )
                parts.append(arr.ravel())
        return self.coordinates(np.concatenate(parts))

    def controls_from_functions(self, w, b=None, a=None, *, at="left"):
        """Optimisation coordinates of controls given as functions.

        Parameters
        ----------
        w : callable
            ``w(t, xi, zeta)`` with ``xi`` of shape (n, 1, dim) and ``zeta`` of shape
            (1, n, dim) broadcasting to the kernel's values, shape (n, n); ``t`` a
            float. The kernel of layer ``k`` is ``w`` at time ``t_k`` (``at="left"``)
            or ``(t_k + t_{k+1}) / 2`` (``at="mid"``), at the nodes of grid ``k``.
        b : callable, optional
            ``b(t, xi)`` with ``xi`` of shape (n, dim), values of shape (n,);
            default zero.
        a : callable, optional
            The bottleneck's inner kernel ``a(t, zeta, eta)``, like ``w``.

        Returns
        -------
        ndarray, shape (n_params,)
        """
        nodes = self.time.nodes
        values = []
        for k, blocks in enumerate(self._blocks):
            t = nodes[k] if at == "left" else 0.5 * (nodes[k] + nodes[k + 1])
            xi = self.moving[k].nodes
            n = xi.shape[0]
            for name, shape in blocks:
                if name == "b":
                    v = np.zeros(n) if b is None else b(t, xi)
                else:
                    fun = w if name == "w" else a
                    if fun is None:
                        raise ConfigError(
                            "the bottleneck field needs the inner kernel "
                            "a(t, zeta, eta)"
                        )
                    v = fun(t, xi[:, None, :], xi[None, :, :])
                v = np.broadcast_to(np.asarray(v, dtype=np.float64), shape)
                values.append(np.array(v).ravel())
        return self.coordinates(np.concatenate(values))

    def init_params(self, seed=0, scale=0.1, n_modes=3) -> np.ndarray:
        """Seeded smooth random controls.

        Kernels and biases are random combinations of the first ``n_modes`` cosines
        per axis, so the initial controls are the same functions on every grid and
        the initialisation does not depend on the mesh. Their size is set so that
        the quadrature operator has norm about ``scale``.
        """
        rng = np.random.default_rng(seed)
        volume = self.moving[0].volume
        values = []
        for k, blocks in enumerate(self._blocks):
            basis = self._cosines(self.moving[k], n_modes)
            n_basis = basis.shape[1]
            for name, _ in blocks:
                if name == "b":
                    c = rng.normal(0.0, scale / math.sqrt(n_basis), n_basis)
                    values.append(basis @ c)
                else:
                    c = rng.normal(
                        0.0, scale / (volume * math.sqrt(n_basis)), (n_basis, n_basis)
                    )
                    values.append((basis @ c @ basis.T).ravel())
        return self.coordinates(np.concatenate(values))

    @staticmethod
    def _cosines(grid, n_modes):
        cols = []
        lo = np.array([a for a, _ in grid.domain])
        length = np.array([b - a for a, b in grid.domain])
        u = (grid.nodes - lo) / length
        for modes in np.ndindex(*([n_modes] * grid.dim)):
            col = np.ones(grid.n_nodes)
            for axis, m in enumerate(modes):
                col = col * np.cos(np.pi * m * u[:, axis])
            cols.append(col)
        return np.stack(cols, axis=1)

    def control_norm2(self, theta: np.ndarray) -> float:
        """The discrete ``||u||^2`` (see Notes of the class)."""
        values = self.physical(theta)
        return float(np.dot(self._norm_physical, values * values))

    def layer_norms(self, theta: np.ndarray) -> np.ndarray:
        """Discrete ``L^2(Ω)`` norm of the controls of each layer, shape (n_steps,)."""
        values = self.physical(theta) ** 2 * self._norm_physical
        out = np.empty(self.n_steps)
        start = 0
        for k, blocks in enumerate(self._blocks):
            size = sum(math.prod(s) for _, s in blocks)
            out[k] = math.sqrt(values[start : start + size].sum() / self.time.steps[k])
            start += size
        return out

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Inputs on the first grid, shape (n_samples, widths[0])."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.n_inputs:
            raise ConfigError(
                f"inputs have {x.shape[1]} values but the network's input grid has "
                f"{self.n_inputs} nodes: pass inputs of the training data's layout"
            )
        if self._embedding is None:
            return np.ascontiguousarray(x)
        return np.ascontiguousarray((self._embedding @ x.T).T)

    def flow(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """States at every level, shape (n_steps + 1, n_samples, max_width).

        Level ``k`` holds values at the nodes of grid ``k`` in its first
        ``widths[k]`` columns; the rest is zero.
        """
        return flow(self._core, theta, self.embed(x))

    def states(self, theta: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        """States per level, each of shape (n_samples, widths[k])."""
        full = self.flow(theta, x)
        return [full[k, :, :n] for k, n in enumerate(self.widths)]

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "field": self.field,
            "activation": self.activation,
            "scheme": self.scheme,
            "n_inputs": self.n_inputs,
            "width": self.width,
            "hidden": 0,
            "leaky_slope": self.leaky_slope,
            "T": self.T,
            "n_steps": self.n_steps,
            "dim": self.moving.dim,
            "transfer": self.transfer,
            "transfer_order": self.transfer_order,
            "l2_coordinates": self.l2_coordinates,
        }
