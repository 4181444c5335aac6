"""Space-time networks: consistency with finite width, exact gradients, convergence."""

import numpy as np
import pytest

import grids
import spacetime
from spacetime import FIELDS, NeuralODE, Problem, solve
from spacetime._spacetime import SpaceTimeNetwork, input_grid

RNG = np.random.default_rng(11)


def test_fixed_grid_flow_equals_finite_width_flow_with_weighted_matrix():
    tg = grids.time_grid(1.2, 5)
    g = grids.grid("gauss_legendre", 7, (-1.0, 2.0))
    network = SpaceTimeNetwork(
        grids.moving_grid(tg, "gauss_legendre", 7, domain=(-1.0, 2.0)), g
    )
    theta = network.init_params(0, 2.0)
    x = RNG.normal(size=(9, 7))
    controls = network.unpack(theta)

    # W_jl = w(xi_j, xi_l) omega_l
    w = np.stack([c["w"] * g.weights[None, :] for c in controls])
    b = np.stack([c["b"] for c in controls])
    finite = NeuralODE(7, 7, tg, field="inside")
    theta_finite = finite.pack({"w": w, "b": b})
    np.testing.assert_allclose(
        network.flow(theta, x), finite.flow(theta_finite, x), rtol=0, atol=1e-14
    )

    # the norms differ by the quadrature weights: sum omega_j omega_l w^2 = sum
    # (omega_j / omega_l) W^2, and sum omega_j b^2 for the biases
    om = g.weights
    expected = sum(
        dt * (np.sum(om[:, None] / om[None, :] * wk**2) + np.sum(om * bk**2))
        for dt, wk, bk in zip(tg.steps, w, b, strict=True)
    )
    assert network.control_norm2(theta) == pytest.approx(expected, rel=1e-13)
    assert finite.control_norm2(theta_finite) != pytest.approx(expected, rel=1e-3)


def _coarsening(rule="trapezoid", mapping=None):
    tg = grids.time_grid(1.0, 6)
    return grids.moving_grid(
        tg, rule, [(0.0, 9), (0.34, 7), (0.67, 5)], mapping=mapping
    )


def _moving_map(t, xi):
    return xi + 0.15 * t * xi * (1.0 - xi)


@pytest.mark.parametrize("l2_coordinates", [False, True], ids=["values", "L2"])
@pytest.mark.parametrize("transfer", ["linear", "lagrange", "l2"])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_gradient_is_exact_on_a_coarsening_grid(field, transfer, l2_coordinates):
    network = SpaceTimeNetwork(
        _coarsening(),
        input_grid(6),
        field=field,
        transfer=transfer,
        scheme="heun",
        l2_coordinates=l2_coordinates,
    )
    assert network.widths == (9, 9, 9, 7, 7, 5, 5)
    problem = Problem(
        network,
        RNG.normal(size=(13, 6)),
        RNG.integers(0, 3, 13),
        loss="cross_entropy",
        lam=1e-2,
        output_reg=0.1,
    )
    z = problem.initial_point(1, 1.0) + 0.05 * RNG.normal(size=problem.n_variables)
    check = spacetime.check_gradient(problem, z, n_directions=4)
    assert check.worst <= 1e-6, str(check)


@pytest.mark.parametrize("transfer", ["linear", "lagrange", "l2"])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_gradient_is_exact_on_a_moving_grid(field, transfer):
    tg = grids.time_grid(1.0, 5)
    moving = grids.moving_grid(tg, "midpoint", 8, mapping=_moving_map)
    assert all(moving.changes(k) for k in range(1, 5))
    network = SpaceTimeNetwork(moving, input_grid(5), field=field, transfer=transfer)
    problem = Problem(
        network,
        RNG.normal(size=(10, 5)),
        RNG.integers(0, 2, 10),
        loss="logistic",
        lam=1e-2,
    )
    z = problem.initial_point(2, 1.0) + 0.05 * RNG.normal(size=problem.n_variables)
    check = spacetime.check_gradient(problem, z, n_directions=4)
    assert check.worst <= 1e-6, str(check)


def test_image_inputs_live_on_pixel_centres():
    grid = input_grid(64, (8, 8))
    assert grid.shape == (8, 8)
    # pixel (r, c) of a row-major image sits at ((r + 1/2) / 8, (c + 1/2) / 8)
    np.testing.assert_allclose(grid.nodes[8 * 2 + 5], [2.5 / 8, 5.5 / 8])
    np.testing.assert_allclose(grid.weights, 1 / 64)


