"""Forward simulation of space-time networks with prescribed controls.

A space-time network is also a nonlocal evolution equation in its own right: with the
kernels and biases given as functions of ``(t, ξ, ζ)`` instead of trained, stepping
it forward from given initial states is a simulation, the way a PDE code is used.
:func:`simulate` does that for one network and writes the solution at every time
level to one HDF5 file; :func:`run_simulation` does it for a run configuration with a
``[simulate]`` table (the ``spacetime simulate`` command).

Kernels, biases and initial states may be given as Python callables or as text
expressions such as ``"exp(-(xi - zeta)**2) * cos(t)"``. Text is parsed with
:mod:`ast` and checked against a short whitelist of names, operators and NumPy
functions before it is evaluated by a small interpreter of the checked tree: it
never reaches :func:`eval`. The layout of the file is documented in
``docs/simulate.md``.
"""

from __future__ import annotations

import ast
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

import grids

from . import _io
from ._config import dump, validate
from ._errors import ConfigError, RunFileError
from ._spacetime import SpaceTimeNetwork

log = logging.getLogger(__name__)

FORMAT = "spacetime-simulation"
FORMAT_VERSION = 1

#: Longest expression text accepted (characters).
MAX_EXPRESSION_LENGTH = 2000
#: Deepest nesting of operations accepted (the checker and evaluator recurse).
MAX_EXPRESSION_DEPTH = 100

# ---------------------------------------------------------------------------
# Safe expressions

#: NumPy functions an expression may call, with their number of arguments.
FUNCTIONS = {
    "sin": (np.sin, 1),
    "cos": (np.cos, 1),
    "tan": (np.tan, 1),
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "tanh": (np.tanh, 1),
    "sinh": (np.sinh, 1),
    "cosh": (np.cosh, 1),
    "arctan": (np.arctan, 1),
    "minimum": (np.minimum, 2),
    "maximum": (np.maximum, 2),
    "where": (np.where, 3),
    "heaviside": (np.heaviside, 2),
}

#: Named constants an expression may use.
CONSTANTS = {"pi": math.pi, "e": math.e}

_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive}
_COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_OPERATOR_TEXT = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Not: "not",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_NODE_TEXT = {
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "an if-else",
    ast.NamedExpr: "an assignment",
    ast.JoinedStr: "a string",
    ast.ListComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.Starred: "a starred argument",
    ast.Slice: "a slice",
    ast.Await: "'await'",
}


def variable_names(role: str, dim: int) -> tuple[str, ...]:
    """The variables an expression of a given role may use.

    Parameters
    ----------
    role : {"w", "a", "b", "x0"}
        Kernel ``w(t, ξ, ζ)``, bottleneck kernel ``a(t, ζ, η)``, bias ``b(t, ξ)``
        or initial state ``x0(ξ)``.
    dim : {1, 2}
        Dimension of the domain: in 1-D a point is ``xi``, in 2-D ``xi0, xi1``.

    Returns
    -------
    tuple of str
    """
    points = {"w": ("xi", "zeta"), "a": ("zeta", "eta"), "b": ("xi",), "x0": ("xi",)}
    if role not in points:
        raise ValueError(f"unknown expression role {role!r}")
    names = () if role == "x0" else ("t",)
    for p in points[role]:
        names += (p,) if dim == 1 else tuple(f"{p}{i}" for i in range(dim))
    return names


