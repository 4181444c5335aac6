"""Run configurations: a TOML file checked against one table of keys.

Every key has a type, a default, a check and a one-line description in :data:`SCHEMA`;
the README's table of keys and ``spacetime config`` are generated from it, and the
validation below is the only place a configuration is checked. Everything after it
trusts the values.
"""

import copy
import difflib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._core import DEFAULT_MEMORY_BUDGET_MIB
from ._errors import ConfigError
from ._registry import ACTIVATIONS, FIELDS, LOSSES, SCHEMES


@dataclass(frozen=True)
class Key:
    type: type | tuple
    default: Any
    doc: str
    check: Any = None  # callable(value) -> error text or None
    choices: tuple = ()


def _bound_text(v, bound: str) -> str:
    # a float may be inf or nan: say that it must be finite too
    if isinstance(v, float):
        return f"must be a finite number {bound}"
    return f"must be {bound}"


def _positive(v):
    return None if v > 0 and math.isfinite(v) else _bound_text(v, "> 0")


def _nonneg(v):
    return None if v >= 0 and math.isfinite(v) else _bound_text(v, ">= 0")


def _at_least(n):
    return lambda v: None if v >= n else f"must be >= {n}"


def _fraction(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


_DATASETS = ("digits", "breast_cancer", "spheres", "xor", "rings", "file")
_METHODS = ("L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP", "trust-constr")

SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "seed": Key(
            int, 0, "seed of the initial controls and of a drawn output map", _nonneg
        ),
        "threads": Key(int, 0, "threads of the kernels; 0 uses every core", _nonneg),
    },
    "data": {
        "name": Key(str, "digits", "dataset: a bundled one or 'file'", None, _DATASETS),
        "path": Key(str, "", "for name = 'file': a .csv, .npz, .npy or .h5 file"),
        "labels_path": Key(str, "", "for a .npy inputs file: the .npy of the labels"),
        "input_columns": Key(list, [], "CSV: input column names or indices; [] = all"),
        "label_column": Key(
            (str, int), "", "CSV: the label column's name or index; '' = the last"
        ),
        "inputs_key": Key(str, "x", ".npz key or HDF5 dataset path of the inputs"),
        "labels_key": Key(str, "y", ".npz key or HDF5 dataset path of the labels"),
        "task": Key(
            str,
            "classification",
            "classification or regression",
            None,
            ("classification", "regression"),
        ),
        "n_samples": Key(
            int, 0, "generators: number of samples; 0 = their default", _nonneg
        ),
        "noise": Key(float, 0.0, "generators: std of added Gaussian noise", _nonneg),
        "test_fraction": Key(
            float, 0.2, "share held out for testing, in [0, 1)", _fraction
        ),
        "standardize": Key(
            (bool, str),
            "auto",
            "standardise inputs by training mean and std; 'auto' = real data only",
        ),
        "max_samples": Key(int, 0, "keep a seeded random subset; 0 = all", _nonneg),
        "seed": Key(
            int, 0, "seed of the split, the subset and the generators", _nonneg
        ),
    },
    "model": {
        "kind": Key(
            str,
            "neural_ode",
            "finite-width neural ODE, or space-time network (see [spacetime])",
            None,
            ("neural_ode", "spacetime"),
        ),
        "field": Key(str, "inside", "vector field f(x, u)", None, tuple(FIELDS)),
        "activation": Key(str, "tanh", "activation sigma", None, tuple(ACTIVATIONS)),
        "leaky_slope": Key(float, 0.01, "slope of leaky_relu for z < 0", _nonneg),
        "width": Key(
            int,
            0,
            "state dimension d; 0 = number of input features; more "
            "pads inputs with zeros",
            _nonneg,
        ),
        "hidden": Key(int, 0, "bottleneck hidden width h; 0 = the width", _nonneg),
        "T": Key(float, 2.0, "time horizon T", _positive),
        "n_steps": Key(int, 10, "number of time steps L (layers)", _at_least(1)),
        "scheme": Key(str, "euler", "time-stepping scheme", None, tuple(SCHEMES)),
        "time_nodes": Key(
            list,
            [],
            "time levels 0 = t_0 < ... < t_L; [] = uniform from T and n_steps, "
            "else they override T and n_steps",
        ),
        "init_scale": Key(
            float, 0.1, "std of initial controls times sqrt(fan-in)", _nonneg
        ),
    },
    "spacetime": {
        "rule": Key(
            str,
            "midpoint",
            "quadrature rule of the grids",
            None,
            ("midpoint", "trapezoid", "gauss_legendre", "clenshaw_curtis"),
        ),
        "widths": Key(
            list,
            [],
            "grid schedule [[t_start, n], ...] (1-D) or [[t_start, n0, n1], ...] "
            "(images), from t_start = 0; [] = the input grid at every level",
        ),
        "domain": Key(
            list, [], "the box Ω, e.g. [[0, 1], [0, 1]]; [] = unit interval or square"
        ),
        "transfer": Key(
            str,
            "linear",
            "transfer between consecutive grids",
            None,
            ("linear", "lagrange", "l2"),
        ),
        "transfer_order": Key(int, 3, "degree of the lagrange transfer", _at_least(1)),
        "l2_coordinates": Key(
            bool, False, "optimise in coordinates whose Euclidean norm is the L2 norm"
        ),
    },
    "output_map": {
        "trained": Key(bool, True, "train P x = p x + p0 with the controls"),
        "seed": Key(int, 0, "seed of the drawn p (the start when trained)", _nonneg),
        "reg": Key(
            float, 0.0, "weight of |p|^2 in the objective when trained", _nonneg
        ),
    },
    "problem": {
        "loss": Key(str, "cross_entropy", "per-sample loss", None, tuple(LOSSES)),
        "lam": Key(float, 1e-3, "weight lambda of the control norm", _nonneg),
        "loss_p": Key(float, 2.0, "exponent p of the 'lp' loss", _at_least(1)),
        "running_cost": Key(
            str,
            "none",
            "turnpike objective: add beta * int_0^T R(x(t)) dt, R tracking the "
            "nearest targets (P xbar = y; needs a fixed output map) or the risk",
            None,
            ("none", "tracking", "risk"),
        ),
        "beta": Key(float, 1.0, "weight beta of the running cost", _nonneg),
        "tracking_p": Key(
            float, 2.0, "exponent p of the tracking cost |x - xbar|^p", _at_least(1)
        ),
        "tracking_smoothing": Key(
            float,
            1e-3,
            "eps of the tracking cost (r^2 + eps^2)^(p/2) - eps^p; matters for p < 2",
            _nonneg,
        ),
    },
    "optimizer": {
        "method": Key(
            str, "L-BFGS-B", "scipy.optimize.minimize method", None, _METHODS
        ),
        "max_iter": Key(int, 300, "maximum iterations", _nonneg),
        "gtol": Key(float, 1e-6, "gradient tolerance", _nonneg),
        "ftol": Key(float, 1e-12, "relative objective tolerance (L-BFGS-B)", _nonneg),
        "max_time": Key(float, 0.0, "wall-clock limit in seconds; 0 = none", _nonneg),
    },
    "numerics": {
        "memory_budget_mib": Key(
            float,
            DEFAULT_MEMORY_BUDGET_MIB,
            "MiB the reverse pass may keep for states; above it, it checkpoints "
            "every ceil(sqrt(L)) levels and recomputes (same gradient)",
            _nonneg,
        ),
    },
    "save": {
        "path": Key(
            str,
            "runs/{data}-{kind}-{field}-L{n_steps}.h5",
            "output HDF5 file; {data}, {kind}, {field}, {n_steps}, {seed} expand",
        ),
        "trajectories": Key(bool, True, "store the states at every level"),
        "overwrite": Key(bool, False, "replace an existing finished run"),
    },
    "simulate": {
        "w": Key(str, "", "spacetime simulate: kernel w(t, xi, zeta), an expression"),
        "b": Key(str, "0", "bias b(t, xi) as an expression; '' = 0"),
        "a": Key(str, "", "bottleneck inner kernel a(t, zeta, eta); '' = none"),
        "inputs": Key(
            list,
            [],
            "initial states, one expression of xi per sample; [] = training inputs",
        ),
        "n_samples": Key(
            int, 4, "with inputs = []: how many training inputs", _at_least(1)
        ),
        "at": Key(
            str,
            "left",
            "controls of layer k at t_k or the midpoint",
            None,
            ("left", "mid"),
        ),
        "out": Key(str, "runs/simulation.h5", "output HDF5 file of the solution"),
        "overwrite": Key(bool, False, "replace an existing simulation file"),
    },
}


