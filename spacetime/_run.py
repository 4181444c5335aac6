"""From a validated configuration to a trained, saved run.

The command-line interface calls :func:`train`; scripts can call it too, or compose
:func:`build`, :func:`~spacetime.solve` and :func:`save` themselves.
"""

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import grids

from . import _io
from ._config import dump, validate
from ._data import load_dataset
from ._errors import ConfigError, DataError, RunFileError
from ._model import NeuralODE
from ._problem import Problem, accuracy, predict
from ._solve import History, Result, solve
from ._spacetime import SpaceTimeNetwork, input_grid

log = logging.getLogger(__name__)

_FILE_KEYS = (
    "path",
    "labels_path",
    "input_columns",
    "label_column",
    "inputs_key",
    "labels_key",
)
_GENERATORS = ("spheres", "xor", "rings")


def load_data(config: dict):
    """The dataset a configuration names."""
    d = config["data"]
    kwargs = {
        "task": d["task"],
        "test_fraction": d["test_fraction"],
        "seed": d["seed"],
        "standardize": None if d["standardize"] == "auto" else d["standardize"],
        "max_samples": d["max_samples"] or None,
    }
    if d["name"] == "file":
        for k in _FILE_KEYS:
            if d[k] not in ("", []):
                kwargs[k] = d[k]
    if d["name"] in _GENERATORS:
        kwargs["n_samples"] = d["n_samples"] or None
        kwargs["noise"] = d["noise"]
    return load_dataset(d["name"], **kwargs)


def time_grid(config: dict) -> grids.TimeGrid:
    """The time levels a configuration describes."""
    m = config["model"]
    if m.get("time_nodes"):
        return grids.time_grid(nodes=m["time_nodes"])
    return grids.time_grid(m["T"], m["n_steps"])


def build_model(config: dict, dataset):
    """The network a validated configuration describes, for a dataset's inputs."""
    m = config["model"]
    common = {
        "field": m["field"],
        "activation": m["activation"],
        "scheme": m["scheme"],
        "leaky_slope": m["leaky_slope"],
    }
    tg = time_grid(config)
    if m["kind"] == "neural_ode":
        width = m["width"] or dataset.n_features
        return NeuralODE(dataset.n_features, width, tg, hidden=m["hidden"], **common)
    s = config["spacetime"]
    inputs = input_grid(dataset.n_features, dataset.image_shape, _domain(s["domain"]))
    widths = _schedule(s["widths"], inputs)
    moving = grids.moving_grid(tg, s["rule"], widths, domain=inputs.domain)
    return SpaceTimeNetwork(
        moving,
        inputs,
        transfer=s["transfer"],
        transfer_order=s["transfer_order"],
        l2_coordinates=s["l2_coordinates"],
        **common,
    )


def _domain(domain):
    return [tuple(d) for d in domain] if domain else None


def _schedule(widths, inputs):
    """``spacetime.widths`` as the schedule ``grids.moving_grid`` takes."""
    if not widths:
        return inputs.shape if inputs.dim == 2 else inputs.n_nodes
    out = []
    for entry in widths:
        start, *size = entry
        if len(size) != inputs.dim:
            raise ConfigError(
                f"spacetime.widths entry {entry!r} must be [t_start, n] for 1-D "
                f"inputs or [t_start, n0, n1] for images; the inputs are "
                f"{inputs.dim}-D"
            )
        out.append((float(start), tuple(size) if inputs.dim == 2 else size[0]))
    return out


