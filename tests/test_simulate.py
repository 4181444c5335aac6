"""Forward simulation with prescribed controls: the solution, the file, the safe
expressions and the ``spacetime simulate`` command."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import grids
import spacetime
import spacetime._data
import spacetime._run
import spacetime._simulate
from spacetime import ConfigError, RunFileError, load_simulation, simulate
from spacetime._simulate import Expression, ExpressionFunction, variable_names
from spacetime._spacetime import SpaceTimeNetwork, input_grid
from spacetime.cli import main

# A non-uniform time grid, so that a wrong step or a wrong control time shows.
TIME_NODES = [0.0, 0.1, 0.25, 0.45, 0.6, 0.8, 1.05, 1.3]
N_NODES = 17
DOMAIN = (0.0, 3.0)


def _fixed_trapezoid_network(**kwargs):
    tg = grids.time_grid(nodes=TIME_NODES)
    moving = grids.moving_grid(tg, "trapezoid", N_NODES, domain=DOMAIN)
    return SpaceTimeNetwork(moving, moving[0], **kwargs)


def _separable_reference(x0, g, beta, at):
    """The separable solution, computed here without the library.

    With ``w = g(t) cos ξ cos ζ``, ``b = β(t) cos ξ``, the inside field and forward
    Euler keep ``X^k = x0 + cos(ξ) s_k`` with the scalar recursion

        s_{k+1} = s_k + dt_k (g(τ_k) c_k + β(τ_k)),
        c_k = sum_l ω_l cos(ξ_l) tanh(x0_l + cos(ξ_l) s_k),

    on the trapezoid nodes ``ξ_l`` with weights ``ω_l``.
    """
    xi = np.linspace(*DOMAIN, N_NODES)
    h = (DOMAIN[1] - DOMAIN[0]) / (N_NODES - 1)
    omega = np.full(N_NODES, h)
    omega[[0, -1]] = h / 2
    t = np.array(TIME_NODES)
    s = np.zeros(x0.shape[0])
    out = [x0.copy()]
    for k in range(len(t) - 1):
        tau = t[k] if at == "left" else 0.5 * (t[k] + t[k + 1])
        x = x0 + np.cos(xi)[None, :] * s[:, None]
        c = np.tanh(x) @ (omega * np.cos(xi))
        s = s + (t[k + 1] - t[k]) * (g(tau) * c + beta(tau))
        out.append(x0 + np.cos(xi)[None, :] * s[:, None])
    return xi, out


@pytest.mark.parametrize("at", ["left", "mid"])
def test_separable_kernel_matches_an_independent_scalar_recursion(at):
    net = _fixed_trapezoid_network()
    xi = np.linspace(*DOMAIN, N_NODES)
    x0 = np.stack([np.sin(xi), 0.5 - xi / 3, np.full(N_NODES, 0.2)])
    sim = simulate(
        net,
        x0,
        w=lambda t, p, q: np.cos(t) * np.cos(p[..., 0]) * np.cos(q[..., 0]),
        at=at,
    )
    _, reference = _separable_reference(x0, np.cos, lambda t: 0.0, at)
    np.testing.assert_allclose(sim.grids[0].nodes[:, 0], xi, rtol=0, atol=1e-15)
    assert len(sim.states) == len(TIME_NODES)
    for got, want in zip(sim.states, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # the field did something: the solution moved away from x0
    assert np.abs(sim.states[-1] - x0).max() > 0.1


def test_expression_controls_with_bias_match_the_independent_recursion():
    net = _fixed_trapezoid_network()
    sim = simulate(
        net,
        ["sin(xi)", "0.5 - xi/3"],
        w="cos(t) * cos(xi) * cos(zeta)",
        b="0.3 * sin(2*t) * cos(xi)",
    )
    xi = np.linspace(*DOMAIN, N_NODES)
    _, reference = _separable_reference(
        np.stack([np.sin(xi), 0.5 - xi / 3]),
        np.cos,
        lambda t: 0.3 * np.sin(2 * t),
        "left",
    )
    for got, want in zip(sim.states, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_file_holds_the_networks_states_grids_and_controls(tmp_path):
    tg = grids.time_grid(1.2, 6)
    moving = grids.moving_grid(tg, "midpoint", [(0.0, 16), (0.6, 9)])
    inputs = input_grid(10)  # differs from the first level: the transfer embeds
    net = SpaceTimeNetwork(moving, inputs, field="outside", activation="tanh")
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(3, 10))

    def w(t, p, q):
        return np.exp(-((p[..., 0] - q[..., 0]) ** 2)) * (1 + t)

    def b(t, p):
        return 0.1 * p[:, 0] - t

    path = tmp_path / "out" / "sim.h5"
    sim = simulate(net, x0, w=w, b=b, path=path, config_text="# a config\n")
    assert sim.path == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["sim.h5"]  # no temp left

    theta = net.controls_from_functions(w, b)
    expected = net.states(theta, x0)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "spacetime-simulation"
        assert f.attrs["format_version"] == 1
        assert f["config"].attrs["toml"] == "# a config\n"
        assert f["provenance"].attrs["spacetime"] == spacetime.__version__
        np.testing.assert_array_equal(f["time/t"][()], tg.nodes)
        np.testing.assert_array_equal(f["grids/width"][()], moving.widths)
        np.testing.assert_array_equal(f["inputs/x0"][()], x0)
        for k, grid in enumerate(moving):
            level = f[f"grids/level_{k:05d}"]
            np.testing.assert_array_equal(level["nodes"][()], grid.nodes)
            np.testing.assert_array_equal(level["weights"][()], grid.weights)
            ds = f[f"solution/level_{k:05d}"]
            np.testing.assert_array_equal(ds[()], expected[k])
            assert ds.attrs["t"] == tg.nodes[k]
            assert [d[0].name.rsplit("/", 1)[1] for d in ds.dims] == [
                "sample",
                f"node_{k:05d}",
            ]
        for k, layer in enumerate(net.unpack(theta)):
            g = f[f"controls/layer_{k:05d}"]
            assert g.attrs["t"] == tg.nodes[k]
            for name in ("w", "b"):
                np.testing.assert_array_equal(g[name][()], layer[name])
        # the kernel's value at one node, evaluated here by hand
        xi = moving[2].nodes[:, 0]
        assert f["controls/layer_00002/w"][3, 5] == pytest.approx(
            np.exp(-((xi[3] - xi[5]) ** 2)) * (1 + tg.nodes[2]), rel=1e-15
        )
    # level 0 is the inputs carried onto the first grid
    np.testing.assert_array_equal(sim.states[0], net.embed(x0))
    back = load_simulation(path)
    for a, c in zip(back.states, sim.states, strict=True):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(back.norms(), sim.norms())
    assert back.widths == moving.widths


def test_norms_are_the_discrete_l2_norms():
    net = _fixed_trapezoid_network()
    sim = simulate(net, ["1 + 0*xi"], w="0", b="0")
    # zero field: the constant 1 stays, and its norm is sqrt(|Ω|) (trapezoid exact)
    np.testing.assert_allclose(sim.norms(), np.sqrt(3.0), rtol=1e-14)


def test_coarsening_2d_schedule_writes_levels_of_the_expected_sizes(tmp_path):
    tg = grids.time_grid(1.5, 6)  # levels 0, .25, ..., 1.5
    schedule = [(0.0, (6, 6)), (0.5, (4, 4)), (1.0, (3, 3))]
    moving = grids.moving_grid(tg, "midpoint", schedule)
    net = SpaceTimeNetwork(moving, moving[0])
    path = tmp_path / "sim2d.h5"
    sim = simulate(
        net,
        [lambda p: np.sin(np.pi * p[:, 0]) * p[:, 1], "xi0 * xi1"],
        w="exp(-((xi0 - zeta0)**2 + (xi1 - zeta1)**2))",
        b="0.1 * xi1",
        path=path,
    )
    expected = [36, 36, 16, 16, 9, 9, 9]
    assert [s.shape for s in sim.states] == [(2, n) for n in expected]
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["grids/width"][()], expected)
        assert [f[f"solution/level_{k:05d}"].shape[1] for k in range(7)] == expected
        assert [f[f"controls/layer_{k:05d}/w"].shape for k in range(6)] == [
            (n, n) for n in expected[:-1]
        ]
        # level 2 is the 4 x 4 midpoint grid of the unit square
        centres = (np.arange(4) + 0.5) / 4
        want = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1)
        np.testing.assert_allclose(
            f["grids/level_00002/nodes"][()], want.reshape(16, 2), atol=1e-15
        )
    # the second input is xi0 * xi1 at the 6 x 6 pixel centres
    nodes = moving[0].nodes
    np.testing.assert_allclose(sim.inputs[1], nodes[:, 0] * nodes[:, 1], rtol=1e-15)


def test_bottleneck_needs_the_inner_kernel_and_uses_it():
    tg = grids.time_grid(0.5, 3)
    moving = grids.moving_grid(tg, "trapezoid", 9)
    net = SpaceTimeNetwork(moving, moving[0], field="bottleneck")
    with pytest.raises(ConfigError, match="inner kernel a"):
        simulate(net, ["xi"], w="1")
    one = simulate(net, ["xi"], w="1", a="zeta * eta")
    two = simulate(net, ["xi"], w="1", a="2 * zeta * eta")
    assert np.abs(one.states[-1] - two.states[-1]).max() > 1e-3
    np.testing.assert_allclose(
        one.controls[0]["a"], np.outer(moving[0].nodes[:, 0], moving[0].nodes[:, 0])
    )
    inside = _fixed_trapezoid_network()
    with pytest.raises(ConfigError, match="only used by the bottleneck"):
        simulate(inside, ["xi"], w="1", a="1")


def test_bad_initial_values_and_controls_are_config_errors(tmp_path):
    net = _fixed_trapezoid_network()
    with pytest.raises(ConfigError, match="input grid has 17 nodes"):
        simulate(net, np.zeros((2, 5)), w="1")
    with pytest.raises(ConfigError, match="not finite"):
        simulate(net, ["xi"], w="log(xi - 1)")
    with pytest.raises(ConfigError, match="not finite"):
        simulate(net, ["1 / (xi - 3)"], w="1")
    with pytest.raises(ConfigError, match="kernel w is missing"):
        simulate(net, ["xi"], w="")
    with pytest.raises(ConfigError, match="'left' or 'mid'"):
        simulate(net, ["xi"], w="1", at="right")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunFileError, match="is a file, not a folder"):
        simulate(net, ["xi"], w="1", path=blocker / "sim.h5")


# ---------------------------------------------------------------------------
# Safe expressions


@pytest.mark.parametrize(
    ("text", "offending"),
    [
        ("__import__('os')", "__import__"),
        ("xi.__class__", "xi.__class__"),
        ("open", "open"),
        ("[1][0]", "[1][0]"),
        ("lambda: 0", "lambda: 0"),
        ("sin(xi).real", "sin(xi).real"),
        ("np.sin(xi)", "np.sin"),
        ("xi % 2", "xi % 2"),
        ("sin(xi, zeta)", "sin(xi, zeta)"),
        ("sin(x=xi)", "sin(x=xi)"),
        ("exp", "exp"),
        ("xi if t else zeta", "xi if t else zeta"),
        ("'text'", "'text'"),
        ("xi and zeta", "xi and zeta"),
        ("eta * xi", "eta"),
        ("(lambda: 0)()", "lambda: 0"),
    ],
)
def test_expression_rejects_anything_outside_the_whitelist(text, offending):
    with pytest.raises(ConfigError) as err:
        Expression(text, variable_names("w", 1), "simulate.w")
    message = str(err.value)
    assert f"'{offending}'" in message
    assert message.startswith("simulate.w = ")
    assert "\n" not in message


@pytest.mark.parametrize("text", ["sin(xi", "xi +", "1 2", "xi = 1", ""])
def test_malformed_expression_is_a_config_error_quoting_it(text):
    with pytest.raises(ConfigError) as err:
        Expression(text, ("xi",), "simulate.b")
    assert f"simulate.b = {text!r} is not a valid expression" in str(err.value)


def test_expression_accepts_the_documented_forms():
    xi = np.linspace(-1.0, 2.0, 7)[:, None]
    zeta = np.linspace(0.0, 1.0, 5)[None, :]
    t = 0.7
    names = variable_names("w", 1)
    cases = {
        "exp(-(xi - zeta)**2) * cos(t)": np.exp(-((xi - zeta) ** 2)) * np.cos(t),
        "where(xi < 0.5, 1, 0)": np.where(xi < 0.5, 1.0, 0.0) + 0 * zeta,
        "heaviside(xi - 0.5, 0.5)": np.heaviside(xi - 0.5, 0.5) + 0 * zeta,
        "-xi**2 + +zeta": -(xi**2) + zeta,
        "minimum(xi, zeta) - maximum(xi, zeta)": np.minimum(xi, zeta)
        - np.maximum(xi, zeta),
        "0 < xi <= 1": ((0 < xi) & (xi <= 1)).astype(float) + 0 * zeta,
        "-(xi >= zeta) * 2 / 4": -(xi >= zeta).astype(float) * 0.5,
        "(xi == 0.5) + (xi != 0.5)": np.ones_like(xi) + 0 * zeta,
        "1e-3 * pi + e - 2": np.full((1, 1), 1e-3 * np.pi + np.e - 2),
        "sqrt(abs(xi)) + log(1 + zeta) + tan(zeta) + tanh(xi)": np.sqrt(np.abs(xi))
        + np.log(1 + zeta)
        + np.tan(zeta)
        + np.tanh(xi),
        "sinh(xi) * cosh(zeta) + arctan(t)": np.sinh(xi) * np.cosh(zeta) + np.arctan(t),
    }
    for text, want in cases.items():
        got = Expression(text, names)(t=t, xi=xi, zeta=zeta)
        np.testing.assert_allclose(
            np.broadcast_to(got, np.broadcast_shapes(got.shape, want.shape)),
            np.broadcast_to(want, np.broadcast_shapes(got.shape, want.shape)),
            rtol=1e-15,
            atol=1e-15,
            err_msg=text,
        )


def test_expression_names_follow_the_role_and_dimension():
    assert variable_names("w", 1) == ("t", "xi", "zeta")
    assert variable_names("a", 2) == ("t", "zeta0", "zeta1", "eta0", "eta1")
    assert variable_names("b", 2) == ("t", "xi0", "xi1")
    assert variable_names("x0", 1) == ("xi",)
    with pytest.raises(ConfigError, match="unknown name 'xi'"):
        ExpressionFunction("xi * zeta0", "w", 2)
    with pytest.raises(ConfigError, match="unknown name 't'"):
        ExpressionFunction("t * xi", "x0", 1)
    f = ExpressionFunction("xi0 - 2 * zeta1 + t", "w", 2)
    p = np.array([[[0.25, 0.5]], [[0.75, 1.0]]])  # (2, 1, 2)
    q = np.array([[[0.0, 0.125], [1.0, 0.5]]])  # (1, 2, 2)
    np.testing.assert_allclose(
        f(1.0, p, q), [[1.0, 0.25], [1.5, 0.75]], rtol=0, atol=1e-15
    )


def test_huge_powers_overflow_to_infinity_without_integer_arithmetic():
    start = time.perf_counter()
    value = Expression("9**9**9**9", ())()
    assert np.isinf(value)
    assert time.perf_counter() - start < 5  # Python integers would never finish
    with pytest.raises(ConfigError, match="characters long"):
        Expression("1+" * 2000 + "1", ())
    # deep nesting within the length limit is refused, not a RecursionError
    for deep in ("1+" * 900 + "1", "-" * 1500 + "1", "sin(" * 150 + "1" + ")" * 150):
        with pytest.raises(ConfigError, match="deep|cannot be parsed|not a valid"):
            Expression(deep, ())
    assert Expression("1+" * 90 + "1", ())() == 91


# ---------------------------------------------------------------------------
# The command


CONFIG_1D = """
[model]
kind = "spacetime"
T = 1.0
n_steps = 8

