"""Tests of the moving grids of :mod:`grids`."""

import numpy as np
import pytest

from grids import (
    GridError,
    MovingGrid,
    grid,
    moving_grid,
    tensor_grid,
    time_grid,
)


def test_schedule_8_6_4_gives_documented_widths():
    # Intervals are closed on the left: t_4 = 1/3 and t_8 = 2/3 already use the
    # next width.
    mg = moving_grid(time_grid(1.0, 12), "midpoint", [(0.0, 8), (1 / 3, 6), (2 / 3, 4)])
    assert mg.widths == (8,) * 4 + (6,) * 4 + (4,) * 5
    assert [k for k in range(12) if mg.changes(k)] == [3, 7]
    assert mg[0] is mg[3]  # equal widths share one grid object
    assert mg[4].same_as(grid("midpoint", 6))
    assert len(mg) == 13 and mg.n_steps == 12 and mg.dim == 1


def test_schedule_start_within_rounding_of_a_level_counts_as_reached():
    tg = time_grid(0.3, 3)  # t_1 = 0.3 * (1/3) rounds to 0.09999999999999999
    assert tg.nodes[1] < 0.1
    mg = moving_grid(tg, "trapezoid", [(0, 5), (0.1, 7), (0.2, 9)])
    assert mg.widths == (5, 7, 9, 9)


def test_schedule_start_between_levels_applies_from_next_level():
    mg = moving_grid(time_grid(1.0, 4), "midpoint", [(0, 3), (0.3, 5)])
    assert mg.widths == (3, 3, 5, 5, 5)  # t = 0, .25 | .5, .75, 1


def test_schedule_entry_at_T_applies_to_last_level_only():
    mg = moving_grid(time_grid(2.0, 4), "midpoint", [(0, 3), (2.0, 5)])
    assert mg.widths == (3, 3, 3, 3, 5)


def test_fixed_and_callable_widths():
    tg = time_grid(1.0, 5)
    fixed = moving_grid(tg, "gauss_legendre", 7, domain=(-1.0, 1.0))
    assert fixed.widths == (7,) * 6
    assert not any(fixed.changes(k) for k in range(5))
    assert fixed.domain == ((-1.0, 1.0),)
    shrinking = moving_grid(tg, "midpoint", lambda t: 10 - int(round(5 * t)))
    assert shrinking.widths == (10, 9, 8, 7, 6, 5)
    assert all(shrinking.changes(k) for k in range(5))


def test_two_dimensional_schedule():
    tg = time_grid(1.0, 4)
    mg = moving_grid(tg, "midpoint", [(0, (8, 8)), (0.5, (4, 4))])
    assert mg.dim == 2
    assert mg.shapes == ((8, 8),) * 2 + ((4, 4),) * 3
    assert mg.widths == (64, 64, 16, 16, 16)
    assert mg[0].same_as(tensor_grid("midpoint", (8, 8)))
    fixed = moving_grid(tg, ("gauss_legendre", "midpoint"), (3, 5))
    assert fixed.shapes == ((3, 5),) * 5


def phi(t, xi):
    """Moves interior nodes right; fixes 0 and 1."""
    return xi + 0.1 * t * xi * (1.0 - xi)


def dphi(t, xi):
    return (1.0 + 0.1 * t * (1.0 - 2.0 * xi))[:, :, None]


def test_mapping_moves_nodes():
    tg = time_grid(1.0, 4)
    mg = moving_grid(tg, "trapezoid", 21, mapping=phi)
    reference = grid("trapezoid", 21)
    for k, t in enumerate(tg.nodes):
        np.testing.assert_allclose(mg[k].nodes, phi(t, reference.nodes), rtol=1e-15)
    assert mg[-1].nodes[10, 0] == pytest.approx(0.5 + 0.1 * 0.25)
    assert all(mg.changes(k) for k in range(4))


def test_mapped_trapezoid_weights_integrate_one_and_x():
    # The pulled-back integrands are φ' (linear: the trapezoid rule is exact) and
    # φ φ' (cubic: error -h²/12 [(φφ')'] = -c h² / 2 with c = 0.1 t).
    tg = time_grid(1.0, 4)
    n = 40001
    mg = moving_grid(tg, "trapezoid", n, mapping=phi)
    for g in mg:
        x = g.nodes[:, 0]
        assert abs(g.integrate(np.ones(n)) - 1.0) < 1e-10
        assert abs(g.integrate(x) - 0.5) < 1e-10


def test_mapped_trapezoid_error_on_x_matches_euler_maclaurin():
    n = 101
    h = 1.0 / (n - 1)
    mg = moving_grid(time_grid(1.0, 2), "trapezoid", n, mapping=phi)
    for g, t in zip(mg, mg.time.nodes, strict=True):
        c = 0.1 * t
        error = g.integrate(g.nodes[:, 0]) - 0.5
        assert error == pytest.approx(-c * h**2 / 2, rel=1e-4, abs=1e-12)


