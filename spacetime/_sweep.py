"""Sweeps: many training cases from one config, run in parallel and resumable.

A sweep config is a run config (see ``spacetime config``) with one more table,
``[sweep]``: a Cartesian ``grid`` over dotted keys of the run config, optionally a
``chain`` key along which cases warm-start from their predecessor, and the ``out``
folder. Each case is one call of :func:`spacetime.train` (or, for a warm start, of
the same steps with a given starting point) on the case's own config, and writes one
HDF5 run file atomically, named by a readable prefix and a hash of its canonical
config. The sweep keeps an index of every case (``index.h5`` and ``summary.csv``),
rewritten atomically as cases finish, and skips complete cases when run again.

Cases run on any :class:`concurrent.futures.Executor`: a local process pool by default,
or a Dask cluster (``client.get_executor()``). Workers must see the sweep folder (one
machine, or a shared file system), since each case writes its file there.
"""

import collections
import concurrent.futures as cf
import copy
import csv
import datetime
import difflib
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

import grids

from . import _io
from ._config import SCHEMA, dump, validate
from ._errors import ConfigError, RunFileError, SpacetimeError

log = logging.getLogger(__name__)

INDEX_FORMAT = "spacetime-sweep"
INDEX_FORMAT_VERSION = 1

#: Run-file statuses of a finished case: it is not run again.
COMPLETE = ("converged", "max_iter", "stopped")
#: Run-file statuses of a case stopped early: it is resumed from its iterate.
RESUMABLE = ("interrupted", "time_limit")

# Keys that say where, how fast or how long a case runs, not what it computes: they
# are not part of a case's hash and cannot be swept. (A case stopped by its time
# limit is resumed, so the limit changes when a result arrives, not the result.)
_NOT_HASHED = ("threads", "save.path", "save.overwrite", "optimizer.max_time")
# Keys that change the number of parameters: a chain along them has no warm start.
_NOT_CHAINABLE = (
    "model.width",
    "model.hidden",
    "model.n_steps",
    "model.field",
    "model.kind",
    "spacetime.widths",
)
_SWEEP_KEYS = {
    "grid": "table of dotted run-config keys, each with a list of values",
    "chain": "one grid key along which cases warm-start from their predecessor",
    "warm_start": 'how a chained case starts: "rescale" (default) or "turnpike"',
    "out": "folder of the case files and the index",
}
# How a chained case is started from its predecessor's solution (_train_warm):
# "rescale" scales the controls by T1 / T2 on the same number of layers (the same
# flow for a homogeneous field); "turnpike" keeps the approach and exit arcs at
# their absolute times and holds the middle (_studies.turnpike_controls).
WARM_START_RULES = ("rescale", "turnpike")
_HEADLINE = (
    "objective",
    "risk",
    "test_risk",
    "train_accuracy",
    "test_accuracy",
    "n_iter",
    "wall_time",
)


def _dotted_keys() -> list[str]:
    keys = []
    for section, names in SCHEMA.items():
        for name in names:
            keys.append(f"{section}.{name}" if section else name)
    return keys


# ---------------------------------------------------------------------------
# The plan: from a sweep config to a list of cases


@dataclass(frozen=True)
class Case:
    """One training case of a sweep.

    Attributes
    ----------
    index : int
        Position in the sweep (the Cartesian product, last grid key fastest).
    name : str
        File stem: the swept values and the hash, e.g. ``T=2_lam=0.01-1a2b3c4d``.
    hash : str
        Eight hex digits of the SHA-256 of the case's canonical config (and, in a
        chain, of its predecessor's hash).
    values : dict
        The swept keys and this case's (validated) values.
    config : dict
        The complete, validated run config of the case.
    previous : int or None
        Index of the chain predecessor this case warm-starts from.
    """

    index: int
    name: str
    hash: str
    values: dict
    config: dict
    previous: int | None = None

    @property
    def file(self) -> str:
        """The case's run-file name inside the sweep folder."""
        return self.name + ".h5"


@dataclass
class SweepPlan:
    """The cases a sweep config describes, before anything runs.

    Attributes
    ----------
    cases : list of Case
    keys : list of str
        The swept dotted keys, in the order of the grid.
    chain : str or None
        The chain key.
    out : Path
        The sweep folder (absolute).
    text : str
        The sweep config as given (TOML text, or JSON of a dictionary).
    warm_start : str
        How a chained case starts from its predecessor (:data:`WARM_START_RULES`).
    """

    cases: list
    keys: list
    chain: str | None
    out: Path
    text: str
    warm_start: str = "rescale"

    def describe(self) -> str:
        """One line per case: its file, what a run would do, its warm start."""
        lines = [f"{len(self.cases)} cases in {self.out}"]
        if self.chain:
            lines[0] += f", chained along {self.chain}"
        for case in self.cases:
            state = _file_state(self.out / case.file, case.hash)[0]
            action = {"complete": "complete", "resume": "resume"}.get(state, "run")
            line = f"  {action:<9} {case.file}"
            if case.previous is not None:
                line += f"  (warm start from {self.cases[case.previous].name})"
            lines.append(line)
        return "\n".join(lines)


def _read_sweep_config(config) -> tuple[dict, str, str]:
    """The raw sweep config, its text and a default folder name."""
    if isinstance(config, dict):
        return copy.deepcopy(config), json.dumps(config, sort_keys=True), "sweep"
    path = Path(config)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"sweep config '{path}' does not exist: check the path"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"sweep config '{path}' is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read sweep config '{path}': {err}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"sweep config '{path}' is not valid TOML: {err}") from None
    return raw, text, path.stem


