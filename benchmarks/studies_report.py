"""Reproduce the full-size numbers of the large-time studies (docs/studies.md).

Each part runs one or more ``spacetime`` studies through the public API, writes them
under ``--out`` (default ``studies/report``; rerunning resumes and reuses finished
cases) and prints the measured numbers next to what the theory predicts:

- ``rescaling``: F1 on the depth problem (Euler and RK4), the turnpike problem
  (running cost) and the space-time network: relative discrepancy <= 1e-12;
- ``depth``: F2, spheres (N = 200) zero-padded to d = 3, inside field, tanh, a fixed
  seeded output map, L = 32 layers, T = 1 ... 32, warm starts, logistic loss for
  lam = 1e-1, 1e-2, 1e-3 (fitted slope of the training error <= -0.9), then the
  squared loss with three cold starts per T (local minima met);
- ``f3``: the rescaled controls ``v_T`` for T up to 256 (logistic and squared);
- ``turnpike``: F4 with N = 4 (rank 12 = N d: the hypothesis holds), tracking of the
  nearest targets with p = 1 (smoothing 1e-3) and p = 2, beta = 1, lam = 1e-2,
  dt = 0.1, T = 5 ... 40, fit window [0.5, 2.5], seeds 0-3, the turnpike warm start,
  at most 50000 iterations; then p = 2 started at T = 5 from the p = 1 solution;
- ``turnpike_fail``: the same with p = 2 and N = 100 (rank 12 against 300 state
  directions), and N = 32 zero-padded to d = 64 for T = 5, 10 with at most 1500
  iterations (many samples, enough controls), both as first measured: with the
  depth study's warm start (``warm="rescale"``), N = 100 with at most 10000
  iterations;
- ``spacetime``: the depth study of a space-time inside network on a fixed 1-D grid
  of 8 nodes.

Usage::

    python benchmarks/studies_report.py                 # every part
    python benchmarks/studies_report.py --parts depth f3 --workers 2

The acceptance numbers of the report came from this script on a 2-core machine;
each part takes minutes (``turnpike_fail`` the longest).
"""

import argparse
import copy
import logging
import time
from pathlib import Path

import spacetime as st

SPHERES = {
    "data": {"name": "spheres", "n_samples": 200, "test_fraction": 0.0, "seed": 0},
    "model": {"width": 3, "T": 1.0, "n_steps": 32, "field": "inside"},
    "output_map": {"trained": False, "seed": 0},
    "problem": {"loss": "logistic", "lam": 1e-2},
    "optimizer": {"max_iter": 5000, "gtol": 1e-9, "ftol": 1e-15},
    "save": {"trajectories": False},
}

TURNPIKE = {
    "data": {"name": "spheres", "n_samples": 4, "test_fraction": 0.0, "seed": 0},
    "model": {"width": 3, "T": 5.0, "n_steps": 50, "init_scale": 1.0},
    "output_map": {"trained": False, "seed": 0},
    "problem": {
        "loss": "logistic",
        "lam": 1e-2,
        "running_cost": "tracking",
        "beta": 1.0,
        "tracking_p": 1.0,
        "tracking_smoothing": 1e-3,
    },
    "optimizer": {"max_iter": 50000, "gtol": 1e-9, "ftol": 1e-15},
    "save": {"trajectories": False},
}


def _with(base, **changes):
    cfg = copy.deepcopy(base)
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        cfg.setdefault(section, {})[key] = value
    return cfg


def _slope(study, series):
    row = study.fit("risk", series)
    return row["slope"], row["slope_low"], row["slope_high"]


def part_rescaling(out, opts):
    cases = {
        "depth-euler": SPHERES,
        "depth-rk4": _with(SPHERES, model__scheme="rk4"),
        "turnpike": TURNPIKE,
        "spacetime": _spacetime_config(),
    }
    worst = 0.0
    for name, cfg in cases.items():
        s = st.rescaling_study(cfg, [2.0, 7.0, 32.0], out=out / f"rescaling-{name}")
        o = s.summary["max_objective_discrepancy"]
        g = s.summary["max_gradient_discrepancy"]
        worst = max(worst, o, g)
        print(f"  F1 {name:<12} objective {o:.2e}  gradient {g:.2e}")
    print(f"  F1 worst relative discrepancy {worst:.2e} (expected <= 1e-12)")


