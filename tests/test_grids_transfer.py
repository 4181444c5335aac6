"""Tests of the transfer operators of :mod:`grids`."""

import numpy as np
import pytest
from scipy import sparse

from grids import (
    TRANSFERS,
    GridError,
    custom_grid,
    grid,
    moving_grid,
    tensor_grid,
    time_grid,
    transfer,
    transfers,
)
from grids._transfer import _hat_integrals

KINDS = sorted(TRANSFERS)


def smooth(x):
    return np.exp(np.sin(3.0 * x))


def fitted_slope(x, y):
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def test_registry_holds_the_three_kinds():
    assert set(TRANSFERS) == {"linear", "lagrange", "l2"}


@pytest.mark.parametrize("kind", KINDS)
def test_matrix_type_and_shape(kind):
    pi = transfer(grid("midpoint", 7), grid("trapezoid", 4), kind)
    assert isinstance(pi, sparse.csr_matrix)
    assert pi.shape == (4, 7)
    pi2 = transfer(
        tensor_grid("midpoint", (3, 4)), tensor_grid("midpoint", (5, 2)), kind
    )
    assert pi2.shape == (10, 12)


@pytest.mark.parametrize("kind", KINDS)
def test_identity_is_none(kind):
    g = grid("gauss_legendre", 6)
    assert transfer(g, g, kind) is None
    assert transfer(grid("midpoint", 5), grid("midpoint", 5), kind) is None
    t = tensor_grid("trapezoid", (3, 4))
    assert transfer(t, tensor_grid("trapezoid", (3, 4)), kind) is None
    assert transfer(grid("midpoint", 5), grid("midpoint", 6), kind) is not None


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source_rule", ["midpoint", "gauss_legendre", "clenshaw_curtis"]
)
def test_linear_reproduces_linear_functions_inside_the_span(source_rule):
    domain = (-1.0, 2.0)
    source = grid(source_rule, 7, domain)
    target = grid("trapezoid", 25, domain)
    x, y = source.nodes[:, 0], target.nodes[:, 0]
    values = transfer(source, target) @ (0.5 - 3.0 * x)
    inside = (y >= x[0]) & (y <= x[-1])
    np.testing.assert_allclose(values[inside], 0.5 - 3.0 * y[inside], atol=1e-13)
    # Outside the span of the source nodes: the nearest end value (constant).
    left, right = y < x[0], y > x[-1]
    if source_rule != "clenshaw_curtis":
        assert left.any() and right.any()
    np.testing.assert_allclose(values[left], 0.5 - 3.0 * x[0], atol=1e-13)
    np.testing.assert_allclose(values[right], 0.5 - 3.0 * x[-1], atol=1e-13)


def test_bilinear_reproduces_bilinear_functions():
    def f(p):
        return 1.0 + 2.0 * p[:, 0] - 0.5 * p[:, 1] + 3.0 * p[:, 0] * p[:, 1]

    domain = ((-1.0, 2.0), (0.0, 1.0))
    source = tensor_grid(("trapezoid", "clenshaw_curtis"), (4, 5), domain)
    target = tensor_grid(("gauss_legendre", "midpoint"), (7, 6), domain)
    np.testing.assert_allclose(
        transfer(source, target) @ f(source.nodes), f(target.nodes), atol=1e-13
    )
    # Scattered targets use the per-axis product; it must equal the Kronecker form.
    scattered = custom_grid(target.nodes, target.weights, domain)
    assert scattered.axes is None
    difference = transfer(source, scattered) - transfer(source, target)
    assert abs(difference).max() < 1e-15


def test_linear_convergence_order_two_with_endpoint_nodes():
    target = grid("gauss_legendre", 97)
    y = target.nodes[:, 0]
    ns = [10, 20, 40, 80, 160]
    errors = []
    for n in ns:
        source = grid("trapezoid", n)
        u = transfer(source, target) @ smooth(source.nodes[:, 0])
        errors.append(np.abs(u - smooth(y)).max())
    slope = fitted_slope(1.0 / np.array(ns), errors)
    assert abs(slope - 2.0) < 0.3, f"linear transfer: fitted order {slope:.3f}"


