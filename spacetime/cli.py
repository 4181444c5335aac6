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


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
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
            "With no CONFIG, train the built-in default: an inside-field neural ODE "
            "on the bundled handwritten digits. Ctrl-C (once) or --max-time stop "
            "the optimiser cleanly and save the current iterate marked as "
            "interrupted; --resume continues such a run."
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
        type=float,
        metavar="SECONDS",
        help="stop the optimiser after this wall time and save",
    )
    run.add_argument(
        "--max-iter",
        type=int,
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
        type=int,
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
        type=int,
        default=8,
        metavar="N",
        help="number of random directions (default 8)",
    )
    chk.add_argument(
        "--step", type=float, default=1e-4, help="finite-difference step (default 1e-4)"
    )
    chk.add_argument("--seed", type=int, default=0, help="seed of point and directions")
    chk.add_argument(
        "--tol",
        type=float,
        default=1e-6,
        help="largest acceptable relative error (default 1e-6)",
    )
    chk.add_argument(
        "--max-samples",
        type=int,
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
    return top


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
        from ._config import defaults, dump

        cfg = defaults()
        return cfg, dump(cfg)
    return load_config(path)


def _cmd_run(args) -> int:
    from ._run import train

    config, text = (None, None) if args.resume else _config_from(args.config)
    if args.resume and args.config:
        raise SpacetimeError(
            "give either a CONFIG or --resume FILE, not both: a resumed run keeps "
            "the config stored in its file"
        )
    if args.threads is not None and config is not None:
        config["threads"] = args.threads
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
    return 0


def _cmd_config(args) -> int:
    from ._config import defaults, dump

    sys.stdout.write(dump(defaults(), comments=args.comments))
    return 0


def _cmd_check_gradient(args) -> int:
    from ._gradcheck import check_gradient
    from ._run import build

    config, _ = _config_from(args.config)
    if args.max_samples:
        current = config["data"]["max_samples"]
        config["data"]["max_samples"] = min(
            current or args.max_samples, args.max_samples
        )
    _, _, problem = build(config)
    check = check_gradient(
        problem, n_directions=args.directions, step=args.step, seed=args.seed
    )
    if not args.quiet:
        print(check)
        for a, n in zip(check.analytic, check.numeric, strict=True):
            print(f"  gradient {a: .12e}   finite difference {n: .12e}")
    return 0 if check.worst <= args.tol else 1


def _cmd_info(args) -> int:
    from ._run import load_run

    run = load_run(args.file)
    m = run.model
    r = run.results
    print(f"file            {run.path}")
    print(f"status          {run.status} ({run.optimizer.get('message', '')})")
    print(
        f"model           {m.field} field, {m.activation}, width {m.width}, "
        f"{m.n_steps} {m.scheme} steps on [0, {m.T:g}]"
    )
    print(f"objective       {r['objective']:.6g}")
    print(f"training loss   {r['risk']:.6g}")
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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "run": _cmd_run,
        "config": _cmd_config,
        "check-gradient": _cmd_check_gradient,
        "info": _cmd_info,
    }
    try:
        return commands[args.command](args)
    except TrainingDiverged as err:
        print(f"spacetime: training diverged: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (SpacetimeError, grids.GridError) as err:
        print(f"spacetime: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("spacetime: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