# -- convergence under refinement ---------------------------------------------

T_CONV, L_CONV = 1.0, 20


def _output_functional(rule, widths, transfer="linear", order=3):
    """∫ p(ξ) x(T, ξ) dξ for a smooth kernel, bias, datum and weight p."""
    tg = grids.time_grid(T_CONV, L_CONV)
    moving = grids.moving_grid(tg, rule, widths)
    first = moving[0]
    network = SpaceTimeNetwork(moving, first, transfer=transfer, transfer_order=order)
    theta = network.controls_from_functions(
        lambda t, xi, zeta: np.cos(xi[..., 0] - 2.0 * zeta[..., 0] + t),
        lambda t, xi: np.sin(np.pi * xi[:, 0]),
    )
    s = first.nodes[:, 0]
    x0 = (np.exp(-(s**2)) + 0.5 * np.sin(3.0 * s))[None, :]
    last = moving[L_CONV]
    final = network.states(theta, x0)[-1][0]
    return float(np.sum(last.weights * np.cos(2.0 * last.nodes[:, 0]) * final))


def _observed_order(sizes, errors, spacing):
    h = np.array([spacing(n) for n in sizes])
    return float(np.polyfit(np.log(h), np.log(errors), 1)[0])


@pytest.fixture(scope="module")
def reference_value():
    return _output_functional("gauss_legendre", 160)


@pytest.mark.parametrize(
    ("rule", "spacing", "expected"),
    [("trapezoid", lambda n: 1 / (n - 1), 2.0), ("midpoint", lambda n: 1 / n, 2.0)],
)
def test_fixed_grid_converges_at_the_order_of_its_quadrature(
    rule, spacing, expected, reference_value
):
    sizes = [9, 17, 33, 65]
    errors = [abs(_output_functional(rule, n) - reference_value) for n in sizes]
    order = _observed_order(sizes, errors, spacing)
    assert abs(order - expected) <= 0.3, f"{rule}: observed order {order:.2f}"


def test_gauss_legendre_grid_converges_geometrically(reference_value):
    sizes = np.array([4, 6, 8, 10, 12])
    errors = [
        abs(_output_functional("gauss_legendre", n) - reference_value) for n in sizes
    ]
    # log(error) falls linearly in n: a geometric rate, here about e^{-2.5} per node
    rate = -np.polyfit(sizes, np.log(errors), 1)[0]
    assert rate > 1.5, f"fitted rate {rate:.2f} per node, errors {errors}"
    assert errors[-1] < 1e-11


