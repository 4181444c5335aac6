"""Moving grids: one spatial grid per time level.

A moving grid pairs a :class:`~grids.TimeGrid` with a spatial grid for each level
``t_k``. The grids may change width from level to level (a layer-wise width
schedule) and their nodes may move under a mapping ``φ_t``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ._errors import GridError
from ._quadrature import Domain, Grid, as_domain, as_width, grid, tensor_grid
from ._time import TimeGrid

__all__ = ["MovingGrid", "moving_grid"]

#: A node moving map ``φ(t, xi_hat) -> xi``; both arrays of shape (n_nodes, dim).
Mapping = Callable[[float, np.ndarray], np.ndarray]
#: Its Jacobian ``Dφ(t, xi_hat)``, of shape (n_nodes, dim, dim).
Jacobian = Callable[[float, np.ndarray], np.ndarray]

#: A time level within this fraction of T of a schedule start counts as at it.
SCHEDULE_TOLERANCE = 1e-12
#: Mapped nodes at most this fraction of the domain length outside Ω are clipped.
MAPPING_TOLERANCE = 1e-12


@dataclass(frozen=True, eq=False)
class MovingGrid:
    """A spatial grid for each level of a time grid.

    Parameters
    ----------
    time : TimeGrid
        The time levels ``t_0, ..., t_L``.
    grids : tuple of Grid
        ``grids[k]`` is the grid at ``t_k``; ``len(grids) == time.n_steps + 1``.
        All share the same dimension and domain.

    Raises
    ------
    GridError
        If the number of grids is not ``n_steps + 1`` or the grids disagree in
        dimension or domain.
    """

    time: TimeGrid
    grids: tuple[Grid, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.time, TimeGrid):
            raise GridError(
                f"a moving grid needs a TimeGrid, got {type(self.time).__name__}: "
                "build one with time_grid(T, n_steps)"
            )
        levels = tuple(self.grids)
        if not all(isinstance(g, Grid) for g in levels):
            raise GridError(
                "every level of a moving grid must be a Grid: build them with grid, "
                "tensor_grid or custom_grid"
            )
        if len(levels) != self.time.n_steps + 1:
            raise GridError(
                f"a moving grid on {self.time.n_steps} steps needs "
                f"{self.time.n_steps + 1} grids (one per time level), got "
                f"{len(levels)}: pass one grid per level"
            )
        first = levels[0]
        for k, g in enumerate(levels):
            if g.dim != first.dim or g.domain != first.domain:
                raise GridError(
                    f"the grid at level {k} lives on {g.domain} but level 0 on "
                    f"{first.domain}: give every level the same domain"
                )
        object.__setattr__(self, "grids", levels)

    @property
    def dim(self) -> int:
        """int: The spatial dimension ``s``."""
        return self.grids[0].dim

    @property
    def domain(self) -> Domain:
        """tuple of (float, float): The box Ω shared by all levels."""
        return self.grids[0].domain

    @property
    def n_steps(self) -> int:
        """int: The number of time steps ``L``."""
        return self.time.n_steps

    @property
    def widths(self) -> tuple[int, ...]:
        """tuple of int: The number of nodes at each level; length ``n_steps + 1``."""
        return tuple(g.n_nodes for g in self.grids)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """tuple of tuple of int: The logical shape of the grid at each level."""
        return tuple(g.shape for g in self.grids)

    def changes(self, k: int) -> bool:
        """Whether the grid at level ``k + 1`` differs from the one at level ``k``.

        Parameters
        ----------
        k : int
            A step index, ``0 <= k < n_steps``.

        Returns
        -------
        bool
            False when the two grids have identical nodes and weights (the
            transfer between them is the identity).
        """
        k = operator.index(k)
        if not 0 <= k < self.n_steps:
            raise IndexError(
                f"step index {k} is out of range for {self.n_steps} steps: "
                f"pass 0 <= k < {self.n_steps}"
            )
        return not self.grids[k + 1].same_as(self.grids[k])

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, k: int) -> Grid:
        return self.grids[k]

    def __iter__(self) -> Iterator[Grid]:
        return iter(self.grids)

    def __repr__(self) -> str:
        return (
            f"MovingGrid(T={self.time.T!r}, n_steps={self.n_steps}, "
            f"widths={self.widths[0]}..{self.widths[-1]}, domain={self.domain})"
        )


# ---------------------------------------------------------------------------
# Width schedules
# ---------------------------------------------------------------------------


def _is_scalar(value: object) -> bool:
    """Whether ``value`` is a single number rather than a sequence of them."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    return not isinstance(value, list | tuple)