class Expression:
    """A checked arithmetic expression of named array variables.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"exp(-(xi - zeta)**2) * cos(t)"``.
    variables : sequence of str
        The names it may use besides ``pi``, ``e`` and the functions in
        :data:`FUNCTIONS`.
    label : str
        How error messages name it, e.g. ``"simulate.w"``.

    Raises
    ------
    ConfigError
        For text that is not an expression, or that uses anything but numbers, the
        variables, ``pi``, ``e``, ``+ - * / **``, unary minus, comparisons and calls
        of the whitelisted functions (no attributes, subscripts, other names,
        lambdas, keywords).

    Notes
    -----
    The text is parsed with :func:`ast.parse`, every node is checked, and calls
    evaluate the checked tree node by node with NumPy under ``errstate(all=
    "ignore")``; constants become float64, comparisons give 0.0 or 1.0.
    """

    def __init__(self, text: str, variables, label: str = "expression"):
        self.text = text
        self.variables = tuple(variables)
        self.label = label
        if not isinstance(text, str):
            raise ConfigError(
                f"{label} must be an expression in a string, got {text!r}: write it "
                'like "exp(-(xi - zeta)**2) * cos(t)"'
            )
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise ConfigError(
                f"{label} is {len(text)} characters long, more than the "
                f"{MAX_EXPRESSION_LENGTH} an expression may have: write a shorter one"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            raise ConfigError(
                f"{label} = {text!r} is not a valid expression ({err.msg}): write "
                'it like "exp(-(xi - zeta)**2) * cos(t)"'
            ) from None
        except (RecursionError, MemoryError, ValueError):
            raise ConfigError(
                f"{label} = {text!r} cannot be parsed (too deeply nested or "
                "containing a null character): write a simpler expression"
            ) from None
        self._source = text.strip()
        if _depth(tree.body) > MAX_EXPRESSION_DEPTH:
            raise ConfigError(
                f"{label} nests operations more than {MAX_EXPRESSION_DEPTH} deep: "
                "write a simpler expression"
            )
        self._check(tree.body)
        self._tree = tree.body

    # -- checking ---------------------------------------------------------

    def _allowed(self) -> str:
        return (
            "numbers, " + ", ".join(self.variables) + ", pi, e, + - * / **, "
            "comparisons and the functions " + ", ".join(FUNCTIONS)
        )

    def _reject(self, node, what: str):
        segment = ast.get_source_segment(self._source, node) or ast.unparse(node)
        raise ConfigError(
            f"{self.label} = {self.text!r} uses {what} '{segment}', which is not "
            f"allowed: an expression may use only {self._allowed()}"
        )

    def _check(self, node):
        if isinstance(node, ast.Constant):
            v = node.value
            if not isinstance(v, int | float) or isinstance(v, bool):
                self._reject(node, "the constant")
        elif isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                self._reject(node, "the function name without a call")
            if node.id not in self.variables and node.id not in CONSTANTS:
                self._reject(node, "the unknown name")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                op = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
                self._reject(node, f"the operator '{op}' in")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                op = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
                self._reject(node, f"the operator '{op}' in")
            self._check(node.operand)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    text = _OPERATOR_TEXT.get(type(op), type(op).__name__)
                    self._reject(node, f"the operator '{text}' in")
            self._check(node.left)
            for c in node.comparators:
                self._check(c)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self._check(node.func)  # an attribute, subscript, ... is named there
                self._reject(node, "a call of")
            name = node.func.id
            if name not in FUNCTIONS:
                self._reject(node, f"a call of '{name}', not an allowed function, in")
            if node.keywords:
                self._reject(node, "a keyword argument in")
            n_args = FUNCTIONS[name][1]
            if len(node.args) != n_args:
                s = "" if n_args == 1 else "s"
                self._reject(
                    node,
                    f"{len(node.args)} arguments where {name} takes {n_args}"
                    f" argument{s}, in",
                )
            for arg in node.args:
                self._check(arg)
        else:
            what = _NODE_TEXT.get(type(node), f"a {type(node).__name__} expression")
            self._reject(node, what)

    # -- evaluating -------------------------------------------------------

    def __call__(self, **values) -> np.ndarray:
        """Value of the expression for the given variables, as float64.

        Parameters
        ----------
        **values : float or ndarray
            One value per variable; arrays broadcast with each other.

        Returns
        -------
        ndarray
            Of the broadcast shape of the variables the expression uses (a 0-d array
            for a constant expression).
        """
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise TypeError(f"{self.label} needs values of {', '.join(missing)}")
        with np.errstate(all="ignore"):
            out = self._eval(self._tree, values)
        return np.asarray(out, dtype=np.float64)

    def _eval(self, node, values):
        if isinstance(node, ast.Constant):
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return np.float64(CONSTANTS[node.id])
            return np.asarray(values[node.id], dtype=np.float64)
        if isinstance(node, ast.BinOp):
            left = self._eval(node.left, values)
            right = self._eval(node.right, values)
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, values))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            result = None
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, values)
                part = _COMPARE[type(op)](left, right)
                result = part if result is None else np.logical_and(result, part)
                left = right
            return np.asarray(result, dtype=np.float64)
        # a call of a whitelisted function (the only node left after _check)
        fun = FUNCTIONS[node.func.id][0]
        return fun(*(self._eval(arg, values) for arg in node.args))

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def _depth(tree) -> int:
    """Depth of a syntax tree, found without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _points(name: str, p: np.ndarray, dim: int) -> dict:
    """Variables ``{name: p[..., 0]}`` (1-D) or ``{name0: ..., name1: ...}``."""
    if dim == 1:
        return {name: p[..., 0]}
    return {f"{name}{i}": p[..., i] for i in range(dim)}


class ExpressionFunction:
    """A control or initial state given by an :class:`Expression`.

    Called like the functions :meth:`SpaceTimeNetwork.controls_from_functions`
    takes (``w(t, xi, zeta)``, ``a(t, zeta, eta)``, ``b(t, xi)``) or like an
    initial state ``x0(xi)``; the points carry a last axis of length ``dim`` that is
    split into the variables ``xi`` (1-D) or ``xi0, xi1`` (2-D). The result is
    broadcast to the points' shape and must be finite.

    Parameters
    ----------
    text : str
    role : {"w", "a", "b", "x0"}
    dim : {1, 2}
    label : str, optional
        How error messages name it; default the role.
    """

    def __init__(self, text: str, role: str, dim: int, label: str | None = None):
        self.role = role
        self.dim = int(dim)
        self.label = label or role
        self.expression = Expression(text, variable_names(role, dim), self.label)
        self.text = text

    def __call__(self, *args) -> np.ndarray:
        names = {"w": ("xi", "zeta"), "a": ("zeta", "eta"), "b": ("xi",)}
        if self.role == "x0":
            (xi,) = args
            t, points = None, {"xi": np.asarray(xi, dtype=np.float64)}
        else:
            t, *ps = args
            points = dict(zip(names[self.role], ps, strict=True))
        values = {} if t is None else {"t": np.float64(t)}
        shape = None
        for name, p in points.items():
            p = np.asarray(p, dtype=np.float64)
            values.update(_points(name, p, self.dim))
            s = p.shape[:-1]
            shape = s if shape is None else np.broadcast_shapes(shape, s)
        out = np.broadcast_to(self.expression(**values), shape)
        if not np.all(np.isfinite(out)):
            at = "" if t is None else f" at t = {float(t):g}"
            raise ConfigError(
                f"{self.label} = {self.text!r} is not finite at some nodes{at}: "
                "change the expression so that it is defined on the whole domain"
            )
        return out

    def __repr__(self) -> str:
        return f"ExpressionFunction({self.text!r}, role={self.role!r})"


def _as_function(obj, role, dim, label):
    if obj is None or callable(obj):
        return obj
    if isinstance(obj, str):
        if not obj.strip():
            return None
        return ExpressionFunction(obj, role, dim, label)
    raise ConfigError(
        f"{label} must be a function or an expression string, got {type(obj).__name__}"
        ': pass a callable or text such as "cos(xi)"'
    )


# ---------------------------------------------------------------------------
# The simulation


@dataclass
class Simulation:
    """The solution of a space-time network with prescribed controls.

    Attributes
    ----------
    times : ndarray, shape (n_steps + 1,)
        The time levels ``t_k``.
    grids : tuple of grids.Grid, length n_steps + 1
        The grid of each level.
    states : list of ndarray, each of shape (n_samples, widths[k])
        ``states[k][i, j] = x_i(t_k, ξ_j)`` at the nodes of ``grids[k]``.
    controls : list of dict, length n_steps
        Per layer the kernel values at the grid nodes: ``w`` (n_k, n_k), ``b``
        (n_k,) and, for the bottleneck, ``a`` (n_k, n_k).
    inputs : ndarray, shape (n_samples, n_inputs)
        The initial values on the network's input grid.
    path : Path or None
        The file written, if any.
    network : SpaceTimeNetwork or None
        The network simulated (None for a simulation read from a file).
    """

    times: np.ndarray
    grids: tuple
    states: list
    controls: list
    inputs: np.ndarray
    path: Path | None = None
    network: SpaceTimeNetwork | None = None

    @property
    def n_samples(self) -> int:
        return self.inputs.shape[0]

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(g.n_nodes for g in self.grids)

    def norms(self) -> np.ndarray:
        """Discrete ``L^2(Ω)`` norm of every sample at every level.

        Returns
        -------
        ndarray, shape (n_steps + 1, n_samples)
            ``sqrt(sum_j ω_j x_i(t_k, ξ_j)^2)`` with the weights of grid ``k``.
        """
        return np.array(
            [
                np.sqrt(np.sum(g.weights * x * x, axis=1))
                for g, x in zip(self.grids, self.states, strict=True)
            ]
        )

    def summary(self) -> str:
        """A few lines: levels, grids and the norms at ``t_0`` and ``t_L``."""
        shapes = ["x".join(map(str, g.shape)) for g in self.grids]
        norms = self.norms()
        lines = [
            f"time levels     {len(self.times)} on [{self.times[0]:g}, "
            f"{self.times[-1]:g}]",
            f"grids           {_level_runs(shapes)}",
            f"samples         {self.n_samples}",
        ]
        for i in range(min(self.n_samples, 8)):
            lines.append(
                f"L2 norm {i:<7} {norms[0, i]:.6g} at t = {self.times[0]:g}, "
                f"{norms[-1, i]:.6g} at t = {self.times[-1]:g}"
            )
        if self.n_samples > 8:
            lines.append(f"                ({self.n_samples - 8} more samples)")
        if self.path is not None:
            lines.append(f"output          {self.path}")
        return "\n".join(lines)


def _level_runs(values) -> str:
    """``64 (4 levels), 32 (5 levels)``: run lengths of a per-level sequence."""
    parts, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            n = i - start
            parts.append(f"{values[start]} ({n} level{'s' if n > 1 else ''})")
            start = i
    return ", ".join(parts)


def _initial_values(network: SpaceTimeNetwork, x0) -> tuple[np.ndarray, list]:
    """Initial values on the input grid, shape (n_samples, n_inputs), and texts."""
    if callable(x0) or isinstance(x0, str):
        x0 = [x0]
    dim = network.inputs.dim
    if isinstance(x0, list | tuple) and any(
        callable(f) or isinstance(f, str) for f in x0
    ):
        nodes = network.inputs.nodes
        rows, texts = [], []
        for i, f in enumerate(x0):
            fun = _as_function(f, "x0", dim, f"x0[{i}]")
            if fun is None:
                raise ConfigError(
                    f"x0[{i}] is an empty expression: give the initial state as a "
                    'function of xi, e.g. "sin(pi*xi)"'
                )
            values = np.asarray(fun(nodes), dtype=np.float64)
            rows.append(np.broadcast_to(values, (nodes.shape[0],)))
            texts.append(getattr(fun, "text", ""))
        return np.array(rows), texts
    x = np.asarray(x0, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != network.n_inputs or x.shape[0] == 0:
        raise ConfigError(
            f"x0 has shape {x.shape} but the network's input grid has "
            f"{network.n_inputs} nodes: pass an array of shape (n_samples, "
            f"{network.n_inputs}) or a list of functions of xi"
        )
    return x, []


def simulate(
    network: SpaceTimeNetwork,
    x0,
    *,
    w,
    b=None,
    a=None,
    path=None,
    overwrite: bool = False,
    at: str = "left",
    config_text: str | None = None,
) -> Simulation:
    """Solve a space-time network forward with prescribed kernels and biases.

    Parameters
    ----------
    network : SpaceTimeNetwork
        The network: moving grid, field, activation, scheme and transfers.
    x0 : ndarray, shape (n_samples, n_inputs), or list of callables or str
        The initial states: values at the nodes of ``network.inputs``, or one
        function per sample evaluated there, ``f(xi)`` with ``xi`` of shape
        (n_inputs, dim) returning values of shape (n_inputs,) (or broadcasting to
        it). A string is an expression of ``xi`` (1-D) or ``xi0, xi1`` (2-D), see
        :class:`Expression`. The values are carried onto the first level's grid by
        the network's transfer.
    w : callable or str
        The kernel ``w(t, xi, zeta)``, ``xi`` of shape (n, 1, dim), ``zeta`` of shape
        (1, n, dim), values broadcasting to (n, n); or an expression of ``t, xi,
        zeta`` (``xi0, xi1, zeta0, zeta1`` in 2-D).
    b : callable or str, optional
        The bias ``b(t, xi)``, ``xi`` of shape (n, dim); zero by default.
    a : callable or str, optional
        The bottleneck's inner kernel ``a(t, zeta, eta)``; required for the
        bottleneck field and only used by it.
    path : path-like, optional
        Write the solution to this HDF5 file (atomically; see ``docs/simulate.md``).
    overwrite : bool
        Replace an existing file at ``path``.
    at : {"left", "mid"}
        Evaluate the controls of layer ``k`` at ``t_k`` or at ``(t_k + t_{k+1})/2``.
    config_text : str, optional
        A configuration to store in the file as provenance.

    Returns
    -------
    Simulation

    Raises
    ------
    ConfigError
        For a malformed or disallowed expression, initial values of the wrong
        shape, non-finite controls or initial values, a missing ``a``, or a
        simulation whose estimated memory (:func:`memory_needed`) exceeds the
        available memory (checked before the controls are evaluated).
    RunFileError
        When ``path`` cannot be written (checked before anything is computed).

    Notes
    -----
    With controls ``w_k(ξ, ζ) = w(τ_k, ξ, ζ)``, ``b_k(ξ) = b(τ_k, ξ)`` (``τ_k = t_k``
    or the midpoint), level ``k`` with nodes ``ξ_j`` and weights ``ω_j`` advances,
    for the inside field and forward Euler,

        X^{k+1}_j = Π_k ( X^k + dt_k F_k(X^k) )_j,
        F_k(X)_j = sum_l w_k(ξ_j, ξ_l) ω_l σ(X_l) + b_k(ξ_j),

    from ``X^0 = E x0`` (``E`` the transfer from the input grid to the first grid);
    the other fields and Runge–Kutta schemes as in :class:`SpaceTimeNetwork`. This is
    the quadrature discretisation of ``∂_t x(t, ξ) = ∫_Ω w(t, ξ, ζ) σ(x(t, ζ)) dζ
    + b(t, ξ)``.
    """
    if not isinstance(network, SpaceTimeNetwork):
        raise ConfigError(
            f"simulate needs a SpaceTimeNetwork, got {type(network).__name__}: build "
            "one on a moving grid"
        )
    if at not in ("left", "mid"):
        raise ConfigError(
            f"at must be 'left' or 'mid', got {at!r}: the time in each layer at "
            "which the controls are evaluated"
        )
    if path is not None:
        path = _io.check_output_path(Path(path), overwrite, how="overwrite=True")
    dim = network.moving.dim
    w_fun = _as_function(w, "w", dim, "w")
    b_fun = _as_function(b, "b", dim, "b")
    a_fun = _as_function(a, "a", dim, "a")
    if w_fun is None:
        raise ConfigError(
            "the kernel w is missing: give w(t, xi, zeta) as a function or as an "
            'expression such as "exp(-(xi - zeta)**2) * cos(t)"'
        )
    if a_fun is not None and network.field != "bottleneck":
        raise ConfigError(
            f"the inner kernel a is only used by the bottleneck field, and this "
            f"network has the {network.field} field: leave a out, or use the "
            "bottleneck field"
        )
    if a_fun is None and network.field == "bottleneck":
        raise ConfigError(
            "the bottleneck field needs the inner kernel a(t, zeta, eta): give it "
            'as a function or as an expression such as "exp(-(zeta - eta)**2)"'
        )
    x, x0_texts = _initial_values(network, x0)
    if not np.all(np.isfinite(x)):
        raise ConfigError(
            "the initial values x0 are not all finite: give finite values at every "
            "node of the input grid"
        )
    _check_memory(
        [(int(n), 1) for n in network.widths], network.n_steps, network.field,
        x.shape[0],
    )
    theta = network.controls_from_functions(w_fun, b_fun, a_fun, at=at)
    if not np.all(np.isfinite(theta)):
        raise ConfigError(
            "the prescribed controls are not finite at some nodes: give kernels and "
            "biases defined on the whole domain at every time level"
        )
    states = [np.array(s) for s in network.states(theta, x)]
    if not all(np.all(np.isfinite(s)) for s in states):
        log.warning(
            "the solution is not finite at some levels: the prescribed field blows "
            "up within [0, %g]; use smaller kernels or a shorter horizon",
            network.T,
        )
    sim = Simulation(
        times=np.array(network.time.nodes),
        grids=tuple(network.moving.grids),
        states=states,
        controls=[
            {k: np.array(v) for k, v in layer.items()}
            for layer in network.unpack(theta)
        ],
        inputs=x,
        path=None,
        network=network,
    )
    if path is not None:
        texts = {
            name: getattr(f, "text", None)
            for name, f in (("w", w_fun), ("b", b_fun), ("a", a_fun))
        }
        _write(path, sim, network, at, texts, x0_texts, config_text)
        sim.path = path
        log.info("wrote simulation %s", path)
    return sim


# ---------------------------------------------------------------------------
# The file


def _write(path, sim, network, at, texts, x0_texts, config_text):
    prov = _io.provenance(0)
    with _io.atomic_path(path) as tmp:
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["format_version"] = FORMAT_VERSION
                f.attrs["created"] = prov["date"]
                f.create_group("config").attrs["toml"] = config_text or ""
                _set_attrs(f.create_group("provenance"), prov)
                model = f.create_group("model")
                _set_attrs(model, network.describe())
                model.attrs["domain"] = json.dumps(
                    [list(d) for d in network.moving.domain]
                )

                g = f.create_group("time")
                _io.put(g, "t", sim.times, ("level",))
                _io.put(g, "dt", np.diff(sim.times), ("layer",))

                g = f.create_group("inputs")
                _io.put(g, "x0", sim.inputs, ("sample", "input_node"))
                _io.put(g, "nodes", network.inputs.nodes, ("input_node", "axis"))
                _io.put(g, "weights", network.inputs.weights, ("input_node",))
                g.attrs["shape"] = np.array(network.inputs.shape, dtype=np.int64)
                g.attrs["expressions"] = json.dumps(list(x0_texts))

                g = f.create_group("grids")
                _io.put(g, "width", np.array(sim.widths, dtype=np.int64), ("level",))
                for k, grid in enumerate(sim.grids):
                    lg = g.create_group(_io.level_name(k))
                    _io.put(lg, "nodes", grid.nodes, ("node", "axis"))
                    _io.put(lg, "weights", grid.weights, ("node",))
                    lg.attrs["shape"] = np.array(grid.shape, dtype=np.int64)
                    lg.attrs["rule"] = grid.rule

                g = f.create_group("controls")
                g.attrs["at"] = at
                for name, text in texts.items():
                    if text is not None:
                        g.attrs[name] = text
                nodes = network.time.nodes
                for k, layer in enumerate(sim.controls):
                    lg = g.create_group(_io.layer_name(k))
                    t = nodes[k] if at == "left" else 0.5 * (nodes[k] + nodes[k + 1])
                    lg.attrs["t"] = float(t)
                    for name, arr in layer.items():
                        dims = ("node", "node_in") if arr.ndim == 2 else ("node",)
                        _io.put(lg, name, arr, dims)

                g = f.create_group("solution")
                for k, x in enumerate(sim.states):
                    node = f"node_{k:05d}"
                    ds = _io.put(g, _io.level_name(k), x, ("sample", node))
                    ds.attrs["t"] = float(sim.times[k])
        except OSError as err:
            raise RunFileError(
                f"cannot write simulation file '{path}': {err}"
            ) from None


def _set_attrs(group, values: dict):
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            v = np.int8(v)
        group.attrs[k] = v


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def load_simulation(path) -> Simulation:
    """Read a simulation file written by :func:`simulate`.

    Returns
    -------
    Simulation
        With ``network`` None; its grids are rebuilt from the stored nodes and
        weights.

    Raises
    ------
    RunFileError
        When the file is missing, not HDF5, not a simulation file, of another
        format version, or damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"simulation file '{path}' does not exist: check the path")
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError):
        raise RunFileError(
            f"'{path}' is not a readable HDF5 file (truncated or corrupt): run the "
            "simulation again"
        ) from None
    try:
        with f:
            if _text(f.attrs.get("format", "")) != FORMAT:
                raise RunFileError(
                    f"'{path}' is not a spacetime simulation file: give a file "
                    "written by 'spacetime simulate'"
                )
            version = f.attrs.get("format_version")
            if version != FORMAT_VERSION:
                raise RunFileError(
                    f"'{path}' has simulation format version "
                    f"{_io.version_text(version)}; this spacetime reads version "
                    f"{FORMAT_VERSION}: use the spacetime version that wrote it"
                )
            domain = [tuple(d) for d in json.loads(_text(f["model"].attrs["domain"]))]
            times = f["time/t"][()]
            levels = []
            for k in range(len(times)):
                g = f["grids"][_io.level_name(k)]
                levels.append(
                    grids.custom_grid(
                        g["nodes"][()],
                        g["weights"][()],
                        domain,
                        shape=tuple(int(s) for s in g.attrs["shape"]),
                        rule=_text(g.attrs["rule"]),
                    )
                )
            states = [f["solution"][_io.level_name(k)][()] for k in range(len(times))]
            controls = []
            for k in range(len(times) - 1):
                lg = f["controls"][_io.layer_name(k)]
                controls.append(
                    {name: lg[name][()] for name in ("w", "a", "b") if name in lg}
                )
            inputs = f["inputs/x0"][()]
    except RunFileError:
        raise
    except (
        KeyError,
        OSError,
        ValueError,
        RuntimeError,
        TypeError,
        grids.GridError,
    ) as err:
        raise RunFileError(
            f"simulation file '{path}' is incomplete or damaged ({err}): run the "
            "simulation again"
        ) from None
    return Simulation(times, tuple(levels), states, controls, inputs, path, None)


