"""Tests of the quadrature rules and spatial grids of :mod:`grids`."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from grids import RULES, Grid, GridError, custom_grid, grid, tensor_grid

DOMAINS = [(0.0, 1.0), (-1.0, 2.0)]


def exact_degree(rule, n):
    """The highest monomial degree the rule with ``n`` nodes integrates exactly."""
    if rule in ("midpoint", "trapezoid"):
        return 1
    if rule == "gauss_legendre":
        return 2 * n - 1
    if rule == "clenshaw_curtis":
        return n if n % 2 == 1 else n - 1
    raise AssertionError(rule)


def monomial_error(g, k):
    """Relative error of the grid's quadrature on x^k over its (1-D) domain."""
    (a, b), x = g.domain[0], g.nodes[:, 0]
    exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
    return abs(g.integrate(x**k) - exact) / max(1.0, abs(exact))


EXACTNESS_CASES = (
    [("midpoint", n) for n in (1, 2, 3, 10)]
    + [("trapezoid", n) for n in (2, 3, 10)]
    + [("gauss_legendre", n) for n in (1, 2, 3, 4, 5, 6)]
    + [("clenshaw_curtis", n) for n in (2, 3, 4, 5, 6, 7, 8)]
)


def test_registry_holds_the_four_rules():
    assert set(RULES) == {"midpoint", "trapezoid", "gauss_legendre", "clenshaw_curtis"}


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize(("rule", "n"), EXACTNESS_CASES)
def test_rule_is_exact_up_to_its_degree_and_not_beyond(rule, n, domain):
    g = grid(rule, n, domain)
    degree = exact_degree(rule, n)
    for k in range(degree + 1):
        assert monomial_error(g, k) < 1e-13, f"{rule} n={n} fails on x^{k}"
    assert monomial_error(g, degree + 1) > 1e-8, (
        f"{rule} n={n} is unexpectedly exact on x^{degree + 1}"
    )


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("n", [2, 5, 16, 101])
def test_weights_positive_and_sum_to_length(rule, n, domain):
    g = grid(rule, n, domain)
    a, b = domain
    assert g.nodes.shape == (n, 1)
    assert g.weights.shape == (n,)
    assert np.all(g.weights > 0)
    assert abs(g.weights.sum() - (b - a)) < 1e-13
    assert np.all(np.diff(g.nodes[:, 0]) > 0)
    assert a <= g.nodes[0, 0] and g.nodes[-1, 0] <= b


def test_node_formulas():
    np.testing.assert_allclose(
        grid("midpoint", 4).nodes[:, 0], [0.125, 0.375, 0.625, 0.875], rtol=1e-15
    )
    t = grid("trapezoid", 5, (-1.0, 2.0))
    np.testing.assert_allclose(t.nodes[:, 0], [-1.0, -0.25, 0.5, 1.25, 2.0])
    np.testing.assert_allclose(t.weights, [0.375, 0.75, 0.75, 0.75, 0.375])
    c = grid("clenshaw_curtis", 5, (-1.0, 1.0))
    np.testing.assert_allclose(
        c.nodes[:, 0], [-1.0, -np.sqrt(0.5), 0.0, np.sqrt(0.5), 1.0], atol=1e-15
    )
    np.testing.assert_allclose(c.weights, [1 / 15, 8 / 15, 12 / 15, 8 / 15, 1 / 15])
    assert c.nodes[0, 0] == -1.0 and c.nodes[-1, 0] == 1.0
    # Symmetric nodes: x_{N-k} = -x_k bit for bit.
    c = grid("clenshaw_curtis", 12, (-1.0, 1.0))
    np.testing.assert_array_equal(c.nodes[::-1, 0], -c.nodes[:, 0])
    assert grid("clenshaw_curtis", 1, (0.0, 4.0)).nodes[0, 0] == 2.0


def test_rule_names_are_normalised():
    assert grid("Gauss-Legendre", 3).rule == "gauss_legendre"
    assert grid("clenshaw curtis", 3).same_as(grid("clenshaw_curtis", 3))