def test_linear_is_first_order_in_the_boundary_layer_of_a_midpoint_source():
    target = grid("trapezoid", 97)  # includes the end points 0 and 1
    y = target.nodes[:, 0]
    ns = np.array([10, 20, 40, 80, 160])
    overall, inside = [], []
    for n in ns:
        source = grid("midpoint", n)
        x = source.nodes[:, 0]
        error = np.abs(transfer(source, target) @ smooth(x) - smooth(y))
        overall.append(error.max())
        inside.append(error[(y >= x[0]) & (y <= x[-1])].max())
    assert abs(fitted_slope(1.0 / ns, overall) - 1.0) < 0.3
    assert abs(fitted_slope(1.0 / ns, inside) - 2.0) < 0.3


def test_linear_on_a_non_tensor_source_uses_a_triangulation():
    def shear(t, xi):
        out = xi.copy()
        out[:, 0] += 0.05 * t * np.sin(np.pi * xi[:, 0]) * np.sin(np.pi * xi[:, 1])
        return out

    source = moving_grid(time_grid(1.0, 1), "trapezoid", (6, 7), mapping=shear)[-1]
    assert source.axes is None
    target = tensor_grid("gauss_legendre", (5, 5))
    pi = transfer(source, target)
    linear = 0.3 + source.nodes @ np.array([1.5, -2.0])
    expected = 0.3 + target.nodes @ np.array([1.5, -2.0])
    np.testing.assert_allclose(pi @ linear, expected, atol=1e-12)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-14)
    for kind in ("lagrange", "l2"):
        with pytest.raises(GridError, match="tensor-product"):
            transfer(source, target, kind)


# ---------------------------------------------------------------------------
# Lagrange
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("source_rule", ["midpoint", "trapezoid", "gauss_legendre"])
def test_lagrange_order_3_reproduces_cubics_everywhere(source_rule):
    domain = (-1.0, 2.0)
    source = grid(source_rule, 9, domain)
    target = grid("trapezoid", 31, domain)  # reaches beyond midpoint/GL nodes

    def cubic(x):
        return 2.0 - x + 0.5 * x**2 - 0.75 * x**3

    pi = transfer(source, target, "lagrange")
    np.testing.assert_allclose(
        pi @ cubic(source.nodes[:, 0]), cubic(target.nodes[:, 0]), atol=1e-12
    )


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_lagrange_order_is_exact_for_its_degree_only(order):
    source, target = grid("midpoint", 12), grid("trapezoid", 17)
    x, y = source.nodes[:, 0], target.nodes[:, 0]
    pi = transfer(source, target, "lagrange", order=order)
    assert np.abs(pi @ x**order - y**order).max() < 1e-12
    assert np.abs(pi @ x ** (order + 1) - y ** (order + 1)).max() > 1e-7
    assert pi.getnnz(axis=1).max() <= order + 1


def test_lagrange_with_fewer_nodes_than_the_stencil_uses_all_nodes():
    pi = transfer(grid("gauss_legendre", 3), grid("trapezoid", 9), "lagrange")
    x, y = grid("gauss_legendre", 3).nodes[:, 0], grid("trapezoid", 9).nodes[:, 0]
    np.testing.assert_allclose(pi @ x**2, y**2, atol=1e-13)
    constant = transfer(grid("midpoint", 1), grid("trapezoid", 4), "lagrange")
    np.testing.assert_array_equal(constant.toarray(), np.ones((4, 1)))


def test_lagrange_2d_reproduces_bicubic_products():
    domain = ((0.0, 1.0), (-1.0, 1.0))
    source = tensor_grid("midpoint", (7, 8), domain)
    target = tensor_grid("clenshaw_curtis", (9, 6), domain)

    def f(p):
        return (1 + p[:, 0] ** 3) * (p[:, 1] ** 3 - 2 * p[:, 1]) + p[:, 0] ** 2

    pi = transfer(source, target, "lagrange")
    np.testing.assert_allclose(pi @ f(source.nodes), f(target.nodes), atol=1e-12)


@pytest.mark.parametrize(
    ("source_rule", "order"),
    [
        ("trapezoid", 1),
        ("trapezoid", 2),
        ("trapezoid", 3),
        ("midpoint", 3),
        ("clenshaw_curtis", 3),
    ],
)
def test_lagrange_converges_at_order_plus_one(source_rule, order):
    target = grid("gauss_legendre", 97)
    y = target.nodes[:, 0]
    ns = np.array([20, 40, 80, 160])
    errors = []
    for n in ns:
        source = grid(source_rule, n)
        u = transfer(source, target, "lagrange", order=order) @ smooth(
            source.nodes[:, 0]
        )
        errors.append(np.abs(u - smooth(y)).max())
    slope = fitted_slope(1.0 / ns, errors)
    assert abs(slope - (order + 1)) < 0.3, (
        f"lagrange order {order} on {source_rule}: fitted {slope:.3f}"
    )