# What `spacetime run` trains when no config is given: a space-time network on the
# handwritten digits seen as functions on the unit square, on a grid that coarsens
# with depth (8x8 pixel centres, then 6x6, then 4x4 midpoint grids, four layers
# each), optimised in L2-scaled coordinates.
DEFAULT_EXPERIMENT = """\
# spacetime's default experiment: a space-time network on the digits images whose
# grid coarsens with depth; every key not given here takes its default.
[data]
name = "digits"
test_fraction = 0.2

[model]
kind = "spacetime"
field = "inside"
activation = "tanh"
T = 3.0
n_steps = 12

[spacetime]
rule = "midpoint"
widths = [[0.0, 8, 8], [1.0, 6, 6], [2.0, 4, 4]]
transfer = "linear"
l2_coordinates = true

[problem]
loss = "cross_entropy"
lam = 1e-3

[optimizer]
max_iter = 150
"""


def default_experiment() -> tuple[dict, str]:
    """The configuration `spacetime run` uses without a config file, and its text."""
    return validate(tomllib.loads(DEFAULT_EXPERIMENT)), DEFAULT_EXPERIMENT


def defaults() -> dict:
    """The default configuration as nested dictionaries."""
    out = {}
    for section, keys in SCHEMA.items():
        target = out if section == "" else out.setdefault(section, {})
        for name, key in keys.items():
            target[name] = copy.deepcopy(key.default)
    return out