def fitted_slope(x, y):
    """Least-squares slope of y against x."""
    return float(np.polyfit(x, y, 1)[0])


def smooth(x):
    return np.exp(np.sin(3.0 * x))


def reference_integral(f, a, b, pieces=8):
    """Integral of ``f`` over [a, b] by adaptive quadrature on short pieces."""
    edges = np.linspace(a, b, pieces + 1)
    return math.fsum(
        quad(f, lo, hi, epsabs=0.0, epsrel=2e-14)[0]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    )


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_low_order_rules_converge_at_order_two(rule, domain):
    exact = reference_integral(smooth, *domain)
    spacings, errors = [], []
    for n in (16, 32, 64, 128, 256):
        g = grid(rule, n, domain)
        spacings.append(np.diff(g.nodes[:, 0]).max())
        errors.append(abs(g.integrate(smooth(g.nodes[:, 0])) - exact))
    slope = fitted_slope(np.log(spacings), np.log(errors))
    assert abs(slope - 2.0) < 0.3, f"{rule}: fitted order {slope:.3f}, expected 2"


def runge(x):
    """Analytic on [-1, 1] with poles at ±i/4: Bernstein ellipse ρ = 1/4 + √(17)/4."""
    return 1.0 / (1.0 + 16.0 * x**2)


RUNGE_INTEGRAL = 0.5 * np.arctan(4.0)
RUNGE_RHO = 0.25 + np.sqrt(17.0) / 4.0


def geometric_rate(rule, f, exact, ns, domain=(-1.0, 1.0)):
    """Fit log(error) = c - rate * n over the errors above rounding."""
    ns = np.asarray(ns)
    errors = np.array(
        [
            abs(
                grid(rule, n, domain).integrate(f(grid(rule, n, domain).nodes[:, 0]))
                - exact
            )
            for n in ns
        ]
    )
    keep = errors > 1e-13
    assert keep.sum() >= 4, f"{rule}: too few errors above rounding: {errors}"
    return -fitted_slope(ns[keep], np.log(errors[keep])), errors


def test_gauss_legendre_converges_geometrically_at_the_predicted_rate():
    # For f analytic inside the Bernstein ellipse E_ρ the error is O(ρ^{-2n}).
    rate, errors = geometric_rate(
        "gauss_legendre", runge, RUNGE_INTEGRAL, range(6, 72, 4)
    )
    predicted = 2.0 * np.log(RUNGE_RHO)
    assert abs(rate - predicted) < 0.1 * predicted, (
        f"Gauss-Legendre fitted rate {rate:.4f} per node, predicted {predicted:.4f}"
    )
    assert errors.min() < 1e-14


def test_clenshaw_curtis_converges_geometrically():
    # Clenshaw-Curtis is guaranteed O(ρ^{-n}); before the "kink" it tracks Gauss.
    rate, errors = geometric_rate(
        "clenshaw_curtis", runge, RUNGE_INTEGRAL, range(6, 56, 4)
    )
    guaranteed = np.log(RUNGE_RHO)
    assert rate > guaranteed, (
        f"Clenshaw-Curtis fitted rate {rate:.4f} per node, below the "
        f"guaranteed {guaranteed:.4f}"
    )
    assert rate < 2.5 * guaranteed, f"Clenshaw-Curtis rate {rate:.4f} implausible"
    assert errors.min() < 1e-12


@pytest.mark.parametrize(
    ("rule", "ns", "min_rate"),
    [("gauss_legendre", range(2, 14), 2.0), ("clenshaw_curtis", range(4, 24, 2), 1.0)],
)
def test_spectral_rules_reach_rounding_on_entire_function(rule, ns, min_rate):
    exact = reference_integral(smooth, 0.0, 1.0)
    rate, _ = geometric_rate(rule, smooth, exact, ns, domain=(0.0, 1.0))
    assert rate > min_rate, f"{rule}: fitted rate {rate:.3f} per node on exp(sin 3x)"
    g = grid(rule, 32, (0.0, 1.0))
    assert abs(g.integrate(smooth(g.nodes[:, 0])) - exact) < 1e-14


