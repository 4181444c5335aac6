"""Checkpointed reverse pass: the same gradient, bit for bit, in less memory."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

import grids
import spacetime
from spacetime import FIELDS, SCHEMES, NeuralODE, Problem
from spacetime._core import (
    DEFAULT_MEMORY_BUDGET_MIB,
    build_core,
    checkpoint_segment,
    reverse_memory,
    risk_and_grad,
)
from spacetime._registry import ACTIVATIONS, LOSSES

N_STEPS = 23  # not a square, so the last segment is shorter than the others


def _problem(scheme, field, train_output, budget, n_samples=70):
    rng = np.random.default_rng(3)
    model = NeuralODE(
        2,
        4,
        grids.time_grid(1.5, N_STEPS),
        field=field,
        scheme=scheme,
        hidden=3,
    )
    x = rng.normal(size=(n_samples, 2))
    y = rng.integers(0, 3, n_samples)
    return Problem(
        model, x, y, loss="cross_entropy", lam=1e-2, train_output=train_output,
        memory_budget_mib=budget,
    )


@pytest.mark.parametrize("train_output", [False, True], ids=["P-fixed", "P-trained"])
@pytest.mark.parametrize("field", ["inside", "bottleneck"])
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_checkpointed_gradient_equals_stored_gradient(scheme, field, train_output):
    full = _problem(scheme, field, train_output, math.inf)
    ckpt = _problem(scheme, field, train_output, 0.0)
    core, n = full.model.core, full.x0.shape[0]
    assert checkpoint_segment(core, n, math.inf) == N_STEPS
    assert checkpoint_segment(core, n, 0.0) == 5  # ceil(sqrt(23))
    z = full.initial_point(1, 0.9)
    f_full, g_full = full(z)
    f_ckpt, g_ckpt = ckpt(z)
    assert f_full == f_ckpt
    assert np.array_equal(g_full, g_ckpt)
    # and the gradient is the derivative of the objective
    assert spacetime.check_gradient(ckpt, z, n_directions=2).worst <= 1e-6


def _transfer_core(scheme):
    """A core whose width changes from level to level through CSR transfers."""
    rng = np.random.default_rng(5)
    widths = [3, 3, 4, 4, 5, 5, 4, 4, 3, 3, 4, 4, 3]
    n_steps = len(widths) - 1
    transfers = []
    for k in range(n_steps):
        if widths[k + 1] == widths[k] and k % 3:
            transfers.append(None)
            continue
        dense = rng.normal(size=(widths[k + 1], widths[k]))
        dense[rng.random(dense.shape) < 0.4] = 0.0
        transfers.append(sp.csr_matrix(dense))
    dt = rng.uniform(0.05, 0.2, n_steps)
    return build_core(
        FIELDS["outside"],
        ACTIVATIONS["tanh"],
        0.0,
        SCHEMES[scheme],
        widths,
        widths[:-1],
        dt,
        transfers=transfers,
    )


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_checkpointed_gradient_equals_stored_gradient_with_transfers(scheme):
    core = _transfer_core(scheme)
    rng = np.random.default_rng(6)
    n_samples = 45
    theta = rng.normal(0.0, 0.5, core.n_params)
    x0 = np.ascontiguousarray(rng.normal(size=(n_samples, 3)))
    p = rng.normal(size=(2, 3))
    p0 = rng.normal(size=2)
    targets = np.ascontiguousarray(rng.normal(size=(n_samples, 2)))
    code = LOSSES["squared"].code
    stored = risk_and_grad(core, theta, p, p0, x0, targets, code, 2.0, segment=12)
    for segment in (1, 2, 3, 5, 11):
        again = risk_and_grad(core, theta, p, p0, x0, targets, code, 2.0,
                              segment=segment)
        assert all(np.array_equal(a, b) for a, b in zip(stored, again, strict=True))


def test_budget_selects_square_root_segments_only_when_states_do_not_fit():
    problem = _problem("rk4", "inside", False, None, n_samples=64)
    core, n = problem.model.core, 64
    full = reverse_memory(core, n, N_STEPS)
    assert checkpoint_segment(core, n, full / 2**20) == N_STEPS
    assert checkpoint_segment(core, n, 0.999 * full / 2**20) == 5
    assert reverse_memory(core, n, 5) < full
    assert checkpoint_segment(core, n) == checkpoint_segment(
        core, n, DEFAULT_MEMORY_BUDGET_MIB
    )


def test_memory_budget_is_a_config_key_passed_to_the_problem():
    config = spacetime.validate(
        {
            "data": {"name": "xor", "n_samples": 40},
            "numerics": {"memory_budget_mib": 0.5},
        }
    )
    _, _, problem = spacetime.build(config)
    assert problem.memory_budget_mib == 0.5
    assert spacetime.default_config()["numerics"]["memory_budget_mib"] == (
        DEFAULT_MEMORY_BUDGET_MIB
    )
    with pytest.raises(spacetime.ConfigError, match="memory_budget_mib"):
        spacetime.validate({"numerics": {"memory_budget_mib": -1.0}})


@pytest.mark.parametrize("kind", ["risk", "tracking"])
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_checkpointed_gradient_equals_stored_gradient_with_a_running_cost(
    scheme, kind
):
    from spacetime._core import RunningCost

    problem = _problem(scheme, "bottleneck", False, None)
    model, rng = problem.model, np.random.default_rng(8)
    n = problem.x0.shape[0]
    running = RunningCost(
        kind, 0.7, targets=rng.normal(size=(n, 4)) if kind == "tracking" else None,
        exponent=1.5, smoothing=1e-2,
    )
    theta = model.init_params(0, 0.9)
    args = (model.core, theta, problem.p, problem.p0, problem.x0, problem.targets,
            problem._loss_code, 2.0)
    stored = risk_and_grad(*args, segment=N_STEPS, running=running)
    ckpt = risk_and_grad(*args, segment=5, running=running)
    assert stored[-1] > 0.0  # the running cost is there
    assert all(np.array_equal(a, b) for a, b in zip(stored, ckpt, strict=True))