def part_depth(out, opts):
    s = st.depth_study(
        SPHERES,
        [1, 2, 4, 8, 16, 32],
        lams=[1e-1, 1e-2, 1e-3],
        out=out / "depth-logistic",
        **opts,
    )
    print(s.table())
    for lam in (1e-1, 1e-2, 1e-3):
        b, lo, hi = _slope(s, f"warm lam={lam:g}")
        ok = "yes" if b <= -0.9 else "NO"
        print(
            f"  F2 logistic lam={lam:g}: slope {b:.3f} [{lo:.3f}, {hi:.3f}]"
            f"  <= -0.9: {ok}"
        )
    sq = st.depth_study(
        _with(SPHERES, problem__loss="squared"),
        [1, 2, 4, 8, 16, 32],
        lams=[1e-1, 1e-2, 1e-3],
        cold_seeds=[1, 2, 3],
        out=out / "depth-squared",
        **opts,
    )
    print(sq.table())
    for lam in (1e-1, 1e-2, 1e-3):
        b, lo, hi = _slope(sq, f"warm lam={lam:g}")
        rows = [
            r
            for r in sq.rows()
            if r["series"] == f"warm lam={lam:g}" and r["status"] == "converged"
        ]
        minima = [r["n_minima"] for r in rows]
        gaps = [r["gap_to_best"] for r in rows]
        print(
            f"  F2 squared lam={lam:g}: slope {b:.3f} [{lo:.3f}, {hi:.3f}]; minima "
            f"met per T {minima}; warm path above the best start by "
            + ", ".join(f"{g:.1e}" for g in gaps)
        )


def part_f3(out, opts):
    horizons = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    for loss in ("logistic", "squared"):
        s = st.depth_study(
            _with(SPHERES, problem__loss=loss),
            horizons,
            out=out / f"f3-{loss}",
            **opts,
        )
        rows = [r for r in s.rows() if r["series"] == "warm"]
        print(f"  F3 {loss}: T, ||v_T||, ||v_T - v_T'||, E")
        for r in rows:
            print(
                f"    {r['T']:>5g} {r['v_norm']:9.4f} {r['v_diff']:10.3e} "
                f"{r['risk']:.3e} {r['status']}"
            )
        fit = s.fit("v_norm", "warm")
        print(f"  F3 {loss}: ||v_T|| against log T, slope {fit['slope']:.3f}")
        fit = s.fit("v_diff", "warm")
        if fit:
            print(
                f"  F3 {loss}: ||v_T - v_T'|| against T, log-log slope "
                f"{fit['slope']:.3f}"
            )


def _turnpike(cfg, out, opts, seeds, horizons=(5, 10, 20, 40), **kw):
    s = st.turnpike_study(
        cfg,
        list(horizons),
        window=(0.5, 2.5),
        level=1e-2,
        seeds=seeds,
        out=out,
        **opts,
        **kw,
    )
    print(s.table())
    sm = s.summary
    best = [r for r in s.rows() if r["best"]]
    print(
        "  mu per T "
        + ", ".join(f"{r['mu']:.4f}" for r in best)
        + f"; spread {sm['mu_spread']:.1%}"
    )
    print(
        "  iterations per T "
        + ", ".join(f"{r['n_iter']} ({r['status']})" for r in best)
        + "; gradient norms "
        + ", ".join(f"{r['grad_norm']:.1e}" for r in best)
    )
    print(
        "  layers to R <= 1e-2 per T "
        + ", ".join(str(r["layers_to_level"]) for r in best)
        + f"; spread {sm['layers_spread']:.1%}"
    )
    print(
        "  optimal value per T "
        + ", ".join(f"{r['objective']:.5g}" for r in best)
        + "; plateau per T "
        + ", ".join(f"{r['plateau']:.3e}" for r in best)
    )
    print(
        f"  rank {sm['rank']} of {sm['rows']} state directions ({sm['columns']} "
        f"controls), sigma_min {sm['sigma_min']:.3e}"
    )
    return s


