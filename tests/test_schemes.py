"""Exact discrete gradients of every Runge–Kutta scheme, on any time grid."""

import numpy as np
import pytest

import grids
import spacetime
from spacetime import FIELDS, SCHEMES, NeuralODE, Problem, StageModel

N_IN, WIDTH, HIDDEN, N_CLASSES = 2, 4, 3, 5  # d0 != d != h != m
N_SAMPLES = 37  # more than one block of 32
UNIFORM = grids.time_grid(1.1, 5)
NON_UNIFORM = grids.time_grid(nodes=[0.0, 0.07, 0.3, 0.38, 0.8, 1.1])


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N_SAMPLES, N_IN)), rng.integers(0, N_CLASSES, N_SAMPLES)


def _problem(model, train_output=True):
    x, y = _data()
    return Problem(
        model, x, y, loss="cross_entropy", lam=3e-2, n_classes=N_CLASSES,
        train_output=train_output,
    )


def _point(problem, seed=1):
    rng = np.random.default_rng(seed)
    z = problem.initial_point(seed, 0.8)
    return z + 0.2 * rng.normal(size=z.shape)


@pytest.mark.parametrize("grid", [UNIFORM, NON_UNIFORM], ids=["uniform", "graded"])
@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_gradient_of_every_scheme_matches_finite_differences(scheme, field, grid):
    model = NeuralODE(
        N_IN, WIDTH, grid, field=field, scheme=scheme, hidden=HIDDEN
    )
    problem = _problem(model)
    check = spacetime.check_gradient(problem, _point(problem), n_directions=3, seed=4)
    assert check.worst <= 1e-6, str(check)


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_gradient_with_per_stage_controls_matches_finite_differences(scheme, field):
    model = StageModel(
        N_IN, WIDTH, NON_UNIFORM, field=field, scheme=scheme, hidden=HIDDEN
    )
    assert model.n_params == SCHEMES[scheme].n_stages * NeuralODE(
        N_IN, WIDTH, NON_UNIFORM, field=field, hidden=HIDDEN
    ).n_params
    problem = _problem(model, train_output=False)
    check = spacetime.check_gradient(problem, _point(problem), n_directions=3, seed=5)
    assert check.worst <= 1e-6, str(check)


@pytest.mark.parametrize("scheme", ["heun", "rk4"])
def test_equal_stage_controls_reproduce_the_piecewise_constant_network(scheme):
    layer = NeuralODE(N_IN, WIDTH, NON_UNIFORM, field="bottleneck", scheme=scheme,
                      hidden=HIDDEN)
    staged = StageModel(N_IN, WIDTH, NON_UNIFORM, field="bottleneck", scheme=scheme,
                        hidden=HIDDEN)
    theta = layer.init_params(2, 1.0)
    n_stages = SCHEMES[scheme].n_stages
    theta_staged = np.repeat(theta.reshape(layer.n_steps, 1, -1), n_stages, axis=1)
    x, _ = _data()
    states = layer.flow(theta, x)
    again = spacetime._core.flow(staged.core, theta_staged.ravel(), staged.embed(x))
    assert np.array_equal(states, again)
    # the stage quadrature of the control norm reduces to sum_k dt_k |u_k|^2
    assert np.isclose(
        staged.control_norm2(theta_staged.ravel()), layer.control_norm2(theta)
    )


def test_stage_model_samples_controls_at_the_stage_times():
    model = StageModel(N_IN, WIDTH, NON_UNIFORM, scheme="rk4")
    times = model.stage_times()
    nodes, steps = NON_UNIFORM.nodes, NON_UNIFORM.steps
    assert np.allclose(times[:, 0], nodes[:-1])
    assert np.allclose(times[:, 1], nodes[:-1] + 0.5 * steps)
    assert np.allclose(times[:, 3], nodes[1:])


def test_time_nodes_in_a_config_set_the_layers():
    nodes = [0.0, 0.2, 0.25, 0.7, 1.5]
    config = spacetime.validate(
        {
            "data": {"name": "xor", "n_samples": 30},
            "model": {"time_nodes": nodes, "scheme": "midpoint"},
        }
    )
    assert config["model"]["T"] == 1.5 and config["model"]["n_steps"] == 4
    _, model, _ = spacetime.build(config)
    assert np.array_equal(model.time.nodes, nodes)
    assert np.allclose(model.core.dt, np.diff(nodes))


@pytest.mark.parametrize(
    "nodes, words",
    [([0.1, 0.5, 1.0], "start at 0"), ([0.0, 0.5, 0.5], "strictly increasing"),
     ([0.0, "a"], "list of numbers")],
)
def test_bad_time_nodes_are_refused_with_the_reason(nodes, words):
    with pytest.raises(spacetime.ConfigError, match=words):
        spacetime.validate({"model": {"time_nodes": nodes}})
