"""Large-time studies: the helpers, and each study end to end on tiny problems.

Values in the analysis files are checked against computations made here from the
case files' own controls (read with h5py), not through the study code.
"""

import concurrent.futures as cf
import math

import h5py
import numpy as np
import pytest

import grids
import spacetime as st
from spacetime import cli
from spacetime._studies import (
    controllability,
    one_layer_jacobian,
    piecewise_distance,
    piecewise_norm,
    projection_matrix,
    resample_controls,
    rescaled_controls,
)

SMALL = {
    "data": {"name": "spheres", "n_samples": 16, "test_fraction": 0.0},
    "model": {"width": 3, "T": 1.0, "n_steps": 4},
    "output_map": {"trained": False},
    "problem": {"loss": "logistic", "lam": 1e-2},
    "optimizer": {"max_iter": 15},
}


def _copy(cfg, **changes):
    import copy

    out = copy.deepcopy(cfg)
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        out.setdefault(section, {})[key] = value
    return out


@pytest.fixture
def pool():
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        yield ex


def _case_controls(path):
    """Controls, time levels and the start objective of a case file, read raw."""
    with h5py.File(path, "r") as f:
        u = np.concatenate(
            [f["controls/w"][()].reshape(len(f["time/dt"]), -1), f["controls/b"][()]],
            axis=1,
        )
        return u, f["time/t"][()], f["optimizer/history/objective"][0]


def _case_path(study, row):
    return study.path.parent / row["folder"] / f"{row['name']}.h5"


# -- helpers -----------------------------------------------------------------


def test_piecewise_distance_matches_a_fine_quadrature():
    rng = np.random.default_rng(0)
    s_a = np.array([0.0, 0.3, 0.5, 1.0])
    s_b = np.linspace(0.0, 1.0, 6)
    v_a = rng.normal(size=(3, 2))
    v_b = rng.normal(size=(5, 2))
    fine = (np.arange(200000) + 0.5) / 200000
    fa = v_a[np.searchsorted(s_a, fine, side="right") - 1]
    fb = v_b[np.searchsorted(s_b, fine, side="right") - 1]
    expected = math.sqrt(np.mean(np.sum((fa - fb) ** 2, axis=1)))
    assert piecewise_distance(s_a, v_a, s_b, v_b) == pytest.approx(expected, rel=1e-4)
    assert piecewise_norm(s_b, v_b) == pytest.approx(
        math.sqrt(np.mean(np.sum(fb**2, axis=1))), rel=1e-4
    )


def test_resampling_a_refinement_copies_and_a_coarsening_averages():
    controls = {"w": np.arange(8.0).reshape(2, 2, 2), "b": np.array([[1.0], [3.0]])}
    fine = resample_controls(controls, [0, 1, 2], [0, 1, 2, 3, 4])  # T 2 -> 4
    np.testing.assert_array_equal(fine["b"][:, 0], [1, 1, 3, 3])
    np.testing.assert_array_equal(fine["w"][2], controls["w"][1])
    back = resample_controls(fine, [0, 1, 2, 3, 4], [0, 2])
    assert back["b"][0, 0] == pytest.approx(2.0)
    m = projection_matrix(np.array([0, 0.25, 1.0]), np.array([0, 0.5, 1.0]))
    np.testing.assert_allclose(m, [[0.5, 0.5], [0.0, 1.0]])


def test_rescaled_controls_have_norm_sqrt_T_times_the_control_norm():
    model = st.NeuralODE(2, 3, grids.time_grid(5.0, 7))
    theta = model.init_params(1, 1.0)
    s, v = rescaled_controls(model, theta)
    assert s[0] == 0 and s[-1] == 1
    expected = math.sqrt(5.0 * model.control_norm2(theta))
    assert piecewise_norm(s, v) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(
    ("field", "activation"),
    [("inside", "tanh"), ("outside", "tanh"), ("bottleneck", "sigmoid")],
)
def test_one_layer_jacobian_matches_finite_differences(field, activation):
    rng = np.random.default_rng(2)
    model = st.NeuralODE(
        3, 3, grids.time_grid(0.3, 1), field=field, activation=activation, hidden=2
    )
    xbar = rng.normal(size=(4, 3))
    jac = one_layer_jacobian(model, xbar)
    h = 1e-6
    fd = np.empty_like(jac)
    for c in range(model.n_params):
        e = np.zeros(model.n_params)
        e[c] = h
        plus = model.flow(e, xbar)[1]
        minus = model.flow(-e, xbar)[1]
        fd[:, c] = ((plus - minus) / (2 * h)).ravel()
    np.testing.assert_allclose(jac, fd, atol=1e-8)


