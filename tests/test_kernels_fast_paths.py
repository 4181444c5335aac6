"""The kernels' fast paths: their tanh, the BLAS products, blocks and short blocks.

The layer products run as loops for narrow layers and through BLAS for wide ones
(``n_k h_k >= Core.blas_min``). Here every layer is sent through one path or the
other by patching the threshold, so both paths are checked on small problems:
against each other, against the plain-NumPy reference, for thread-count
independence and for checkpointing.
"""

import math

import numba
import numpy as np
import pytest
import reference
import scipy.sparse as sp

import grids
import spacetime
from spacetime import FIELDS, SCHEMES, NeuralODE, Problem, _core, _kernels
from spacetime._core import build_core, risk_and_grad
from spacetime._registry import ACTIVATIONS, LOSSES

EPS = np.finfo(float).eps


@pytest.fixture(params=["loops", "blas"])
def path(request, monkeypatch):
    """Send every layer through the loop products or through BLAS."""
    monkeypatch.setattr(_core, "BLAS_MIN", 0 if request.param == "loops" else 1)
    return request.param


def _problem(
    field,
    scheme="euler",
    n_samples=45,
    n_steps=4,
    width=5,
    hidden=3,
    budget=None,
    seed=0,
):
    rng = np.random.default_rng(seed)
    model = NeuralODE(
        3,
        width,
        grids.time_grid(1.2, n_steps),
        field=field,
        scheme=scheme,
        hidden=hidden,
    )
    x = rng.normal(size=(n_samples, 3))
    y = rng.integers(0, 3, n_samples)
    problem = Problem(
        model,
        x,
        y,
        loss="cross_entropy",
        lam=1e-2,
        n_classes=3,
        memory_budget_mib=budget,
    )
    z = problem.initial_point(seed, 0.9) + 0.2 * rng.normal(size=problem.n_variables)
    return problem, z


@numba.njit
def _tanh_many(x, out):
    for i in range(x.shape[0]):
        out[i] = _kernels.tanh(x[i])


def test_kernel_tanh_is_within_a_few_units_in_the_last_place_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.uniform(-25.0, 25.0, 20000),
            rng.uniform(-0.7, 0.7, 20000),
            rng.normal(size=20000) * 1e-5,
            np.linspace(0.3, 0.4, 2001),  # where 2|x| = ln 2 / 2 switches n
            [0.0, -0.0, 5e-324, -1e-300, 19.0, 20.0, 1e300, -1e300],
        ]
    )
    out = np.empty_like(x)
    _tanh_many(x, out)
    expected = np.tanh(x)
    assert np.all(np.abs(out - expected) <= 5 * EPS * np.abs(expected))
    # odd, bounded by one, exact at the ends
    np.testing.assert_array_equal(-out[:20000], _neg(x[:20000]))
    assert np.all(np.abs(out) <= 1.0)
    special = np.array([np.inf, -np.inf, np.nan])
    got = np.empty(3)
    _tanh_many(special, got)
    assert got[0] == 1.0 and got[1] == -1.0 and np.isnan(got[2])