# ---------------------------------------------------------------------------
# From a configuration


def _network_on_first_grid(config: dict) -> SpaceTimeNetwork:
    """The config's network with the first level's grid as its input grid."""
    from ._run import _domain, time_grid

    m, s = config["model"], config["spacetime"]
    widths = s["widths"]
    if not widths:
        raise ConfigError(
            "simulate.inputs given as expressions need spacetime.widths, the grid "
            "sizes [[t_start, n], ...] or [[t_start, n0, n1], ...]: there is no "
            "dataset to take them from"
        )
    dims = {len(entry) - 1 for entry in widths}
    if len(dims) != 1:
        raise ConfigError(
            f"spacetime.widths mixes 1-D and 2-D entries ({widths!r}): give every "
            "entry as [t_start, n] or every entry as [t_start, n0, n1]"
        )
    dim = dims.pop()
    domain = _domain(s["domain"])
    if domain is not None and len(domain) != dim:
        raise ConfigError(
            f"spacetime.domain {s['domain']!r} has {len(domain)} axes but "
            f"spacetime.widths describes {dim}-D grids: give one interval per axis"
        )
    schedule = [
        (float(entry[0]), entry[1] if dim == 1 else tuple(entry[1:]))
        for entry in widths
    ]
    moving = grids.moving_grid(time_grid(config), s["rule"], schedule, domain=domain)
    return SpaceTimeNetwork(
        moving,
        moving[0],
        field=m["field"],
        activation=m["activation"],
        scheme=m["scheme"],
        leaky_slope=m["leaky_slope"],
        transfer=s["transfer"],
        transfer_order=s["transfer_order"],
        l2_coordinates=s["l2_coordinates"],
    )