def _parse_width(value: object) -> tuple[int, ...]:
    """Read a width: an int ``n`` (1-D) or a pair ``(n0, n1)`` (tensor grid)."""
    if _is_scalar(value):
        return (as_width(value),)
    items = tuple(value)
    if not items or not all(_is_scalar(v) for v in items):
        raise GridError(
            f"a width must be an integer n or a pair (n0, n1), got {value!r}: "
            "pass one of them"
        )
    return tuple(as_width(v) for v in items)


def _is_schedule(widths: object) -> bool:
    """A schedule is a non-empty sequence whose items are sequences (pairs)."""
    if callable(widths) or _is_scalar(widths):
        return False
    items = list(widths)
    return bool(items) and not any(_is_scalar(v) for v in items)


def _schedule_widths(
    schedule: Sequence[object], time: TimeGrid
) -> list[tuple[int, ...]]:
    """Evaluate a piecewise-constant schedule at every time level."""
    T = time.T
    tolerance = SCHEDULE_TOLERANCE * T
    starts, values = [], []
    for j, entry in enumerate(schedule):
        try:
            start, width = entry
            start = float(start)
        except (TypeError, ValueError):
            raise GridError(
                f"schedule entry {j} must be a pair (t_start, width), got "
                f"{entry!r}: write it as (t_start, width)"
            ) from None
        if not math.isfinite(start):
            raise GridError(
                f"schedule entry {j} starts at {start!r}: give a finite start time"
            )
        try:
            values.append(_parse_width(width))
        except GridError as error:
            raise GridError(
                f"schedule entry {j} has an invalid width ({error})"
            ) from None
        starts.append(start)
    if abs(starts[0]) > tolerance:
        raise GridError(
            f"the width schedule does not cover [0, T] because its first entry "
            f"starts at t = {starts[0]!r}: start it at t = 0"
        )
    for j in range(1, len(starts)):
        if starts[j] <= starts[j - 1]:
            raise GridError(
                f"schedule start times must be strictly increasing; entry {j} "
                f"(t = {starts[j]!r}) does not come after entry {j - 1} "
                f"(t = {starts[j - 1]!r}): sort the entries and merge duplicates"
            )
    if starts[-1] > T + tolerance:
        raise GridError(
            f"schedule entry {len(starts) - 1} starts at t = {starts[-1]!r}, after "
            f"the final time T = {T!r}: remove it or lengthen the time grid"
        )
    # Entry j holds on [s_j, s_{j+1}); a level within the tolerance below a start
    # counts as having reached it.
    index = np.searchsorted(np.asarray(starts), time.nodes + tolerance, side="right")
    return [values[max(int(i) - 1, 0)] for i in index]


def _level_widths(widths: object, time: TimeGrid) -> list[tuple[int, ...]]:
    if callable(widths):
        levels = []
        for t in time.nodes:
            try:
                levels.append(_parse_width(widths(float(t))))
            except GridError as error:
                raise GridError(
                    f"the width function at t = {float(t)!r} gave an invalid width"
                    f" ({error})"
                ) from None
        return levels
    if _is_schedule(widths):
        return _schedule_widths(list(widths), time)
    return [_parse_width(widths)] * (time.n_steps + 1)


# ---------------------------------------------------------------------------
# Mapped grids
# ---------------------------------------------------------------------------


