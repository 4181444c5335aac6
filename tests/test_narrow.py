"""The fused kernels of narrow Euler networks (``spacetime._narrow``).

They must agree with the general kernels, which the other test files check against
finite differences and plain NumPy, to rounding (they fuse products and sums into
FMA instructions and sum the gradient in another order): for every field, several
sizes, activations with and without a stored derivative, blocks with padded
columns, checkpointing and a running cost.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import reference

import grids
import spacetime
from spacetime import NeuralODE, Problem, _core, _narrow, _narrow_gen

# (field, width, hidden width, activation). Each size compiles its own kernel
# (several seconds), so these reuse sizes that other test files compile too.
CASES = [
    ("bottleneck", 2, 2, "tanh"),
    ("bottleneck", 3, 2, "softplus"),
    ("bottleneck", 2, 3, "relu"),
    ("inside", 4, 4, "sigmoid"),
    ("inside", 2, 2, "tanh"),
    ("outside", 4, 4, "leaky_relu"),
    ("outside", 2, 2, "tanh"),
]


def _problem(
    field, n, h, activation, *, n_samples=37, running=None, n_steps=6, loss=None
):
    rng = np.random.default_rng(n * 10 + h)
    # steps of different lengths, so that a layer using another layer's step fails
    inner = np.sort(rng.uniform(0.1, 1.6, n_steps - 1))
    nodes = np.concatenate([[0.0], inner, [1.7]])
    model = NeuralODE(
        n,
        n,
        grids.time_grid(nodes=nodes),
        field=field,
        activation=activation,
        hidden=h,
        leaky_slope=0.2,
    )
    x = rng.normal(size=(n_samples, n))
    if loss == "squared":
        y, task, classes = rng.normal(size=(n_samples, 2)), "regression", None
    else:
        y, task, classes = rng.integers(0, 3, n_samples), "classification", 3
    problem = Problem(
        model,
        x,
        y,
        loss=loss or "cross_entropy",
        task=task,
        lam=1e-2,
        n_classes=classes,
        train_output=running is None or running["kind"] == "risk",
        output_seed=2,
        running_cost=running,
    )
    z = problem.initial_point(1, 0.9) + 0.2 * rng.normal(size=problem.n_variables)
    return problem, z


def _evaluate(problem, z):
    value, grad, info = problem._evaluate(z)
    return {"objective": value, "gradient": grad} | info


def _general(monkeypatch, problem, z):
    """The problem's evaluation through the general kernels."""
    with monkeypatch.context() as m:
        m.setattr(_core, "NARROW_MAX_WIDTH", 0)
        assert problem.model.core.narrow_kernels is None
        return _evaluate(problem, z)


def test_generated_module_is_up_to_date():
    assert Path(_narrow.__file__).read_text() == _narrow_gen.source()


def test_every_field_and_size_up_to_the_limit_has_kernels():
    expected = {("bottleneck", n, h) for n in range(1, 5) for h in range(1, 5)}
    expected |= {(f, n, n) for f in ("inside", "outside") for n in range(1, 5)}
    assert set(_narrow.KERNELS) == expected
    assert _core.NARROW_MAX_WIDTH == _narrow_gen.MAX_WIDTH