_MEMORY_TIPS = (
    "use fewer time levels (model.n_steps), smaller grids (spacetime.widths) or "
    "fewer samples (simulate.n_samples, or fewer simulate.inputs)"
)


def memory_needed(profile, n_steps, field, n_samples, n_data=0) -> int:
    """Bytes a simulation allocates at its peak, estimated from its sizes alone.

    Parameters
    ----------
    profile : list of (int, int)
        The grid sizes as (nodes, number of levels) pairs.
    n_steps : int
    field : str
        The bottleneck field has two kernels per layer, the others one.
    n_samples : int
        Samples simulated.
    n_data : int
        Samples of a dataset still to be loaded, to take the inputs from.

    Notes
    -----
    The terms: the controls (a kernel of ``n_k^2`` values and a bias per level),
    counted seven times (they are evaluated, joined, put in coordinates, unpacked
    and written; the peak measured on a 800-node grid with 20 levels was six
    times their size above the interpreter's); the temporaries of one kernel
    expression on the largest grid (six arrays of ``n^2``); the states, once
    padded to the largest grid at every level and twice per level; a dataset's
    inputs, standardised copy and labels.
    """
    widest = max(n for n, _ in profile)
    n_inputs = profile[0][0]
    squares = 2 if field == "bottleneck" else 1
    n_params = sum((squares * n * n + n) * count for n, count in profile)
    levels = sum(n * count for n, count in profile)
    return 8 * (
        7 * n_params
        + 6 * widest * widest
        + n_samples * (n_steps + 1) * widest
        + 2 * n_samples * levels
        + 3 * n_data * (n_inputs + 1)
    )