def _type_name(t) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true/false",
        list: "a list",
    }
    if isinstance(t, tuple):
        return " or ".join(names[x] for x in t)
    return names[t]


def _check_value(where: str, key: Key, value):
    types = key.type if isinstance(key.type, tuple) else (key.type,)
    ok = False
    for t in types:
        if (
            t is float
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            value = float(value)
            ok = True
            break
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            ok = True
            break
        if t not in (int, float) and isinstance(value, t):
            ok = True
            break
    if not ok:
        example = f"{where.rpartition('.')[2]} = {_toml_value(key.default)}"
        raise ConfigError(
            f"config key '{where}' must be {_type_name(key.type)}, got {value!r}: "
            f"write it like {example}"
        )
    if key.choices and value not in key.choices:
        close = difflib.get_close_matches(str(value), key.choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"config key '{where}' has unknown value {value!r}: {hint}choose one of "
            + ", ".join(key.choices)
        )
    if key.check is not None and isinstance(value, int | float):
        problem = key.check(value)
        if problem:
            raise ConfigError(f"config key '{where}' {problem}, got {value!r}")
    return value


def _unknown(where: str, name: str, valid) -> ConfigError:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown config key '{where}{name}'{hint} (valid here: {', '.join(valid)})"
    )


def validate(raw: dict, *, stored: bool = False) -> dict:
    """Check a configuration and fill in defaults.

    Parameters
    ----------
    raw : dict
        Nested dictionaries as read from TOML; missing keys take their defaults.
    stored : bool
        The config was read back from a file written earlier: ``[spacetime]`` keys
        set for a neural ODE, which earlier versions accepted and ignored, are
        accepted (and still ignored) instead of refused.

    Returns
    -------
    dict
        A complete configuration with every key of :data:`SCHEMA`.

    Raises
    ------
    ConfigError
        For an unknown section or key (with the closest valid name), a value of the
        wrong type, a value out of range, or a key the chosen model does not use
        (``model.width`` for a space-time network, a ``[spacetime]`` key that
        differs from its default for a neural ODE).
    """
    if not isinstance(raw, dict):
        raise ConfigError("a configuration must be a table of sections and keys")
    out = defaults()
    sections = [s for s in SCHEMA if s]
    for name, value in raw.items():
        if name in SCHEMA[""]:
            out[name] = _check_value(name, SCHEMA[""][name], value)
        elif name in SCHEMA:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config section '{name}' must be a table of keys, got "
                    f"{value!r}: write [{name}] on a line of its own and its keys "
                    "below it"
                )
            for key, v in value.items():
                if key not in SCHEMA[name]:
                    raise _unknown(f"{name}.", key, SCHEMA[name])
                out[name][key] = _check_value(f"{name}.{key}", SCHEMA[name][key], v)
        else:
            raise _unknown("", name, sections + list(SCHEMA[""]))

    # cross-key checks
    data = out["data"]
    if isinstance(data["standardize"], str) and data["standardize"] != "auto":
        raise ConfigError(
            "config key 'data.standardize' must be true, false or 'auto', got "
            f"{data['standardize']!r}"
        )
    if data["name"] == "file" and not data["path"]:
        raise ConfigError(
            "data.name = 'file' needs data.path: the .csv, .npz, .npy or .h5 file"
        )
    model = out["model"]
    if model["time_nodes"]:
        import grids

        nodes = model["time_nodes"]
        numbers = (isinstance(t, int | float) and type(t) is not bool for t in nodes)
        if not all(numbers):
            raise ConfigError(
                "config key 'model.time_nodes' must be a list of numbers, got "
                f"{nodes!r}"
            )
        try:
            tg = grids.time_grid(nodes=nodes)
        except grids.GridError as err:
            raise ConfigError(
                f"config key 'model.time_nodes' is invalid: {err}"
            ) from None
        model["time_nodes"] = [float(t) for t in tg.nodes]
        model["T"] = tg.T
        model["n_steps"] = tg.n_steps
    if model["kind"] == "spacetime":
        for key in ("width", "hidden"):
            if model[key]:
                raise ConfigError(
                    f"model.{key} is for model.kind = 'neural_ode'; a space-time "
                    "network takes its widths from spacetime.widths"
                )
        for entry in out["spacetime"]["widths"]:
            ok = isinstance(entry, list) and len(entry) in (2, 3)
            ok = ok and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in entry
            )
            ok = ok and all(isinstance(v, int) and v >= 1 for v in entry[1:])
            if not ok:
                raise ConfigError(
                    f"spacetime.widths entry {entry!r} must be [t_start, n] or "
                    "[t_start, n0, n1] with whole numbers n >= 1"
                )
    elif not stored:
        unused = [
            name
            for name, key in SCHEMA["spacetime"].items()
            if out["spacetime"][name] != key.default
        ]
        if unused:
            names = " and ".join(f"spacetime.{k}" for k in unused)
            verb, it = ("is", "it") if len(unused) == 1 else ("are", "them")
            raise ConfigError(
                f"{names} {verb} for model.kind = 'spacetime', but model.kind is "
                f"'{model['kind']}', which would ignore {it}: set model.kind = "
                f"'spacetime' in [model] to train a space-time network, or remove "
                f"{names}"
            )
    if out["problem"]["loss"] == "logistic" and data["task"] == "regression":
        raise ConfigError(
            "problem.loss = 'logistic' needs classes but data.task is 'regression': "
            "use loss 'squared' or 'lp'"
        )
    return out