[spacetime]
rule = "trapezoid"
widths = [[0.0, 33], [0.5, 17]]

[simulate]
w = "exp(-(xi - zeta)**2) * cos(t)"
b = "0"
inputs = ["sin(pi*xi)", "xi*(1-xi)"]
"""


def _write_config(tmp_path, text, out):
    path = tmp_path / "sim.toml"
    path.write_text(text + f'out = "{out}"\n', encoding="utf-8")
    return path


def test_cli_simulate_writes_the_solution(tmp_path, capsys):
    out = tmp_path / "res" / "sim.h5"
    cfg = _write_config(tmp_path, CONFIG_1D, out)
    assert main(["simulate", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert "33 (4 levels), 17 (5 levels)" in printed
    assert str(out) in printed
    sim = load_simulation(out)
    assert sim.widths == (33,) * 4 + (17,) * 5
    xi = np.linspace(0.0, 1.0, 33)
    np.testing.assert_allclose(sim.inputs[0], np.sin(np.pi * xi), atol=1e-15)
    np.testing.assert_allclose(sim.states[0][1], xi * (1 - xi), atol=1e-15)
    with h5py.File(out, "r") as f:
        assert f["controls"].attrs["w"] == "exp(-(xi - zeta)**2) * cos(t)"
        assert "[simulate]" in f["config"].attrs["toml"]
        assert f["model"].attrs["kind"] == "spacetime"
    # a second run refuses to overwrite unless asked
    assert main(["simulate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "exists already" in err
    assert "--overwrite (simulate.overwrite = true)" in err  # the key of simulate
    assert main(["simulate", str(cfg), "--overwrite", "-q"]) == 0


def test_cli_simulate_uses_training_inputs_without_input_expressions(tmp_path):
    text = """
