"""The finite-width core: exact gradients, the flow, determinism and rescaling."""

import os
import textwrap

import numba
import numpy as np
import pytest
import reference

import grids
import spacetime
from spacetime import ACTIVATIONS, FIELDS, LOSSES, SCHEMES, NeuralODE, Problem

N_SAMPLES, N_IN, WIDTH, HIDDEN = 11, 3, 4, 5


def make_problem(
    field,
    activation,
    loss,
    *,
    train_output=True,
    scheme="euler",
    n_steps=3,
    T=1.3,
    seed=0,
    lam=1e-2,
):
    """A small problem whose sizes expose transposition errors: d0 != d != h != m."""
    rng = np.random.default_rng(seed)
    model = NeuralODE(
        N_IN,
        WIDTH,
        grids.time_grid(T, n_steps),
        field=field,
        activation=activation,
        scheme=scheme,
        hidden=HIDDEN,
        leaky_slope=0.2,
    )
    x = rng.normal(size=(N_SAMPLES, N_IN))
    if loss in ("squared", "lp"):
        y = rng.normal(size=(N_SAMPLES, 2))
        task = "regression"
    elif loss == "logistic":
        y = rng.integers(0, 2, N_SAMPLES)
        task = "classification"
    else:
        y = rng.integers(0, 3, N_SAMPLES)
        task = "classification"
    problem = Problem(
        model,
        x,
        y,
        loss=loss,
        lam=lam,
        task=task,
        train_output=train_output,
        output_reg=0.3,
        loss_p=3.0,
        n_classes=None if task == "regression" else int(y.max()) + 1,
    )
    z = problem.initial_point(seed, 0.8) + 0.3 * rng.normal(size=problem.n_variables)
    return problem, z