def build(config: dict, dataset=None):
    """Dataset, model and problem described by a validated configuration."""
    if dataset is None:
        dataset = load_data(config)
    model = build_model(config, dataset)
    pr = config["problem"]
    om = config["output_map"]
    problem = Problem(
        model,
        dataset.x_train,
        dataset.y_train,
        loss=pr["loss"],
        lam=pr["lam"],
        task=dataset.task,
        n_classes=dataset.n_classes or None,
        train_output=om["trained"],
        output_reg=om["reg"],
        output_seed=om["seed"],
        loss_p=pr["loss_p"],
        memory_budget_mib=config["numerics"]["memory_budget_mib"],
        running_cost=None
        if pr.get("running_cost", "none") == "none"
        else {
            "kind": pr["running_cost"],
            "beta": pr["beta"],
            "exponent": pr["tracking_p"],
            "smoothing": pr["tracking_smoothing"],
        },
    )
    return dataset, model, problem


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable), or 0 if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def memory_needed(config: dict, n_train: int, n_test: int, n_features: int) -> int:
    """Bytes a run will allocate at its peak, estimated from the sizes alone."""
    m = config["model"]
    n_steps = m["n_steps"]
    profile = _width_profile(config, n_features)
    width = max(n for n, _ in profile)
    if m.get("kind") == "spacetime":
        # kernels w (and a) of shape (n_k, n_k) and a bias b of n_k per layer
        squares = 2 if m["field"] == "bottleneck" else 1
        n_params = sum((squares * n * n + n) * count for n, count in profile)
    else:
        h = m["hidden"] or width
        per_layer = (
            2 * width * h + h if m["field"] == "bottleneck" else width * width + width
        )
        n_params = n_steps * per_layer
    n = n_train + n_test
    stages = 4
    groups = min(16, max(1, -(-n_train // 32)))
    need = 8 * (
        n * (n_features + width) * 3  # data, embedding, predictions
        + n_params * (groups + 2 * 10 + 8)  # per-group gradients, L-BFGS memory
        + 2 * (n_steps + 1) * 32 * width * (2 + stages)  # per-thread scratch
    )
    if config["save"]["trajectories"]:
        levels = sum(n * count for n, count in profile)  # sum of the level widths
        need += 8 * levels * n_train * 2  # states and their copy
    return need


def _width_profile(config: dict, n_features: int) -> list[tuple[int, int]]:
    """The level widths as (width, number of levels) pairs, from the config alone.

    For a space-time network the schedule ``spacetime.widths`` gives the width from
    each start time on; the number of levels in each piece is bounded by its share
    of [0, T] times ``n_steps``, plus one.
    """
    m = config["model"]
    n_steps = m["n_steps"]
    entries = config.get("spacetime", {}).get("widths", [])
    if m.get("kind", "neural_ode") != "spacetime":
        return [(m["width"] or n_features, n_steps + 1)]
    if not entries:
        return [(n_features, n_steps + 1)]
    T = m["T"]
    starts = [float(e[0]) for e in entries] + [T]
    profile = []
    for j, entry in enumerate(entries):
        n = max(1, math.prod(int(v) for v in entry[1:]))
        share = max(0.0, min(starts[j + 1], T) - starts[j]) / T
        profile.append((n, min(n_steps + 1, math.ceil(share * n_steps) + 1)))
    return profile


def check_memory(config, n_train, n_test, n_features):
    """Refuse a run whose :func:`memory_needed` exceeds the available memory."""
    need = memory_needed(config, n_train, n_test, n_features)
    tips = "use fewer layers, a smaller width or fewer samples (data.max_samples)"
    if config["save"]["trajectories"]:
        tips = "set save.trajectories = false, or " + tips
    require_memory(need, "this run", tips)
    return need


def require_memory(need: int, what: str, tips: str) -> None:
    """Raise a :class:`ConfigError` when ``need`` bytes exceed the available memory.

    The message gives the estimate, what is available and ``tips`` (what to do);
    nothing is checked where the available memory cannot be read.
    """
    avail = available_memory()
    if avail and need > avail:
        raise ConfigError(
            f"{what} needs about {need / 2**30:.3g} GiB of memory but "
            f"{avail / 2**30:.3g} GiB are available: {tips}"
        )


def output_path(config: dict) -> Path:
    m = config["model"]
    try:
        text = config["save"]["path"].format(
            data=config["data"]["name"],
            kind=m["kind"],
            field=m["field"],
            n_steps=m["n_steps"],
            seed=config["seed"],
        )
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"save.path {config['save']['path']!r} has an unknown placeholder {err}: "
            "use {data}, {kind}, {field}, {n_steps} or {seed}"
        ) from None
    return Path(text)


@dataclass
class TrainedRun:
    """A finished (or stopped) training run and where it was saved."""

    config: dict
    dataset: object
    result: Result
    train: dict
    test_accuracy: float
    path: Path | None
    wall_time: float
    test_risk: float = math.nan

    def summary(self) -> str:
        r = self.result
        model = r.problem.model
        lines = [
            f"status          {r.status} ({r.message})",
            *(f"{label:<15} {text}" for label, text in describe_model(model)),
            f"objective       {self.train['objective']:.6g}",
            f"training loss   {self.train['risk']:.6g}",
        ]
        if not math.isnan(self.test_risk):
            lines.append(f"test loss       {self.test_risk:.6g}")
        if not math.isnan(self.train["accuracy"]):
            lines.append(f"train accuracy  {self.train['accuracy']:.4f}")
        if not math.isnan(self.test_accuracy):
            lines.append(f"test accuracy   {self.test_accuracy:.4f}")
        lines += [
            f"iterations      {r.n_iter}",
            f"gradient evals  {r.n_fev}",
            f"wall time       {self.wall_time:.1f} s",
        ]
        if self.path is not None:
            lines.append(f"output          {self.path}")
        return "\n".join(lines)


def describe_model(model) -> list[tuple[str, str]]:
    """The model in words, as (label, text) lines: what ``spacetime run`` and
    ``spacetime info`` print.

    ``model``: the kind, field, activation, width, steps and horizon; and for a
    space-time network ``widths per layer``: each grid's shape with the number of
    layers on it, in order (``8x8 (4 layers), 6x6 (4 layers)``).
    """
    kind = "space-time" if isinstance(model, SpaceTimeNetwork) else "neural ODE"
    lines = [
        (
            "model",
            f"{kind} {model.field} field, {model.activation}, width {model.width}, "
            f"{model.n_steps} {model.scheme} steps on [0, {model.T:g}]",
        )
    ]
    moving = getattr(model, "moving", None)
    if moving is not None:
        shapes = ["x".join(map(str, shape)) for shape in moving.shapes[:-1]]
        lines.append(("widths per layer", _runs(shapes)))
    return lines


def _runs(values) -> str:
    """``8x8 (4 layers), 6x6 (4 layers)`` style summary of a width sequence."""
    parts, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            parts.append(f"{values[start]} ({i - start} layers)")
            start = i
    return ", ".join(parts)


def _set_threads(n):
    import numba

    if n:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def train(
    config=None,
    *,
    config_text=None,
    out=None,
    overwrite=None,
    max_time=None,
    max_iter=None,
    trajectories=None,
    resume=None,
    progress=False,
    save=True,
    threads=None,
) -> TrainedRun:
    """Train the model a configuration describes and write its run file.

    Parameters
    ----------
    config : dict, optional
        Nested dictionaries as in a TOML config; missing keys take their defaults.
        Ignored when ``resume`` is given (the run file's own config is used).
    out : path-like, optional
        Output file; default ``save.path`` of the config, or the resumed file itself.
    overwrite, max_time, max_iter, trajectories : optional
        Override ``save.overwrite``, ``optimizer.max_time``, ``optimizer.max_iter``
        and ``save.trajectories``.
    resume : path-like, optional
        A run file stopped early (time limit or interrupt): training continues from
        its iterate, its history is extended, and ``optimizer.max_iter`` counts all
        iterations of the run.
    save : bool
        Write the run file (the default).

    Returns
    -------
    TrainedRun
    """
    start = time.perf_counter()
    previous = None
    if resume is not None:
        previous = _io.read_run(resume)
        if previous["status"] in ("converged", "max_iter"):
            raise RunFileError(
                f"run file '{resume}' is finished ({previous['status']}); there is "
                "nothing to resume: start a new run with a larger optimizer.max_iter"
            )
        config = validate(previous["config"], stored=True)
        config_text = previous["config_text"]
        if out is None:
            out = resume
            overwrite = True
    else:
        config = validate(config or {})
        if config_text is None:
            config_text = dump(config)
    if overwrite is not None:
        config["save"]["overwrite"] = bool(overwrite)
    if max_time is not None:
        config["optimizer"]["max_time"] = float(max_time)
    if max_iter is not None:
        config["optimizer"]["max_iter"] = int(max_iter)
    if threads is not None:
        config["threads"] = int(threads)
    if trajectories is not None:
        config["save"]["trajectories"] = bool(trajectories)
    # the overrides obey the same ranges as the file
    config = validate(config, stored=previous is not None)

    path = None
    if save:
        path = Path(out) if out is not None else output_path(config)
        _io.check_output_path(path, config["save"]["overwrite"])

    _set_threads(config["threads"])
    d = config["data"]
    if d["name"] in _GENERATORS and d["n_samples"]:
        # generated data are as large as the config says: check before drawing them
        n = min(d["n_samples"], d["max_samples"] or d["n_samples"])
        n_test = int(n * d["test_fraction"])
        check_memory(config, n - n_test, n_test, 2)
    dataset = load_data(config)
    check_memory(config, dataset.n_train, dataset.n_test, dataset.n_features)
    dataset, model, problem = build(config, dataset)

    z0, history = None, None
    if previous is not None:
        theta = model.pack(previous["controls"])
        z0 = problem.join(theta, previous["p"], previous["p0"])
        history = History.from_arrays(previous["history"])
    opt = config["optimizer"]
    budget = opt["max_iter"] - (history.iteration[-1] if history else 0)
    log.info(
        "training %s on %s: %d samples, %d parameters",
        model.field,
        dataset.name,
        dataset.n_train,
        problem.n_variables,
    )
    result = solve(
        problem,
        z0,
        method=opt["method"],
        max_iter=max(budget, 0),
        gtol=opt["gtol"],
        ftol=opt["ftol"],
        max_time=opt["max_time"] or None,
        seed=config["seed"],
        init_scale=config["model"]["init_scale"],
        history=history,
        progress=progress,
    )
    elapsed_before = 0.0
    if previous is not None:
        # totals over the whole run, as the iteration count and the history are
        result.n_fev += int(previous["optimizer"].get("n_fev", 0))
        result.wall_time += float(previous["optimizer"].get("wall_time", 0.0))
        elapsed_before = float(previous["results"].get("wall_time", 0.0))
    train_eval = result.evaluate()
    test_pred, test_acc, test_risk = held_out_scores(result, dataset)
    run = TrainedRun(
        config,
        dataset,
        result,
        train_eval,
        test_acc,
        path,
        elapsed_before + time.perf_counter() - start,
        test_risk,
    )
    if save:
        save_run(path, run, config_text, test_pred)
    return run


def held_out_scores(result: Result, dataset) -> tuple[np.ndarray, float, float]:
    """The trained model on the held-out test set.

    Returns
    -------
    predictions : ndarray, shape (n_test, n_outputs)
        ``P x_i(T) + p0`` for the test inputs.
    accuracy : float
        NaN for regression.
    risk : float
        The test risk ``(1/N_test) sum_i l(P x_i(T) + p0, y_i)``: the training
        loss and output map, without the regularisers or a running cost.

    Accuracy and risk are NaN without a test set.
    """
    problem = result.problem
    pred = (
        result.predict(dataset.x_test)
        if dataset.n_test
        else np.zeros((0, problem.n_outputs))
    )
    acc = accuracy(pred, dataset.y_test, dataset.task)
    return pred, acc, problem.empirical_risk(pred, dataset.y_test)


def save_run(path, run: TrainedRun, config_text: str, test_pred: np.ndarray):
    """Write a trained run to ``path`` (atomically)."""
    result, ds, config = run.result, run.dataset, run.config
    problem, model = result.problem, result.problem.model
    trajectories = None
    spacetime_model = isinstance(model, SpaceTimeNetwork)
    if config["save"]["trajectories"]:
        if spacetime_model:
            trajectories = model.states(result.theta, ds.x_train)
        else:
            trajectories = model.flow(result.theta, ds.x_train)
    ev = run.train
    status = result.status
    if status == "failed":
        status = "stopped"
    record = {
        "status": status,
        "config": config,
        "config_text": config_text,
        "provenance": _io.provenance(config["seed"]),
        "model": model.describe(),
        "problem": {
            "loss": problem.loss,
            "lam": problem.lam,
            "loss_p": problem.loss_p,
            "task": problem.task,
            "n_classes": problem.n_classes,
            "n_outputs": problem.n_outputs,
            "train_output": problem.train_output,
            "output_reg": problem.output_reg,
        },
        "time": model.time.nodes,
        "controls": result.controls,
        "grids": (
            [(g.nodes, g.weights) for g in model.moving] if spacetime_model else None
        ),
        "p": result.p,
        "p0": result.p0,
        "optimizer": {
            "method": result.method,
            "status": result.status,
            "message": result.message,
            "n_iter": result.n_iter,
            "n_fev": result.n_fev,
            "wall_time": result.wall_time,
        },
        "history": result.history.arrays(),
        "results": {
            "objective": ev["objective"],
            "risk": ev["risk"],
            "test_risk": run.test_risk,
            "control_norm": ev["control_norm"],
            "grad_norm": ev["grad_norm"],
            "train_accuracy": ev["accuracy"],
            "test_accuracy": run.test_accuracy,
            "wall_time": run.wall_time,
        },
        "data": {
            "attrs": {
                "name": ds.name,
                "task": ds.task,
                "n_train": ds.n_train,
                "n_test": ds.n_test,
                "n_features": ds.n_features,
                "n_classes": ds.n_classes,
                "image_shape": list(ds.image_shape) if ds.image_shape else [],
            },
            "shift": ds.shift,
            "scale": ds.scale,
            "class_values": [
                v if isinstance(v, int | float | str) else str(v)
                for v in ds.class_values
            ],
            "y_train": ds.y_train,
            "y_test": ds.y_test,
        },
        "predictions": {"train": ev["predictions"], "test": test_pred},
        "trajectories": trajectories,
    }
    _io.write_run(path, record)


class Run:
    """A run file read back: its settings, trained controls, history and results.

    Attributes
    ----------
    model : NeuralODE
        The model rebuilt from the file.
    theta : ndarray, shape (n_params,)
    p : ndarray, shape (n_outputs, width)
    p0 : ndarray, shape (n_outputs,)
    """

    def __init__(self, path):
        self.path = Path(path)
        rec = _io.read_run(path)
        self.record = rec
        self.status = rec["status"]
        self.config = validate(rec["config"], stored=True)
        self.config_text = rec["config_text"]
        self.provenance = rec["provenance"]
        self.history = rec["history"]
        # files written before the test risk was stored lack it
        rec["results"].setdefault("test_risk", math.nan)
        self.results = rec["results"]
        self.optimizer = rec["optimizer"]
        self.controls = rec["controls"]
        self.p = rec["p"]
        self.p0 = rec["p0"]
        self.predictions = rec["predictions"]
        self.trajectories = rec["trajectories"]
        self.class_values = rec["data"]["class_values"]
        self.shift = rec["data"]["shift"]
        self.scale = rec["data"]["scale"]
        data = rec["data"]["attrs"]
        self.n_features = int(data["n_features"])
        shape = tuple(int(v) for v in np.atleast_1d(data.get("image_shape", [])))
        inputs = SimpleNamespace(
            n_features=int(data["n_features"]), image_shape=shape or None
        )
        try:
            self.model = build_model(self.config, inputs)
            if not np.array_equal(self.model.time.nodes, rec["time"]):
                raise ConfigError("its time levels differ from its config's")
            self.theta = self.model.pack(self.controls)
        except (
            ConfigError,
            KeyError,
            TypeError,
            ValueError,
            grids.GridError,
        ) as err:
            raise RunFileError(
                f"run file '{path}' describes a model that cannot be rebuilt ({err})"
            ) from None

    def predict(self, x, standardized=False) -> np.ndarray:
        """Outputs ``P x(T)`` for new inputs.

        Parameters
        ----------
        x : ndarray, shape (n_samples, n_features)
            Raw inputs (standardised here with the training statistics stored in the
            file), or already standardised ones with ``standardized=True``.

        Returns
        -------
        ndarray, shape (n_samples, n_outputs)

        Raises
        ------
        DataError
            When ``x`` is not numbers with the training data's number of features
            per sample, or holds NaN or inf.
        """
        n = self.n_features
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"inputs must be an array of numbers of shape (n_samples, {n}), got "
                f"{type(x).__name__}"
            ) from None
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != n:
            raise DataError(
                f"inputs have shape {x.shape}, but the run was trained on {n} "
                f"features: pass an array of shape (n_samples, {n}), one row per "
                "sample with the columns of the training data"
            )
        if not np.all(np.isfinite(x)):
            rows = int(np.count_nonzero(~np.all(np.isfinite(x), axis=1)))
            raise DataError(
                f"inputs hold NaN or inf in {rows} of {x.shape[0]} samples: remove "
                "or impute them before predicting"
            )
        if not standardized:
            x = (x - self.shift) / self.scale
        return predict(self.model, self.theta, self.p, self.p0, x)

    def predict_class(self, x, standardized=False) -> np.ndarray:
        """Predicted class labels (the original label values) for new inputs."""
        yhat = self.predict(x, standardized)
        idx = (yhat[:, 0] > 0).astype(int) if yhat.shape[1] == 1 else yhat.argmax(1)
        return np.asarray(self.class_values, dtype=object)[idx]


def load_run(path) -> Run:
    """Read a run file and rebuild its trained model."""
    return Run(path)