# ---------------------------------------------------------------------------
# Tensor grids
# ---------------------------------------------------------------------------


def test_tensor_grid_layout_and_weights():
    g = tensor_grid("midpoint", (2, 3))
    assert g.shape == (2, 3)
    assert g.dim == 2 and g.n_nodes == 6
    # C order: last axis fastest.
    np.testing.assert_allclose(g.nodes[:3, 0], 0.25)
    np.testing.assert_allclose(g.nodes[:3, 1], [1 / 6, 0.5, 5 / 6])
    np.testing.assert_allclose(g.nodes[3:, 0], 0.75)
    np.testing.assert_allclose(g.weights, 1 / 6)
    x0, x1 = g.axes
    np.testing.assert_allclose(x0, [0.25, 0.75])
    assert g.is_tensor


def test_image_pixel_centres_are_the_midpoint_tensor_grid():
    g = tensor_grid("midpoint", (8, 8))
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    centres = np.stack([(rows.ravel() + 0.5) / 8, (cols.ravel() + 0.5) / 8], axis=1)
    np.testing.assert_allclose(g.nodes, centres, rtol=0, atol=1e-15)
    image = np.arange(64.0).reshape(8, 8)
    assert g.integrate(image.reshape(-1)) == pytest.approx(image.mean())


def monomial_2d_error(g, p, q):
    (a0, b0), (a1, b1) = g.domain
    exact = (
        (b0 ** (p + 1) - a0 ** (p + 1))
        / (p + 1)
        * ((b1 ** (q + 1) - a1 ** (q + 1)) / (q + 1))
    )
    values = g.nodes[:, 0] ** p * g.nodes[:, 1] ** q
    return abs(g.integrate(values) - exact) / max(1.0, abs(exact))


@pytest.mark.parametrize(
    ("rules", "shape", "degrees"),
    [
        (("gauss_legendre", "clenshaw_curtis"), (3, 4), (5, 3)),
        ("trapezoid", (4, 6), (1, 1)),
        (("midpoint", "gauss_legendre"), (5, 2), (1, 3)),
    ],
)
@pytest.mark.parametrize(
    "domain", [((0.0, 1.0), (0.0, 1.0)), ((-1.0, 2.0), (0.5, 1.5))]
)
def test_tensor_grid_exact_for_products_up_to_the_axis_degrees(
    rules, shape, degrees, domain
):
    g = tensor_grid(rules, shape, domain)
    d0, d1 = degrees
    for p in range(d0 + 1):
        for q in range(d1 + 1):
            assert monomial_2d_error(g, p, q) < 1e-13, f"x^{p} y^{q}"
    assert monomial_2d_error(g, d0 + 1, 0) > 1e-8
    assert monomial_2d_error(g, 0, d1 + 1) > 1e-8
    assert monomial_2d_error(g, d0 + 1, d1) > 1e-8
    area = (domain[0][1] - domain[0][0]) * (domain[1][1] - domain[1][0])
    assert abs(g.weights.sum() - area) < 1e-13


# ---------------------------------------------------------------------------
# Grid object
# ---------------------------------------------------------------------------