def _check_memory(profile, n_steps, field, n_samples, n_data=0):
    from ._run import require_memory

    need = memory_needed(profile, n_steps, field, n_samples, n_data)
    require_memory(need, "this simulation", _MEMORY_TIPS)


def run_simulation(
    config, *, config_text: str | None = None, out=None, overwrite: bool | None = None
) -> Simulation:
    """Simulate the space-time network of a run configuration's ``[simulate]`` table.

    Parameters
    ----------
    config : dict
        A run configuration (validated here) with ``model.kind = "spacetime"``.
        ``simulate.w``, ``simulate.b`` and ``simulate.a`` are expressions of the
        controls; ``simulate.inputs`` one expression per sample, evaluated at the
        nodes of the first level's grid (which then sizes the network without a
        dataset). With ``simulate.inputs = []`` the first ``simulate.n_samples``
        training inputs of the config's dataset are used, on the dataset's grid.
    config_text : str, optional
        The configuration's text, stored in the file; default the validated config.
    out : path-like, optional
        Output file; default ``simulate.out``.
    overwrite : bool, optional
        Override ``simulate.overwrite``.

    Returns
    -------
    Simulation

    Raises
    ------
    ConfigError, RunFileError, grids.GridError
        Before anything is written: a config that is not a space-time network, a
        missing or disallowed expression, an output path that cannot be written, a
        simulation that would need more memory than is available (checked before
        the network or a generated dataset is built).
    """
    from ._run import _GENERATORS, _set_threads, _width_profile, build_model, load_data

    config = validate(config or {})
    if config["model"]["kind"] != "spacetime":
        raise ConfigError(
            f"spacetime simulate needs model.kind = 'spacetime', the config has "
            f"'{config['model']['kind']}': set it in [model] and describe the grids "
            "in [spacetime]"
        )
    s = config["simulate"]
    if not s["w"].strip():
        raise ConfigError(
            "simulate.w is missing: give the kernel as an expression of t, xi and "
            'zeta in [simulate], e.g. w = "exp(-(xi - zeta)**2) * cos(t)"'
        )
    bad = [v for v in s["inputs"] if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ConfigError(
            f"simulate.inputs must be non-empty expression strings, got {bad[0]!r}: "
            'write them like inputs = ["sin(pi*xi)", "xi*(1-xi)"]'
        )
    path = Path(out) if out is not None else Path(s["out"])
    if overwrite is None:
        overwrite = s["overwrite"]
    _io.check_output_path(
        path, overwrite, how="--overwrite (simulate.overwrite = true)"
    )
    _set_threads(config["threads"])

    m = config["model"]
    if s["inputs"]:
        first = config["spacetime"]["widths"][:1]
        if first and all(isinstance(v, int) for v in first[0][1:]):
            n_inputs = math.prod(first[0][1:])
            _check_memory(
                _width_profile(config, n_inputs), m["n_steps"], m["field"],
                len(s["inputs"]),
            )
        network = _network_on_first_grid(config)
        dim = network.moving.dim
        x0 = [
            ExpressionFunction(text, "x0", dim, f"simulate.inputs[{i}]")
            for i, text in enumerate(s["inputs"])
        ]
    else:
        d = config["data"]
        if d["name"] in _GENERATORS and d["n_samples"]:
            # generated data are as large as the config says: check before drawing
            n = min(d["n_samples"], d["max_samples"] or d["n_samples"])
            _check_memory(
                _width_profile(config, 2), m["n_steps"], m["field"],
                min(n, s["n_samples"]), n,
            )
        dataset = load_data(config)
        _check_memory(
            _width_profile(config, dataset.n_features), m["n_steps"], m["field"],
            min(dataset.n_train, s["n_samples"]),
        )
        network = build_model(config, dataset)
        dim = network.moving.dim
        x0 = dataset.x_train[: s["n_samples"]]
        if dataset.n_train < s["n_samples"]:
            log.warning(
                "the dataset has %d training samples, fewer than simulate.n_samples "
                "= %d: simulating all of them",
                dataset.n_train,
                s["n_samples"],
            )
    w = ExpressionFunction(s["w"], "w", dim, "simulate.w")
    b = _as_function(s["b"], "b", dim, "simulate.b")
    a = _as_function(s["a"], "a", dim, "simulate.a")
    if a is not None and network.field != "bottleneck":
        raise ConfigError(
            f"simulate.a is only used by the bottleneck field, and model.field is "
            f"'{network.field}': remove simulate.a, or set model.field = 'bottleneck'"
        )
    if a is None and network.field == "bottleneck":
        raise ConfigError(
            "model.field = 'bottleneck' needs simulate.a, the inner kernel: give it "
            'as an expression of t, zeta and eta, e.g. a = "exp(-(zeta - eta)**2)"'
        )
    return simulate(
        network,
        x0,
        w=w,
        b=b,
        a=a,
        path=path,
        overwrite=overwrite,
        at=s["at"],
        config_text=config_text if config_text is not None else dump(config),
    )