def test_controllability_rank_counts_samples_against_controls():
    rng = np.random.default_rng(4)
    model = st.NeuralODE(3, 3, grids.time_grid(1.0, 10))
    few = controllability(model, rng.normal(size=(4, 3)))
    assert (few.rank, few.rows, few.columns, few.full) == (12, 12, 12, True)
    many = controllability(model, rng.normal(size=(100, 3)))
    assert (many.rank, many.rows, many.full) == (12, 300, False)
    assert many.sigma_min == 0.0


def test_controllability_singular_values_are_those_of_the_full_jacobian():
    rng = np.random.default_rng(5)
    model = st.NeuralODE(2, 4, grids.time_grid(2.0, 5))
    xbar = rng.normal(size=(6, 4))
    diag = controllability(model, xbar)
    s = np.linalg.svd(one_layer_jacobian(model, xbar), compute_uv=False)
    np.testing.assert_allclose(diag.singular_values, s, atol=1e-13)
    assert diag.rank == np.linalg.matrix_rank(one_layer_jacobian(model, xbar))


# -- the depth study -----------------------------------------------------------


def test_depth_study_end_to_end(tmp_path, pool):
    study = st.depth_study(
        SMALL, [1, 2, 4], out=tmp_path / "d", executor=pool, threads=1, progress=False
    )
    for name in ("depth.h5", "depth.csv", "depth.md", "depth.png"):
        assert (tmp_path / "d" / name).is_file()
    assert (tmp_path / "d" / "cases" / "index.h5").is_file()
    rows = study.rows()
    assert [r["T"] for r in rows] == [1.0, 2.0, 4.0]
    assert all(r["n_steps"] == 4 for r in rows)
    lam = SMALL["problem"]["lam"]
    vs = []
    for r in rows:
        u, t, start = _case_controls(_case_path(study, r))
        T = t[-1]
        norm2 = float(np.sum(np.diff(t)[:, None] * u * u))
        assert r["u_norm"] == pytest.approx(math.sqrt(norm2), rel=1e-12)
        assert r["v_norm"] == pytest.approx(math.sqrt(T * norm2), rel=1e-12)
        vs.append(T * u)
        if r["T"] > 1:
            prev = rows[rows.index(r) - 1]
            # warm start u_prev T_prev / T has the same flow, so its objective is
            # E(v_prev) + (lam / T) ||v_prev||^2
            expected = prev["risk"] + lam / T * prev["v_norm"] ** 2
            assert start == pytest.approx(expected, rel=1e-10)
    for a, b, r in zip(vs, vs[1:], rows[1:], strict=False):
        expected = math.sqrt(np.sum((a - b) ** 2) / 4)
        assert r["v_diff"] == pytest.approx(expected, rel=1e-12)
    fit = study.fit("risk", "warm")
    slope = np.polyfit(np.log([1, 2, 4]), np.log([r["risk"] for r in rows]), 1)[0]
    assert fit["slope"] == pytest.approx(slope, rel=1e-10)
    assert fit["slope_low"] < fit["slope"] < fit["slope_high"]
    back = st.load_study(tmp_path / "d" / "depth.h5")
    np.testing.assert_array_equal(back.columns["risk"], study.columns["risk"])
    assert list(back.columns) == list(study.columns)
    assert "| warm | 4 |" in (tmp_path / "d" / "depth.md").read_text()

    # a second run reuses every case and writes the same analysis
    again = st.depth_study(
        SMALL, [1, 2, 4], out=tmp_path / "d", executor=pool, threads=1, progress=False
    )
    assert all(c.reused for c in again.sweeps[0])
    np.testing.assert_array_equal(
        again.columns["objective"], study.columns["objective"]
    )


def test_a_study_with_unfinished_cases_says_so_in_its_table(tmp_path, pool):
    # a time limit stops every case after its first iteration: none is finished
    cfg = _copy(SMALL, **{"optimizer.max_time": 1e-9})
    study = st.depth_study(
        cfg, [1, 2], out=tmp_path / "d", executor=pool, threads=1, progress=False
    )
    assert not study.complete
    text = (tmp_path / "d" / "depth.md").read_text()
    assert "**Incomplete:** 2 of 2 cases did not finish" in text
    finished = st.depth_study(
        SMALL, [1, 2], out=tmp_path / "e", executor=pool, threads=1, progress=False
    )
    assert finished.complete
    assert "Incomplete" not in (tmp_path / "e" / "depth.md").read_text()


