"""Observed orders of the time schemes and the convergence study's outputs."""

import csv
import math

import h5py
import numpy as np
import pytest

import grids
import spacetime
import spacetime._convergence
from spacetime import SCHEMES
from spacetime._convergence import (
    SmoothControls,
    adjoint_gap,
    continuous_gradient,
    expected_order,
    fit_order,
    forward_errors,
    refine_controls,
    trained_study,
)
from spacetime.cli import main

STEPS = [8, 16, 32, 64, 128]


@pytest.mark.parametrize("field", ["inside", "bottleneck"])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_stage_sampled_controls_give_the_classical_order(scheme, field):
    r = forward_errors(scheme, field, "stage", STEPS)
    assert r.n_fit >= 3
    assert abs(r.order - SCHEMES[scheme].order) <= 0.2, r.errors


@pytest.mark.parametrize("mode", ["left", "mid"])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_frozen_controls_cap_the_order(scheme, mode):
    r = forward_errors(scheme, "inside", mode, STEPS)
    assert r.n_fit >= 3
    assert r.expected == (1 if mode == "left" or scheme == "euler" else 2)
    assert abs(r.order - r.expected) <= 0.2, r.errors


def test_rk4_converges_at_fourth_order_on_the_outside_field():
    r = forward_errors("rk4", "outside", "stage", STEPS[:4])
    assert r.n_fit >= 3 and abs(r.order - 4.0) <= 0.2


@pytest.mark.parametrize("field", ["inside", "bottleneck"])
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_discrete_gradient_approaches_the_continuous_one_at_the_scheme_order(
    scheme, field
):
    # rk4's gap reaches the reference's accuracy sooner: start it coarser
    a = adjoint_gap(scheme, field, [4, 8, 16] if scheme == "rk4" else [8, 16, 32])
    assert a.n_fit == 3
    assert abs(a.order - SCHEMES[scheme].order) <= 0.2, a.gaps


def test_continuous_gradient_matches_finite_differences_of_the_continuous_risk():
    rng = np.random.default_rng(7)
    time = grids.time_grid(nodes=[0.0, 0.3, 0.5, 1.0])
    n, h = 3, 2
    theta = rng.normal(size=3 * (2 * n * h + h))
    x0 = rng.normal(size=(4, n))
    p = rng.normal(size=(2, n))
    target = rng.normal(size=(4, 2))
    _, grad = continuous_gradient("bottleneck", "tanh", n, h, time, theta, x0, p,
                                  target)
    v = rng.normal(size=theta.shape)
    eps = 1e-5
    plus = continuous_gradient("bottleneck", "tanh", n, h, time, theta + eps * v,
                               x0, p, target)[0]
    minus = continuous_gradient("bottleneck", "tanh", n, h, time, theta - eps * v,
                                x0, p, target)[0]
    fd = (plus - minus) / (2 * eps)
    assert abs(fd - grad @ v) <= 1e-7 * abs(fd)


def test_fit_order_uses_only_errors_above_the_floor():
    dt = np.array([0.1, 0.05, 0.025, 0.0125])
    errors = 3.0 * dt**2
    errors[-1] = 1e-12  # a point at the reference's accuracy, to be left out
    order, n = fit_order(dt, errors)
    assert n == 3 and math.isclose(order, 2.0)
    assert math.isnan(fit_order(dt, np.full(4, 1e-12))[0])


def test_smooth_field_matches_the_kernels_layout():
    controls = SmoothControls.random("bottleneck", 3, 2, seed=4)
    y = np.random.default_rng(0).normal(size=(5, 3))
    u = controls(0.3)
    w, a, b = u[:6].reshape(3, 2), u[6:12].reshape(2, 3), u[12:]
    assert np.allclose(controls.field_value("tanh", 0.3, y), np.tanh(y @ a.T + b) @ w.T)
    assert expected_order("rk4", "stage") == 4 and expected_order("rk4", "mid") == 2


def test_refining_controls_repeats_each_layer_and_keeps_the_control_norm():
    theta = np.arange(12.0)
    fine = refine_controls(theta, 3)
    assert np.array_equal(fine.reshape(6, 4)[::2], theta.reshape(3, 4))
    assert np.array_equal(fine.reshape(6, 4)[1::2], theta.reshape(3, 4))
    # sum_k dt_k |u_k|^2 on [0, 1] is the same on both grids
    assert math.isclose(np.sum(theta**2) / 3, np.sum(fine**2) / 6)