@pytest.mark.parametrize(("field", "n", "h", "activation"), CASES)
def test_fused_kernels_agree_with_the_general_ones(
    monkeypatch, field, n, h, activation
):
    problem, z = _problem(field, n, h, activation)
    assert problem.model.core.narrow_kernels is _narrow.KERNELS[(field, n, h)]
    fused = _evaluate(problem, z)
    general = _general(monkeypatch, problem, z)
    np.testing.assert_allclose(fused["yhat"], general["yhat"], rtol=1e-13, atol=0)
    assert fused["risk"] == pytest.approx(general["risk"], rel=1e-14)
    np.testing.assert_allclose(
        fused["gradient"], general["gradient"], rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize(("field", "n", "h", "activation"), CASES[:4])
def test_fused_gradient_matches_finite_differences(field, n, h, activation):
    problem, z = _problem(field, n, h, activation)
    check = spacetime.check_gradient(problem, z, n_directions=4, seed=3)
    assert check.worst <= 1e-6, str(check)


@pytest.mark.parametrize("n_samples", [1, 7, 8, 9, 130, 257])
def test_padded_columns_add_nothing(monkeypatch, n_samples):
    # blocks with fewer samples than columns repeat their last sample
    problem, z = _problem("bottleneck", 2, 3, "tanh", n_samples=n_samples)
    fused = _evaluate(problem, z)
    general = _general(monkeypatch, problem, z)
    assert fused["risk"] == pytest.approx(general["risk"], rel=1e-14)
    np.testing.assert_allclose(
        fused["gradient"], general["gradient"], rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("kind", ["tracking", "risk"])
def test_running_cost_agrees_with_the_general_kernels(monkeypatch, kind):
    running = {"kind": kind, "beta": 0.8, "exponent": 1.5, "smoothing": 1e-2}
    problem, z = _problem("inside", 3, 3, "tanh", running=running, loss="squared")
    fused = _evaluate(problem, z)
    general = _general(monkeypatch, problem, z)
    assert fused["running"] > 0.0
    assert fused["running"] == pytest.approx(general["running"], rel=1e-14)
    assert fused["objective"] == pytest.approx(general["objective"], rel=1e-14)
    np.testing.assert_allclose(
        fused["gradient"], general["gradient"], rtol=1e-12, atol=1e-15
    )


def test_checkpointed_fused_gradient_is_the_stored_one_bit_for_bit():
    problem, z = _problem("bottleneck", 2, 2, "tanh", n_samples=70, n_steps=23)
    core = problem.model.core
    th, p, p0 = problem.split(z)
    args = (core, th, p, p0, problem.x0, problem.targets, problem._loss_code, 2.0)
    stored = _core.risk_and_grad(*args, segment=23)
    for segment in (1, 5, 22):
        ckpt = _core.risk_and_grad(*args, segment=segment)
        assert ckpt[0] == stored[0]
        assert np.array_equal(ckpt[1], stored[1])
        assert np.array_equal(ckpt[2], stored[2])


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"scheme": "rk4"}, "more than one stage"),
        ({"hidden": 5}, "hidden width above the limit"),
    ],
)
def test_networks_outside_the_fused_kernels_use_the_general_ones(kwargs, why):
    options = {"field": "bottleneck", "hidden": 2} | kwargs
    model = NeuralODE(2, 2, grids.time_grid(1.0, 3), **options)
    assert model.core.narrow_kernels is None, why


def test_width_above_the_limit_uses_the_general_kernels():
    model = NeuralODE(5, 5, grids.time_grid(1.0, 3), field="inside")
    assert model.core.narrow_kernels is None
    assert NeuralODE(4, 4, grids.time_grid(1.0, 3)).core.narrow_kernels is not None


_NOJIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_narrow import CASES, _problem
    out = []
    for field, n, h, act in CASES[:3]:
        problem, z = _problem(field, n, h, act, n_samples=11, n_steps=3)
        assert problem.model.core.narrow_kernels is not None
        f, g = problem(z)
        out.append([f, g.tolist()])
    print(json.dumps(out))
    """
)


def test_fused_kernels_agree_with_numba_disabled():
    tests = os.path.dirname(__file__)
    interpreted = reference.run_without_jit(_NOJIT_SCRIPT.format(tests=tests))
    for (field, n, h, act), (f, g) in zip(CASES[:3], interpreted, strict=True):
        problem, z = _problem(field, n, h, act, n_samples=11, n_steps=3)
        fc, gc = problem(z)
        assert fc == pytest.approx(f, rel=1e-13)
        np.testing.assert_allclose(gc, g, rtol=1e-12, atol=1e-14)


_CACHE_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import grids
    import spacetime as st
    model = st.NeuralODE(2, 2, grids.time_grid(1.0, 2), field="outside")
    x = np.random.default_rng(0).normal(size=(10, 2))
    problem = st.Problem(model, x, np.arange(10) % 2, loss="logistic", lam=1e-3)
    print(problem(problem.initial_point(0, 1.0))[0])
    """
)


def test_fused_kernel_is_loaded_from_numbas_cache_by_the_next_process(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_DEBUG_CACHE="1")
    values, logs = [], []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _CACHE_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
        values.append(float(proc.stdout.strip().splitlines()[-1]))
        # Numba's cache log, e.g. "[cache] data loaded from '...'"
        logs.append(
            " ".join(
                line.split()[1] + "-" + line.split()[2]
                for line in proc.stdout.splitlines()
                if line.startswith("[cache]") and "value_and_grad_outside_2_2" in line
            )
        )
    assert values[0] == values[1]
    # the first process compiled and saved the kernel, the second only loaded it
    assert "data-saved" in logs[0], logs[0]
    assert "data-loaded" in logs[1] and "saved" not in logs[1], logs[1]
    # one compiled entry: no second one under another key
    entries = list(tmp_path.rglob("*value_and_grad_outside_2_2*.nbc"))
    assert len(entries) == 1, entries
