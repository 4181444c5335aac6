"""The ``spacetime`` command: parses arguments and calls the public API."""

import argparse
import logging
import math
import sys

import grids

from . import __version__
from ._errors import SpacetimeError, TrainingDiverged

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, exit 2."""

    def error(self, message):
        self.exit(
            EXIT_BAD_INPUT,
            f"{self.prog}: error: {message}; see '{self.prog} --help'\n",
        )


def _number(kind, low, strict=False):
    """An argparse type: a finite ``kind`` (int or float) >= low (> low if strict)."""

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (strict and value == low):
            sign = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"must be {sign} {low}, got {text}")
        return value

    return convert


def _parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="spacetime",
        description=(
            "Train neural ODEs x' = f(x, u(t)) on [0, T] as optimal-control problems: "
            "exact discrete gradients, L-BFGS-B, one HDF5 file per run."
        ),
        epilog="Run 'spacetime COMMAND --help' for the options of a command.",
    )
    top.add_argument("--version", action="version", version=f"spacetime {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="train the model a TOML config describes and write one HDF5 run file",
        description=(
            "Train the model a TOML config describes and write one HDF5 run file. "
            "With no CONFIG, train the built-in default experiment: a space-time "
            "network on the bundled handwritten digits whose grid coarsens with "
            "depth (see 'spacetime config --default-experiment'). Ctrl-C (once) "
            "or --max-time stop the optimiser cleanly and save the current iterate, "
            "with status 'interrupted' or 'time_limit'; --resume continues such a "
            "run."
        ),
    )
    run.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="TOML file; keys not given take their defaults (see 'spacetime config')",
    )
    run.add_argument(
        "-o",
        "--out",
        metavar="PATH",
        help="output HDF5 file (default: save.path of the config)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run file at the output path",
    )
    run.add_argument(
        "--max-time",
        type=_number(float, 0),
        metavar="SECONDS",
        help="stop the optimiser after this wall time and save",
    )
    run.add_argument(
        "--max-iter",
        type=_number(int, 0),
        metavar="N",
        help="maximum optimiser iterations (overrides the config)",
    )
    run.add_argument(
        "--resume",
        metavar="FILE",
        help="continue a run file stopped by --max-time or Ctrl-C; "
        "writes back to FILE unless --out is given",
    )
    run.add_argument(
        "--no-trajectories",
        action="store_true",
        help="do not store the states x_i(t_k) (for big runs)",
    )
    run.add_argument(
        "--threads",
        type=_number(int, 0),
        metavar="N",
        help="threads for the kernels (default: config 'threads', 0 = all cores)",
    )
    _add_verbosity(run)

    cfg = sub.add_parser(
        "config",
        help="print the default configuration as TOML",
        description="Print the default configuration as TOML, to copy and edit.",
    )
    cfg.add_argument(
        "--comments", action="store_true", help="describe each key in a comment"
    )
    cfg.add_argument(
        "--default-experiment",
        action="store_true",
        help="print instead the config 'spacetime run' uses when given none",
    )

    chk = sub.add_parser(
        "check-gradient",
        help="compare the gradient with finite differences on a config's problem",
        description=(
            "Build the problem a config describes and compare its exact gradient "
            "with fourth-order central finite differences along random directions, "
            "at a seeded random point. Exit status 1 if the worst relative error "
            "exceeds --tol."
        ),
    )
    chk.add_argument("config", nargs="?", metavar="CONFIG")
    chk.add_argument(
        "--directions",
        type=_number(int, 1),
        default=8,
        metavar="N",
        help="number of random directions (default 8)",
    )
    chk.add_argument(
        "--step",
        type=_number(float, 0, strict=True),
        default=1e-4, help="finite-difference step (default 1e-4)"
    )
    chk.add_argument(
        "--seed",
        type=_number(int, 0),
        default=0,
        help="seed of point and directions",
    )
    chk.add_argument(
        "--tol",
        type=_number(float, 0),
        default=1e-6,
        help="largest acceptable relative error (default 1e-6)",
    )
    chk.add_argument(
        "--max-samples",
        type=_number(int, 0),
        default=200,
        metavar="N",
        help="use at most N training samples (default 200; 0 = all)",
    )
    _add_verbosity(chk)

    info = sub.add_parser(
        "info",
        help="summarise a run file",
        description="Print the status, settings and headline numbers of a run file.",
    )
    info.add_argument("file", metavar="FILE")

    from ._plot import (
        CONVERGENCE_FIGURES,
        RUN_FIGURES,
        SIMULATION_FIGURES,
        SWEEP_FIGURES,
        all_figure_names,
    )

    kinds = (
        f"run files: {', '.join(RUN_FIGURES)}; study files: study; convergence "
        f"studies: {', '.join(CONVERGENCE_FIGURES)}; sweep indexes: "
        f"{', '.join(SWEEP_FIGURES)}; simulations: {', '.join(SIMULATION_FIGURES)}"
    )
    plot = sub.add_parser(
        "plot",
        help="draw the figures of a run, study, sweep or simulation file",
        description=(
            "Draw the figures of a file into <out>/<stem>-<figure>.<format>, "
            f"chosen by the kind of file ({kinds}). A sweep folder stands for its "
            "index.h5; the decision regions need two input features."
        ),
    )
    plot.add_argument("file", metavar="FILE")
    plot.add_argument(
        "--what",
        nargs="+",
        choices=all_figure_names(),
        metavar="NAME",
        help=f"figures to draw (default: all the file can have); {kinds}",
    )
    plot.add_argument(
        "--out", metavar="DIR", help="folder of the images (default: the file's)"
    )
    plot.add_argument("--format", choices=("png", "pdf"), default="png")
    plot.add_argument(
        "--layers",
        nargs="+",
        type=int,
        metavar="K",
        help="decision regions after K layers, 0 .. L; negative counts from L "
        "(default: 0, L/2, L)",
    )
    plot.add_argument("--dpi", type=int, default=90, help="PNG resolution")

    rep = sub.add_parser(
        "report",
        help="write a Markdown report of a run, study, sweep or simulation file",
        description=(
            "Write <out>/<stem>.md: the headline numbers, the configuration, the "
            "provenance and the figures (PNG files next to it, linked relatively), "
            "for a run, study, convergence-study, sweep-index (or sweep folder) or "
            "simulation file."
        ),
    )
    rep.add_argument("file", metavar="FILE")
    rep.add_argument(
        "--out", metavar="DIR", help="folder of the report (default: the file's)"
    )
    swp = sub.add_parser(
        "sweep",
        help="train every case of a grid of configs, in parallel and resumable",
        description=(
            "Train every case of the grid in the config's [sweep] table, one HDF5 "
            "file per case, with an index (index.h5, summary.csv) in the sweep "
            "folder. Runs again skip complete cases and resume stopped ones. "
            "Ctrl-C stops cleanly (exit 130); exit 1 if some case failed."
        ),
    )
    swp.add_argument(
        "config", metavar="CONFIG", help="TOML run config with a [sweep] table"
    )
    swp.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local worker processes (default: the number of cores)",
    )
    swp.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on this Dask cluster instead, e.g. tcp://127.0.0.1:8786",
    )
    swp.add_argument(
        "--out", metavar="DIR", help="sweep folder (default: sweep.out of the config)"
    )
    swp.add_argument(
        "--dry-run",
        action="store_true",
        help="list the cases and what a run would do with each; run nothing",
    )
    _add_verbosity(swp)

    sim = sub.add_parser(
        "simulate",
        help="solve a space-time network with prescribed kernels; no training",
        description=(
            "Solve the space-time network a config describes (model.kind = "
            "'spacetime') forward in time with the kernels, biases and initial "
            "states given as expressions in its [simulate] table, and write the "
            "solution at every time level to one HDF5 file (see docs/simulate.md)."
        ),
    )
    sim.add_argument(
        "config", metavar="CONFIG", help="TOML run config with a [simulate] table"
    )
    sim.add_argument(
        "-o", "--out", metavar="PATH", help="output HDF5 file (default: simulate.out)"
    )
    sim.add_argument(
        "--overwrite", action="store_true", help="replace an existing file there"
    )
    _add_verbosity(sim)

    study = sub.add_parser(
        "study",
        help="numerical studies: convergence of the schemes, and the large-time "
        "studies depth, lambda, rescaling, turnpike",
        description="Numerical studies of the discretisation and of large T.",
    )
    studies = study.add_subparsers(dest="study", metavar="STUDY", required=True)
    conv = studies.add_parser(
        "convergence",
        help="observed orders of the time schemes, forward and after training",
        description=(
            "Measure the observed order of each time scheme: the flow with smooth "
            "controls against a DOP853 reference as the step halves (controls at "
            "every stage time, or frozen per step at the left end or midpoint), "
            "and the rate at which the optimal value and controls of a trained "
            "problem settle as the layers double; and the gap between the exact "
            "discrete gradient and the continuous adjoint gradient. Writes "
            "convergence.h5, .csv, .md and three PNG figures to the output folder "
            "and prints the table (see docs/convergence.md)."
        ),
    )
    conv.add_argument(
        "-o",
        "--out",
        metavar="DIR",
        default="studies/convergence",
        help="output folder (default: studies/convergence)",
    )
    conv.add_argument(
        "--overwrite", action="store_true", help="replace existing files there"
    )
    conv.add_argument(
        "--fast",
        action="store_true",
        help="fewer refinements and a smaller trained problem (a quick check)",
    )
    conv.add_argument(
        "--schemes",
        default="euler,heun,midpoint,rk4",
        metavar="LIST",
        help="comma-separated schemes of the forward study (default: all four)",
    )
    conv.add_argument(
        "--fields",
        default="inside,bottleneck",
        metavar="LIST",
        help="comma-separated vector fields (default: inside,bottleneck)",
    )
    conv.add_argument(
        "--modes",
        default="stage,left,mid",
        metavar="LIST",
        help="control sampling: stage, left, mid (default: all three)",
    )
    conv.add_argument(
        "--refinements",
        type=_number(int, 2),
        metavar="N",
        help="number of step sizes, 8 steps doubled N - 1 times, 2 to 14 "
        "(default 7, with --fast 5)",
    )
    conv.add_argument(
        "--trained-schemes",
        default="euler,rk4",
        metavar="LIST",
        help="schemes of the trained study (default: euler,rk4)",
    )
    conv.add_argument(
        "--no-trained", action="store_true", help="skip the trained study"
    )
    conv.add_argument(
        "--no-adjoint",
        action="store_true",
        help="skip the gap between the discrete and the continuous gradient",
    )
    _add_verbosity(conv)
    _add_large_time_studies(studies)
    return top


def _add_large_time_studies(studies):
    """``study depth``, ``lambda``, ``rescaling`` and ``turnpike`` (docs/studies.md)."""
    specs = {
        "depth": "the same problem for growing horizons T: training error, its "
        "log-log slope, the rescaled controls v_T(s) = T u_T(Ts)",
        "lambda": "the same problem at its T for decreasing lam: training error "
        "and rescaled controls against lam",
        "rescaling": "check that horizon T with lam is horizon 1 with lam / T "
        "(objective and gradient); no training",
        "turnpike": "with a running cost: R(x(t)) and |u(t)| along t for several T "
        "at one step, the rate mu, the layers to a level, the rank diagnostic",
    }
    for name, text in specs.items():
        p = studies.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ". Writes the cases (one run "
            f"file each, resumable) and {name}.h5, .csv, .md, .png to --out; see "
            "docs/studies.md.",
        )
        p.add_argument("config", metavar="CONFIG", help="TOML run config")
        p.add_argument(
            "--out", "-o", metavar="DIR", help="study folder (default: "
            f"studies/<config stem>-{name})"
        )
        if name == "lambda":
            p.add_argument("--lam", type=_number(float, 0, strict=True), nargs="+",
                           default=[1e-1, 1e-2, 1e-3, 1e-4], metavar="LAM",
                           help="weights, run in decreasing order")
        else:
            default = {"depth": [1, 2, 4, 8, 16, 32], "turnpike": [5, 10, 20, 40]}
            p.add_argument("--T", type=_number(float, 0, strict=True), nargs="+",
                           default=default.get(name), metavar="T",
                           help="horizons (rescaling default: the config's T and "
                           "10 T)" if name == "rescaling" else "horizons")
        if name == "depth":
            p.add_argument("--fixed-dt", action="store_true",
                           help="keep the step dt and use L = T / dt layers "
                           "(default: the config's number of layers)")
            p.add_argument("--lam", type=_number(float, 0), nargs="+",
                           metavar="LAM", help="one path per weight (default: the "
                           "config's)")
        if name in ("depth", "turnpike"):
            p.add_argument("--dt", type=_number(float, 0, strict=True),
                           help="the step (default: the config's T / n_steps)")
        if name in ("depth", "lambda", "turnpike"):
            p.add_argument("--cold", action="store_true",
                           help="cold starts instead of warm starts along the path")
        if name in ("depth", "lambda"):
            p.add_argument("--cold-seeds", type=_number(int, 0), nargs="+",
                           default=[], metavar="SEED",
                           help="also train every case from these cold starts, to "
                           "count the local minima met")
        if name == "turnpike":
            p.add_argument("--window", type=_number(float, 0), nargs=2,
                           metavar=("START", "END"),
                           help="fit window of t (default: [0.1, 0.5] times the "
                           "smallest T)")
            p.add_argument("--level", type=_number(float, 0, strict=True),
                           default=1e-2, help="running-cost level (default 1e-2)")
            p.add_argument("--seeds", type=_number(int, 0), nargs="+",
                           metavar="SEED", help="initial seeds: one path of "
                           "horizons per seed (warm-started along T unless "
                           "--cold); per T the lowest objective is kept "
                           "(default: the config's seed)")
        if name == "rescaling":
            p.add_argument("--points", type=_number(int, 1), default=3,
                           help="random control sets per T (default 3)")
            p.add_argument("--scale", type=_number(float, 0, strict=True),
                           default=1.0, help="size of the random controls")
            p.add_argument("--tol", type=_number(float, 0), default=1e-12,
                           help="exit status 1 above this relative discrepancy "
                           "(default 1e-12)")
        else:
            p.add_argument("--workers", type=_number(int, 1), metavar="N",
                           help="local worker processes (default: the cores)")
            p.add_argument("--scheduler", metavar="ADDRESS",
                           help="run the cases on this Dask cluster instead")
        _add_verbosity(p)


def _add_verbosity(p):
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no summary"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log progress at INFO level"
    )


def _config_from(path):
    from ._config import load_config

    if path is None:
        from ._config import default_experiment

        return default_experiment()
    return load_config(path)


def _cmd_run(args) -> int:
    from ._run import train

    config, text = (None, None) if args.resume else _config_from(args.config)
    if args.resume and args.config:
        raise SpacetimeError(
            "give either a CONFIG or --resume FILE, not both: a resumed run keeps "
            "the config stored in its file"
        )
    progress = not args.quiet and sys.stderr.isatty()
    run = train(
        config,
        config_text=text,
        out=args.out,
        overwrite=True if args.overwrite else None,
        max_time=args.max_time,
        max_iter=args.max_iter,
        trajectories=False if args.no_trajectories else None,
        resume=args.resume,
        progress=progress,
        threads=args.threads,
    )
    if not args.quiet:
        print(run.summary())
    if run.result.status == "interrupted":
        print(
            f"interrupted: resume with 'spacetime run --resume {run.path}'",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if run.result.status == "time_limit":
        print(
            f"time limit reached: resume with 'spacetime run --resume {run.path}'",
            file=sys.stderr,
        )
    if run.result.status == "failed":
        print(
            f"note: the optimiser stopped before converging ({run.result.message}); "
            "the last iterate was saved: try a smaller model.init_scale or T, or "
            "another optimizer.method",
            file=sys.stderr,
        )
    return 0


def _cmd_config(args) -> int:
    from ._config import DEFAULT_EXPERIMENT, defaults, dump

    if args.default_experiment:
        sys.stdout.write(DEFAULT_EXPERIMENT)
    else:
        sys.stdout.write(dump(defaults(), comments=args.comments))
    return 0


def _cmd_check_gradient(args) -> int:
    from ._gradcheck import check_gradient
    from ._run import build, check_memory, load_data

    config, _ = _config_from(args.config)
    if args.max_samples:
        current = config["data"]["max_samples"]
        config["data"]["max_samples"] = min(
            current or args.max_samples, args.max_samples
        )
    dataset = load_data(config)
    check_memory(config, dataset.n_train, dataset.n_test, dataset.n_features)
    _, _, problem = build(config, dataset)
    check = check_gradient(
        problem, n_directions=args.directions, step=args.step, seed=args.seed
    )
    if not args.quiet:
        print(check)
        for a, n in zip(check.analytic, check.numeric, strict=True):
            print(f"  gradient {a: .12e}   finite difference {n: .12e}")
    return 0 if check.worst <= args.tol else 1


def _cmd_info(args) -> int:
    from ._run import describe_model, load_run

    run = load_run(args.file)
    r = run.results
    print(f"file            {run.path}")
    print(f"status          {run.status} ({run.optimizer.get('message', '')})")
    for label, text in describe_model(run.model):
        print(f"{label:<15} {text}")
    print(f"objective       {r['objective']:.6g}")
    print(f"training loss   {r['risk']:.6g}")
    # NaN without a test set, and missing in files written before it was stored
    if not math.isnan(r.get("test_risk", math.nan)):
        print(f"test loss       {r['test_risk']:.6g}")
    for key, label in (
        ("train_accuracy", "train accuracy"),
        ("test_accuracy", "test accuracy"),
    ):
        if not math.isnan(r.get(key, math.nan)):
            print(f"{label:<16}{r[key]:.4f}")
    print(f"iterations      {run.optimizer['n_iter']}")
    print(
        f"created         {run.provenance.get('date', '?')} "
        f"(spacetime {run.provenance.get('spacetime', '?')}, "
        f"revision {run.provenance.get('git_revision') or 'unknown'})"
    )
    return 0


def _cmd_plot(args) -> int:
    from ._plot import save_figures

    paths = save_figures(
        args.file,
        args.out,
        args.what,
        fmt=args.format,
        layers=args.layers,
        dpi=args.dpi,
        on_note=_note,
    )
    for path in paths:
        print(path)
    return 0


def _note(text):
    print(f"spacetime: note: {text}", file=sys.stderr)


def _cmd_report(args) -> int:
    from ._report import write_report

    print(write_report(args.file, args.out, on_note=_note))
    return 0


def _cmd_sweep(args) -> int:
    from ._sweep import plan_sweep, run_sweep

    if args.workers is not None and args.workers < 1:
        raise SpacetimeError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise SpacetimeError(
            "give --workers or --scheduler, not both: a Dask cluster has its own "
            "workers"
        )
    if args.dry_run:
        print(plan_sweep(args.config, out=args.out).describe())
        return 0
    result = run_sweep(
        args.config,
        workers=args.workers,
        progress=not args.quiet,
        out=args.out,
        scheduler=args.scheduler,
    )
    if not args.quiet:
        print(result.summary())
    if result.interrupted:
        print(
            f"interrupted: run 'spacetime sweep {args.config}' again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0 if result.complete else 1


def _cmd_simulate(args) -> int:
    from ._simulate import run_simulation

    config, text = _config_from(args.config)
    sim = run_simulation(
        config,
        config_text=text,
        out=args.out,
        overwrite=True if args.overwrite else None,
    )
    if not args.quiet:
        print(sim.summary())
    return 0


def _names(text):
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _cmd_large_time_study(args) -> int:
    from . import _studies

    name = args.study
    if getattr(args, "workers", None) is not None and args.scheduler:
        raise SpacetimeError("give --workers or --scheduler, not both")
    common = {"out": args.out}
    if name != "rescaling":
        common.update(
            workers=args.workers, scheduler=args.scheduler, progress=not args.quiet
        )
    if name == "depth":
        study = _studies.depth_study(
            args.config, args.T, fixed_dt=args.fixed_dt, dt=args.dt,
            warm=not args.cold, lams=args.lam, cold_seeds=args.cold_seeds, **common
        )
    elif name == "lambda":
        study = _studies.lambda_study(
            args.config, args.lam, warm=not args.cold, cold_seeds=args.cold_seeds,
            **common,
        )
    elif name == "turnpike":
        study = _studies.turnpike_study(
            args.config, args.T, dt=args.dt, window=args.window, level=args.level,
            seeds=args.seeds, warm=not args.cold, **common,
        )
    else:
        study = _studies.rescaling_study(
            args.config, args.T, n_points=args.points, scale=args.scale, **common
        )
    if not args.quiet:
        print(study.table(), end="")
        print(f"\nwritten to {study.path.parent}/: "
              + ", ".join(sorted(p.name for p in study.paths.values())))
    if study.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if name == "rescaling":
        worst = max(study.summary["max_objective_discrepancy"],
                    study.summary["max_gradient_discrepancy"])
        return 0 if worst <= args.tol else 1
    return 0 if study.complete else 1


def _cmd_study(args) -> int:
    from ._convergence import convergence_study

    if args.study != "convergence":
        return _cmd_large_time_study(args)

    study = convergence_study(
        args.out,
        schemes=_names(args.schemes),
        fields=_names(args.fields),
        modes=_names(args.modes),
        n_refinements=args.refinements,
        trained=not args.no_trained,
        trained_schemes=_names(args.trained_schemes),
        adjoint=not args.no_adjoint,
        fast=args.fast,
        overwrite=args.overwrite,
    )
    if not args.quiet:
        print(study.table(), end="")
        print(f"\nwritten to {args.out}/: " + ", ".join(sorted(study.paths)))
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "run": _cmd_run,
        "config": _cmd_config,
        "check-gradient": _cmd_check_gradient,
        "info": _cmd_info,
        "plot": _cmd_plot,
        "report": _cmd_report,
        "sweep": _cmd_sweep,
        "simulate": _cmd_simulate,
        "study": _cmd_study,
    }
    try:
        return commands[args.command](args)
    except TrainingDiverged as err:
        print(f"spacetime: training diverged: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (SpacetimeError, grids.GridError) as err:
        print(f"spacetime: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        advice = {
            "plot": "draw fewer figures (--what) or use a smaller --dpi",
            "report": "draw the figures one at a time with 'spacetime plot FILE "
            "--what NAME'",
        }.get(
            args.command,
            "use fewer layers, a smaller width or fewer samples (data.max_samples)",
        )
        print(
            f"spacetime: error: out of memory: {advice}; nothing was written",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("spacetime: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