def _flatten(table: dict, prefix: str = "") -> dict:
    """``{"model": {"T": [..]}}`` and ``{"model.T": [..]}`` alike, as dotted keys."""
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_sweep_table(table) -> dict:
    """Check a ``[sweep]`` table and fill in its defaults.

    Parameters
    ----------
    table : dict
        The ``[sweep]`` table as read from TOML: ``grid`` (dotted key -> list of
        values), optionally ``chain`` (one grid key), ``warm_start`` (with a chain)
        and ``out`` (a folder).

    Returns
    -------
    dict
        ``grid`` (an ordered dict of dotted key -> list), ``chain`` (str or None),
        ``out`` (str or None) and ``warm_start`` (one of :data:`WARM_START_RULES`).

    Raises
    ------
    ConfigError
        For an unknown key (with the closest valid one), an empty or non-list value
        list, repeated values, a key that cannot be swept, or a chain key that is not
        swept or changes the number of parameters.
    """
    if not isinstance(table, dict):
        raise ConfigError("[sweep] must be a table with grid = { ... }")
    for key in table:
        if key not in _SWEEP_KEYS:
            close = difflib.get_close_matches(key, list(_SWEEP_KEYS), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown key 'sweep.{key}'{hint} (valid here: "
                + ", ".join(_SWEEP_KEYS)
                + ")"
            )
    grid_raw = table.get("grid", {})
    if not isinstance(grid_raw, dict):
        raise ConfigError(
            'sweep.grid must be a table, e.g. grid = { "model.T" = [1, 2, 4] }'
        )
    valid = _dotted_keys()
    grid = {}
    for key, values in _flatten(grid_raw).items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"sweep.grid has unknown key '{key}': {hint}see 'spacetime config' "
                "for the keys"
            )
        if key in _NOT_HASHED:
            raise ConfigError(
                f"sweep.grid cannot sweep '{key}': the sweep sets it for each case; "
                "remove it from the grid"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"sweep.grid key '{key}' must be a non-empty list of values, got "
                f'{values!r}: write e.g. "{key}" = [{_toml_scalar(values)}]'
            )
        seen = []
        for v in values:
            if v in seen and type(v) is type(seen[seen.index(v)]):
                raise ConfigError(
                    f"sweep.grid key '{key}' lists the value {v!r} twice: remove the "
                    "repeat"
                )
            seen.append(v)
        grid[key] = list(values)
    chain = table.get("chain")
    if chain is not None:
        if not isinstance(chain, str):
            raise ConfigError(
                f"sweep.chain must be a grid key as a string, got {chain!r}"
            )
        if chain not in grid:
            close = difflib.get_close_matches(chain, list(grid), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"sweep.chain '{chain}' is not a key of sweep.grid: {hint}chain along "
                "one of " + (", ".join(grid) or "the grid keys (the grid is empty)")
            )
        if chain in _NOT_CHAINABLE:
            raise ConfigError(
                f"sweep.chain cannot be '{chain}': it changes the number of "
                "parameters, so a case cannot start from its predecessor's solution; "
                "chain along model.T, problem.lam or a seed instead"
            )
    out = table.get("out")
    if out is not None and (not isinstance(out, str) or not out.strip()):
        raise ConfigError(f"sweep.out must be a folder name, got {out!r}")
    warm = table.get("warm_start", "rescale")
    if warm not in WARM_START_RULES:
        raise ConfigError(
            f"sweep.warm_start must be one of {', '.join(map(repr, WARM_START_RULES))},"
            f" got {warm!r}"
        )
    if "warm_start" in table and chain is None:
        raise ConfigError(
            "sweep.warm_start needs sweep.chain (the key along which cases start "
            "from their predecessor): add chain = \"model.T\", or remove warm_start"
        )
    return {"grid": grid, "chain": chain, "out": out, "warm_start": warm}


def _toml_scalar(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _set_dotted(raw: dict, key: str, value) -> None:
    if "." not in key:
        raw[key] = value
        return
    section, name = key.split(".", 1)
    target = raw.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"config section [{section}] must be a table of keys")
    target[name] = copy.deepcopy(value)


def _get_dotted(config: dict, key: str):
    if "." not in key:
        return config[key]
    section, name = key.split(".", 1)
    return config[section][name]


def canonical_config(config: dict) -> dict:
    """A validated run config without the keys that do not change the result.

    ``threads``, ``save.path``, ``save.overwrite`` and ``optimizer.max_time`` say
    where, how fast or for how long at a time a case runs (the kernels give the same
    numbers for any thread count, and a case stopped at its time limit is resumed),
    so they are left out of the case hash.
    """
    out = copy.deepcopy(config)
    for key in _NOT_HASHED:
        if "." in key:
            section, name = key.split(".", 1)
            out.get(section, {}).pop(name, None)
        else:
            out.pop(key, None)
    return out


def case_hash(config: dict, warm_start: str | None = None) -> str:
    """Eight hex digits of the SHA-256 of a case's canonical config.

    Parameters
    ----------
    config : dict
        A validated run config.
    warm_start : str, optional
        The hash of the chain predecessor the case starts from.

    Notes
    -----
    The hashed text is ``json.dumps({"config": canonical_config(config)})`` with
    sorted keys (plus ``"warm_start"`` in a chain), so it does not depend on the
    order of keys in the TOML file, and ``T = 1`` and ``T = 1.0`` hash alike.
    """
    payload = {"config": canonical_config(config)}
    if warm_start is not None:
        payload["warm_start"] = warm_start
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = f"{v:g}"
    elif (
        isinstance(v, list)
        and len(v) > 4
        and all(isinstance(x, int | float) for x in v)
    ):  # a long list such as model.time_nodes: its ends and its length
        text = f"{_fmt_value(v[0])}..{_fmt_value(v[-1])}x{len(v) - 1}"
    elif isinstance(v, list):
        text = "-".join(_fmt_value(x) for x in v) or "none"
    else:
        text = str(v)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text) or "none"