def test_depth_study_at_fixed_step_resamples_the_warm_start(tmp_path, pool):
    cfg = _copy(SMALL, **{"model.n_steps": 2})
    study = st.depth_study(
        cfg,
        [1, 2],
        fixed_dt=True,
        out=tmp_path / "d",
        executor=pool,
        threads=1,
        progress=False,
    )
    rows = study.rows()
    assert [r["n_steps"] for r in rows] == [2, 4]
    assert "fixed step dt = 0.5" in study.settings["layers"]
    u1, t1, _ = _case_controls(_case_path(study, rows[0]))
    u2, t2, start = _case_controls(_case_path(study, rows[1]))
    # the start at T = 2: each layer of T = 1 copied into two layers, halved
    model = st.NeuralODE(2, 3, grids.time_grid(2.0, 4))
    _, _, problem = st.build(
        st.validate(_copy(cfg, **{"model.T": 2.0, "model.n_steps": 4}))
    )
    theta = (np.repeat(u1, 2, axis=0) / 2.0).ravel()
    assert problem(theta)[0] == pytest.approx(start, rel=1e-12)
    assert model.n_params == theta.size
    # ||v_1 - v_2|| on the union grid: v_2 has twice as many cells
    v1 = 1.0 * u1
    v2 = 2.0 * u2
    expected = math.sqrt(np.sum((np.repeat(v1, 2, axis=0) - v2) ** 2) / 4)
    assert rows[1]["v_diff"] == pytest.approx(expected, rel=1e-12)


def test_depth_study_cold_seeds_count_minima(tmp_path, pool):
    cfg = _copy(SMALL, **{"optimizer.max_iter": 500})
    study = st.depth_study(
        cfg,
        [1, 2],
        cold_seeds=[3],
        out=tmp_path / "d",
        executor=pool,
        threads=1,
        progress=False,
    )
    rows = study.rows()
    assert {r["series"] for r in rows} == {"warm", "cold seed=3"}
    assert all(r["status"] == "converged" for r in rows)
    for T in (1.0, 2.0):
        pair = [r for r in rows if r["T"] == T]
        a, b = (r["objective"] for r in pair)
        gap = abs(a - b) / min(a, b)
        expected = 1 if gap < 1e-8 else 2 if gap > 1e-3 else None
        if expected is not None:
            assert all(r["n_minima"] == expected for r in pair)
        best = min(a, b)
        for r in pair:
            assert r["gap_to_best"] == pytest.approx((r["objective"] - best) / best)


def test_lambda_study_runs_lam_downwards_from_the_previous_solution(tmp_path, pool):
    study = st.lambda_study(
        SMALL,
        [1e-3, 1e-1, 1e-2],
        out=tmp_path / "l",
        executor=pool,
        threads=1,
        progress=False,
    )
    rows = study.rows()
    assert [r["lam"] for r in rows] == [1e-1, 1e-2, 1e-3]
    for prev, r in zip(rows, rows[1:], strict=False):
        _, _, start = _case_controls(_case_path(study, r))
        expected = prev["risk"] + r["lam"] * prev["u_norm"] ** 2
        assert start == pytest.approx(expected, rel=1e-10)
    assert study.fit("risk", "warm")["against"] == "lam"
    assert (tmp_path / "l" / "lambda.png").is_file()


# -- rescaling -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_rescaling_study_is_exact_with_a_running_cost(tmp_path, scheme):
    cfg = _copy(
        SMALL,
        **{
            "model.scheme": scheme,
            "model.T": 3.0,
            "problem.running_cost": "tracking",
            "problem.tracking_p": 1.0,
            "problem.beta": 0.5,
        },
    )
    study = st.rescaling_study(cfg, [3.0, 17.0], n_points=2, out=tmp_path / "r")
    assert study.n_rows == 4
    assert study.summary["max_objective_discrepancy"] <= 1e-12
    assert study.summary["max_gradient_discrepancy"] <= 1e-12
    rows = study.rows()
    assert rows[-1]["lam_unit"] == pytest.approx(1e-2 / 17)
    assert rows[-1]["beta_unit"] == pytest.approx(0.5 * 17)
    assert (tmp_path / "r" / "rescaling.md").is_file()