def _continued(cfg, source, horizons=(5, 10, 20, 40), window=(0.5, 2.5)):
    """The turnpike path of ``cfg`` started at the smallest horizon from the run file
    ``source`` (same grid) instead of a cold start, then warm-started as in the
    study (:func:`spacetime._studies.turnpike_controls`); prints one line per T."""
    import numpy as np

    from spacetime import _io
    from spacetime._core import flow
    from spacetime._fits import fit_decay
    from spacetime._studies import running_cost_along, turnpike_controls

    previous = _io.read_run(source)
    controls, nodes = previous["controls"], previous["time"]
    dt = cfg["model"]["T"] / cfg["model"]["n_steps"]
    for T in horizons:
        case = _with(cfg, model__T=float(T), model__n_steps=round(T / dt))
        _, model, problem = st.build(st.validate(case))
        start = turnpike_controls(controls, nodes, model.time.nodes)
        opt = case["optimizer"]
        res = st.solve(
            problem,
            problem.join(model.pack(start)),
            max_iter=opt["max_iter"],
            gtol=opt["gtol"],
            ftol=opt["ftol"],
        )
        ev = res.evaluate()
        theta = res.theta
        t = np.asarray(model.time.nodes)
        r = running_cost_along(problem, flow(model.core, theta, problem.x0))
        u = model.layer_norms(theta)
        fit = fit_decay(t[:-1], r[:-1] + u, window)
        below = np.flatnonzero(r <= 1e-2)
        middle = (t >= 0.25 * T) & (t <= 0.75 * T)
        print(
            f"  T = {T:g}: {res.status} after {res.n_iter} iterations (gradient "
            f"norm {ev['grad_norm']:.1e}), optimal value {ev['objective']:.6f}, mu "
            f"{fit.mu:.4f} [{fit.mu_low:.3f}, {fit.mu_high:.3f}], layers to "
            f"R <= 1e-2 {below[0] if below.size else 'never'}, plateau "
            f"{np.median(r[middle]):.2e}"
        )
        controls, nodes = res.controls, t


def part_turnpike(out, opts):
    seeds = [0, 1, 2, 3]
    print("  p = 1 (smoothing 1e-3)")
    p1 = _turnpike(TURNPIKE, out / "turnpike-p1", opts, seeds)
    print("  p = 2")
    p2 = _with(TURNPIKE, problem__tracking_p=2.0)
    _turnpike(p2, out / "turnpike-p2", opts, seeds)
    # every seed of p = 2 stops in the minimum where two samples stay off their
    # targets; started from the p = 1 solution it finds the turnpike minimum
    first = next(r for r in p1.rows() if r["best"])
    print(f"  p = 2 started at T = 5 from the p = 1 solution (seed {first['seed']})")
    _continued(p2, out / "turnpike-p1" / "cases" / f"{first['name']}.h5")


def part_turnpike_fail(out, opts):
    # measured with the depth study's warm start and at most 10000 iterations
    # (docs/studies.md says so); the turnpike warm start came later
    print("  N = 100, d = 3 (rank 12 < 300)")
    cfg = _with(
        TURNPIKE,
        data__n_samples=100,
        problem__tracking_p=2.0,
        optimizer__max_iter=10000,
    )
    _turnpike(cfg, out / "turnpike-n100", opts, [0, 1], warm="rescale")
    print("  N = 32, d = 64")
    cfg = _with(
        TURNPIKE,
        data__n_samples=32,
        model__width=64,
        model__init_scale=0.1,
        problem__tracking_p=2.0,
        optimizer__max_iter=1500,
    )
    _turnpike(
        cfg, out / "turnpike-n32-d64", opts, [0], horizons=(5, 10), warm="rescale"
    )


def _spacetime_config():
    return _with(
        SPHERES,
        model__kind="spacetime",
        model__width=0,
        spacetime__widths=[[0.0, 8]],
        spacetime__rule="midpoint",
    )


def part_spacetime(out, opts):
    s = st.depth_study(
        _spacetime_config(), [1, 2, 4, 8, 16, 32], out=out / "depth-spacetime", **opts
    )
    print(s.table())
    b, lo, hi = _slope(s, "warm")
    print(f"  space-time depth slope {b:.3f} [{lo:.3f}, {hi:.3f}]")


PARTS = {
    "rescaling": part_rescaling,
    "depth": part_depth,
    "f3": part_f3,
    "turnpike": part_turnpike,
    "turnpike_fail": part_turnpike_fail,
    "spacetime": part_spacetime,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="studies/report")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    opts = {"workers": args.workers, "progress": True}
    for name in args.parts:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        PARTS[name](out, opts)
        print(f"== {name}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