def _labels(keys) -> dict:
    """Short labels of the swept keys: the last part, or all of it when ambiguous."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {
        k: (short if last.count(short) == 1 else k)
        for k, short in zip(keys, last, strict=True)
    }


def _case_prefix(values: dict, labels: dict) -> str:
    if not values:
        return "case"
    text = "_".join(f"{labels[k]}={_fmt_value(v)}" for k, v in values.items())
    return text[:100]


def plan_sweep(config, out=None) -> SweepPlan:
    """The cases of a sweep config, validated, with their names and hashes.

    Parameters
    ----------
    config : path-like or dict
        A TOML sweep config file, or the same as nested dictionaries: a run config
        plus a ``sweep`` table (see :func:`parse_sweep_table`).
    out : path-like, optional
        The sweep folder; default ``sweep.out`` of the config, else
        ``sweeps/<config file name>``.

    Returns
    -------
    SweepPlan

    Raises
    ------
    ConfigError
        When the sweep table or any case's config is invalid; nothing is written.
    """
    raw, text, stem = _read_sweep_config(config)
    if "sweep" not in raw:
        raise ConfigError(
            'the config has no [sweep] table: add one with grid = { "model.T" = '
            "[1, 2] }, or train a single config with 'spacetime run'"
        )
    table = parse_sweep_table(raw.pop("sweep"))
    validate(raw)  # the run config alone must be valid
    grid, chain, rule = table["grid"], table["chain"], table["warm_start"]
    keys = list(grid)
    labels = _labels(keys)
    folder = Path(out if out is not None else table["out"] or f"sweeps/{stem}")
    folder = folder.expanduser().absolute()

    combos = list(itertools.product(*(grid[k] for k in keys)))
    configs, values = [], []
    for combo in combos:
        case_raw = copy.deepcopy(raw)
        for key, value in zip(keys, combo, strict=True):
            _set_dotted(case_raw, key, value)
        cfg = validate(case_raw)
        configs.append(cfg)
        values.append({k: _get_dotted(cfg, k) for k in keys})

    # predecessors: same values of the other keys, the previous value of the chain
    previous = [None] * len(combos)
    if chain is not None:
        pos = keys.index(chain)
        by_rest = collections.defaultdict(list)
        for i, combo in enumerate(combos):
            by_rest[combo[:pos] + combo[pos + 1 :]].append(i)
        for members in by_rest.values():
            for a, b in itertools.pairwise(members):
                previous[b] = a

    if rule == "turnpike":
        _check_turnpike_steps(configs, values, previous)

    hashes = [None] * len(combos)

    def resolve(i):
        if hashes[i] is None:
            prev = previous[i]
            if prev is None:
                hashes[i] = case_hash(configs[i])
            else:  # the default rule hashes as before there were rules
                start = resolve(prev)
                if rule != "rescale":
                    start = f"{rule}:{start}"
                hashes[i] = case_hash(configs[i], start)
        return hashes[i]

    cases, seen = [], {}
    for i in range(len(combos)):
        h = resolve(i)
        name = f"{_case_prefix(values[i], labels)}-{h}"
        if h in seen:
            raise ConfigError(
                f"sweep cases {seen[h]} and {name} have the same configuration "
                "(two grid values that validate to the same value): remove one"
            )
        seen[h] = name
        cases.append(Case(i, name, h, values[i], configs[i], previous[i]))
    return SweepPlan(cases, keys, chain, folder, text, rule)


def _check_turnpike_steps(configs, values, previous) -> None:
    """Refuse a turnpike chain whose cases do not share one uniform time step.

    The turnpike warm start keeps controls at the same absolute times, which needs
    the same step on the predecessor's grid and the case's.
    """
    from ._run import time_grid
    from ._studies import one_uniform_step

    def steps(cfg):
        return np.diff(time_grid(cfg).nodes)

    for i, prev in enumerate(previous):
        if prev is None:
            continue
        if not one_uniform_step(
            time_grid(configs[prev]).nodes, time_grid(configs[i]).nodes
        ):
            raise ConfigError(
                "sweep.warm_start = 'turnpike' keeps the controls at the same "
                "absolute times, so chained cases need one uniform time step: "
                f"{values[prev]} has steps {_step_text(steps(configs[prev]))} and "
                f"{values[i]} {_step_text(steps(configs[i]))}; chain along "
                "model.time_nodes with the same step for every horizon, or use "
                "warm_start = 'rescale'"
            )


def _step_text(steps) -> str:
    lo, hi = float(np.min(steps)), float(np.max(steps))
    return f"{lo:g}" if hi - lo <= 1e-9 * hi else f"{lo:g} to {hi:g}"


# ---------------------------------------------------------------------------
# One case, run in a worker


_worker_interrupted = False


def _worker_init(threads: int, parent: int, ignore_interrupts: bool = False) -> None:
    """Initializer of local worker processes: threads, Ctrl-C, orphans.

    A Ctrl-C on the terminal reaches every process of the group. Inside the
    optimiser it stops the running case cleanly (its iterate is saved as
    "interrupted"); outside it only marks the worker so that it starts no new case.
    A worker whose sweep process ``parent`` has died (killed without cleaning up)
    ends itself within a second instead of waiting forever for work.
    """
    import numba

    if threads:
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    # the worker's cores belong to its Numba threads: BLAS threads of its own (the
    # default is one per core in every worker) would spin between calls and take them
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(1, user_api="blas")

    def _mark(signum, frame):
        global _worker_interrupted
        _worker_interrupted = True

    # a sweep that ignores Ctrl-C (started in the background, or under nohup) has
    # workers that ignore it too: they keep the disposition they started with
    if not ignore_interrupts:
        signal.signal(signal.SIGINT, _mark)

    def _watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=_watch, name="sweep-parent-watch", daemon=True).start()


@dataclass(frozen=True)
class _Task:
    """What a worker needs to run one case (plain values; picklable)."""

    name: str
    hash: str
    values: dict
    config: dict
    path: str
    mode: str  # "fresh" or "resume"
    chain: str | None = None
    warm_from: str | None = None
    warm_hash: str | None = None
    warm_rule: str = "rescale"


def warm_start_point(problem, controls: dict, p, p0, T_previous: float):
    """The starting point of a chained case from its predecessor's solution.

    Parameters
    ----------
    problem : Problem
        The case's problem.
    controls : dict
        The predecessor's controls by name (``w``, ``b``, and ``a`` for the
        bottleneck), each of shape (n_steps, ...).
    p : ndarray, shape (n_outputs, width)
    p0 : ndarray, shape (n_outputs,)
        The predecessor's output map (used when the map is trained).
    T_previous : float
        The predecessor's time horizon ``T1``.

    Returns
    -------
    ndarray, shape (n_variables,)

    Raises
    ------
    ConfigError
        When the predecessor's parameters have other shapes.

    Notes
    -----
    With the same number of layers ``L`` on ``[0, T2]``, every step is scaled by
    ``T2 / T1``: ``dt'_k = dt_k T2 / T1``. A field linear in (some of) its controls,
    ``f(x, c u) = c f(x, u)`` for ``c > 0``, keeps every stage and state of the
    scheme when those controls are scaled by ``T1 / T2``:

        dt'_k f(Y, u_k T1 / T2) = dt_k f(Y, u_k),

    so ``X'^k = X^k`` for every level ``k`` and the risk is unchanged (this is the
    rescaling ``v = T u`` of the continuous problem). The start is therefore
    ``u T1 / T2`` for the inside field (and the outside field with a positively
    homogeneous activation), and ``w T1 / T2`` with ``a, b`` unchanged for the
    bottleneck ``w act(a x + b)``. For the outside field with another activation no
    rescaling keeps the flow; ``u T1 / T2`` is used there too, which keeps it to first
    order in ``u``. When ``T`` does not change the controls are taken as they are.
    """
    model = problem.model
    theta = np.array(model.pack(controls), dtype=np.float64)
    factor = float(T_previous) / float(model.T)
    if factor != 1.0:
        if getattr(model, "field", "") == "bottleneck" and not model.homogeneous:
            parts = model.unpack(theta)
            layers = parts if isinstance(parts, list) else [parts]
            scaled = [
                {k: np.array(v) * (factor if k == "w" else 1.0) for k, v in d.items()}
                for d in layers
            ]
            theta = model.pack(scaled if isinstance(parts, list) else scaled[0])
        else:
            theta = theta * factor
    if not problem.train_output:
        return problem.join(theta)
    p = np.asarray(p, dtype=np.float64)
    p0 = np.asarray(p0, dtype=np.float64).ravel()
    if p.shape != problem.p.shape or p0.shape != problem.p0.shape:
        raise ConfigError(
            f"the predecessor's output map has shape {p.shape}, this case's "
            f"{problem.p.shape}: chain only along keys that keep the outputs"
        )
    return problem.join(theta, p, p0)


def _train_warm(config: dict, source: str, out: str, rule: str = "rescale"):
    """:func:`spacetime.train` started from a chain predecessor's solution.

    ``rule`` (:data:`WARM_START_RULES`) says how the start is made from it.
    """
    from ._run import (
        TrainedRun,
        _set_threads,
        build,
        check_memory,
        held_out_scores,
        load_data,
        save_run,
    )
    from ._solve import solve

    start = time.perf_counter()
    config = validate(config)
    text = dump(config)
    previous = _io.read_run(source)
    _set_threads(config["threads"])
    dataset = load_data(config)
    check_memory(config, dataset.n_train, dataset.n_test, dataset.n_features)
    dataset, model, problem = build(config, dataset)
    try:
        controls = previous["controls"]
        n_prev = len(controls) if isinstance(controls, list) else len(controls["b"])
        if rule == "turnpike":
            from ._studies import turnpike_controls, turnpike_hold

            controls = turnpike_controls(
                controls, previous["time"], model.time.nodes, turnpike_hold(model)
            )
            z0 = problem.join(model.pack(controls), previous["p"], previous["p0"])
        else:
            if n_prev != model.n_steps:  # another step count: resample in t / T
                from ._studies import resample_controls

                controls = resample_controls(
                    controls, previous["time"], model.time.nodes
                )
            z0 = warm_start_point(
                problem,
                controls,
                previous["p"],
                previous["p0"],
                float(previous["time"][-1]),
            )
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        hint = (
            "chain along model.time_nodes with one time step for every horizon"
            if rule == "turnpike"
            else "chain only along keys that keep the number of parameters, such "
            "as model.T or problem.lam"
        )
        raise ConfigError(
            f"cannot warm-start from '{Path(source).name}' ({err}): {hint}"
        ) from None
    opt = config["optimizer"]
    result = solve(
        problem,
        z0,
        method=opt["method"],
        max_iter=opt["max_iter"],
        gtol=opt["gtol"],
        ftol=opt["ftol"],
        max_time=opt["max_time"] or None,
        seed=config["seed"],
        init_scale=config["model"]["init_scale"],
    )
    train_eval = result.evaluate()
    test_pred, test_acc, test_risk = held_out_scores(result, dataset)
    run = TrainedRun(
        config,
        dataset,
        result,
        train_eval,
        test_acc,
        Path(out),
        time.perf_counter() - start,
        test_risk,
    )
    save_run(out, run, text, test_pred)
    return run


def _annotate(path, task: _Task) -> None:
    """Add the ``/sweep`` group (case hash, values, warm start) to a run file."""
    # no HDF5 file lock: the file is this case's own, and a lock can linger in a
    # child process forked by another thread (git in the provenance) that
    # inherited the descriptor of an earlier open
    with h5py.File(path, "r+", locking=False) as f:
        g = f.require_group("sweep")
        g.attrs["case_hash"] = task.hash
        g.attrs["case_name"] = task.name
        g.attrs["values"] = json.dumps(task.values, sort_keys=True)
        g.attrs["chain"] = task.chain or ""
        g.attrs["warm_start_from"] = Path(task.warm_from).name if task.warm_from else ""
        g.attrs["warm_start_hash"] = task.warm_hash or ""
        g.attrs["warm_start_rule"] = task.warm_rule if task.warm_from else ""


def _read_case(path) -> dict:
    """Status, case hash and headline numbers of a case file (light read).

    Raises
    ------
    RunFileError
        When the file is not a readable run file written by a sweep.
    """
    try:
        with h5py.File(path, "r", locking=False) as f:
            if f.attrs.get("format") != _io.FORMAT:
                raise RunFileError(f"'{path}' is not a spacetime run file")
            if f.attrs.get("format_version") != _io.FORMAT_VERSION:
                raise RunFileError(f"'{path}' has another run-file format version")
            res = f["results"].attrs
            out = {
                "status": str(f.attrs["status"]),
                "hash": str(f["sweep"].attrs["case_hash"]) if "sweep" in f else "",
                "objective": float(res["objective"]),
                "risk": float(res["risk"]),
                # NaN in files written before the test risk was stored
                "test_risk": float(res.get("test_risk", math.nan)),
                "train_accuracy": float(res["train_accuracy"]),
                "test_accuracy": float(res["test_accuracy"]),
                "wall_time": float(res["wall_time"]),
                "n_iter": int(f["optimizer"].attrs["n_iter"]),
            }
    except RunFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise RunFileError(f"'{path}' is damaged or incomplete ({err})") from None
    return out


def _file_state(path: Path, expected_hash: str):
    """What a case's existing file means for a new run of the sweep.

    Returns
    -------
    state : str
        ``complete`` (readable, finished, written for this very case), ``resume``
        (stopped early: interrupted or time limit), or ``new`` (missing, damaged,
        failed or written for another configuration: the case runs from the start).
    info : dict or None
        Status and headline numbers of the file, when it is the case's.
    """
    if not path.exists():
        return "new", None
    try:
        info = _read_case(path)
    except RunFileError as err:
        log.warning("case %s will be run again: %s", path.name, err)
        return "new", None
    if info["hash"] != expected_hash:
        log.warning("%s holds another configuration: it will be replaced", path)
        return "new", None
    if info["status"] in COMPLETE:
        return "complete", info
    if info["status"] in RESUMABLE:
        return "resume", info
    return "new", None


def _error_text(err: BaseException) -> str:
    from ._errors import TrainingDiverged

    if isinstance(err, TrainingDiverged):
        return f"training diverged: {err}"
    if isinstance(err, SpacetimeError | grids.GridError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def _run_case(task: _Task) -> dict:
    """Run one case and write its file; never raises for a failing case.

    Returns
    -------
    dict
        ``hash``, ``status`` (the run file's status, ``failed`` or ``pending``),
        ``error`` and the headline numbers read back from the written file.
    """
    from ._run import train

    if _worker_interrupted:
        return {"hash": task.hash, "status": "pending", "error": ""}
    final = Path(task.path)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        if task.mode == "resume":
            opt = task.config["optimizer"]
            train(
                resume=final,
                out=tmp,
                overwrite=True,
                max_time=opt["max_time"],
                max_iter=opt["max_iter"],
            )
        elif task.warm_from is not None:
            _train_warm(task.config, task.warm_from, tmp, task.warm_rule)
        else:
            train(task.config, out=tmp, overwrite=True)
        _annotate(tmp, task)
        os.replace(tmp, final)
        out = _read_case(final)
        out["error"] = ""
        out["hash"] = task.hash
        return out
    except Exception as err:
        if not isinstance(err, SpacetimeError | grids.GridError):
            log.exception("case %s failed", task.name)
        return {"hash": task.hash, "status": "failed", "error": _error_text(err)}
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def _warm_up(config: dict) -> None:
    """Compile (or load from Numba's disk cache) the kernels once, in this process.

    Workers started together then load the cached machine code instead of all
    compiling it at the same time.
    """
    from ._model import NeuralODE
    from ._problem import Problem

    m = config["model"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2))
    y = np.array([0, 1, 0, 1, 0, 1])
    model = NeuralODE(
        2,
        2,
        grids.time_grid(1.0, 1),
        field=m["field"],
        activation=m["activation"],
        scheme=m["scheme"],
        hidden=2 if m["field"] == "bottleneck" else 0,
        leaky_slope=m["leaky_slope"],
    )
    problem = Problem(model, x, y, loss="squared", lam=1e-3)
    z = problem.initial_point(0, 0.1)
    problem(z)
    problem.predict(z, x)
    model.flow(problem.split(z)[0], x)


# ---------------------------------------------------------------------------
# Records, the index and the result


@dataclass
class CaseRecord:
    """One row of the sweep index.

    Attributes
    ----------
    name, hash : str
        The case's file stem and hash.
    values : dict
        The swept keys and this case's values.
    file : str
        The case's file name, relative to the sweep folder.
    status : str
        A run-file status (``converged``, ``max_iter``, ``stopped``,
        ``time_limit``, ``interrupted``), or ``failed`` (an error; see ``error``),
        ``skipped`` (its chain predecessor did not complete), ``running`` or
        ``pending`` (not run yet).
    error : str
        One line saying why a case failed or was skipped; ``""`` otherwise.
    objective, risk, test_risk, train_accuracy, test_accuracy, wall_time : float
        The headline numbers of the case file (NaN without a file): ``risk`` is
        the training loss, ``test_risk`` the mean loss on the test set (NaN
        without a test set, and for case files written before it was stored).
    n_iter : int
        Optimiser iterations (-1 without a file).
    reused : bool
        The case was complete before this run of the sweep and was not run again.
    previous : str
        The chain predecessor's name, or ``""``.
    """

    name: str
    hash: str
    values: dict
    file: str
    status: str = "pending"
    error: str = ""
    objective: float = math.nan
    risk: float = math.nan
    test_risk: float = math.nan
    train_accuracy: float = math.nan
    test_accuracy: float = math.nan
    n_iter: int = -1
    wall_time: float = math.nan
    reused: bool = False
    previous: str = ""

    @property
    def complete(self) -> bool:
        return self.status in COMPLETE

    def _update(self, info: dict) -> None:
        self.status = info["status"]
        self.error = info.get("error", "")
        for key in _HEADLINE:
            if key in info:
                setattr(self, key, info[key])


@dataclass
class SweepResult:
    """The state of a sweep: one record per case, as in its index.

    Attributes
    ----------
    out : Path
        The sweep folder.
    keys : list of str
        The swept keys.
    chain : str or None
    cases : list of CaseRecord
    interrupted : bool
        The run was stopped (Ctrl-C or the ``on_case`` hook) before every case
        was run; running the sweep again resumes it.
    """

    out: Path
    keys: list
    chain: str | None
    cases: list = field(default_factory=list)
    interrupted: bool = False

    @property
    def index_path(self) -> Path:
        return self.out / "index.h5"

    @property
    def summary_path(self) -> Path:
        return self.out / "summary.csv"

    @property
    def complete(self) -> bool:
        """Whether every case is complete."""
        return all(c.complete for c in self.cases)

    @property
    def failed(self) -> list:
        return [c for c in self.cases if c.status == "failed"]

    def counts(self) -> dict:
        """Number of cases by status."""
        return dict(collections.Counter(c.status for c in self.cases))

    def __len__(self):
        return len(self.cases)

    def __iter__(self):
        return iter(self.cases)

    def __getitem__(self, i):
        return self.cases[i]

    def summary(self, max_rows: int = 40) -> str:
        """A table of the cases (or the counts alone for a long sweep)."""
        counts = self.counts()
        reused = sum(c.reused for c in self.cases)
        head = f"{len(self.cases)} cases: " + ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items())
        )
        if reused:
            head += f" ({reused} reused from an earlier run)"
        lines = [head]
        if len(self.cases) <= max_rows:
            width = max((len(c.name) for c in self.cases), default=4)
            lines.append(
                f"{'case':<{width}}  {'status':<11} {'objective':>11} "
                f"{'test loss':>9} {'test acc':>8} {'iter':>5} {'time':>7}"
            )
            for c in self.cases:
                lines.append(
                    f"{c.name:<{width}}  {c.status:<11} "
                    f"{_num(c.objective, '.5g'):>11} {_num(c.test_risk, '.4g'):>9} "
                    f"{_num(c.test_accuracy, '.4f'):>8} "
                    f"{c.n_iter if c.n_iter >= 0 else '-':>5} "
                    f"{_num(c.wall_time, '.2f', 's'):>7}"
                )
        for c in self.failed:
            lines.append(f"failed: {c.name}: {c.error}")
        lines.append(f"index: {self.index_path}")
        return "\n".join(lines)


def _num(value: float, spec: str, unit: str = "") -> str:
    """A number for the summary table, or '-' when it is missing (NaN)."""
    return "-" if math.isnan(value) else f"{value:{spec}}{unit}"


def _column(values: list):
    """Values of one swept key as an array HDF5 can store."""
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int8)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    texts = [v if isinstance(v, str) else json.dumps(v) for v in values]
    return np.array(texts, dtype=object)


def _csv_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return json.dumps(v)
    return str(v)


def _write_index(result: SweepResult, text: str, created: str) -> None:
    """Write ``index.h5`` and ``summary.csv`` (each atomically)."""
    cases = result.cases
    n = len(cases)
    strings = h5py.string_dtype()
    with _io.atomic_path(result.index_path) as tmp:
        with h5py.File(tmp, "w") as f:
            counts = result.counts()
            f.attrs["format"] = INDEX_FORMAT
            f.attrs["format_version"] = INDEX_FORMAT_VERSION
            f.attrs["created"] = created
            f.attrs["updated"] = _now()
            f.attrs["sweep_config"] = text
            f.attrs["keys"] = json.dumps(result.keys)
            f.attrs["chain"] = result.chain or ""
            f.attrs["n_cases"] = n
            f.attrs["n_complete"] = sum(c.complete for c in cases)
            f.attrs["n_failed"] = counts.get("failed", 0)
            f.attrs["interrupted"] = np.int8(result.interrupted)
            g = f.create_group("cases")
            scale = g.create_dataset("case", data=np.arange(n, dtype=np.int64))
            scale.make_scale("case")

            def put(group, name, data, dtype=None):
                ds = group.create_dataset(name, data=data, dtype=dtype)
                ds.dims[0].attach_scale(scale)
                return ds

            for name in ("name", "hash", "file", "status", "error", "previous"):
                put(
                    g,
                    name,
                    np.array([getattr(c, name) for c in cases], dtype=object),
                    strings,
                )
            for name in _HEADLINE:
                dtype = np.int64 if name == "n_iter" else np.float64
                put(g, name, np.array([getattr(c, name) for c in cases], dtype=dtype))
            put(g, "reused", np.array([c.reused for c in cases], dtype=np.int8))
            v = g.create_group("values")
            for key in result.keys:
                col = _column([c.values[key] for c in cases])
                put(v, key, col, strings if col.dtype == object else None)
            runs = f.create_group("runs")
            for c in cases:
                if (result.out / c.file).exists():
                    runs[c.name] = h5py.ExternalLink(c.file, "/")
    header = ["name", "hash", *result.keys, "status", *_HEADLINE]
    header += ["reused", "previous", "file", "error"]
    with _io.atomic_path(result.summary_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            for c in cases:
                row = [c.name, c.hash, *(_csv_value(c.values[k]) for k in result.keys)]
                row.append(c.status)
                row += [_csv_value(getattr(c, k)) for k in _HEADLINE]
                row += [_csv_value(c.reused), c.previous, c.file, c.error]
                w.writerow(row)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def load_sweep(folder) -> SweepResult:
    """Read a sweep's ``index.h5`` back.

    Parameters
    ----------
    folder : path-like
        The sweep folder (or its ``index.h5``).

    Returns
    -------
    SweepResult

    Raises
    ------
    RunFileError
        When there is no readable sweep index there.
    """
    folder = Path(folder)
    path = folder if folder.suffix == ".h5" else folder / "index.h5"
    if not path.is_file():
        raise RunFileError(
            f"no sweep index at '{path}': give the folder a sweep wrote, or run "
            "'spacetime sweep CONFIG' first"
        )
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != INDEX_FORMAT:
                raise RunFileError(f"'{path}' is an HDF5 file but not a sweep index")
            keys = json.loads(f.attrs["keys"])
            chain = f.attrs["chain"] or None
            g = f["cases"]

            def col(name, group=g):
                if name == "test_risk" and name not in group:
                    # an index written before the test risk was stored
                    return [math.nan] * len(group["name"])
                data = group[name][()]
                if data.dtype == object:
                    return [x.decode() if isinstance(x, bytes) else x for x in data]
                return data.tolist()

            columns = {
                k: col(k)
                for k in ("name", "hash", "file", "status", "error", "previous")
            }
            numbers = {k: col(k) for k in _HEADLINE}
            reused = col("reused")
            values = {k: col(k, g["values"]) for k in keys}
            interrupted = bool(f.attrs.get("interrupted", 0))
    except RunFileError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise RunFileError(
            f"sweep index '{path}' is damaged ({err}): run the sweep again to "
            "rewrite it"
        ) from None
    cases = []
    for i in range(len(columns["name"])):
        rec = CaseRecord(
            **{k: columns[k][i] for k in ("name", "hash", "file", "status", "error")},
            values={k: values[k][i] for k in keys},
            reused=bool(reused[i]),
            previous=columns["previous"][i],
        )
        for k in _HEADLINE:
            setattr(rec, k, numbers[k][i])
        cases.append(rec)
    return SweepResult(path.parent, keys, chain, cases, interrupted)


# ---------------------------------------------------------------------------
# Running a sweep


class _FolderLock:
    """An exclusive lock on the sweep folder, so two sweeps never share one."""

    def __init__(self, folder: Path):
        self.path = folder / ".sweep.lock"
        self.fh = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform
            return self
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            self.fh = None
            raise RunFileError(
                f"sweep folder '{self.path.parent}' is in use by another running "
                "sweep: wait for it to end, or choose another sweep.out"
            ) from None
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()
        return False


def _local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _fingerprint() -> str:
    """The package version and a hash of the config keys, to compare with workers."""
    from . import __version__

    keys = json.dumps(_dotted_keys()).encode()
    return f"{__version__}-{hashlib.sha256(keys).hexdigest()[:12]}"


def _dask_executor(scheduler, retries: int):
    """An executor on a Dask cluster and the Numba threads each case should use."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError(
            "running on a Dask cluster needs dask.distributed: "
            "pip install 'spacetime[dask]'"
        ) from None
    if isinstance(scheduler, str):
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ConfigError(
                f"cannot reach the Dask scheduler at '{scheduler}' ({err}): start one "
                "with 'dask scheduler' and check the address"
            ) from None
        owned = client
    else:
        client, owned = scheduler, None
    try:
        remote = client.run(_fingerprint, on_error="return")
    except Exception as err:  # the workers cannot even run the check
        remote = {"?": err}
    local = _fingerprint()
    stale = sorted(addr for addr, fp in remote.items() if fp != local)
    if stale:
        if owned is not None:
            owned.close()
        raise ConfigError(
            f"{len(stale)} Dask worker(s), e.g. {stale[0]}, run another version of "
            "spacetime than this process (other config keys): restart the workers "
            "from the same installation"
        )
    threads = None
    try:
        cores = client.run(os.cpu_count)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        per_host = collections.defaultdict(int)
        host_cores = {}
        for addr, info in workers.items():
            host = info.get("host", addr)
            per_host[host] += int(info.get("nthreads", 1))
            host_cores[host] = int(cores.get(addr) or 1)
        if per_host:
            threads = min(max(1, host_cores[h] // per_host[h]) for h in per_host)
    except Exception as err:  # the thread count is only an optimisation
        log.warning("could not size Numba threads from the cluster: %s", err)
    executor = client.get_executor(retries=retries, pure=False)
    return executor, threads, owned


def _execution_config(case: Case, path: Path, threads) -> dict:
    """The config a worker runs: absolute paths, the thread count, the file name."""
    cfg = copy.deepcopy(case.config)
    cfg["save"]["path"] = str(path)
    if threads:
        cfg["threads"] = int(threads)
    data = cfg["data"]
    for key in ("path", "labels_path"):
        if data[key]:
            data[key] = str(Path(data[key]).expanduser().absolute())
    return cfg


def run_sweep(
    config,
    executor=None,
    workers=None,
    progress=True,
    *,
    out=None,
    scheduler=None,
    threads=None,
    on_case=None,
    retries=2,
) -> SweepResult:
    """Run every case of a sweep config, skipping those already complete.

    Parameters
    ----------
    config : path-like or dict
        A sweep config (a run config with a ``[sweep]`` table); see
        :func:`plan_sweep`.
    executor : concurrent.futures.Executor, optional
        Where cases run, e.g. ``client.get_executor(retries=2)`` of a Dask client.
        Default: a local process pool of ``workers`` processes.
    workers : int, optional
        Local worker processes; default the number of cores (at most the number of
        cases to run).
    progress : bool
        Show a progress bar over the cases (on a terminal only).
    out : path-like, optional
        The sweep folder; overrides ``sweep.out``.
    scheduler : str or dask.distributed.Client, optional
        Run on this Dask cluster (its address, e.g. ``tcp://127.0.0.1:8786``)
        instead of locally; failed tasks are retried ``retries`` times and a case
        whose worker dies is rescheduled by Dask.
    threads : int, optional
        Numba threads of each case. Default: cores // workers locally, cores per
        worker thread on a Dask cluster, and the config's ``threads`` on another
        executor.
    on_case : callable, optional
        ``on_case(record)`` after each case this call runs, with its
        :class:`CaseRecord`; raising ``StopIteration`` or ``KeyboardInterrupt``
        stops the sweep as Ctrl-C does.
    retries : int
        On a Dask cluster, how often a task that raised is submitted again (Dask
        itself reschedules a task whose worker died). Locally, how often a case is
        run again on a new worker process when its worker process died.

    Returns
    -------
    SweepResult
        Every case with its status and headline numbers; ``interrupted`` when the
        sweep was stopped early.

    Raises
    ------
    ConfigError
        For an invalid sweep config (nothing is written then).
    RunFileError
        When the sweep folder cannot be written or another sweep is using it.

    Notes
    -----
    Ctrl-C stops cleanly: no new case starts, running local cases stop at their
    next objective evaluation and are saved as "interrupted", cases not started are
    cancelled, and the index keeps every finished case. A second Ctrl-C ends the
    workers at once. SIGTERM is handled like Ctrl-C. The signals are handled only
    when the sweep runs in the main thread.
    """
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
    if executor is not None and scheduler is not None:
        raise ConfigError("give either an executor or a Dask scheduler, not both")
    plan = plan_sweep(config, out=out)
    folder = plan.out
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFileError(
            f"cannot create sweep folder '{folder}': {err.strerror}; choose another "
            "sweep.out"
        ) from None
    if not os.access(folder, os.W_OK):
        raise RunFileError(f"sweep folder '{folder}' is not writable: choose another")
    with _FolderLock(folder):
        runner = _Runner(
            plan, executor, workers, progress, scheduler, threads, on_case, retries
        )
        return runner.run()


class _Runner:
    """The event loop of one sweep run: submits ready cases, records outcomes."""

    def __init__(
        self, plan, executor, workers, progress, scheduler, threads, on_case, retries
    ):
        self.plan = plan
        self.executor = executor
        self.workers = workers
        self.progress = progress
        self.scheduler = scheduler
        self.threads = threads
        self.on_case = on_case
        self.retries = retries
        self.result = SweepResult(plan.out, plan.keys, plan.chain)
        self.created = _now()
        self._written = (-math.inf, 0.0)  # time and duration of the last write
        self.modes = {}
        self.deaths = collections.Counter()  # worker processes lost per case

    # -- state of the cases before the run ---------------------------------

    def _inspect(self):
        index = self.plan.out / "index.h5"
        if index.is_file():
            try:
                with h5py.File(index, "r") as f:
                    self.created = str(f.attrs.get("created", self.created))
            except OSError:
                pass
        for case in self.plan.cases:
            rec = CaseRecord(case.name, case.hash, dict(case.values), case.file)
            if case.previous is not None:
                rec.previous = self.plan.cases[case.previous].name
            self.result.cases.append(rec)
            state, info = _file_state(self.plan.out / case.file, case.hash)
            self.modes[case.index] = "resume" if state == "resume" else "fresh"
            if state in ("complete", "resume"):
                rec._update(info)
                rec.reused = state == "complete"

    def _save_index(self, force=True):
        """Rewrite the index; when not forced, at most about once a second.

        Writing costs time in proportion to the number of cases, so a large sweep
        of short cases rewrites it every ``max(1 s, 10 x its writing time)``.
        """
        now = time.perf_counter()
        last, took = self._written
        if not force and now - last < max(1.0, 10 * took):
            return
        _write_index(self.result, self.plan.text, self.created)
        self._written = (now, time.perf_counter() - now)

    # -- the executor ------------------------------------------------------

    def _start_executor(self, n_todo):
        self.own_pool = False
        self.limit = None
        self.owned_client = None
        if self.scheduler is not None:
            executor, threads, self.owned_client = _dask_executor(
                self.scheduler, self.retries
            )
            self.executor = executor
            if self.threads is None:
                self.threads = threads
            return
        if self.executor is not None:
            return
        cores = _local_cores()
        workers = max(1, min(self.workers or cores, n_todo))
        if self.threads is None:
            self.threads = max(1, cores // workers)
        self.limit = workers
        self.n_workers = workers
        self.own_pool = True
        self.executor = self._new_pool()

    def _new_pool(self):
        return cf.ProcessPoolExecutor(
            max_workers=self.n_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(
                self.threads or 0,
                os.getpid(),
                signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
            ),
        )

    def _stop_executor(self, abort=False):
        if self.own_pool and self.executor is not None:
            if abort:
                for proc in list(getattr(self.executor, "_processes", {}).values()):
                    if proc.is_alive():
                        proc.terminate()
            self.executor.shutdown(wait=not abort, cancel_futures=True)
        if self.owned_client is not None:
            self.owned_client.close()

    # -- the loop ----------------------------------------------------------

    def _task(self, case: Case) -> _Task:
        path = self.plan.out / case.file
        prev = None if case.previous is None else self.plan.cases[case.previous]
        mode = self.modes[case.index]
        return _Task(
            name=case.name,
            hash=case.hash,
            values=case.values,
            config=_execution_config(case, path, self.threads),
            path=str(path),
            mode=mode,
            chain=self.plan.chain,
            warm_from=(
                str(self.plan.out / prev.file)
                if prev is not None and mode == "fresh"
                else None
            ),
            warm_hash=prev.hash if prev is not None else None,
            warm_rule=self.plan.warm_start,
        )

    def run(self) -> SweepResult:
        plan, result = self.plan, self.result
        self._inspect()
        todo = [c.index for c in plan.cases if not result.cases[c.index].complete]
        if not todo:
            self._save_index()
            log.info("all %d cases of the sweep are complete", len(plan.cases))
            return result
        self._start_executor(len(todo))  # a Dask scheduler out of reach stops here
        self._save_index()
        successors = collections.defaultdict(list)
        for case in plan.cases:
            if case.previous is not None:
                successors[case.previous].append(case.index)
        ready = collections.deque(
            i
            for i in todo
            if plan.cases[i].previous is None
            or result.cases[plan.cases[i].previous].complete
        )
        try:
            _warm_up(plan.cases[todo[0]].config)
        except BaseException:
            self._stop_executor()
            raise
        bar = None
        if self.progress and sys.stderr.isatty():
            from tqdm.auto import tqdm

            bar = tqdm(
                total=len(plan.cases),
                initial=len(plan.cases) - len(todo),
                unit="case",
                desc="sweep",
                dynamic_ncols=True,
            )
        self.bar = bar
        in_flight = {}
        stopping = False
        abort = False
        main = threading.current_thread() is threading.main_thread()
        old_term = signal.signal(signal.SIGTERM, self._on_terminate) if main else None
        try:
            while in_flight or (ready and not stopping):
                try:
                    while (
                        ready
                        and not stopping
                        and (self.limit is None or len(in_flight) < self.limit)
                    ):
                        i = ready.popleft()
                        fut = self._submit_to_live_pool(self._task(plan.cases[i]))
                        in_flight[fut] = i
                        result.cases[i].status = "running"
                    if not in_flight:
                        break
                    done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                    broken = False
                    for fut in done:
                        i = in_flight.pop(fut)
                        info, died = self._outcome(fut, plan.cases[i])
                        broken |= died
                        rec = result.cases[i]
                        if died and stopping:
                            rec.status = "pending"  # lost while the sweep stops
                            continue
                        if died and self.deaths[i] < self.retries:
                            # its worker process died: run it again on a new one
                            self.deaths[i] += 1
                            rec.status = "pending"
                            ready.appendleft(i)
                            log.warning("case %s lost with its worker", rec.name)
                            continue
                        rec._update(info)
                        self._advance(i, successors, ready)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(failed=len(result.failed), refresh=False)
                        if self.on_case is not None and rec.status != "pending":
                            try:
                                self.on_case(rec)
                            except (StopIteration, KeyboardInterrupt):
                                stopping = self._begin_stop(in_flight)
                    self._save_index(force=False)
                    if broken and self.own_pool and not stopping:
                        if self._pool_broken():  # not replaced at a submit yet
                            self._replace_broken_pool()
                except KeyboardInterrupt:
                    if stopping:
                        abort = True
                        break
                    stopping = self._begin_stop(in_flight)
                    log.warning(
                        "interrupt: waiting for the running case(s) (%d) to stop "
                        "(Ctrl-C again to end them at once)",
                        len(in_flight),
                    )
        finally:
            if main:
                signal.signal(signal.SIGTERM, old_term)
            if bar is not None:
                bar.close()
            for fut, i in in_flight.items():
                fut.cancel()
                rec = result.cases[i]
                if rec.status == "running":
                    rec.status = "interrupted" if abort else "pending"
                    rec.error = "stopped before it finished" if abort else ""
            for rec in result.cases:
                if rec.status == "running":
                    rec.status = "pending"
            result.interrupted = stopping or abort
            self._stop_executor(abort=abort)
            try:
                self._save_index()
            except KeyboardInterrupt:  # an index written a moment ago remains
                pass
        return result

    def _submit(self, task: _Task):
        """Hand a case to the executor.

        A local pool starts its worker processes while cases are submitted; they
        start with Ctrl-C ignored (a disposition that survives exec) until their
        initializer installs its own handler, so an interrupt that comes while a
        worker is still importing does not kill it.
        """
        if (
            not self.own_pool
            or threading.current_thread() is not threading.main_thread()
        ):
            return self.executor.submit(_run_case, task)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return self.executor.submit(_run_case, task)
        finally:
            signal.signal(signal.SIGINT, previous)

    def _pool_broken(self) -> bool:
        """Whether the local pool lost a worker and takes no more work.

        ProcessPoolExecutor has no public test for this; its manager thread sets
        ``_broken`` as soon as it sees a worker die, before the futures report it.
        """
        return bool(getattr(self.executor, "_broken", False))

    def _replace_broken_pool(self) -> None:
        """Start a new local pool in place of a broken one.

        The broken pool's futures fail with BrokenProcessPool on their own (its
        manager thread fails every pending one), and those cases run again; the
        pool is not asked to cancel them, which could turn a lost case into a
        cancelled one that is not run again.
        """
        self.executor.shutdown(wait=False)
        self.executor = self._new_pool()

    def _submit_to_live_pool(self, task: _Task):
        """:meth:`_submit`, first replacing a local pool a killed worker broke.

        A worker can die between two submissions (killed, out of memory); the pool
        then refuses new work before any of its futures has reported the death.
        """
        if self.own_pool and self._pool_broken():
            self._replace_broken_pool()
        try:
            return self._submit(task)
        except cf.process.BrokenProcessPool:
            if not self.own_pool:
                raise
            self._replace_broken_pool()
            return self._submit(task)

    def _on_terminate(self, signum, frame):
        """SIGTERM: stop as for Ctrl-C, passing the interrupt on to local workers."""
        if self.own_pool:
            for proc in list(getattr(self.executor, "_processes", {}).values()):
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except (OSError, TypeError):
                    pass
        raise KeyboardInterrupt

    def _begin_stop(self, in_flight) -> bool:
        """Cancel every case not yet started; running ones finish or stop."""
        for fut, i in list(in_flight.items()):
            if fut.cancel():
                del in_flight[fut]
                self.result.cases[i].status = "pending"
        return True

    def _outcome(self, fut, case: Case):
        """The worker's report of a finished future, and whether its process died."""
        if fut.cancelled():
            return {"status": "pending", "error": ""}, False
        try:
            return fut.result(), False
        except cf.process.BrokenProcessPool:
            return {
                "status": "failed",
                "error": "the worker process running this case died "
                f"{self.deaths[case.index] + 1} times (killed, or out of memory)",
            }, True
        except Exception as err:
            return {"status": "failed", "error": _error_text(err)}, False

    def _advance(self, i, successors, ready):
        """Release a finished case's chain successor, or skip it."""
        rec = self.result.cases[i]
        for j in successors.get(i, ()):
            nxt = self.result.cases[j]
            if nxt.complete:
                continue
            if rec.complete:
                ready.append(j)
            elif rec.status == "pending":
                continue
            else:
                self._skip(j, rec, successors)

    def _skip(self, j, cause: CaseRecord, successors):
        rec = self.result.cases[j]
        if rec.complete:
            return
        rec.status = "skipped"
        rec.error = f"not run: its chain predecessor {cause.name} ended {cause.status}"
        if self.bar is not None:
            self.bar.update(1)
        for k in successors.get(j, ()):
            self._skip(k, cause, successors)