def test_trained_study_runs_and_solves_every_level():
    r = trained_study("euler", n_levels=3, first_steps=4, n_samples=40, seed=3,
                      max_iter=400, gtol=1e-8)
    assert list(r.n_steps) == [4, 8, 16]
    assert np.all(r.grad_norm <= 1e-6)
    assert np.allclose(r.objective_diff, np.abs(np.diff(r.objective)))
    assert r.control_diff.shape == (2,) and np.all(r.control_diff > 0)
    assert [t.size for t in r.thetas] == [4 * 12, 8 * 12, 16 * 12]
    # the optimal values settle: the second difference is the smaller one
    assert r.objective_diff[1] < r.objective_diff[0]


def test_study_command_writes_the_analysis_file_table_and_figures(tmp_path, capsys):
    out = tmp_path / "conv"
    argv = ["study", "convergence", "-o", str(out), "--fast", "--no-trained",
            "--schemes", "euler,rk4", "--fields", "inside", "--modes", "stage,mid"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| stage | inside | rk4 | 4 |" in printed
    with h5py.File(out / "convergence.h5") as f:
        assert f.attrs["format"] == "spacetime-convergence"
        g = f["forward/stage/inside/rk4"]
        assert abs(g.attrs["observed_order"] - 4.0) <= 0.2
        assert np.allclose(g["dt"][:], 1.0 / np.array(STEPS))
        assert set(f["forward"]) == {"stage", "mid"}
        assert set(f["adjoint/inside"]) == {"euler", "rk4"}
    with open(out / "convergence.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["study"] for r in rows] == ["forward"] * 4 + ["adjoint"] * 2
    assert {r["scheme"] for r in rows} == {"euler", "rk4"}
    for name in ("convergence_forward.png", "convergence_trained.png",
                 "convergence_adjoint.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run refuses to replace the files, and writes nothing
    before = (out / "convergence.md").stat().st_mtime_ns
    assert main(argv) == 2
    assert "exists already" in capsys.readouterr().err
    assert (out / "convergence.md").stat().st_mtime_ns == before


def test_unknown_scheme_is_refused_before_any_work(tmp_path):
    with pytest.raises(spacetime.ConfigError, match="did you mean 'rk4'"):
        spacetime.convergence_study(tmp_path / "x", schemes=("rk5",))
    assert not (tmp_path / "x").exists()


def test_fast_study_keeps_the_number_of_refinements_given(tmp_path, capsys):
    out = tmp_path / "conv"
    argv = ["study", "convergence", "-o", str(out), "--fast", "--no-trained",
            "--no-adjoint", "--schemes", "euler", "--fields", "inside",
            "--modes", "stage", "--refinements", "3", "-q"]
    assert main(argv) == 0
    with h5py.File(out / "convergence.h5") as f:
        assert list(f["forward/stage/inside/euler/n_steps"][:]) == [8, 16, 32]
    # without --refinements, --fast takes 5 levels and the full study 7
    quick = spacetime.convergence_study(
        schemes=("euler",), fields=("inside",), modes=("stage",), trained=False,
        adjoint=False, fast=True,
    )
    assert list(quick.forward[0].n_steps) == [8 * 2**j for j in range(5)]
    full = spacetime.convergence_study(
        schemes=("euler",), fields=("inside",), modes=("stage",), trained=False,
        adjoint=False, n_refinements=2,
    )
    assert list(full.forward[0].n_steps) == [8, 16]


def test_failure_while_writing_leaves_no_partial_files(tmp_path, monkeypatch):
    def broken(study, path):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(spacetime._convergence, "_figure_adjoint", broken)
    out = tmp_path / "new" / "conv"
    with pytest.raises(RuntimeError, match="figure failed"):
        spacetime.convergence_study(
            out, schemes=("euler",), fields=("inside",), modes=("stage",),
            trained=False, adjoint=False, n_refinements=2,
        )
    assert list(tmp_path.iterdir()) == []  # not even the folders it made
    # files that were there before stay as they were
    out.mkdir(parents=True)
    (out / "convergence.md").write_text("old table")
    with pytest.raises(RuntimeError, match="figure failed"):
        spacetime.convergence_study(
            out, schemes=("euler",), fields=("inside",), modes=("stage",),
            trained=False, adjoint=False, n_refinements=2, overwrite=True,
        )
    assert sorted(p.name for p in out.iterdir()) == ["convergence.md"]
    assert (out / "convergence.md").read_text() == "old table"
