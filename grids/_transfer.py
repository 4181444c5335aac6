"""Transfer operators between the grids of consecutive time levels.

A transfer is a sparse matrix ``Π`` of shape ``(target.n_nodes, source.n_nodes)``
applied as ``u_target = Π @ u_source``. Its transpose ``Π.T`` is the exact adjoint
used by a reverse (backpropagation) pass. Between identical grids the transfer is
the identity and is returned as ``None``, so that callers can skip it.

One-dimensional operators are built from *stencils*: for every target point, the
indices of the source nodes it uses and their weights. In 2-D, a tensor-product
source grid gives the product of the 1-D stencils along each axis (the Kronecker
product when the target is a tensor grid as well).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.spatial import Delaunay, QhullError, cKDTree

from ._errors import GridError, unknown_name_error
from ._moving import MovingGrid
from ._quadrature import Grid

__all__ = ["TRANSFERS", "transfer", "transfers"]

Stencil = tuple[np.ndarray, np.ndarray]


# ---------------------------------------------------------------------------
# One-dimensional stencils
# ---------------------------------------------------------------------------


def _linear_stencil(x: np.ndarray, y: np.ndarray) -> Stencil:
    """Piecewise-linear interpolation weights with constant extrapolation.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Strictly increasing source nodes.
    y : ndarray, shape (m,)
        Target points.

    Returns
    -------
    cols : ndarray, shape (m, 2)
        Source indices ``j, j + 1`` of the cell holding each target point.
    vals : ndarray, shape (m, 2)
        Weights ``1 - λ, λ``.

    Notes
    -----
    For ``x_j <= y <= x_{j+1}``, ``u(y) ≈ (1 - λ) u_j + λ u_{j+1}`` with
    ``λ = (y - x_j) / (x_{j+1} - x_j)``. Outside ``[x_0, x_{n-1}]`` ``λ`` is
    clipped to [0, 1], i.e. ``u(y) ≈ u_0`` left of ``x_0`` and
    ``u(y) ≈ u_{n-1}`` right of ``x_{n-1}``.
    """
    n, m = x.size, y.size
    if n == 1:
        return np.zeros((m, 1), dtype=np.intp), np.ones((m, 1))
    j = np.clip(np.searchsorted(x, y, side="right") - 1, 0, n - 2)
    lam = np.clip((y - x[j]) / (x[j + 1] - x[j]), 0.0, 1.0)
    return np.stack([j, j + 1], axis=1), np.stack([1.0 - lam, lam], axis=1)


def _lagrange_stencil(x: np.ndarray, y: np.ndarray, order: int) -> Stencil:
    """Local Lagrange interpolation weights of degree ``order``.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Strictly increasing source nodes.
    y : ndarray, shape (m,)
        Target points.
    order : int
        The polynomial degree ``p``; ``min(p, n - 1)`` is used when the source has
        fewer than ``p + 1`` nodes.

    Returns
    -------
    cols : ndarray, shape (m, p + 1)
        Indices of the ``p + 1`` consecutive source nodes nearest to each target
        point.
    vals : ndarray, shape (m, p + 1)
        The Lagrange basis polynomials of those nodes evaluated at the point.

    Notes
    -----
    ``u(y) ≈ Σ_{i=0}^{p} u(X_i) ℓ_i(y)`` with ``ℓ_i(y) = Π_{k≠i} (y - X_k) /
    (X_i - X_k)``, ``X_0 < ... < X_p`` the stencil: the ``p + 1`` source nodes
    nearest to ``y`` (always consecutive; ties go to the left). Near the ends of
    the grid this is a stencil shifted inwards, so points outside
    ``[x_0, x_{n-1}]`` are extrapolated by the boundary polynomial. Polynomials
    of degree ``<= p`` are reproduced exactly everywhere; for smooth ``u`` the
    error is ``O(h^{p+1})``.
    """
    n, m = x.size, y.size
    size = min(order, n - 1) + 1
    # The `size` nodes nearest to y are consecutive and include x_{j-1} or x_j
    # (x_{j-1} < y <= x_j); among the windows starting at j - size, ..., j the one
    # with the smallest largest distance to y is that set.
    j = np.searchsorted(x, y, side="left")
    starts = np.clip(j[:, None] - size + np.arange(size + 1), 0, n - size)
    spread = np.maximum(y[:, None] - x[starts], x[starts + size - 1] - y[:, None])
    start = starts[np.arange(m), np.argmin(spread, axis=1)]
    cols = start[:, None] + np.arange(size)
    nodes = x[cols]
    vals = np.ones((m, size))
    for i in range(size):
        for k in range(size):
            if k != i:
                vals[:, i] *= (y - nodes[:, k]) / (nodes[:, i] - nodes[:, k])
    return cols, vals


def _stencil_matrix(stencil: Stencil, n_source: int) -> sparse.csr_matrix:
    """Assemble a CSR matrix from a stencil with one row per target point.

    Parameters
    ----------
    stencil : (ndarray, ndarray), shapes (m, width) and (m, width)
        Source indices and weights for each of the ``m`` target points.
    n_source : int
        The number of source nodes (columns).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (m, n_source)
        Row ``i`` holds the weights of target point ``i``; repeated indices are
        summed and zero weights dropped.
    """
    cols, vals = stencil
    m, width = cols.shape
    indptr = np.arange(0, m * width + 1, width)
    matrix = sparse.csr_matrix(
        (vals.reshape(-1), cols.reshape(-1), indptr), shape=(m, n_source)
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def _hat_integrals(x: np.ndarray, interval: tuple[float, float]) -> np.ndarray:
    """Integrals of the extended hat functions of 1-D nodes (the lumped mass).

    Parameters
    ----------
    x : ndarray, shape (n,)
        Strictly increasing nodes in [a, b].
    interval : (float, float)
        The interval [a, b].

    Returns
    -------
    ndarray, shape (n,)
        ``m_i = ∫_a^b φ_i``, where ``φ_i`` is the hat function of node ``i``,
        extended by the constant 1 from ``x_0`` to ``a`` (for ``i = 0``) and from
        ``x_{n-1}`` to ``b`` (for ``i = n - 1``).

    Notes
    -----
    ``m_0 = (x_0 - a) + (x_1 - x_0)/2``, ``m_i = (x_{i+1} - x_{i-1})/2``,
    ``m_{n-1} = (x_{n-1} - x_{n-2})/2 + (b - x_{n-1})``. These equal the
    quadrature weights of the midpoint and trapezoid rules.
    """
    a, b = interval
    edges = np.concatenate([[a], 0.5 * (x[1:] + x[:-1]), [b]])
    return np.diff(edges)


def _l2_1d(
    x_source: np.ndarray, x_target: np.ndarray, interval: tuple[float, float]
) -> sparse.csr_matrix:
    """Lumped-mass L² projection between 1-D piecewise-linear spaces.

    Parameters
    ----------
    x_source : ndarray, shape (n_s,)
        Strictly increasing source nodes.
    x_target : ndarray, shape (n_t,)
        Strictly increasing target nodes.
    interval : (float, float)
        The interval [a, b] holding both.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n_t, n_s)
        ``Π = M_L^{-1} B``.

    Notes
    -----
    ``B_{ij} = ∫_a^b φ_i ψ_j`` with ``φ_i`` the extended hats of the target and
    ``ψ_j`` those of the source (see :func:`_hat_integrals`), and
    ``M_L = diag(Σ_j B_{ij}) = diag(∫ φ_i)``. On each interval between
    consecutive points of ``{a, b} ∪ x_source ∪ x_target`` both hats are linear,
    so Simpson's rule ``(q - p)/6 [f(p) + 4 f((p+q)/2) + f(q)]`` integrates their
    product exactly.
    """
    a, b = interval
    breaks = np.unique(np.concatenate([[a, b], x_source, x_target]))
    p, q = breaks[:-1], breaks[1:]
    length = q - p
    points = np.concatenate([p, 0.5 * (p + q), q])
    weights = np.concatenate([length, 4.0 * length, length]) / 6.0
    phi = _stencil_matrix(_linear_stencil(x_target, points), x_target.size)
    psi = _stencil_matrix(_linear_stencil(x_source, points), x_source.size)
    coupling = (phi.T @ sparse.diags(weights) @ psi).tocsr()
    lumped = np.asarray(phi.T @ weights).reshape(-1)
    return sparse.csr_matrix(sparse.diags(1.0 / lumped) @ coupling)


# ---------------------------------------------------------------------------
# Operators on grids
# ---------------------------------------------------------------------------


def _kron(factors: list[sparse.csr_matrix]) -> sparse.csr_matrix:
    """Kronecker product in C order (the last factor acts on the fastest axis).

    Parameters
    ----------
    factors : list of scipy.sparse.csr_matrix, shapes (m_d, n_d)
        One operator per axis.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (prod m_d, prod n_d)
        ``A_0 ⊗ A_1 ⊗ ...``, matching nodes numbered ``i0 * n1 + i1``.
    """
    result = factors[0]
    for factor in factors[1:]:
        result = sparse.kron(result, factor, format="csr")
    return sparse.csr_matrix(result)


def _from_stencils(
    source: Grid, target: Grid, stencil: Callable[[np.ndarray, np.ndarray], Stencil]
) -> sparse.csr_matrix:
    """Tensor-product interpolation from a grid with Cartesian-product nodes.

    Parameters
    ----------
    source : Grid
        A grid whose ``axes`` are not None.
    target : Grid
        Any grid of the same dimension.
    stencil : callable
        ``(x, y) -> (cols, vals)``, a 1-D stencil builder with ``x`` of shape
        ``(n,)``, ``y`` of shape ``(m,)`` and outputs of shape ``(m, width)``.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (target.n_nodes, source.n_nodes)
        The Kronecker product of the 1-D operators when the target is a tensor
        grid; otherwise, row by row, the product of the 1-D stencils at each
        target point's coordinates (the same numbers).
    """
    axes = source.axes
    assert axes is not None
    target_axes = target.axes
    if target_axes is not None:
        return _kron(
            [
                _stencil_matrix(stencil(x, y), x.size)
                for x, y in zip(axes, target_axes, strict=True)
            ]
        )
    # Scattered target points: the product of the per-axis stencils, row by row.
    cols = np.zeros((target.n_nodes, 1), dtype=np.intp)
    vals = np.ones((target.n_nodes, 1))
    for axis, x in enumerate(axes):
        c, v = stencil(x, target.nodes[:, axis])
        cols = (cols[:, :, None] * x.size + c[:, None, :]).reshape(target.n_nodes, -1)
        vals = (vals[:, :, None] * v[:, None, :]).reshape(target.n_nodes, -1)
    return _stencil_matrix((cols, vals), source.n_nodes)


def _scattered_linear(source: Grid, target: Grid) -> sparse.csr_matrix:
    """Piecewise-linear interpolation on the Delaunay triangulation of the source.

    Parameters
    ----------
    source : Grid
        A grid of dimension >= 2 whose nodes are not degenerate.
    target : Grid
        Any grid of the same dimension.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (target.n_nodes, source.n_nodes)
        Barycentric weights of the simplex holding each target point.

    Notes
    -----
    ``(Π u)(y) = Σ_v λ_v(y) u_v`` over the vertices ``v`` of the Delaunay simplex
    holding ``y``, ``λ_v`` its barycentric coordinates. A target point outside
    the convex hull of the source nodes takes the value of the nearest source
    node (first order there, second order inside).
    """
    try:
        triangulation = Delaunay(source.nodes)
    except QhullError:
        raise GridError(
            "cannot triangulate the source grid for linear interpolation (its "
            "nodes are degenerate, e.g. collinear): use a tensor-product source grid"
        ) from None
    points = target.nodes
    simplex = triangulation.find_simplex(points)
    dim = source.dim
    cols = np.empty((target.n_nodes, dim + 1), dtype=np.intp)
    vals = np.zeros((target.n_nodes, dim + 1))
    inside = simplex >= 0
    transform = triangulation.transform[simplex[inside]]
    local = np.einsum(
        "nij,nj->ni", transform[:, :dim], points[inside] - transform[:, dim]
    )
    vals[inside] = np.concatenate([local, 1.0 - local.sum(axis=1, keepdims=True)], 1)
    cols[inside] = triangulation.simplices[simplex[inside]]
    if not inside.all():
        _, nearest = cKDTree(source.nodes).query(points[~inside])
        cols[~inside] = np.asarray(nearest)[:, None]
        vals[~inside, 0] = 1.0
    return _stencil_matrix((cols, vals), source.n_nodes)


def _linear(source: Grid, target: Grid, *, order: int) -> sparse.csr_matrix:
    """Piecewise-(multi)linear interpolation, constant extrapolation.

    Parameters
    ----------
    source, target : Grid
        Grids of the same dimension and domain.
    order : int
        Unused (kept for a uniform registry signature).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (target.n_nodes, source.n_nodes)
        ``Π`` with ``u_target = Π @ u_source``.

    Notes
    -----
    1-D: ``(Π u)(y) = (1 - λ) u_j + λ u_{j+1}`` on the source cell
    ``[x_j, x_{j+1}]`` holding ``y``, ``λ = (y - x_j)/(x_{j+1} - x_j)``; a target
    point outside ``[x_0, x_{n-1}]`` takes the nearest end value. This is second
    order (``O(h²)``) inside the span of the source nodes and first order
    (``O(h)``, error ``≈ |u'| dist(y, span)``) in the boundary layer outside it,
    e.g. within ``h/2`` of ∂Ω for a midpoint source. 2-D tensor source: the
    bilinear interpolant, the Kronecker product of the 1-D operators. 2-D source
    without tensor structure: linear interpolation on its Delaunay triangulation,
    nearest-node value outside the convex hull.
    """
    del order
    if source.axes is not None:
        return _from_stencils(source, target, _linear_stencil)
    return _scattered_linear(source, target)


def _lagrange(source: Grid, target: Grid, *, order: int) -> sparse.csr_matrix:
    """Local Lagrange interpolation of degree ``order``, tensor product in 2-D.

    Parameters
    ----------
    source, target : Grid
        Grids of the same dimension and domain.
    order : int
        The polynomial degree ``p``.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (target.n_nodes, source.n_nodes)
        ``Π`` with ``u_target = Π @ u_source``.

    Notes
    -----
    ``(Π u)(y) = Σ_{i=0}^{p} u(X_i) Π_{k≠i} (y - X_k)/(X_i - X_k)`` over the
    ``p + 1`` source nodes nearest to ``y`` (stencil shifted inwards at the ends,
    so extrapolation beyond the outer nodes uses the boundary polynomial);
    ``O(h^{p+1})`` everywhere for smooth ``u``. 2-D: the tensor product of the
    1-D operators (reproduces ``x^a y^b`` for ``a, b <= p``).
    """
    if source.axes is None:
        raise GridError(
            "lagrange transfer needs a tensor-product source grid, but the source "
            "nodes are not a Cartesian product: use kind='linear'"
        )
    return _from_stencils(source, target, lambda x, y: _lagrange_stencil(x, y, order))


def _l2(source: Grid, target: Grid, *, order: int) -> sparse.csr_matrix:
    """Lumped-mass L² projection onto the target's piecewise-linear space.

    Parameters
    ----------
    source, target : Grid
        Grids of the same dimension and domain.
    order : int
        Unused (kept for a uniform registry signature).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (target.n_nodes, source.n_nodes)
        ``Π`` with ``u_target = Π @ u_source``.

    Notes
    -----
    The source values define the piecewise-linear interpolant
    ``I_s u = Σ_j u_j ψ_j`` (the extended hats of the source, i.e. the ``linear``
    transfer's interpolant); it is projected onto the span of the target's
    extended hats ``φ_i`` (hat functions on the target nodes, continued by the
    constant 1 to ∂Ω beyond the outermost nodes, so that ``Σ_i φ_i = 1``):

    ``Π = M_L^{-1} B``, ``B_{ij} = ∫_Ω φ_i ψ_j``, ``M_L = diag(∫_Ω φ_i)``.

    ``B`` is computed exactly; the mass matrix is *lumped* (row sums of the
    consistent mass), which keeps ``Π`` sparse, with non-negative entries and
    unit row sums (constants are preserved). It conserves the integral of the
    piecewise-linear interpolant exactly:

    ``Σ_i m_i (Π u)_i = ∫_Ω I_t(Π u) = ∫_Ω I_s u``, ``m_i = ∫_Ω φ_i``.

    ``m_i`` coincides with the quadrature weights of midpoint and trapezoid
    grids, so between such grids ``target.integrate(Π u) ==
    source.integrate(u)`` up to rounding; for Gauss–Legendre or Clenshaw–Curtis
    grids it is the piecewise-linear integral that is conserved. The smoothing
    of the lumped projection makes it first order at the boundary and second
    order inside on uniform grids. 2-D: the Kronecker product of the 1-D
    operators (both grids must be tensor grids), which is the same construction
    with bilinear hats.
    """
    del order
    if source.axes is None or target.axes is None:
        raise GridError(
            "l2 transfer needs tensor-product source and target grids, but one of "
            "them is not a Cartesian product: use kind='linear'"
        )
    return _kron(
        [
            _l2_1d(x, y, interval)
            for x, y, interval in zip(
                source.axes, target.axes, source.domain, strict=True
            )
        ]
    )


#: The kinds of transfer by name. Each entry maps a name to a function
#: ``(source, target, *, order) -> scipy.sparse.csr_matrix`` of shape
#: ``(target.n_nodes, source.n_nodes)``.
TRANSFERS: dict[str, Callable[..., sparse.csr_matrix]] = {
    "linear": _linear,
    "lagrange": _lagrange,
    "l2": _l2,
}


def transfer(
    source: Grid, target: Grid, kind: str = "linear", *, order: int = 3
) -> sparse.csr_matrix | None:
    """The matrix that carries nodal values from one grid to another.

    Parameters
    ----------
    source : Grid
        The grid the values live on.
    target : Grid
        The grid to carry them to; same dimension and domain as ``source``.
    kind : str, optional
        A name in :data:`TRANSFERS`: ``"linear"`` (default), ``"lagrange"`` or
        ``"l2"``.
    order : int, optional
        Polynomial degree of the ``"lagrange"`` transfer (default 3); ignored by
        the other kinds.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (target.n_nodes, source.n_nodes), or None
        ``Π`` with ``u_target = Π @ u_source``; ``Π.T`` is its exact adjoint for
        reverse passes. ``None`` when ``target.same_as(source)``: the transfer is
        the identity and costs nothing.

    Raises
    ------
    GridError
        For an unknown kind (the closest name is suggested), grids of different
        dimension or domain, a negative ``order``, or a kind that needs tensor
        grids given a non-tensor one.

    Notes
    -----
    ``linear``: piecewise-linear (bilinear) interpolation, constant
    extrapolation outside the span of the source nodes (first order there,
    second order inside). ``lagrange``: local degree-``order`` interpolation,
    ``O(h^{order+1})``. ``l2``: the lumped-mass L² projection of the source's
    piecewise-linear interpolant onto the target's piecewise-linear space,
    conserving its integral. See the entries of :data:`TRANSFERS` for formulas.
    Identical grids give ``None`` for every kind: the exact L² projection onto
    the same space is the identity.
    """
    if not isinstance(kind, str) or kind not in TRANSFERS:
        raise unknown_name_error("transfer kind", kind, TRANSFERS)
    if not (isinstance(source, Grid) and isinstance(target, Grid)):
        raise GridError(
            "transfer needs two Grid objects: build them with grid, tensor_grid "
            "or custom_grid"
        )
    if isinstance(order, bool):
        order = -1
    try:
        order = operator.index(order)
    except TypeError:
        order = -1
    if order < 0:
        raise GridError(
            "the lagrange order must be a non-negative integer: pass for example "
            "order=3"
        )
    if source.dim != target.dim:
        raise GridError(
            f"cannot transfer from a {source.dim}-D grid to a {target.dim}-D grid: "
            "give grids of the same dimension"
        )
    if source.domain != target.domain:
        raise GridError(
            f"cannot transfer from domain {source.domain} to domain {target.domain}"
            ": give grids on the same domain"
        )
    if target.same_as(source):
        return None
    matrix = TRANSFERS[kind](source, target, order=order)
    return sparse.csr_matrix(matrix)


def transfers(
    mg: MovingGrid, kind: str = "linear", **options: int
) -> tuple[sparse.csr_matrix | None, ...]:
    """The transfers between consecutive levels of a moving grid.

    Parameters
    ----------
    mg : MovingGrid
        The moving grid.
    kind : str, optional
        A name in :data:`TRANSFERS`.
    **options
        Passed to :func:`transfer` (``order`` for ``"lagrange"``).

    Returns
    -------
    tuple of (scipy.sparse.csr_matrix or None), length mg.n_steps
        Entry ``k`` has shape ``(mg.widths[k + 1], mg.widths[k])`` and maps level
        ``k`` to level ``k + 1``; it is ``None`` where the grid does not change.
        Steps between the same pair of grid objects share one matrix.
    """
    if not isinstance(mg, MovingGrid):
        raise GridError(
            f"transfers needs a MovingGrid, got {type(mg).__name__}: build one with "
            "moving_grid"
        )
    cache: dict[tuple[int, int], sparse.csr_matrix | None] = {}
    result = []
    for k in range(mg.n_steps):
        source, target = mg.grids[k], mg.grids[k + 1]
        key = (id(source), id(target))
        if key not in cache:
            cache[key] = transfer(source, target, kind, **options)
        result.append(cache[key])
    return tuple(result)
