"""Spatial grids: quadrature nodes and weights on a box Ω ⊂ R^s.

A one-dimensional rule is a function ``(n, a, b) -> (nodes, weights)`` that returns
``n`` increasing nodes in [a, b] and positive weights summing to ``b - a``. The
rules are collected in :data:`RULES`; adding a rule is adding one entry there.
Tensor grids take the Cartesian product of one-dimensional rules, in C order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._errors import GridError, as_count, unknown_name_error

__all__ = ["RULES", "Grid", "custom_grid", "grid", "tensor_grid"]

Domain = tuple[tuple[float, float], ...]
Rule = Callable[[int, float, float], tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------
# One-dimensional rules
# ---------------------------------------------------------------------------


def _midpoint(n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite midpoint rule: the centres of ``n`` equal cells.

    Parameters
    ----------
    n : int
        Number of nodes (= number of cells), ``n >= 1``.
    a, b : float
        The interval, ``a < b``.

    Returns
    -------
    nodes : ndarray, shape (n,)
        ``x_i = a + (i + 1/2) h`` with ``h = (b - a) / n``.
    weights : ndarray, shape (n,)
        All equal to ``h``.

    Notes
    -----
    ``∫_a^b f ≈ h Σ_{i=0}^{n-1} f(a + (i + 1/2) h)``. Exact for polynomials of
    degree 1; the error is ``(b - a) h² f''(η) / 24``, order 2.
    """
    h = (b - a) / n
    nodes = a + (b - a) * ((np.arange(n) + 0.5) / n)
    return nodes, np.full(n, h)