@pytest.mark.parametrize("train_output", [True, False], ids=["P-trained", "P-fixed"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_gradient_matches_finite_differences(field, activation, loss, train_output):
    problem, z = make_problem(field, activation, loss, train_output=train_output)
    check = spacetime.check_gradient(problem, z, n_directions=4, seed=1)
    assert check.worst <= 1e-6, str(check)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_gradient_is_exact_for_every_scheme(field, scheme):
    problem, z = make_problem(field, "tanh", "cross_entropy", scheme=scheme)
    check = spacetime.check_gradient(problem, z, n_directions=4, seed=2)
    assert check.worst <= 1e-6, str(check)


def test_gradient_check_detects_a_wrong_gradient():
    problem, z = make_problem("inside", "tanh", "cross_entropy")

    def wrong(zz):
        value, grad = problem(zz)
        grad = grad.copy()
        grad[0] *= 1.01
        return value, grad

    rng = np.random.default_rng(0)
    errs = []
    for seed in range(3):
        check = spacetime.check_gradient(wrong, z, n_directions=4, seed=seed)
        errs.append(check.worst)
    assert max(errs) > 1e-6
    del rng


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_flow_equals_plain_numpy_reference(field, scheme):
    problem, z = make_problem(field, "tanh", "cross_entropy", scheme=scheme, n_steps=5)
    model = problem.model
    theta = problem.split(z)[0]
    x = np.random.default_rng(3).normal(size=(40, N_IN))
    states = model.flow(theta, x)
    tab = SCHEMES[scheme]
    expected = reference.flow(
        field,
        "tanh",
        model.unpack(theta),
        model.embed(x),
        model.time.nodes,
        tab.a,
        tab.b,
    )
    np.testing.assert_allclose(states, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_risk_equals_plain_numpy_reference(loss):
    problem, z = make_problem("bottleneck", "softplus", loss)
    theta, p, p0 = problem.split(z)
    states = reference.flow(
        "bottleneck",
        "softplus",
        problem.model.unpack(theta),
        problem.x0,
        problem.model.time.nodes,
        SCHEMES["euler"].a,
        SCHEMES["euler"].b,
    )
    yhat = states[-1] @ p.T + p0
    y = problem.targets
    if loss == "cross_entropy":
        y = y[:, 0].astype(int)
    elif loss == "logistic":
        y = y[:, 0]
    expected = reference.risk(loss, yhat, y, p=3.0)
    assert problem.evaluate(z)["risk"] == pytest.approx(expected, rel=1e-13)


def test_objective_adds_the_discrete_control_norm():
    problem, z = make_problem("inside", "tanh", "logistic", lam=0.37)
    theta, p, _ = problem.split(z)
    dt = problem.model.time.steps
    per_layer = (theta.reshape(len(dt), -1) ** 2).sum(axis=1)
    norm2 = float(np.sum(dt * per_layer))
    ev = problem.evaluate(z)
    expected = ev["risk"] + 0.37 * norm2 + 0.3 * float(np.sum(p * p))
    assert ev["objective"] == pytest.approx(expected, rel=1e-14)


def test_one_and_two_threads_give_identical_gradients():
    problem, z = make_problem("bottleneck", "tanh", "cross_entropy", n_steps=4)
    big_x = np.random.default_rng(5).normal(size=(300, N_IN))
    big_y = np.random.default_rng(6).integers(0, 3, 300)
    problem = Problem(problem.model, big_x, big_y, loss="cross_entropy", lam=1e-2)
    z = problem.initial_point(0, 0.8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        f1, g1 = problem(z)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        f2, g2 = problem(z)
    finally:
        numba.set_num_threads(before)
    assert f1 == f2
    assert np.array_equal(g1, g2)


_NOJIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_core import make_problem
    out = {{}}
    for field in ("inside", "outside", "bottleneck"):
        problem, z = make_problem(field, "tanh", "cross_entropy", scheme="heun",
                                  n_steps=2)
        f, g = problem(z)
        out[field] = [f, g.tolist()]
    print(json.dumps(out))
    """
)


def test_kernels_agree_with_numba_disabled():
    tests = os.path.dirname(__file__)
    interpreted = reference.run_without_jit(_NOJIT_SCRIPT.format(tests=tests))
    for field, (f, g) in interpreted.items():
        problem, z = make_problem(
            field, "tanh", "cross_entropy", scheme="heun", n_steps=2
        )
        fc, gc = problem(z)
        assert fc == pytest.approx(f, rel=1e-13)
        np.testing.assert_allclose(gc, g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("field", "activation"),
    [
        ("inside", "tanh"),
        ("inside", "sigmoid"),
        ("outside", "relu"),
        ("outside", "leaky_relu"),
    ],
)
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_rescaled_problem_has_same_objective_and_gradient(field, activation, scheme):
    T, lam = 7.0, 0.05
    rng = np.random.default_rng(8)
    x = rng.normal(size=(25, 2))
    y = rng.integers(0, 2, 25)

    def problem_on(horizon, weight):
        model = NeuralODE(
            2,
            3,
            grids.time_grid(horizon, 6),
            field=field,
            activation=activation,
            scheme=scheme,
        )
        return Problem(
            model, x, y, loss="logistic", lam=weight, train_output=False, output_seed=4
        )

    long, unit = problem_on(T, lam), problem_on(1.0, lam / T)
    assert long.model.homogeneous
    u = long.initial_point(1, 0.7)
    f_long, g_long = long(u)
    f_unit, g_unit = unit(T * u)
    assert f_unit == pytest.approx(f_long, rel=1e-12)
    # v = T u, so the gradient in v is the gradient in u divided by T
    np.testing.assert_allclose(
        g_unit, g_long / T, rtol=1e-12, atol=1e-12 * np.abs(g_long).max()
    )


def test_bottleneck_is_not_homogeneous():
    model = NeuralODE(2, 2, grids.time_grid(1.0, 2), field="bottleneck")
    assert not model.homogeneous
    assert not NeuralODE(
        2, 2, grids.time_grid(1.0, 2), field="outside", activation="tanh"
    ).homogeneous


def test_training_separates_augmented_spheres():
    x, y = spacetime.spheres(200, seed=0)
    model = NeuralODE(2, 3, grids.time_grid(4.0, 16), field="inside")
    classes = (y > 0).astype(int)
    problem = Problem(model, x, classes, loss="logistic", lam=1e-3)
    result = spacetime.solve(problem, max_iter=400)
    assert result.evaluate()["accuracy"] >= 0.99


def test_same_seed_gives_the_same_result_bit_for_bit():
    def once():
        problem, _ = make_problem("outside", "softplus", "logistic")
        return spacetime.solve(problem, max_iter=15, seed=3).z

    assert np.array_equal(once(), once())


def test_diverging_flow_stops_with_a_clear_error():
    rng = np.random.default_rng(0)
    model = NeuralODE(
        2, 2, grids.time_grid(1e4, 100), field="outside", activation="identity"
    )
    problem = Problem(
        model,
        rng.normal(size=(10, 2)) * 1e3,
        rng.integers(0, 2, 10),
        loss="cross_entropy",
        lam=0.0,
    )
    z = problem.initial_point(0, 200.0)
    with pytest.raises(spacetime.TrainingDiverged, match="lower"):
        spacetime.solve(problem, z, max_iter=5)


def test_unpack_and_pack_are_inverse():
    problem, z = make_problem("bottleneck", "tanh", "squared")
    model = problem.model
    theta = problem.split(z)[0]
    controls = model.unpack(theta)
    assert controls["w"].shape == (3, WIDTH, HIDDEN)
    assert controls["a"].shape == (3, HIDDEN, WIDTH)
    assert controls["b"].shape == (3, HIDDEN)
    assert np.array_equal(model.pack(controls), theta)