def test_mapped_gauss_legendre_is_exact_for_low_degrees():
    # (f ∘ φ) φ' has degree 2 deg(f) + 1 <= 2n - 1 for deg(f) <= n - 1.
    mg = moving_grid(time_grid(1.0, 3), "gauss_legendre", 4, mapping=phi)
    for g in mg:
        x = g.nodes[:, 0]
        for k in range(4):
            assert abs(g.integrate(x**k) - 1.0 / (k + 1)) < 1e-10
    exact = moving_grid(
        time_grid(1.0, 3), "gauss_legendre", 4, mapping=phi, jacobian=dphi
    )
    for g in exact:
        x = g.nodes[:, 0]
        for k in range(4):
            assert abs(g.integrate(x**k) - 1.0 / (k + 1)) < 1e-14


def test_numerical_jacobian_matches_exact_on_non_polynomial_map():
    def warp(t, xi):
        return xi + 0.05 * t * np.sin(np.pi * xi)

    def dwarp(t, xi):
        return (1.0 + 0.05 * t * np.pi * np.cos(np.pi * xi))[:, :, None]

    tg = time_grid(1.0, 2)
    numeric = moving_grid(tg, "clenshaw_curtis", 17, mapping=warp)
    exact = moving_grid(tg, "clenshaw_curtis", 17, mapping=warp, jacobian=dwarp)
    for a, b in zip(numeric, exact, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-9)


def test_two_dimensional_mapping():
    def shear(t, xi):
        out = xi.copy()
        out[:, 0] += 0.05 * t * np.sin(np.pi * xi[:, 0]) * np.sin(np.pi * xi[:, 1])
        return out

    mg = moving_grid(time_grid(1.0, 2), "gauss_legendre", (12, 12), mapping=shear)
    g = mg[-1]
    assert g.axes is None  # no longer a Cartesian product
    assert g.shape == (12, 12)
    assert abs(g.integrate(np.ones(g.n_nodes)) - 1.0) < 1e-10
    assert abs(g.integrate(g.nodes[:, 0]) - 0.5) < 1e-10
    separable = moving_grid(time_grid(1.0, 2), "midpoint", (6, 5), mapping=phi)
    assert separable[-1].is_tensor


def test_changes_rejects_bad_index():
    mg = moving_grid(time_grid(1.0, 2), "midpoint", 4)
    with pytest.raises(IndexError):
        mg.changes(2)
    with pytest.raises(IndexError):
        mg.changes(-1)


@pytest.mark.parametrize(
    ("widths", "keyword"),
    [
        ([(0.25, 8), (0.5, 4)], "does not cover"),
        ([(0.0, 8), (0.5, 6), (0.4, 4)], "strictly increasing"),
        ([(0.0, 8), (0.5, 6), (0.5, 4)], "strictly increasing"),
        ([(0.0, 8), (0.5, 0)], "at least 1"),
        ([(0.0, 8), (1.5, 4)], "after the final time"),
        ([(0.0, 8), (0.5, (4, 4))], "mixes"),
        ([(0.0, 8, 3)], "pair"),
        (0, "at least 1"),
        ((4, -1), "at least 1"),
        (lambda t: 0, "at least 1"),
        (lambda t: 2.5, "integer"),
    ],
)
def test_invalid_schedules_raise_grid_error(widths, keyword):
    with pytest.raises(GridError, match=keyword):
        moving_grid(time_grid(1.0, 4), "midpoint", widths)


@pytest.mark.parametrize(
    ("mapping", "keyword"),
    [
        (lambda t, xi: xi + 0.5 * t, "outside the domain"),
        (lambda t, xi: 1.0 - xi, "strictly increasing"),
        (lambda t, xi: xi[:-1], "one mapped point per node"),
        (lambda t, xi: xi * np.nan, "non-finite"),
    ],
)
def test_invalid_mappings_raise_grid_error(mapping, keyword):
    with pytest.raises(GridError, match=keyword):
        moving_grid(time_grid(1.0, 2), "midpoint", 6, mapping=mapping)


def test_singular_jacobian_raises():
    with pytest.raises(GridError, match="singular"):
        moving_grid(
            time_grid(1.0, 2),
            "trapezoid",
            5,
            mapping=lambda t, xi: xi**3,
            jacobian=lambda t, xi: (3.0 * xi**2)[:, :, None],
        )


def test_moving_grid_constructor_validates():
    tg = time_grid(1.0, 2)
    with pytest.raises(GridError, match="one grid per level"):
        MovingGrid(tg, (grid("midpoint", 3),) * 2)
    with pytest.raises(GridError, match="same domain"):
        MovingGrid(tg, (grid("midpoint", 3),) * 2 + (grid("midpoint", 3, (0, 2)),))
    with pytest.raises(GridError, match="TimeGrid"):
        moving_grid(1.0, "midpoint", 3)
    with pytest.raises(GridError, match="did you mean"):
        moving_grid(tg, "midpiont", 3)


def test_identity_mapping_reproduces_the_reference_grid_exactly():
    mg = moving_grid(time_grid(1.0, 3), "clenshaw_curtis", 9, mapping=lambda t, x: x)
    assert mg[0].same_as(grid("clenshaw_curtis", 9))
    assert not any(mg.changes(k) for k in range(3))


def test_schedule_given_as_array_and_integral_float_widths():
    tg = time_grid(1.0, 4)
    mg = moving_grid(tg, "midpoint", np.array([[0.0, 4.0], [0.5, 2.0]]))
    assert mg.widths == (4, 4, 2, 2, 2)
    assert moving_grid(tg, "midpoint", 3.0).widths == (3,) * 5