def _numerical_jacobian(
    mapping: Mapping, t: float, xi: np.ndarray, mapped: np.ndarray, domain: Domain
) -> np.ndarray:
    """Jacobian ``Dφ_t`` at the nodes by second-order finite differences.

    Parameters
    ----------
    mapping : callable
        ``φ(t, xi_hat)``.
    t : float
        The time level.
    xi : ndarray, shape (n_nodes, dim)
        The reference nodes.
    mapped : ndarray, shape (n_nodes, dim)
        ``φ(t, xi)``.
    domain : tuple of (float, float)
        The box Ω; no point outside it is passed to ``mapping``.

    Returns
    -------
    ndarray, shape (n_nodes, dim, dim)
        ``J[i, p, q] ≈ ∂φ_p / ∂ξ_q`` at node ``i``.

    Notes
    -----
    With ``h_q = ε^{1/3} (b_q - a_q)`` (ε the float64 machine epsilon), column
    ``q`` is the central difference

    ``∂_q φ(ξ) ≈ (φ(ξ⁺) - φ(ξ⁻)) / (ξ⁺_q - ξ⁻_q)``, ``ξ^± = ξ ± h e_q``,

    where both points lie in Ω, and otherwise the derivative at ``x_0 = ξ_q`` of
    the quadratic through ``x_0``, ``x_1 = ξ_q ± h``, ``x_2 = ξ_q ± 2h`` (stepping
    into Ω),

    ``∂_q φ(ξ) ≈ φ[x_0, x_1] + (x_0 - x_1) φ[x_0, x_1, x_2]``

    in divided differences. The denominators use the shifted coordinates as
    rounded in floating point, so affine maps (the identity in particular) get
    their exact derivative up to the rounding of φ itself, and quadratic maps are
    differentiated exactly. In general the error is ``O(h²) + O(ε / h)``, about
    ``1e-11`` relative for a smooth map of the unit box.
    """
    n_nodes, dim = xi.shape
    jac = np.empty((n_nodes, dim, dim))
    lower = np.array([a for a, _ in domain])
    upper = np.array([b for _, b in domain])

    def at(shift: float, q: int) -> tuple[np.ndarray, np.ndarray]:
        points = xi.copy()
        points[:, q] += shift
        np.clip(points, lower, upper, out=points)
        values = np.asarray(mapping(t, points.copy()), dtype=np.float64)
        return points[:, q], values.reshape(n_nodes, dim)

    def one_sided(rows, x1, f1, x2, f2):
        x0, f0 = xi[rows, q][:, None], mapped[rows]
        x1, f1, x2, f2 = x1[rows, None], f1[rows], x2[rows, None], f2[rows]
        d01 = (f1 - f0) / (x1 - x0)
        d12 = (f2 - f1) / (x2 - x1)
        return d01 + (x0 - x1) * (d12 - d01) / (x2 - x0)

    for q, (a, b) in enumerate(domain):
        h = np.cbrt(np.finfo(np.float64).eps) * (b - a)
        x_plus, f_plus = at(h, q)
        x_minus, f_minus = at(-h, q)
        near_a = xi[:, q] - h < a
        near_b = xi[:, q] + h > b
        inside = ~(near_a | near_b)
        column = np.empty((n_nodes, dim))
        column[inside] = (f_plus[inside] - f_minus[inside]) / (
            x_plus[inside] - x_minus[inside]
        )[:, None]
        if near_a.any():
            x2, f2 = at(2.0 * h, q)
            column[near_a] = one_sided(near_a, x_plus, f_plus, x2, f2)
        if near_b.any():
            x2, f2 = at(-2.0 * h, q)
            column[near_b] = one_sided(near_b, x_minus, f_minus, x2, f2)
        jac[:, :, q] = column
    return jac


def _map_grid(
    reference: Grid,
    t: float,
    mapping: Mapping,
    jacobian: Jacobian | None,
) -> Grid:
    """Move a reference grid by ``φ_t`` and rescale its weights by ``|det Dφ_t|``."""
    xi = np.array(reference.nodes)
    n_nodes, dim = xi.shape
    mapped = np.asarray(mapping(t, xi.copy()), dtype=np.float64)
    if mapped.shape not in ((n_nodes, dim), (n_nodes,) if dim == 1 else ()):
        raise GridError(
            f"the mapping at t = {t!r} returned shape {mapped.shape} for nodes of "
            f"shape {xi.shape}: return one mapped point per node"
        )
    mapped = mapped.reshape(n_nodes, dim).copy()
    if not np.isfinite(mapped).all():
        raise GridError(
            f"the mapping at t = {t!r} returned non-finite nodes: make φ_t finite "
            "on the domain"
        )
    for q, (a, b) in enumerate(reference.domain):
        slack = MAPPING_TOLERANCE * (b - a)
        column = mapped[:, q]
        outside = (column < a - slack) | (column > b + slack)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise GridError(
                f"the mapping at t = {t!r} sends node {i} to "
                f"{float(column[i])!r}, outside the domain [{a!r}, {b!r}]: make "
                "φ_t map Ω into itself"
            )
        np.clip(column, a, b, out=column)
    if jacobian is None:
        jac = _numerical_jacobian(mapping, t, xi, mapped, reference.domain)
    else:
        jac = np.asarray(jacobian(t, xi.copy()), dtype=np.float64)
        if jac.size != n_nodes * dim * dim:
            raise GridError(
                f"the Jacobian at t = {t!r} has shape {jac.shape}, expected "
                f"({n_nodes}, {dim}, {dim}): return one dim x dim matrix per node"
            )
        jac = jac.reshape(n_nodes, dim, dim)
    det = jac[:, 0, 0] if dim == 1 else np.linalg.det(jac)
    singular = ~(np.abs(det) > 0.0)
    if singular.any():
        i = int(np.flatnonzero(singular)[0])
        raise GridError(
            f"the mapping at t = {t!r} has a singular Jacobian at node {i}: make "
            "φ_t a diffeomorphism of the domain"
        )
    try:
        return Grid(
            mapped,
            reference.weights * np.abs(det),
            reference.domain,
            reference.shape,
            f"mapped {reference.rule}",
        )
    except GridError as error:
        raise GridError(
            f"the mapping at t = {t!r} gives an invalid grid ({error})"
        ) from None


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------