def test_grid_arrays_are_read_only():
    g = grid("midpoint", 4)
    with pytest.raises(ValueError, match="read-only"):
        g.nodes[0, 0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        g.weights[0] = 0.5


def test_integrate_batches_over_leading_axes():
    g = grid("gauss_legendre", 4, (0.0, 2.0))
    x = g.nodes[:, 0]
    values = np.stack([np.ones_like(x), x, x**2])
    np.testing.assert_allclose(g.integrate(values), [2.0, 2.0, 8.0 / 3.0])
    assert isinstance(g.integrate(x), float)
    with pytest.raises(GridError, match="last axis"):
        g.integrate(np.ones(5))


def test_equality_and_same_as():
    assert grid("midpoint", 5) == grid("midpoint", 5)
    assert grid("midpoint", 5).same_as(grid("midpoint", 5))
    assert not grid("midpoint", 5).same_as(grid("midpoint", 6))
    assert not grid("midpoint", 3).same_as(grid("gauss_legendre", 3))
    assert hash(grid("trapezoid", 4)) == hash(grid("trapezoid", 4))
    assert not grid("midpoint", 4).same_as("midpoint")


def test_custom_grid_and_axes():
    g = custom_grid([0.1, 0.4, 0.9], [0.3, 0.4, 0.3], (0.0, 1.0))
    assert g.dim == 1 and g.rule == "custom"
    assert g.integrate(np.ones(3)) == pytest.approx(1.0)
    t = tensor_grid("gauss_legendre", (2, 3))
    c = custom_grid(t.nodes, t.weights, t.domain, shape=(2, 3))
    assert c.is_tensor
    scattered = custom_grid(t.nodes[::-1], t.weights, t.domain, shape=(2, 3))
    assert scattered.axes is None
    assert custom_grid(t.nodes, t.weights, t.domain).axes is None  # shape (6,)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "keyword"),
    [
        (lambda: grid("midpoint", 0), "at least 1"),
        (lambda: grid("gauss_legendre", -3), "at least 1"),
        (lambda: grid("midpoint", 2.5), "integer"),
        (lambda: grid("trapezoid", 1), "at least 2 nodes"),
        (lambda: grid("gauss_legendr", 4), "did you mean 'gauss_legendre'"),
        (lambda: grid("simpson", 4), "unknown quadrature rule"),
        (lambda: grid("midpoint", 4, (1.0, 0.0)), "a < b"),
        (lambda: grid("midpoint", 4, (0.0, np.inf)), "finite"),
        (lambda: tensor_grid("midpoint", (3, 0)), "at least 1"),
        (lambda: tensor_grid("midpoint", (3, 3), ((0, 1),)), "one interval per axis"),
        (lambda: tensor_grid(("midpoint",), (3, 3)), "one per axis"),
        (lambda: custom_grid([0.1, 1.2], [0.5, 0.5], (0, 1)), "outside the domain"),
        (lambda: custom_grid([-0.1, 0.5], [0.5, 0.5], (0, 1)), "outside the domain"),
        (lambda: custom_grid([0.5, 0.2], [0.5, 0.5], (0, 1)), "sort the nodes"),
        (lambda: custom_grid([0.2, 0.2], [0.5, 0.5], (0, 1)), "remove the duplicate"),
        (lambda: custom_grid([0.2, 0.6], [0.5, 0.0], (0, 1)), "positive"),
        (lambda: custom_grid([0.2, 0.6], [0.5, -1.0], (0, 1)), "positive"),
        (lambda: custom_grid([0.2, 0.6], [0.5, np.nan], (0, 1)), "finite"),
        (lambda: custom_grid([0.2, np.nan], [0.5, 0.5], (0, 1)), "finite"),
        (lambda: custom_grid([0.2, 0.6], [0.5], (0, 1)), "one weight per node"),
        (lambda: custom_grid(np.zeros(0), np.zeros(0), (0, 1)), "at least 1 node"),
        (
            lambda: custom_grid([[0.1, 0.2], [0.1, 0.2]], [1, 1], ((0, 1), (0, 1))),
            "distinct",
        ),
        (
            lambda: custom_grid([[0.1, 0.2], [0.1, 1.5]], [1, 1], ((0, 1), (0, 1))),
            "on axis 1",
        ),
        (lambda: custom_grid([0.1, 0.2], [1, 1], (0, 1), shape=(3,)), "shape"),
    ],
)
def test_invalid_grids_raise_grid_error(build, keyword):
    with pytest.raises(GridError, match=keyword):
        build()


def test_unsorted_message_names_both_nodes():
    with pytest.raises(GridError) as info:
        custom_grid([0.0, 0.1, 0.2, 0.25, 0.25], np.ones(5), (0.0, 1.0))
    message = str(info.value)
    assert "strictly increasing" in message
    assert "node 4 (0.25) does not exceed node 3 (0.25)" in message


def test_grid_constructor_validates_too():
    with pytest.raises(GridError, match="outside"):
        Grid(np.array([[2.0]]), np.array([1.0]), ((0.0, 1.0),))