# ---------------------------------------------------------------------------
# L2 projection
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (("midpoint", 8), ("midpoint", 6)),
        (("midpoint", 6), ("midpoint", 8)),
        (("trapezoid", 9), ("midpoint", 4)),
        (("midpoint", 5), ("trapezoid", 11)),
        (("trapezoid", 3), ("trapezoid", 8)),
    ],
)
def test_l2_conserves_the_quadrature_integral_on_midpoint_and_trapezoid(source, target):
    rng = np.random.default_rng(0)
    s, t = grid(*source, (-1.0, 2.0)), grid(*target, (-1.0, 2.0))
    pi = transfer(s, t, "l2")
    for u in rng.standard_normal((5, s.n_nodes)):
        assert abs(t.integrate(pi @ u) - s.integrate(u)) < 1e-13
    assert pi.min() >= 0.0
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-14)


def test_lumped_mass_is_the_midpoint_and_trapezoid_weights():
    for rule in ("midpoint", "trapezoid"):
        g = grid(rule, 9, (-1.0, 2.0))
        np.testing.assert_allclose(
            _hat_integrals(g.nodes[:, 0], g.domain[0]), g.weights, rtol=1e-14
        )


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (("gauss_legendre", 7), ("clenshaw_curtis", 5)),
        (("clenshaw_curtis", 9), ("gauss_legendre", 12)),
        (("gauss_legendre", 4), ("midpoint", 10)),
    ],
)
def test_l2_conserves_the_piecewise_linear_integral_on_other_rules(source, target):
    rng = np.random.default_rng(1)
    s, t = grid(*source), grid(*target)
    pi = transfer(s, t, "l2")
    m_s = _hat_integrals(s.nodes[:, 0], s.domain[0])
    m_t = _hat_integrals(t.nodes[:, 0], t.domain[0])
    for u in rng.standard_normal((5, s.n_nodes)):
        assert abs(m_t @ (pi @ u) - m_s @ u) < 1e-14


def test_l2_matches_a_dense_reference_projection():
    # B_ij = ∫ φ_i ψ_j by fine midpoint quadrature of the linear transfers' hats.
    source, target = grid("gauss_legendre", 5), grid("midpoint", 4)
    fine = grid("midpoint", 20000)
    phi = transfer(target, fine).toarray()  # target hats at fine points
    psi = transfer(source, fine).toarray()
    coupling = phi.T @ (fine.weights[:, None] * psi)
    reference = coupling / coupling.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        transfer(source, target, "l2").toarray(), reference, atol=1e-8
    )


def test_l2_2d_conserves_integral():
    rng = np.random.default_rng(2)
    for a, b in [((8, 8), (4, 4)), ((3, 5), (6, 2))]:
        s, t = tensor_grid("midpoint", a), tensor_grid("midpoint", b)
        pi = transfer(s, t, "l2")
        u = rng.standard_normal(s.n_nodes)
        assert abs(t.integrate(pi @ u) - s.integrate(u)) < 1e-14
    s = tensor_grid("trapezoid", (5, 7))
    t = tensor_grid("midpoint", (3, 3))
    u = rng.standard_normal(s.n_nodes)
    assert abs(t.integrate(transfer(s, t, "l2") @ u) - s.integrate(u)) < 1e-14


def test_l2_converges_at_order_two_inside():
    ns = np.array([10, 20, 40, 80, 160])
    inside = []
    for n in ns:
        source, target = grid("trapezoid", 4 * n + 1), grid("midpoint", n)
        error = np.abs(
            transfer(source, target, "l2") @ smooth(source.nodes[:, 0])
            - smooth(target.nodes[:, 0])
        )
        inside.append(error[2:-2].max())
    slope = fitted_slope(1.0 / ns, inside)
    assert abs(slope - 2.0) < 0.3, f"l2 interior order {slope:.3f}"


# ---------------------------------------------------------------------------
# Adjoint: Π.T in a reverse pass gives the gradient
# ---------------------------------------------------------------------------


def objective(target, v):
    """A nonlinear scalar function of the target values and its gradient."""
    value = target.integrate(np.sin(v) + 0.5 * v**2)
    return value, target.weights * (np.cos(v) + v)


