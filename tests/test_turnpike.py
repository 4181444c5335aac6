"""The turnpike objective: running costs, their exact gradients and rescaling."""

import numpy as np
import pytest
import reference

import grids
import spacetime
from spacetime import SCHEMES, NeuralODE, Problem
from spacetime._spacetime import SpaceTimeNetwork, input_grid

RNG = np.random.default_rng(5)
X = RNG.normal(size=(17, 2))
Y = RNG.integers(0, 2, 17)


def _problem(
    kind,
    scheme="euler",
    exponent=2.0,
    smoothing=0.0,
    loss="logistic",
    T=2.0,
    lam=1e-2,
    beta=0.7,
    n_steps=5,
):
    model = NeuralODE(2, 3, grids.time_grid(T, n_steps), scheme=scheme)
    return Problem(
        model,
        X,
        Y,
        loss=loss,
        lam=lam,
        train_output=(kind == "risk"),
        output_seed=3,
        running_cost={
            "kind": kind,
            "beta": beta,
            "exponent": exponent,
            "smoothing": smoothing,
        },
    )


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize(
    ("kind", "exponent", "smoothing"),
    [
        ("tracking", 1.0, 1e-3),
        ("tracking", 2.0, 0.0),
        ("tracking", 1.5, 0.0),
        ("risk", 2.0, 0.0),
    ],
)
def test_running_cost_gradient_is_exact(scheme, kind, exponent, smoothing):
    problem = _problem(kind, scheme, exponent, smoothing)
    z = problem.initial_point(0, 1.0)
    check = spacetime.check_gradient(problem, z, n_directions=4)
    assert check.worst <= 1e-6, str(check)


def _phi(r, p, eps):
    return (r * r + eps * eps) ** (p / 2) - eps**p


@pytest.mark.parametrize(("exponent", "smoothing"), [(1.0, 1e-3), (2.0, 0.0)])
def test_euler_running_cost_is_the_left_rectangle_sum(exponent, smoothing):
    problem = _problem("tracking", "euler", exponent, smoothing)
    z = problem.initial_point(0, 1.0)
    model, theta = problem.model, problem.split(z)[0]
    states = reference.flow(
        "inside",
        "tanh",
        model.unpack(theta),
        problem.x0,
        model.time.nodes,
        [[0.0]],
        [1.0],
    )
    xbar = problem.running.targets
    R = [
        np.mean(np.sum(_phi(s - xbar, exponent, smoothing), axis=1))
        for s in states[:-1]
    ]
    expected = 0.7 * float(np.dot(model.time.steps, R))
    assert problem.evaluate(z)["running_cost"] == pytest.approx(expected, rel=1e-13)


def test_heun_running_cost_averages_both_stages():
    problem = _problem("risk", "heun", loss="squared")
    z = problem.initial_point(0, 1.0)
    model = problem.model
    theta, p, p0 = problem.split(z)
    controls = model.unpack(theta)
    x = problem.x0
    total = 0.0
    for k, dt in enumerate(model.time.steps):
        k1 = reference.field("inside", "tanh", controls, k, x)
        y2 = x + dt * k1
        k2 = reference.field("inside", "tanh", controls, k, y2)
        risks = [
            reference.risk("squared", y @ p.T + p0, problem.targets) for y in (x, y2)
        ]
        total += dt * 0.5 * (risks[0] + risks[1])
        x = x + dt * 0.5 * (k1 + k2)
    assert problem.evaluate(z)["running_cost"] == pytest.approx(0.7 * total, rel=1e-13)


def test_default_targets_lie_on_the_output_level_set_nearest_the_inputs():
    problem = _problem("tracking")
    xbar = problem.running.targets
    np.testing.assert_allclose(
        xbar @ problem.p.T + problem.p0, problem.targets, atol=1e-14
    )
    # the correction is orthogonal to the level set: parallel to p's row
    d = xbar - problem.x0
    cross = d - np.outer(d @ problem.p[0], problem.p[0]) / (problem.p[0] @ problem.p[0])
    assert np.abs(cross).max() < 1e-14