[data]
name = "digits"
max_samples = 40

[model]
kind = "spacetime"
T = 1.0
n_steps = 4

[spacetime]
widths = [[0.0, 8, 8], [0.5, 4, 4]]

[simulate]
w = "0.1 * cos(xi0 - zeta0) * cos(xi1 - zeta1)"
n_samples = 3
"""
    out = tmp_path / "digits.h5"
    assert main(["simulate", str(_write_config(tmp_path, text, out)), "-q"]) == 0
    sim = load_simulation(out)
    assert [s.shape for s in sim.states] == [(3, 64)] * 2 + [(3, 16)] * 3
    config, _ = spacetime.load_config(tmp_path / "sim.toml")
    data = spacetime._run.load_data(config)
    np.testing.assert_array_equal(sim.inputs, data.x_train[:3])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('w = "exp(-(xi - zeta)**2) * cos(t)"', 'w = "exp(-(xi - z)**2)"'),
            "unknown name 'z'",
        ),
        (('kind = "spacetime"', 'kind = "neural_ode"'), "model.kind = 'spacetime'"),
        (('w = "exp(-(xi - zeta)**2) * cos(t)"', ""), "simulate.w is missing"),
        (('"xi*(1-xi)"', '"xi.__class__"'), "attribute access 'xi.__class__'"),
        (('b = "0"', 'b = "sin(xi"'), "simulate.b = 'sin(xi' is not a valid"),
        (('b = "0"', 'a = "1"'), "simulate.a is only used by the bottleneck"),
        (('b = "0"', "b = \"__import__('os')\""), "'__import__'"),
    ],
)
def test_cli_simulate_bad_config_exits_2_and_writes_nothing(
    tmp_path, capsys, change, message
):
    out = tmp_path / "res" / "sim.h5"
    old, new = change
    assert old in CONFIG_1D
    cfg = _write_config(tmp_path, CONFIG_1D.replace(old, new), out)
    before = sorted(os.listdir(tmp_path))
    assert main(["simulate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_cli_simulate_unwritable_path_exits_2_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a folder")
    cfg = _write_config(tmp_path, CONFIG_1D, tmp_path / "unused.h5")
    assert main(["simulate", str(cfg), "--out", str(blocker / "sim.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error: ")
    assert "is a file, not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain-file", "sim.toml"]
    assert blocker.read_text() == "not a folder"


def test_example_prints_the_norms_of_the_file_it_writes(tmp_path):
    script = Path(__file__).resolve().parent.parent / "examples"
    proc = subprocess.run(
        [
            sys.executable,
            str(script / "simulate_moving_grid.py"),
            "--fast",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    sim = load_simulation(tmp_path / "simulation_moving_grid.h5")
    assert sim.widths == (64,) * 4 + (32,) * 4 + (16,) * 5
    rows = [ln for ln in proc.stdout.splitlines() if ln[:5].strip().isdigit()]
    assert len(rows) == 13
    numbers = np.array([[float(v) for v in re.findall(r"\d+\.\d+", r)] for r in rows])
    np.testing.assert_allclose(numbers[:, 0], sim.times, atol=6e-5)
    # moving-grid norms, each followed by the fixed-grid one in parentheses
    np.testing.assert_allclose(numbers[:, 1::2], sim.norms(), rtol=0, atol=6e-7)
    assert [int(r.split()[2]) for r in rows] == list(sim.widths)


# ---------------------------------------------------------------------------
# Memory: estimated before anything is allocated


def _forbidden(*args, **kwargs):
    raise AssertionError("allocated before the memory check")


def _refused_with_estimate(capsys, tmp_path, cfg, need):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["simulate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error: this simulation needs about ")
    assert err.count("\n") == 1
    match = re.search(r"needs about ([0-9.e+]+) GiB of memory", err)
    assert float(match.group(1)) == pytest.approx(need / 2**30, rel=5e-3)
    assert "spacetime.widths" in err and "simulate.n_samples" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_huge_simulation_from_expressions_is_refused_before_the_grids_are_built(
    tmp_path, capsys, monkeypatch
):
    text = CONFIG_1D.replace("n_steps = 8", "n_steps = 100000").replace(
        "widths = [[0.0, 33], [0.5, 17]]", "widths = [[0.0, 200000]]"
    )
    cfg = _write_config(tmp_path, text, tmp_path / "res" / "sim.h5")
    # 100000 kernels of 200000^2 values: the controls alone are 3.2e16 bytes
    need = spacetime._simulate.memory_needed([(200000, 100001)], 100000, "inside", 2)
    assert need > 8 * 200000**2 * 100000
    monkeypatch.setattr(spacetime._simulate.grids, "moving_grid", _forbidden)
    monkeypatch.setattr(spacetime._simulate, "SpaceTimeNetwork", _forbidden)
    _refused_with_estimate(capsys, tmp_path, cfg, need)


def test_huge_simulation_of_dataset_inputs_is_refused_before_the_network_is_built(
    tmp_path, capsys, monkeypatch
):
    text = """