@pytest.mark.parametrize(
    ("rule", "transfer", "order", "expected"),
    [
        # quadrature of order 2 limits every transfer
        ("trapezoid", "linear", 1, 2.0),
        ("trapezoid", "lagrange", 3, 2.0),
        ("trapezoid", "l2", 1, 2.0),
        # spectral quadrature: the transfer's interpolation order is what is seen
        ("gauss_legendre", "linear", 1, 2.0),
        ("gauss_legendre", "lagrange", 3, 4.0),
    ],
)
def test_moving_grid_converges_at_the_smaller_order(
    rule, transfer, order, expected, reference_value
):
    sizes = [16, 32, 64, 128]
    errors = [
        abs(
            _output_functional(rule, [(0.0, n), (0.5, n // 2 + 1)], transfer, order)
            - reference_value
        )
        for n in sizes
    ]
    # fit the three finest grids: the asymptotic regime
    observed = _observed_order(sizes[1:], errors[1:], lambda n: 1 / n)
    assert abs(observed - expected) <= 0.3, (
        f"{rule} + {transfer}: observed order {observed:.2f}, errors {errors}"
    )


# -- rescaling and mesh independence ---------------------------------------------


@pytest.mark.parametrize("transfer", ["linear", "l2"])
def test_rescaled_spacetime_problem_has_same_objective_and_gradient(transfer):
    T, lam = 5.0, 0.02
    x = RNG.normal(size=(12, 6))
    y = RNG.integers(0, 2, 12)

    def problem_on(horizon, weight):
        tg = grids.time_grid(horizon, 6)
        moving = grids.moving_grid(tg, "trapezoid", [(0.0, 9), (horizon / 2, 5)])
        network = SpaceTimeNetwork(moving, input_grid(6), transfer=transfer)
        return Problem(
            network,
            x,
            y,
            loss="logistic",
            lam=weight,
            train_output=False,
            output_seed=1,
        )

    long, unit = problem_on(T, lam), problem_on(1.0, lam / T)
    assert long.model.homogeneous
    assert long.model.widths == unit.model.widths
    u = long.initial_point(3, 1.0)
    f_long, g_long = long(u)
    f_unit, g_unit = unit(T * u)
    assert f_unit == pytest.approx(f_long, rel=1e-12)
    np.testing.assert_allclose(
        g_unit, g_long / T, rtol=1e-12, atol=1e-12 * np.abs(g_long).max()
    )


def _iterations_to_reduce_gradient(n, l2_coordinates, factor=3e-4):
    """L-BFGS-B iterations until the discrete L2 norm of the gradient has fallen
    by ``factor``, on a 1-D regression problem discretised with n nodes."""
    rng = np.random.default_rng(0)
    inputs = input_grid(16)
    s = inputs.nodes[:, 0]
    c = rng.normal(size=(24, 3))
    x = c[:, [0]] * np.sin(np.pi * s) + c[:, [1]] * np.cos(np.pi * s) + c[:, [2]] * s
    y = np.tanh(c[:, 0:1] - 0.5 * c[:, 1:2])
    tg = grids.time_grid(1.0, 8)
    moving = grids.moving_grid(tg, "trapezoid", n)
    network = SpaceTimeNetwork(moving, inputs, l2_coordinates=l2_coordinates)
    p = np.cos(np.pi * moving[8].nodes[:, 0])[None, :]
    problem = Problem(
        network,
        x,
        y,
        loss="squared",
        task="regression",
        lam=1e-2,
        train_output=False,
        p=p,
        p0=np.zeros(1),
    )
    norm_weight = network._norm_physical

    def l2_norm_of_gradient(z):
        grad_values = problem(z)[1] / network._coordinate
        return np.sqrt(np.sum(grad_values**2 / norm_weight))

    z0 = network.coordinates(np.zeros(network.n_params))
    target = factor * l2_norm_of_gradient(z0)

    def stop(iteration, z, objective):
        if l2_norm_of_gradient(z) <= target:
            raise StopIteration

    result = solve(problem, z0, max_iter=1500, gtol=0.0, ftol=0.0, callback=stop)
    assert result.status == "interrupted", "the gradient never fell far enough"
    return result.n_iter


def test_iterations_do_not_grow_with_the_grid_in_l2_coordinates():
    scaled = [_iterations_to_reduce_gradient(n, True) for n in (16, 32, 64)]
    unscaled = [_iterations_to_reduce_gradient(n, False) for n in (16, 32)]
    print(f"L2-scaled iterations {scaled}; unscaled {unscaled}")
    assert scaled[0] >= 30
    assert max(scaled) <= 1.5 * scaled[0], f"scaled {scaled}, unscaled {unscaled}"


# -- configs and run files ------------------------------------------------------


def test_default_experiment_coarsens_the_digits_grid_with_depth():
    config, _ = spacetime._config.default_experiment()
    dataset, model, _ = spacetime.build(
        {**config, "data": {**config["data"], "max_samples": 50}}
    )
    assert isinstance(model, SpaceTimeNetwork)
    shapes = model.moving.shapes
    assert shapes[0] == (8, 8) and shapes[-1] == (4, 4)
    assert [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]] == [
        (8, 8),
        (6, 6),
        (4, 4),
    ]
    # each width is used by several layers
    assert all(shapes.count(s) >= 3 for s in set(shapes))
    assert dataset.image_shape == (8, 8)


def test_spacetime_run_file_round_trip(tmp_path):
    config = {
        "data": {"name": "digits", "max_samples": 120, "test_fraction": 0.25},
        "model": {"kind": "spacetime", "T": 1.0, "n_steps": 4},
        "spacetime": {"widths": [[0.0, 8, 8], [0.5, 5, 5]], "transfer": "l2"},
        "optimizer": {"max_iter": 5},
    }
    run = spacetime.train(config, out=tmp_path / "st.h5")
    loaded = spacetime.load_run(tmp_path / "st.h5")
    assert loaded.model.widths == (64, 64, 25, 25, 25)
    assert np.array_equal(loaded.theta, run.result.theta)
    x_test = run.dataset.x_test
    np.testing.assert_allclose(
        loaded.predict(x_test, standardized=True),
        run.result.predict(x_test),
        rtol=0,
        atol=1e-13,
    )
    assert [t.shape for t in loaded.trajectories] == [
        (90, 64),
        (90, 64),
        (90, 25),
        (90, 25),
        (90, 25),
    ]
    assert loaded.controls[3]["w"].shape == (25, 25)