def _neg(x):
    out = np.empty_like(x)
    _tanh_many(-x, out)
    return out


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_flow_of_either_path_equals_the_numpy_reference(field, scheme, path):
    problem, z = _problem(field, scheme, n_samples=13)  # one short block
    model = problem.model
    theta = problem.split(z)[0]
    x = np.random.default_rng(4).normal(size=(13, 3))
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
    np.testing.assert_allclose(model.flow(theta, x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_gradient_of_the_blas_path_is_exact(field, monkeypatch):
    monkeypatch.setattr(_core, "BLAS_MIN", 1)
    problem, z = _problem(field, "heun")
    check = spacetime.check_gradient(problem, z, n_directions=3, seed=2)
    assert check.worst <= 1e-6, str(check)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_blas_and_loop_paths_agree(field, monkeypatch):
    problem, z = _problem(field, "midpoint", n_samples=70)
    monkeypatch.setattr(_core, "BLAS_MIN", 0)
    f_loop, g_loop = problem(z)
    monkeypatch.setattr(_core, "BLAS_MIN", 1)
    f_blas, g_blas = problem(z)
    assert f_blas == pytest.approx(f_loop, rel=1e-13)
    np.testing.assert_allclose(g_blas, g_loop, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("field", ["outside", "bottleneck"])
def test_either_path_gives_the_same_bits_for_one_and_two_threads(field, path):
    problem, z = _problem(field, "rk4", n_samples=300)
    assert problem.model.core.n_groups(300) > 2
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


def test_checkpointed_blas_path_gives_the_stored_gradient_bit_for_bit(monkeypatch):
    monkeypatch.setattr(_core, "BLAS_MIN", 1)
    stored, z = _problem("bottleneck", "rk4", n_steps=11, budget=math.inf)
    ckpt, _ = _problem("bottleneck", "rk4", n_steps=11, budget=0.0)
    f1, g1 = stored(z)
    f2, g2 = ckpt(z)
    assert f1 == f2
    assert np.array_equal(g1, g2)


def _transfer_core(field):
    rng = np.random.default_rng(5)
    widths = [3, 4, 4, 6, 5, 5, 3]
    transfers = []
    for k in range(len(widths) - 1):
        if widths[k + 1] == widths[k] and k % 2:
            transfers.append(None)
            continue
        dense = rng.normal(size=(widths[k + 1], widths[k]))
        dense[rng.random(dense.shape) < 0.4] = 0.0
        transfers.append(sp.csr_matrix(dense))
    return build_core(
        FIELDS[field],
        ACTIVATIONS["tanh"],
        0.0,
        SCHEMES["heun"],
        widths,
        widths[:-1],
        rng.uniform(0.05, 0.2, len(widths) - 1),
        transfers=transfers,
    )


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_paths_agree_on_variable_widths_with_transfers(field, monkeypatch):
    core = _transfer_core(field)
    rng = np.random.default_rng(6)
    n = 29
    theta = rng.normal(0.0, 0.5, core.n_params)
    x0 = np.ascontiguousarray(rng.normal(size=(n, 3)))
    p, p0 = rng.normal(size=(2, 3)), rng.normal(size=2)
    targets = np.ascontiguousarray(rng.normal(size=(n, 2)))
    code = LOSSES["squared"].code
    monkeypatch.setattr(_core, "BLAS_MIN", 0)
    loop = risk_and_grad(core, theta, p, p0, x0, targets, code, 2.0)
    monkeypatch.setattr(_core, "BLAS_MIN", 1)
    blas = risk_and_grad(core, theta, p, p0, x0, targets, code, 2.0)
    for a, b in zip(loop, blas, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    # the final level is the transfers' width
    states = _core.flow(core, theta, x0)
    assert states.shape == (7, n, 6)
    assert np.all(states[-1, :, 3:] == 0.0)


@pytest.mark.parametrize("n_samples", [1, 7, 8, 33, 300, 1797, 2000, 100000])
def test_blocks_are_multiples_of_eight_that_cover_a_group(n_samples):
    core = NeuralODE(2, 2, grids.time_grid(1.0, 3)).core
    lanes = core.lanes(n_samples)
    groups = core.n_groups(n_samples)
    per_group = -(-n_samples // groups)
    assert lanes % _kernels.LANES == 0
    assert lanes <= max(_core.MAX_LANES, _kernels.LANES)
    # the fewest blocks of at most MAX_LANES, with less than 8 padded samples each
    blocks = -(-per_group // lanes)
    assert blocks == -(-per_group // _core.MAX_LANES)
    assert blocks * lanes - per_group < 8 * blocks


def test_networks_with_blas_layers_take_longer_blocks():
    wide = NeuralODE(64, 64, grids.time_grid(1.0, 2), field="bottleneck", hidden=64)
    narrow = NeuralODE(2, 2, grids.time_grid(1.0, 2))
    assert wide.core.uses_blas and not narrow.core.uses_blas
    # 20,000 samples in 16 groups of 1,250: 5 blocks of 250 (padded to 256) when
    # blocks may hold 256 samples, 10 of 125 (padded to 128) when 128
    assert wide.core.n_groups(20000) == narrow.core.n_groups(20000) == 16
    assert wide.core.lanes(20000) == _core.MAX_LANES_BLAS == 256
    assert narrow.core.lanes(20000) == _core.MAX_LANES == 128


def test_blas_thread_setting_returns_after_an_evaluation_through_blas(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [
            p["num_threads"]
            for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"
        ]

    monkeypatch.setattr(_core, "BLAS_MIN", 1)
    problem, z = _problem("bottleneck")
    assert problem.model.core.uses_blas
    before = blas_threads()
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = blas_threads()
        problem(z)
        assert blas_threads() == two
    assert blas_threads() == before


def test_solve_holds_blas_to_one_thread_throughout_and_restores_it(monkeypatch):
    # OpenBLAS threads left running between evaluations spin and take the kernels'
    # cores, so solve() holds the limit for the whole optimisation
    import threadpoolctl

    def blas_threads():
        return [
            p["num_threads"]
            for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"
        ]

    problem, z = _problem("inside")
    seen = []

    def callback(iteration, zk, objective):
        seen.append(blas_threads())

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = blas_threads()
        assert two and all(n == 2 for n in two)
        spacetime.solve(problem, z, max_iter=3, callback=callback)
        assert blas_threads() == two
    assert len(seen) >= 1
    assert all(all(n == 1 for n in threads) for threads in seen)
    with spacetime.single_threaded_blas():
        assert all(n == 1 for n in blas_threads())
        with spacetime.single_threaded_blas():  # re-entrant
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())