[data]
name = "digits"

[model]
kind = "spacetime"
n_steps = 50

[spacetime]
widths = [[0.0, 1000, 1000]]

[simulate]
w = "cos(xi0 - zeta0)"
n_samples = 5
"""
    cfg = _write_config(tmp_path, text, tmp_path / "sim.h5")
    need = spacetime._simulate.memory_needed([(10**6, 51)], 50, "inside", 5)
    monkeypatch.setattr(spacetime._run, "build_model", _forbidden)
    _refused_with_estimate(capsys, tmp_path, cfg, need)


def test_huge_generated_dataset_is_refused_before_it_is_drawn(
    tmp_path, capsys, monkeypatch
):
    text = """
[data]
name = "spheres"
n_samples = 1000000000000

[model]
kind = "spacetime"
n_steps = 4

[simulate]
w = "cos(xi - zeta)"
"""
    cfg = _write_config(tmp_path, text, tmp_path / "sim.h5")
    config, _ = spacetime.load_config(cfg)
    n_data = 10**12
    need = spacetime._simulate.memory_needed(
        [(2, 5)], 4, "inside", config["simulate"]["n_samples"], n_data
    )
    assert need > 3 * 8 * n_data
    for name in list(spacetime._data._GENERATORS):
        monkeypatch.setitem(spacetime._data._GENERATORS, name, _forbidden)
    _refused_with_estimate(capsys, tmp_path, cfg, need)


def test_python_simulate_checks_memory_before_evaluating_the_controls(
    tmp_path, monkeypatch
):
    net = _fixed_trapezoid_network()
    monkeypatch.setattr(spacetime._run, "available_memory", lambda: 2**16)
    monkeypatch.setattr(net, "controls_from_functions", _forbidden)
    with pytest.raises(ConfigError, match="this simulation needs about .* GiB"):
        simulate(net, np.ones((2, N_NODES)), w="cos(xi - zeta)",
                 path=tmp_path / "sim.h5")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field", ["inside", "bottleneck"])
def test_memory_estimate_bounds_what_a_simulation_allocates(tmp_path, field):
    """tracemalloc sees NumPy's allocations: their peak stays below the estimate,
    and the estimate is not so loose that it would refuse what fits."""
    import tracemalloc

    moving = grids.moving_grid(grids.time_grid(1.0, 10), "trapezoid", 300)
    net = SpaceTimeNetwork(moving, moving[0], field=field)
    kwargs = {"w": "exp(-(xi - zeta)**2) * cos(t)", "b": "0"}
    if field == "bottleneck":
        kwargs["a"] = "exp(-(zeta - eta)**2)"
    x0 = np.ones((4, 300))
    simulate(net, x0, **kwargs, path=tmp_path / "warm.h5")  # compile first
    tracemalloc.start()
    try:
        simulate(net, x0, **kwargs, path=tmp_path / "sim.h5")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    need = spacetime._simulate.memory_needed([(300, 1)] * 11, 10, field, 4)
    controls = 8 * 10 * (300**2 * (2 if field == "bottleneck" else 1) + 300)
    assert peak >= 2 * controls  # the controls at least twice: a real allocation
    assert peak <= need <= 4 * peak