def moving_grid(
    time: TimeGrid,
    rule: str | Sequence[str],
    widths: object,
    *,
    domain: object = None,
    mapping: Mapping | None = None,
    jacobian: Jacobian | None = None,
) -> MovingGrid:
    """Build the grids of all time levels from a rule and a width schedule.

    Parameters
    ----------
    time : TimeGrid
        The time levels ``t_0 = 0 < ... < t_L = T``.
    rule : str or sequence of str
        A quadrature rule name (see :data:`grids.RULES`), or one per axis in 2-D.
    widths : int, pair of int, list of (float, width) pairs, or callable
        The width at each level:

        - ``n`` (1-D) or ``(n0, n1)`` (2-D tensor grid): the same at every level;
        - a piecewise-constant schedule ``[(s_0, w_0), (s_1, w_1), ...]`` with
          ``s_0 = 0 < s_1 < ... <= T``. Entry ``j`` holds on the interval
          ``[s_j, s_{j+1})``, **closed on the left and open on the right**; the
          last entry holds on ``[s_m, T]``. So the level ``t_k`` gets ``w_j``
          with ``s_j <= t_k < s_{j+1}``, and a width change at ``s_j = t_k``
          takes effect at level ``k``. A level within ``1e-12 T`` below a start
          counts as at it, so that rounding in ``t_k`` does not shift a change by
          one level;
        - a callable ``t -> width`` evaluated at every ``t_k``.
    domain : pair or sequence of pairs, optional
        Ω; the unit interval (1-D) or unit square (2-D) by default.
    mapping : callable, optional
        ``φ(t, xi_hat) -> xi`` with ``xi_hat`` and ``xi`` of shape
        ``(n_nodes, dim)``: moves the reference nodes of each level to
        ``φ_{t_k}(xi_hat)``. It must map Ω into itself (nodes at most ``1e-12``
        of the domain length outside are clipped onto the boundary), keep 1-D
        nodes strictly increasing, and accept any point of Ω.
    jacobian : callable, optional
        ``Dφ(t, xi_hat)`` of shape ``(n_nodes, dim, dim)``. Without it the
        Jacobian is computed by finite differences.

    Returns
    -------
    MovingGrid
        The grids; levels with equal widths and no mapping share one
        :class:`~grids.Grid` object.

    Raises
    ------
    GridError
        For a width below 1, a schedule that does not start at 0, is unsorted
        or starts an entry after T, an unknown rule, a mapping that leaves Ω,
        unsorts the nodes or is singular.

    Notes
    -----
    With a mapping, level ``k`` has nodes ``x_i = φ_t(ξ̂_i)`` and weights

    ``w_i = ŵ_i |det Dφ_t(ξ̂_i)|``, ``t = t_k``,

    where ``(ξ̂_i, ŵ_i)`` is the reference rule. Then
    ``Σ_i w_i f(x_i) = Σ_i ŵ_i (f ∘ φ_t)(ξ̂_i) |det Dφ_t(ξ̂_i)|`` is the reference
    rule applied to the pulled-back integrand, which by the change of variables
    ``∫_Ω f = ∫_Ω (f ∘ φ_t) |det Dφ_t|`` (φ_t a bijection of Ω) is consistent with
    ``∫_Ω f``. It is exact whenever ``(f ∘ φ_t) |det Dφ_t|`` is a polynomial the
    reference rule integrates exactly. Without an explicit ``jacobian`` the
    derivative comes from second-order finite differences (central inside,
    one-sided at the boundary; exact for the identity and for quadratic maps up
    to rounding, about 1e-11 relative error otherwise).
    """
    if not isinstance(time, TimeGrid):
        raise GridError(
            f"moving_grid needs a TimeGrid, got {type(time).__name__}: build one "
            "with time_grid(T, n_steps)"
        )
    levels = _level_widths(widths, time)
    dims = {len(w) for w in levels}
    if len(dims) != 1:
        raise GridError(
            "the width schedule mixes 1-D widths n and 2-D widths (n0, n1): use one "
            "kind throughout"
        )
    dim = dims.pop()
    if domain is None:
        intervals: Domain = ((0.0, 1.0),) * dim
    else:
        intervals = as_domain(domain, dim)
    references: dict[tuple[int, ...], Grid] = {}
    for shape in levels:
        if shape not in references:
            if dim == 1:
                references[shape] = grid(rule, shape[0], intervals[0])
            else:
                references[shape] = tensor_grid(rule, shape, intervals)
    if mapping is None:
        grids = tuple(references[shape] for shape in levels)
    else:
        grids = tuple(
            _map_grid(references[shape], float(t), mapping, jacobian)
            for shape, t in zip(levels, time.nodes, strict=True)
        )
    return MovingGrid(time, grids)