@pytest.mark.parametrize("kind", ["tracking", "risk"])
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_rescaling_with_running_cost_maps_beta_to_beta_T(kind, scheme):
    T, lam, beta = 6.0, 0.03, 0.4
    long = _problem(kind, scheme, 1.0, 1e-3, T=T, lam=lam, beta=beta)
    unit = _problem(kind, scheme, 1.0, 1e-3, T=1.0, lam=lam / T, beta=beta * T)
    u = long.initial_point(2, 0.8)
    n = long.model.n_params
    v = u.copy()
    v[:n] *= T  # controls rescale; the output map does not
    f_long, g_long = long(u)
    f_unit, g_unit = unit(v)
    assert f_unit == pytest.approx(f_long, rel=1e-12)
    np.testing.assert_allclose(
        g_unit[:n], g_long[:n] / T, rtol=1e-11, atol=1e-12 * np.abs(g_long).max()
    )
    np.testing.assert_allclose(
        g_unit[n:], g_long[n:], rtol=1e-11, atol=1e-12 * np.abs(g_long).max()
    )


def test_spacetime_tracking_uses_the_grid_weights():
    moving = grids.moving_grid(grids.time_grid(1.0, 4), "trapezoid", 7)
    network = SpaceTimeNetwork(moving, input_grid(5))
    problem = Problem(
        network,
        RNG.normal(size=(9, 5)),
        RNG.integers(0, 2, 9),
        loss="logistic",
        train_output=False,
        running_cost={"kind": "tracking", "beta": 1.0},
    )
    z = problem.initial_point(0, 1.0)
    assert spacetime.check_gradient(problem, z).worst <= 1e-6
    xbar = problem.running.targets
    w = moving[0].weights
    full = spacetime._core.flow(network.core, problem.split(z)[0], problem.x0)
    R = [np.mean(np.sum(w * (s - xbar) ** 2, axis=1)) for s in full[:-1]]
    expected = float(np.dot(moving.time.steps, R))
    assert problem.evaluate(z)["running_cost"] == pytest.approx(expected, rel=1e-13)


def test_running_cost_on_a_coarsening_grid_is_refused():
    moving = grids.moving_grid(
        grids.time_grid(1.0, 4), "trapezoid", [(0.0, 7), (0.5, 5)]
    )
    network = SpaceTimeNetwork(moving, input_grid(5))
    with pytest.raises(spacetime.ConfigError, match="same grid"):
        Problem(
            network,
            RNG.normal(size=(9, 5)),
            RNG.integers(0, 2, 9),
            loss="logistic",
            train_output=False,
            running_cost={"kind": "tracking", "beta": 1.0},
        )


def test_tracking_targets_need_a_fixed_output_map():
    model = NeuralODE(2, 3, grids.time_grid(1.0, 3))
    with pytest.raises(spacetime.ConfigError, match="fixed output map"):
        Problem(
            model,
            X,
            Y,
            loss="logistic",
            train_output=True,
            running_cost={"kind": "tracking", "beta": 1.0},
        )


@pytest.mark.parametrize("exponent", [2.0, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("smoothing", [0.0, 1e-3])
def test_tracking_rows_agree_with_the_tracking_term(exponent, smoothing):
    # p = 2 and p = 1 take their own loops (no pow); each must equal the general
    # phi, including residuals that are exactly zero (the kink of |r| when eps = 0)
    from spacetime import _kernels as K

    rng = np.random.default_rng(4)
    y = rng.normal(size=40)
    xbar = rng.normal(size=50)
    r0 = 7
    y[[0, 5, 11]] = xbar[[r0, r0 + 5, r0 + 11]]
    yb = rng.normal(size=40)
    got_yb = yb.copy()
    got = K._tracking_row(exponent, smoothing, y, xbar, r0, 0.3, got_yb, 37)
    want, want_yb = 0.0, yb.copy()
    for i in range(37):
        val, d = K.tracking_term(exponent, smoothing, y[i] - xbar[r0 + i])
        want += val
        want_yb[i] += 0.3 * d
    assert got == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(got_yb, want_yb, rtol=1e-13, atol=1e-16)
    # past nb nothing is touched
    assert np.array_equal(got_yb[37:], yb[37:])