def finite_difference_gradient(f, u, h=1e-6):
    grad = np.empty_like(u)
    for j in range(u.size):
        e = np.zeros_like(u)
        e[j] = h
        grad[j] = (f(u + e) - f(u - e)) / (2.0 * h)
    return grad


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("source", "target"),
    [
        (grid("midpoint", 9), grid("clenshaw_curtis", 6)),
        (tensor_grid("gauss_legendre", (4, 3)), tensor_grid("midpoint", (3, 5))),
    ],
)
def test_transpose_gives_the_gradient(kind, source, target):
    rng = np.random.default_rng(3)
    pi = transfer(source, target, kind)
    u = rng.standard_normal(source.n_nodes)
    _, dv = objective(target, pi @ u)
    reverse = pi.T @ dv

    def forward(w):
        return objective(target, pi @ w)[0]

    np.testing.assert_allclose(
        reverse, finite_difference_gradient(forward, u), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("kind", KINDS)
def test_reverse_pass_through_a_moving_grid(kind):
    mg = moving_grid(time_grid(1.0, 6), "midpoint", [(0, 8), (0.3, 6), (0.7, 4)])
    ops = transfers(mg, kind)
    assert [op is None for op in ops] == [not mg.changes(k) for k in range(6)]

    def run(u0):
        states = [u0]
        for op in ops:
            h = np.tanh(states[-1])
            states.append(h if op is None else op @ h)
        return states

    def loss(u0):
        return objective(mg[-1], run(u0)[-1])[0]

    u0 = np.random.default_rng(4).standard_normal(mg.widths[0])
    states = run(u0)
    adjoint = objective(mg[-1], states[-1])[1]
    for k in reversed(range(mg.n_steps)):
        back = adjoint if ops[k] is None else ops[k].T @ adjoint
        adjoint = (1.0 - np.tanh(states[k]) ** 2) * back
    np.testing.assert_allclose(
        adjoint, finite_difference_gradient(loss, u0), rtol=1e-6, atol=1e-9
    )


# ---------------------------------------------------------------------------
# transfers(mg)
# ---------------------------------------------------------------------------


def test_transfers_per_step():
    mg = moving_grid(time_grid(1.0, 12), "midpoint", [(0, 8), (1 / 3, 6), (2 / 3, 4)])
    ops = transfers(mg, "lagrange", order=2)
    assert len(ops) == 12
    assert [k for k, op in enumerate(ops) if op is not None] == [3, 7]
    assert ops[3].shape == (6, 8) and ops[7].shape == (4, 6)
    fixed = transfers(moving_grid(time_grid(1.0, 3), "trapezoid", 5))
    assert fixed == (None, None, None)
    back_and_forth = moving_grid(
        time_grid(1.0, 4), "trapezoid", [(0, 5), (0.25, 7), (0.5, 5), (0.75, 7)]
    )
    ops = transfers(back_and_forth)
    assert ops[0] is ops[2]  # same pair of grid objects: one matrix


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "keyword"),
    [
        (
            lambda: transfer(grid("midpoint", 3), grid("midpoint", 4), "lagrang"),
            "did you mean 'lagrange'",
        ),
        (
            lambda: transfer(grid("midpoint", 3), grid("midpoint", 4), "cubic"),
            "unknown transfer kind",
        ),
        (
            lambda: transfer(grid("midpoint", 3), tensor_grid("midpoint", (2, 2))),
            "same dimension",
        ),
        (
            lambda: transfer(grid("midpoint", 3), grid("midpoint", 4, (0, 2))),
            "same domain",
        ),
        (
            lambda: transfer(
                grid("midpoint", 3), grid("midpoint", 4), "lagrange", order=-1
            ),
            "non-negative",
        ),
        (
            lambda: transfer(
                grid("midpoint", 3), grid("midpoint", 4), "lagrange", order=1.5
            ),
            "non-negative",
        ),
        (lambda: transfers(grid("midpoint", 3)), "MovingGrid"),
    ],
)
def test_invalid_transfers_raise_grid_error(call, keyword):
    with pytest.raises(GridError, match=keyword):
        call()


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lagrange_stencil_is_the_nearest_nodes(order):
    source = grid("gauss_legendre", 11)  # non-uniform nodes
    x = source.nodes[:, 0]
    y = np.random.default_rng(5).uniform(0.0, 1.0, 200)
    target = custom_grid(np.sort(y), np.full(200, 1 / 200), (0.0, 1.0))
    pi = transfer(source, target, "lagrange", order=order)
    for i, point in enumerate(target.nodes[:, 0]):
        nearest = set(np.argsort(np.abs(x - point))[: order + 1].tolist())
        assert set(pi.indices[pi.indptr[i] : pi.indptr[i + 1]].tolist()) == nearest