def test_rescaling_of_a_non_homogeneous_field_is_refused(tmp_path, capsys):
    cfg = tmp_path / "out.toml"
    cfg.write_text('[model]\nfield = "outside"\nactivation = "tanh"\n')
    code = cli.main(["study", "rescaling", str(cfg), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "not homogeneous" in err and "outside" in err
    assert not (tmp_path / "r").exists()


# -- turnpike --------------------------------------------------------------------

TURNPIKE = _copy(
    SMALL,
    **{
        "data.n_samples": 4,
        "model.n_steps": 4,
        "problem.running_cost": "tracking",
        "problem.tracking_p": 2.0,
        "problem.beta": 1.0,
        "optimizer.max_iter": 30,
    },
)


def _reference_running(u, t, x0, xbar, p, eps):
    """R(x(t_k)) by explicit Euler steps of the inside tanh field."""
    n = x0.shape[1]
    x = x0.copy()
    out = []
    for k in range(len(t)):
        r = x - xbar
        out.append(np.mean(np.sum((r * r + eps * eps) ** (p / 2) - eps**p, axis=1)))
        if k < len(t) - 1:
            w = u[k, : n * n].reshape(n, n)
            b = u[k, n * n :]
            x = x + (t[k + 1] - t[k]) * (np.tanh(x) @ w.T + b)
    return np.array(out)


def test_turnpike_study_end_to_end(tmp_path, pool):
    study = st.turnpike_study(
        TURNPIKE,
        [1.0, 2.0],
        dt=0.25,
        out=tmp_path / "t",
        executor=pool,
        threads=1,
        progress=False,
    )
    s = study.settings
    assert s["window"] == pytest.approx([0.1, 0.5])  # 0.1 and 0.5 of T_min = 1
    assert "0.1 T_min" in s["window_rule"]
    rows = study.rows()
    assert [r["n_steps"] for r in rows] == [4, 8]
    _, _, problem = st.build(st.validate(TURNPIKE))
    xbar = problem.running.targets
    for r in rows:
        u, t, _ = _case_controls(tmp_path / "t" / "cases" / f"{r['name']}.h5")
        curve = study.curves[r["name"]]
        expected = _reference_running(u, t, problem.x0, xbar, 2.0, 1e-3)
        np.testing.assert_allclose(curve["running"], expected, rtol=1e-11)
        np.testing.assert_allclose(
            curve["control"], np.sqrt(np.sum(u * u, axis=1)), rtol=1e-12
        )
        y = expected[:-1] + np.sqrt(np.sum(u * u, axis=1))
        keep = (t[:-1] >= 0.1) & (t[:-1] <= 0.5)
        mu = -np.polyfit(t[:-1][keep], np.log(y[keep]), 1)[0]
        assert r["mu"] == pytest.approx(mu, rel=1e-10)
        below = np.flatnonzero(expected <= s["level"])
        assert r["layers_to_level"] == (below[0] if below.size else -1)
    sm = study.summary
    assert (sm["rank"], sm["rows"], sm["columns"], sm["controllable"]) == (
        12,
        12,
        12,
        1,
    )
    back = st.load_study(tmp_path / "t" / "turnpike.h5")
    np.testing.assert_array_equal(
        back.summary["singular_values"], sm["singular_values"]
    )
    assert "hypothesis" in (tmp_path / "t" / "turnpike.md").read_text()


def test_turnpike_study_needs_a_running_cost(tmp_path):
    with pytest.raises(st.ConfigError, match="running cost"):
        st.turnpike_study(SMALL, [1.0], out=tmp_path / "t")


def test_turnpike_window_must_fit_the_smallest_horizon(tmp_path):
    with pytest.raises(st.ConfigError, match="smallest horizon"):
        st.turnpike_study(
            TURNPIKE, [1.0, 2.0], dt=0.25, window=(0.5, 1.5), out=tmp_path / "t"
        )


def test_running_cost_keys_reach_the_problem():
    _, _, problem = st.build(
        st.validate(
            _copy(
                TURNPIKE,
                **{
                    "problem.tracking_p": 1.0,
                    "problem.tracking_smoothing": 0.01,
                    "problem.beta": 0.3,
                },
            )
        )
    )
    rc = problem.running
    assert (rc.kind, rc.beta, rc.exponent, rc.smoothing) == ("tracking", 0.3, 1.0, 0.01)
    _, _, plain = st.build(st.validate(SMALL))
    assert plain.running is None


# -- command line ----------------------------------------------------------------


def test_study_depth_command_writes_the_study_and_plot_reads_it(tmp_path, capsys):
    cfg = tmp_path / "depth.toml"
    cfg.write_text(
        '[data]\nname = "spheres"\nn_samples = 12\ntest_fraction = 0.0\n'
        "[model]\nwidth = 3\nn_steps = 3\n[output_map]\ntrained = false\n"
        '[problem]\nloss = "logistic"\n[optimizer]\nmax_iter = 5\n'
    )
    out = tmp_path / "study"
    code = cli.main(
        [
            "study",
            "depth",
            str(cfg),
            "--T",
            "1",
            "2",
            "--out",
            str(out),
            "--workers",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "| warm | 2 | 3 |" in printed
    assert cli.main(["plot", str(out / "depth.h5"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "depth-study.png").is_file()


# ---------------------------------------------------------------------------
# The turnpike warm start


def test_turnpike_controls_keep_the_arcs_at_their_times():
    from spacetime._studies import turnpike_controls

    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 3, 3))
    b = rng.normal(size=(5, 3))
    old = np.linspace(0.0, 0.5, 6)  # dt = 0.1, 5 layers: approach 2, exit 3
    new = np.linspace(0.0, 0.9, 10)
    out = turnpike_controls({"w": w, "b": b}, old, new)
    assert out["w"].shape == (9, 3, 3)
    np.testing.assert_array_equal(out["w"][:2], w[:2])  # t in [0, 0.2)
    np.testing.assert_array_equal(out["w"][6:], w[2:])  # the last 0.3 of the horizon
    assert not np.any(out["w"][2:6]) and not np.any(out["b"][2:6])
    held = turnpike_controls({"w": w, "b": b}, old, new, hold="middle")
    for k in range(2, 6):  # the old layer that starts at T_prev / 2 (rounded down)
        np.testing.assert_array_equal(held["b"][k], b[2])
    # a shorter horizon cuts the middle out: 1 layer of approach, 2 of exit
    short = turnpike_controls({"w": w, "b": b}, old, np.linspace(0.0, 0.3, 4))
    np.testing.assert_array_equal(short["b"], b[[0, 3, 4]])
    # the same grid gives the controls back
    same = turnpike_controls({"w": w, "b": b}, old, old)
    np.testing.assert_array_equal(same["w"], w)
    # space-time layout: a list of per-layer dictionaries
    layers = [{"k": rng.normal(size=4)} for _ in range(5)]
    out_list = turnpike_controls(layers, old, new)
    assert len(out_list) == 9
    np.testing.assert_array_equal(out_list[8]["k"], layers[4]["k"])
    assert not np.any(out_list[3]["k"])


def test_turnpike_controls_need_one_step():
    from spacetime._studies import turnpike_controls

    u = {"b": np.ones((4, 2))}
    with pytest.raises(st.ConfigError, match="uniform step"):
        turnpike_controls(u, np.linspace(0, 1, 5), np.linspace(0, 2, 5))
    with pytest.raises(st.ConfigError, match="hold"):
        turnpike_controls(u, np.linspace(0, 1, 5), np.linspace(0, 2, 9), hold="mean")


def test_turnpike_warm_start_costs_the_turnpike_running_cost_per_added_time():
    """Zero controls hold the states of the inside field, and Euler integrates R by
    the left rectangle rule, so the start at T_new costs exactly J_prev plus
    (T_new - T_prev) beta R(x(T_prev / 2)), with R from a reference flow."""
    from spacetime._studies import turnpike_controls

    cfg = st.validate(_copy(TURNPIKE, **{"problem.beta": 0.7, "model.T": 1.0}))
    _, model, problem = st.build(cfg)
    result = spacetime_solve(problem)
    u_prev = np.concatenate(
        [result.controls["w"].reshape(4, -1), result.controls["b"]], axis=1
    )
    t_prev = np.asarray(model.time.nodes)
    j_prev = problem.evaluate(result.z)["objective"]
    xbar = problem.running.targets
    r_mid = _reference_running(u_prev, t_prev, problem.x0, xbar, 2.0, 1e-3)[2]
    assert r_mid > 1e-6  # the bound is not trivially met by a running cost of zero
    cfg2 = st.validate(
        _copy(TURNPIKE, **{"problem.beta": 0.7, "model.T": 2.5, "model.n_steps": 10})
    )
    _, model2, problem2 = st.build(cfg2)
    start = turnpike_controls(result.controls, t_prev, model2.time.nodes)
    j_start = problem2.evaluate(problem2.join(model2.pack(start)))["objective"]
    assert j_start == pytest.approx(j_prev + 1.5 * 0.7 * r_mid, rel=1e-12)
    # the depth study's start (stretched, scaled) does not keep the approach arc
    stretched = resample_controls(result.controls, t_prev, model2.time.nodes)
    scaled = {k: v / 2.5 for k, v in stretched.items()}
    j_rescale = problem2.evaluate(problem2.join(model2.pack(scaled)))["objective"]
    assert j_rescale > j_start


def spacetime_solve(problem):
    from spacetime._solve import solve

    return solve(problem, max_iter=200, gtol=1e-10, seed=0, init_scale=1.0)


def test_turnpike_study_starts_each_horizon_from_the_turnpike_warm_start(
    tmp_path, pool
):
    kw = {"dt": 0.25, "out": tmp_path / "t", "executor": pool, "progress": False}
    study = st.turnpike_study(TURNPIKE, [1.0, 2.0], threads=1, **kw)
    assert "absolute times" in study.settings["start"]
    assert "zero controls" in study.settings["start"]
    rows = study.rows()
    files = [tmp_path / "t" / "cases" / f"{r['name']}.h5" for r in rows]
    u1, t1, _ = _case_controls(files[0])
    _, _, start2 = _case_controls(files[1])
    _, _, problem = st.build(st.validate(TURNPIKE))
    r1 = _reference_running(u1, t1, problem.x0, problem.running.targets, 2.0, 1e-3)
    with h5py.File(files[0], "r") as f:
        j1 = f["results"].attrs["objective"]
    # T doubles at dt = 0.25: 4 zero layers inserted after t = 0.5
    assert start2 == pytest.approx(j1 + 1.0 * r1[2], rel=1e-10)
    with h5py.File(files[1], "r") as f:
        assert f["sweep"].attrs["warm_start_rule"] == "turnpike"
        assert f["sweep"].attrs["warm_start_from"] == files[0].name
    index = st.load_sweep(tmp_path / "t" / "cases")
    assert [c.status for c in index] == [r["status"] for r in rows]
    # run again: every case is reused, nothing is trained
    again = st.turnpike_study(TURNPIKE, [1.0, 2.0], threads=1, **kw)
    assert all(c.reused for c in again.sweeps[0])
    assert [r["objective"] for r in again.rows()] == [r["objective"] for r in rows]


def test_turnpike_study_keeps_the_rescaling_warm_start_on_request(tmp_path, pool):
    study = st.turnpike_study(
        TURNPIKE,
        [1.0, 2.0],
        dt=0.25,
        warm="rescale",
        out=tmp_path / "t",
        executor=pool,
        threads=1,
        progress=False,
    )
    assert "normalised time" in study.settings["start"]
    rows = study.rows()
    u1, t1, _ = _case_controls(tmp_path / "t" / "cases" / f"{rows[0]['name']}.h5")
    _, _, start2 = _case_controls(tmp_path / "t" / "cases" / f"{rows[1]['name']}.h5")
    # each layer copied into two and halved: the flow of T = 1 on [0, 2]
    cfg = st.validate(_copy(TURNPIKE, **{"model.T": 2.0, "model.n_steps": 8}))
    _, model, problem = st.build(cfg)
    u = np.repeat(u1, 2, axis=0) / 2.0
    z = problem.join(model.pack({"w": u[:, :9].reshape(8, 3, 3), "b": u[:, 9:]}))
    assert start2 == pytest.approx(problem.evaluate(z)["objective"], rel=1e-12)
    with pytest.raises(st.ConfigError, match="warm must be"):
        st.turnpike_study(TURNPIKE, [1.0], dt=0.25, warm="stretch", out=tmp_path / "x")


def test_a_fit_through_two_points_is_shown_without_an_interval():
    from spacetime._studies import _fit_text, _interval_text

    two = st.fit_line([1.0, 2.0], [3.0, 5.0])
    row = {
        "slope": two.slope,
        "slope_low": two.slope_low,
        "slope_high": two.slope_high,
        "n_points": 2,
        "confidence": 0.95,
    }
    assert _fit_text(row) == "2.000 (no interval from 2 points)"
    assert _interval_text(-math.inf, math.inf) == "-"
    assert _interval_text(0.5, 1.25) == "[0.500, 1.250]"