def load_config(path) -> tuple[dict, str]:
    """Read and validate a TOML configuration file.

    Returns
    -------
    config : dict
    text : str
        The file's text, stored in run files as provenance.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file '{path}' does not exist: check the path, or run "
            "'spacetime config > my.toml' for a template"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"config path '{path}' is a folder, not a file: give the path of a "
            "TOML file"
        ) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text (byte {err.start} cannot be "
            "decoded): save it as UTF-8"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"cannot read config file '{path}' ({err.strerror}): check the path "
            "and its permissions"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            f"config file '{path}' is not valid TOML ({err}): fix that line, or "
            "start from 'spacetime config'"
        ) from None
    return validate(raw), text


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def dump(config: dict, comments: bool = False) -> str:
    """A configuration as TOML text (with each key's description if ``comments``)."""
    lines = []
    for section, keys in SCHEMA.items():
        if section:
            lines.append(f"\n[{section}]")
        values = config if section == "" else config[section]
        for name, key in keys.items():
            line = f"{name} = {_toml_value(values[name])}"
            if comments:
                line = f"{line:<44}# {key.doc}"
            lines.append(line)
    return "\n".join(lines).lstrip("\n") + "\n"


def markdown_table() -> str:
    """Every key with its default and meaning, as a Markdown table."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            full = f"{section}.{name}" if section else name
            doc = key.doc.replace("|", "\\|")  # a bare pipe would split the cell
            if key.choices:
                doc += " (" + ", ".join(f"`{c}`" for c in key.choices) + ")"
            rows.append(f"| `{full}` | `{_toml_value(key.default)}` | {doc} |")
    return "\n".join(rows) + "\n"