def _trapezoid(n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite trapezoidal rule on ``n`` equispaced nodes including the ends.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 2``.
    a, b : float
        The interval, ``a < b``.

    Returns
    -------
    nodes : ndarray, shape (n,)
        ``x_i = a + i h`` with ``h = (b - a) / (n - 1)``; ``x_0 = a``,
        ``x_{n-1} = b`` exactly.
    weights : ndarray, shape (n,)
        ``h / 2`` at both ends and ``h`` in between.

    Notes
    -----
    ``∫_a^b f ≈ h (f(x_0)/2 + f(x_1) + ... + f(x_{n-2}) + f(x_{n-1})/2)``. Exact
    for polynomials of degree 1; the error is ``-(b - a) h² f''(η) / 12``, order 2.
    """
    if n < 2:
        raise GridError(
            f"the trapezoid rule needs at least 2 nodes (both endpoints), got {n}: "
            "use n >= 2 or the midpoint rule"
        )
    h = (b - a) / (n - 1)
    nodes = a + (b - a) * (np.arange(n) / (n - 1))
    nodes[-1] = b
    weights = np.full(n, h)
    weights[[0, -1]] = h / 2
    return nodes, weights


def _gauss_legendre(n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre rule with ``n`` nodes, the roots of the Legendre polynomial.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 1``.
    a, b : float
        The interval, ``a < b``.

    Returns
    -------
    nodes : ndarray, shape (n,)
        ``x_i = (a + b)/2 + (b - a)/2 ξ_i`` where ``ξ_i`` are the roots of
        ``P_n`` on [-1, 1]; all interior.
    weights : ndarray, shape (n,)
        ``(b - a)/2 ω_i`` with ``ω_i = 2 / ((1 - ξ_i²) P_n'(ξ_i)²)``.

    Notes
    -----
    ``∫_a^b f ≈ Σ_i w_i f(x_i)``, exact for polynomials of degree ``2n - 1``. For
    ``f`` analytic in a Bernstein ellipse ``E_ρ`` the error decays like ``ρ^{-2n}``.
    The reference nodes and weights come from
    :func:`numpy.polynomial.legendre.leggauss`.
    """
    xi, omega = np.polynomial.legendre.leggauss(n)
    half, mid = 0.5 * (b - a), 0.5 * (a + b)
    return mid + half * xi, half * omega


def _clenshaw_curtis(n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Clenshaw–Curtis rule on the ``n`` Chebyshev extreme points.

    Parameters
    ----------
    n : int
        Number of nodes, ``n >= 1``. For ``n = 1`` the single node is the centre
        with weight ``b - a`` (the one-point midpoint rule).
    a, b : float
        The interval, ``a < b``.

    Returns
    -------
    nodes : ndarray, shape (n,)
        ``x_k = (a + b)/2 - (b - a)/2 cos(k π / N)``, ``N = n - 1``, increasing,
        with ``x_0 = a`` and ``x_N = b`` exactly.
    weights : ndarray, shape (n,)
        Positive, summing to ``b - a``.

    Notes
    -----
    The weights on [-1, 1] are given by the explicit cosine sum

    ``w_k = (c_k / N) (1 - Σ_{j=1}^{⌊N/2⌋} β_j cos(2 j k π / N) / (4 j² - 1))``

    with ``c_0 = c_N = 1``, ``c_k = 2`` otherwise, ``β_j = 1`` if ``2j = N`` and
    ``β_j = 2`` otherwise; this is the integral of the degree-``N`` polynomial
    interpolant, so the rule is exact for degree ``n - 1``, and by symmetry also
    for degree ``n`` when ``n`` is odd. Since ``|cos| ≤ 1``, ``β_j ≤ 2`` and the
    telescoping series ``Σ_{j≥1} 2/(4j² - 1)`` equals 1, the bracket is positive
    for every finite ``N``: the weights are positive. The angle ``2 j k π / N``
    is reduced modulo ``2π`` in integer arithmetic before the cosine is taken.
    """
    if n == 1:
        return np.array([0.5 * (a + b)]), np.array([b - a])
    big_n = n - 1
    k = np.arange(n)
    # sin((2k - N) π / (2N)) = -cos(k π / N), written so that x_{N-k} = -x_k exactly.
    x = np.sin(np.pi * (2 * k - big_n) / (2 * big_n))
    j = np.arange(1, big_n // 2 + 1)
    beta = np.where(2 * j == big_n, 1.0, 2.0)
    phase = (np.outer(k, j) % big_n) / big_n
    sums = np.cos(2.0 * np.pi * phase) @ (beta / (4.0 * j**2 - 1.0))
    c = np.full(n, 2.0)
    c[[0, -1]] = 1.0
    omega = c / big_n * (1.0 - sums)
    half, mid = 0.5 * (b - a), 0.5 * (a + b)
    nodes = mid + half * x
    nodes[0], nodes[-1] = a, b
    return nodes, half * omega


#: The one-dimensional quadrature rules by name. Each entry maps a name to a
#: function ``(n, a, b) -> (nodes, weights)`` with ``nodes`` of shape ``(n,)``,
#: strictly increasing in [a, b], and positive ``weights`` of shape ``(n,)``.
RULES: dict[str, Rule] = {
    "midpoint": _midpoint,
    "trapezoid": _trapezoid,
    "gauss_legendre": _gauss_legendre,
    "clenshaw_curtis": _clenshaw_curtis,
}


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _fmt(x: float) -> str:
    """Format a number for an error message."""
    return repr(float(x))


def as_width(value: object) -> int:
    """Convert ``value`` to a node count ``>= 1`` or raise :class:`GridError`."""
    return as_count(value, "the grid width", "pass n >= 1 nodes")


def _as_interval(pair: object) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise GridError(
            f"a domain interval must be a pair (a, b) of numbers, got {pair!r}: "
            "pass for example (0.0, 1.0)"
        ) from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise GridError(
            f"the domain interval ({a!r}, {b!r}) must have finite ends: "
            "pass finite numbers"
        )
    if not a < b:
        raise GridError(
            f"the domain interval ({a!r}, {b!r}) is empty or reversed: "
            "pass (a, b) with a < b"
        )
    return a, b


def as_domain(domain: object, dim: int | None = None) -> Domain:
    """Normalise a domain to a tuple of ``(a, b)`` pairs, one per axis.

    Parameters
    ----------
    domain : pair of float, or sequence of pairs
        ``(a, b)`` for a 1-D domain, ``((a0, b0), (a1, b1))`` for a 2-D box.
    dim : int, optional
        The expected number of axes.

    Returns
    -------
    tuple of (float, float)
        One interval per axis.
    """
    try:
        items = list(domain)
    except TypeError:
        items = None
    if items is None or not items:
        raise GridError(
            f"a domain must be (a, b) or ((a0, b0), (a1, b1)), got {domain!r}: "
            "pass one interval per axis"
        )
    if all(np.ndim(v) == 0 for v in items):
        intervals: Domain = (_as_interval(items),)
    else:
        intervals = tuple(_as_interval(v) for v in items)
    if dim is not None and len(intervals) != dim:
        raise GridError(
            f"the domain {intervals!r} is {len(intervals)}-D but the grid is "
            f"{dim}-D: pass one interval per axis"
        )
    return intervals


def _check_nodes(nodes: np.ndarray, domain: Domain) -> None:
    n_nodes, dim = nodes.shape
    finite = np.isfinite(nodes).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise GridError(
            f"grid nodes must be finite; node {i} is {nodes[i].tolist()}: "
            "replace it by a point of the domain"
        )
    for axis, (a, b) in enumerate(domain):
        outside = (nodes[:, axis] < a) | (nodes[:, axis] > b)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            where = "" if dim == 1 else f" on axis {axis}"
            raise GridError(
                f"grid node {i} ({_fmt(nodes[i, axis])}) lies outside the domain "
                f"[{a!r}, {b!r}]{where}: move it inside or enlarge the domain"
            )
    if dim == 1:
        x = nodes[:, 0]
        bad = np.flatnonzero(np.diff(x) <= 0.0)
        if bad.size:
            i = int(bad[0]) + 1
            fix = "remove the duplicate" if x[i] == x[i - 1] else "sort the nodes"
            raise GridError(
                f"grid nodes must be strictly increasing; node {i} ({_fmt(x[i])}) "
                f"does not exceed node {i - 1} ({_fmt(x[i - 1])}): {fix}"
            )
    elif n_nodes > 1:
        order = np.lexsort(nodes.T[::-1])
        ordered = nodes[order]
        same = np.flatnonzero((ordered[1:] == ordered[:-1]).all(axis=1))
        if same.size:
            i, j = sorted((int(order[same[0]]), int(order[same[0] + 1])))
            raise GridError(
                f"grid nodes must be distinct; node {j} {nodes[j].tolist()} "
                f"duplicates node {i}: remove the duplicate"
            )


def _check_weights(weights: np.ndarray) -> None:
    bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0.0)))
    if bad.size:
        i = int(bad[0])
        raise GridError(
            f"quadrature weights must be positive and finite; weight {i} is "
            f"{_fmt(weights[i])}: fix the weights or the mapping that produced them"
        )


# ---------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Grid:
    """Quadrature nodes and weights on a box Ω = [a0, b0] × ... (s = 1 or 2).

    Parameters
    ----------
    nodes : ndarray, shape (n_nodes, dim)
        The nodes (a 1-D array of shape ``(n_nodes,)`` is read as ``dim = 1``).
        In 1-D they are strictly increasing; in 2-D distinct. For a tensor grid
        of shape ``(n0, n1)`` they are the Cartesian product in C order (last axis
        fastest): node ``i0 * n1 + i1`` is ``(x0[i0], x1[i1])``. Stored as a
        read-only float64 copy.
    weights : ndarray, shape (n_nodes,)
        Positive, finite quadrature weights; for the built-in rules they sum to
        ``|Ω|``. Stored as a read-only float64 copy.
    domain : tuple of (float, float)
        One interval per axis, e.g. ``((0.0, 1.0),)``. Every node lies in the
        closed box.
    shape : tuple of int, optional
        The logical shape of the node array, ``(n,)`` or ``(n0, n1)``; its product
        is ``n_nodes``. Defaults to ``(n_nodes,)``.
    rule : str, optional
        The name of the rule that produced the grid; ``"custom"`` by default.

    Raises
    ------
    GridError
        If the grid is empty, a node is outside the domain or not finite, the
        nodes are unsorted or duplicated, or a weight is not positive and finite.

    Notes
    -----
    Two grids compare equal (``==``, :meth:`same_as`) when their nodes and
    weights are identical, bit for bit; that is what a transfer between them needs
    to be the identity.
    """

    nodes: np.ndarray
    weights: np.ndarray
    domain: Domain
    shape: tuple[int, ...] = ()
    rule: str = field(default="custom")

    def __post_init__(self) -> None:
        nodes = np.array(self.nodes, dtype=np.float64, copy=True)
        if nodes.ndim == 1:
            nodes = nodes[:, None]
        if nodes.ndim != 2 or nodes.shape[1] < 1:
            raise GridError(
                f"grid nodes must have shape (n_nodes, dim), got {nodes.shape}: "
                "pass one row per node"
            )
        n_nodes, dim = nodes.shape
        if n_nodes < 1:
            raise GridError(
                "a grid must have at least 1 node, got 0: pass a width n >= 1"
            )
        weights = np.array(self.weights, dtype=np.float64, copy=True).reshape(-1)
        if weights.shape != (n_nodes,):
            raise GridError(
                f"a grid with {n_nodes} nodes needs {n_nodes} weights, got "
                f"{weights.size}: pass one weight per node"
            )
        domain = as_domain(self.domain, dim)
        shape = tuple(int(v) for v in self.shape) if self.shape else (n_nodes,)
        if math.prod(shape) != n_nodes or min(shape) < 1:
            raise GridError(
                f"the grid shape {shape} does not hold {n_nodes} nodes: pass a "
                "shape whose product is the number of nodes"
            )
        _check_nodes(nodes, domain)
        _check_weights(weights)
        nodes.flags.writeable = False
        weights.flags.writeable = False
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "rule", str(self.rule))

    @property
    def dim(self) -> int:
        """int: The dimension ``s`` of the domain."""
        return self.nodes.shape[1]

    @property
    def n_nodes(self) -> int:
        """int: The number of nodes (the width of the layer)."""
        return self.nodes.shape[0]

    @property
    def volume(self) -> float:
        """float: The measure ``|Ω|`` of the domain."""
        return math.prod(b - a for a, b in self.domain)

    @cached_property
    def axes(self) -> tuple[np.ndarray, ...] | None:
        """tuple of ndarray or None: The coordinates along each axis.

        For a 1-D grid, ``(x,)`` with ``x`` of shape ``(n_nodes,)``. For a grid of
        shape ``(n0, n1)`` whose nodes are the C-order Cartesian product of two
        strictly increasing coordinate arrays, ``(x0, x1)`` with shapes ``(n0,)``
        and ``(n1,)``. ``None`` when the nodes are not such a product (e.g. a
        custom or mapped 2-D grid).
        """
        if self.dim == 1:
            return (self.nodes[:, 0],)
        if len(self.shape) != self.dim:
            return None
        block = self.nodes.reshape(*self.shape, self.dim)
        coords = []
        for axis in range(self.dim):
            index = [0] * self.dim
            index[axis] = slice(None)
            line = block[(*index, axis)]
            expanded = np.expand_dims(line, [k for k in range(self.dim) if k != axis])
            if not np.array_equal(
                block[..., axis], np.broadcast_to(expanded, self.shape)
            ):
                return None
            if line.size > 1 and not np.all(np.diff(line) > 0.0):
                return None
            line = line.copy()
            line.flags.writeable = False
            coords.append(line)
        return tuple(coords)

    @property
    def is_tensor(self) -> bool:
        """bool: Whether the nodes are a Cartesian product (always in 1-D)."""
        return self.axes is not None

    def integrate(self, values: np.ndarray) -> np.ndarray | float:
        """Apply the quadrature rule to nodal values.

        Parameters
        ----------
        values : ndarray, shape (..., n_nodes)
            Values ``f(x_i)`` at the nodes, along the last axis.

        Returns
        -------
        ndarray, shape (...) or float
            ``Σ_i w_i f(x_i)`` for each leading index.

        Notes
        -----
        ``∫_Ω f ≈ Σ_{i} w_i f(x_i)``.
        """
        values = np.asarray(values)
        if values.ndim == 0 or values.shape[-1] != self.n_nodes:
            raise GridError(
                f"values to integrate must have a last axis of length {self.n_nodes}"
                f" (one per node), got shape {values.shape}: evaluate at the nodes"
            )
        result = values @ self.weights
        return float(result) if np.ndim(result) == 0 else result

    def same_as(self, other: object) -> bool:
        """Whether ``other`` is a grid with identical nodes and weights.

        Parameters
        ----------
        other : object
            Any object.

        Returns
        -------
        bool
            True when ``other`` is a :class:`Grid` whose nodes and weights equal
            these bit for bit, so that a transfer between them is the identity.
        """
        if self is other:
            return True
        if not isinstance(other, Grid):
            return False
        return (
            self.nodes.shape == other.nodes.shape
            and bool(np.array_equal(self.nodes, other.nodes))
            and bool(np.array_equal(self.weights, other.weights))
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return self.same_as(other)

    def __hash__(self) -> int:
        return hash((self.nodes.tobytes(), self.weights.tobytes()))

    def __repr__(self) -> str:
        return f"Grid(rule={self.rule!r}, shape={self.shape}, domain={self.domain})"


# ---------------------------------------------------------------------------
# Constructors
# ---------------------------------------------------------------------------


def _normalise_rule_name(rule: object) -> str:
    if not isinstance(rule, str):
        raise GridError(
            f"a quadrature rule is named by a string, got {rule!r}: "
            f"use one of {', '.join(sorted(RULES))}"
        )
    name = rule.strip().lower().replace("-", "_").replace(" ", "_")
    if name not in RULES:
        raise unknown_name_error("quadrature rule", rule, RULES)
    return name


def _rule_1d(rule: str, n: object, interval: tuple[float, float]):
    name = _normalise_rule_name(rule)
    count = as_width(n)
    nodes, weights = RULES[name](count, *interval)
    return name, nodes, weights


def grid(rule: str, n: int, domain: Sequence[float] = (0.0, 1.0)) -> Grid:
    """Build a one-dimensional quadrature grid.

    Parameters
    ----------
    rule : str
        A name in :data:`RULES`: ``"midpoint"``, ``"trapezoid"``,
        ``"gauss_legendre"`` or ``"clenshaw_curtis"`` (case and ``-``/``_`` are
        ignored).
    n : int
        The number of nodes, ``n >= 1`` (``n >= 2`` for the trapezoid rule).
    domain : pair of float, optional
        The interval ``(a, b)``; ``(0.0, 1.0)`` by default.

    Returns
    -------
    Grid
        A grid with ``nodes`` of shape ``(n, 1)`` and ``weights`` of shape
        ``(n,)``.

    Raises
    ------
    GridError
        For an unknown rule (the closest name is suggested), ``n < 1``, or an
        invalid domain.

    Notes
    -----
    ``∫_a^b f ≈ Σ_{i=0}^{n-1} w_i f(x_i)`` with nodes and weights of the chosen
    rule, see the entries of :data:`RULES` for each formula.
    """
    interval = as_domain(domain, 1)[0]
    name, nodes, weights = _rule_1d(rule, n, interval)
    return Grid(nodes, weights, (interval,), (nodes.size,), name)


def tensor_grid(
    rule: str | Sequence[str],
    shape: Sequence[int],
    domain: Sequence[Sequence[float]] = ((0.0, 1.0), (0.0, 1.0)),
) -> Grid:
    """Build the tensor product of one-dimensional rules on a box.

    Parameters
    ----------
    rule : str or sequence of str
        One rule name for every axis, or one name per axis.
    shape : sequence of int
        The number of nodes per axis, e.g. ``(n0, n1)``.
    domain : sequence of pairs of float, optional
        One interval per axis; the unit square by default.

    Returns
    -------
    Grid
        A grid with ``nodes`` of shape ``(n0 * n1, 2)`` in C order (node
        ``i0 * n1 + i1`` is ``(x0[i0], x1[i1])``) and ``weights`` of shape
        ``(n0 * n1,)``.

    Raises
    ------
    GridError
        For an unknown rule, a width below 1, or a domain or rule list whose length
        differs from that of ``shape``.

    Notes
    -----
    ``∫_Ω f ≈ Σ_{i0, i1} w0[i0] w1[i1] f(x0[i0], x1[i1])``; the product rule is
    exact for ``x^a y^b`` whenever each 1-D rule is exact for its exponent. The
    pixel centres of an ``n0 × n1`` image on the unit square (row index along
    axis 0) are ``tensor_grid("midpoint", (n0, n1))``.
    """
    try:
        widths = tuple(shape)
    except TypeError:
        raise GridError(
            f"a tensor grid shape must be a sequence such as (n0, n1), got "
            f"{shape!r}: pass one width per axis"
        ) from None
    if not widths:
        raise GridError("a tensor grid shape must not be empty: pass (n0, n1)")
    dim = len(widths)
    intervals = as_domain(domain, dim)
    rules = (rule,) * dim if isinstance(rule, str) else tuple(rule)
    if len(rules) != dim:
        raise GridError(
            f"got {len(rules)} rule names for a {dim}-D grid: pass one name or "
            "one per axis"
        )
    names, coords, factors = [], [], []
    for r, n, interval in zip(rules, widths, intervals, strict=True):
        name, x, w = _rule_1d(r, n, interval)
        names.append(name)
        coords.append(x)
        factors.append(w)
    mesh = np.meshgrid(*coords, indexing="ij")
    nodes = np.stack([m.reshape(-1) for m in mesh], axis=1)
    weights = factors[0]
    for w in factors[1:]:
        weights = np.multiply.outer(weights, w)
    label = names[0] if len(set(names)) == 1 else " x ".join(names)
    return Grid(nodes, weights.reshape(-1), intervals, widths, label)


def custom_grid(
    nodes: np.ndarray,
    weights: np.ndarray,
    domain: Sequence[float] | Sequence[Sequence[float]],
    *,
    shape: Sequence[int] | None = None,
    rule: str = "custom",
) -> Grid:
    """Build a validated grid from given nodes and weights.

    Parameters
    ----------
    nodes : array_like, shape (n_nodes,) or (n_nodes, dim)
        The nodes; strictly increasing in 1-D, distinct in 2-D.
    weights : array_like, shape (n_nodes,)
        Positive, finite quadrature weights.
    domain : pair of float, or sequence of pairs
        ``(a, b)`` or ``((a0, b0), (a1, b1))``; every node must lie in it.
    shape : sequence of int, optional
        The logical shape, e.g. ``(n0, n1)`` when the nodes are a C-order tensor
        product; ``(n_nodes,)`` by default.
    rule : str, optional
        A label stored in :attr:`Grid.rule`.

    Returns
    -------
    Grid
        The grid.

    Raises
    ------
    GridError
        If any of the conditions above fails.
    """
    points = np.asarray(nodes, dtype=np.float64)
    dim = 1 if points.ndim == 1 else points.shape[-1]
    return Grid(
        points,
        np.asarray(weights, dtype=np.float64),
        as_domain(domain, dim),
        tuple(shape) if shape is not None else (),
        rule,
    )
