"""Large-time studies: what the theory of neural ODEs as optimal control predicts,
measured on a user's own problem.

Four studies, each a sweep of training cases (one HDF5 run file per case, resumable,
local or on Dask; see :mod:`spacetime._sweep`) followed by an analysis written to
``<kind>.h5``, ``<kind>.csv``, ``<kind>.md`` and ``<kind>.png``:

- :func:`depth_study`: the same problem for growing horizons ``T`` (fixed number
  of layers or fixed step), each warm-started from the rescaled solution of the
  previous one; the training error against ``T`` and its fitted log-log slope, the
  rescaled controls ``v_T(s) = T u_T(T s)`` on ``[0, 1]``, their norms and the
  distances between consecutive horizons;
- :func:`lambda_study`: the same for a fixed ``T`` and decreasing ``lam``;
- :func:`rescaling_study`: the identity of the horizon-``T`` problem with weight
  ``lam`` and the horizon-1 problem with ``lam / T`` (and ``beta T``), at rescaled
  controls, objective and gradient;
- :func:`turnpike_study`: with a running cost, ``R(x(t))`` and ``|u(t)|`` along
  ``t`` for several ``T`` at one step, each horizon warm-started from the previous
  solution with its approach and exit arcs kept in place
  (:func:`turnpike_controls`), the exponential rate fitted on a window fixed in
  advance, the layers needed to reach a running-cost level, the optimal value, and
  the rank of the one-layer controls-to-states map at the targets.

``docs/studies.md`` states the facts these studies check and how to read them.
"""

import copy
import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _io
from ._config import dump, load_config, validate
from ._errors import ConfigError, RunFileError
from ._fits import (
    CONFIDENCE,
    WINDOW_FRACTIONS,
    fit_decay,
    fit_line,
    fit_power_law,
    spread,
    window_rule,
)

log = logging.getLogger(__name__)

FORMAT = "spacetime-study"
FORMAT_VERSION = 1
KINDS = ("depth", "lambda", "rescaling", "turnpike")

#: Two optimal values closer than this (relative) count as the same local minimum.
MINIMA_TOLERANCE = 1e-5
_COMPLETE = ("converged", "max_iter", "stopped")


# ---------------------------------------------------------------------------
# Controls on the normalised time interval [0, 1]


def layer_values(model, theta) -> np.ndarray:
    """The controls of each layer as vectors whose norm gives the ``L^2`` norm.

    Parameters
    ----------
    model : NeuralODE or SpaceTimeNetwork
        With the same number of controls in every layer.
    theta : ndarray, shape (n_params,)

    Returns
    -------
    ndarray, shape (n_steps, n_per_layer)
        Rows ``e_k`` with ``sum_k dt_k |e_k|^2 = ||u||^2``, the model's discrete
        control norm: the entries of ``u_k`` for a neural ODE, and the kernel values
        times the square roots of their quadrature weights for a space-time network.
    """
    core = model.core
    n = core.n_steps
    counts = np.diff(np.append(core.layer_off, core.n_params))
    if np.any(counts != counts[0]):
        raise ConfigError(
            "the layers have different numbers of controls (a grid that changes "
            "with depth): the studies compare layers on one grid; use a fixed grid"
        )
    theta = np.asarray(theta, dtype=np.float64)
    weight = core.norm_weight.reshape(n, -1) / core.dt[:, None]
    return np.sqrt(weight) * theta.reshape(n, -1)


def rescaled_controls(model, theta):
    """``v(s) = T u(T s)`` on ``[0, 1]``, piecewise constant.

    Returns
    -------
    s : ndarray, shape (n_steps + 1,)
        The normalised levels ``t_k / T``.
    v : ndarray, shape (n_steps, n_per_layer)
        ``T e_k`` with ``e_k`` from :func:`layer_values`, so that
        ``||v||^2_{L^2(0,1)} = sum_k (s_{k+1} - s_k) |v_k|^2 = T ||u||^2``.
    """
    T = float(model.T)
    return model.time.nodes / T, T * layer_values(model, theta)


def piecewise_norm(s, v) -> float:
    """``L^2(0, 1)`` norm of the piecewise constant ``v_k`` on ``[s_k, s_k+1)``.

    Parameters
    ----------
    s : ndarray, shape (n + 1,)
    v : ndarray, shape (n, m)
    """
    return math.sqrt(float(np.dot(np.diff(s), np.sum(np.square(v), axis=1))))


def piecewise_distance(s_a, v_a, s_b, v_b) -> float:
    """``L^2`` distance of two piecewise-constant functions on different grids.

    Parameters
    ----------
    s_a : ndarray, shape (n_a + 1,)
    v_a : ndarray, shape (n_a, m)
    s_b : ndarray, shape (n_b + 1,)
    v_b : ndarray, shape (n_b, m)

    Notes
    -----
    Both are constant on the cells of the union of the two grids, so the distance is
    the exact sum ``sum_c |c| |v_a(c) - v_b(c)|^2`` over those cells.
    """
    edges = np.union1d(s_a, s_b)
    mid = 0.5 * (edges[:-1] + edges[1:])
    ia = np.clip(np.searchsorted(s_a, mid, side="right") - 1, 0, len(v_a) - 1)
    ib = np.clip(np.searchsorted(s_b, mid, side="right") - 1, 0, len(v_b) - 1)
    diff = np.asarray(v_a)[ia] - np.asarray(v_b)[ib]
    return math.sqrt(float(np.dot(np.diff(edges), np.sum(diff * diff, axis=1))))


def projection_matrix(s_from, s_to) -> np.ndarray:
    """The ``L^2`` projection of piecewise constants between two grids of [0, 1].

    Returns
    -------
    ndarray, shape (len(s_to) - 1, len(s_from) - 1)
        ``M[k, j] = |I_k ∩ J_j| / |I_k|`` with ``I_k`` the cells of ``s_to`` and
        ``J_j`` those of ``s_from``: each new value is the mean of the old function
        over the new cell (an injection when the new grid refines the old one).
    """
    s_from = np.asarray(s_from, dtype=np.float64)
    s_to = np.asarray(s_to, dtype=np.float64)
    lo = np.maximum(s_to[:-1, None], s_from[None, :-1])
    hi = np.minimum(s_to[1:, None], s_from[None, 1:])
    overlap = np.clip(hi - lo, 0.0, None)
    return overlap / np.diff(s_to)[:, None]


def resample_controls(controls, nodes_from, nodes_to):
    """Piecewise-constant controls carried to another time grid, in normalised time.

    Parameters
    ----------
    controls : dict or list of dict
        A neural ODE's controls by name, each of shape (n_from, ...), or a space-time
        network's per-layer dictionaries (one fixed grid).
    nodes_from : ndarray, shape (n_from + 1,)
        The levels the controls live on, ``0 = t_0 < ... < t_n = T_from``.
    nodes_to : ndarray, shape (n_to + 1,)
        The new levels, on ``[0, T_to]``.

    Returns
    -------
    The same structure with ``n_to`` layers.

    Notes
    -----
    With ``s = t / T`` on both grids, layer ``k`` of the result is the mean of the old
    controls over the new cell ``[s_k, s_k+1]`` (:func:`projection_matrix`); the
    scaling by ``T_from / T_to`` of a warm start is applied afterwards. When the
    horizon doubles at a fixed step, each old layer is copied into two new ones.
    """
    nodes_from = np.asarray(nodes_from, dtype=np.float64)
    nodes_to = np.asarray(nodes_to, dtype=np.float64)
    m = projection_matrix(nodes_from / nodes_from[-1], nodes_to / nodes_to[-1])
    if isinstance(controls, list):
        if len(controls) != m.shape[1]:
            raise ConfigError(
                f"{len(controls)} layers of controls for a grid of {m.shape[1]} steps"
            )
        names = list(controls[0])
        stacked = {k: np.stack([np.asarray(c[k]) for c in controls]) for k in names}
        return [
            {k: np.tensordot(m[i], stacked[k], axes=1) for k in names}
            for i in range(m.shape[0])
        ]
    return {k: np.tensordot(m, np.asarray(v), axes=1) for k, v in controls.items()}


# ---------------------------------------------------------------------------
# The controllability diagnostic


def _activation(name: str, alpha: float, z):
    """``act(z)`` and ``act'(z)`` (at 0 the one-sided slope from the right)."""
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z, np.ones_like(z)
    if name == "tanh":
        t = np.tanh(z)
        return t, 1.0 - t * t
    if name == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        return s, s * (1.0 - s)
    if name == "softplus":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        return np.logaddexp(0.0, z), s
    if name == "relu":
        return np.maximum(z, 0.0), (z >= 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z >= 0, z, alpha * z), np.where(z >= 0, 1.0, alpha)
    raise ConfigError(f"unknown activation '{name}'")


def _jacobian_factor(model, xbar):
    """The factor ``A`` with ``J = I_n ⊗ A`` up to a permutation of the columns.

    Returns
    -------
    factor : ndarray, shape (n_samples, n_columns_per_component)
    n_columns : int
        All columns of the one-layer Jacobian, including those that are zero.
    """
    core = model.core
    n = int(core.widths[0])
    h = int(core.hidden[0])
    field_name = core.field.name
    act = core.activation.name
    count = int(np.append(core.layer_off, core.n_params)[1] - core.layer_off[0])
    scale = core.scale[:count] if core.scale is not None else np.ones(count)
    n_samples = xbar.shape[0]
    zero_value, zero_slope = _activation(act, core.alpha, np.zeros(1))
    if field_name == "inside":
        # f_ij = sum_l W_jl s_jl act(x_il) + b_j
        col_scale = scale[: n * n].reshape(n, n)[0]
        factor = np.hstack(
            [
                _activation(act, core.alpha, xbar)[0] * col_scale,
                scale[n * n : n * n + 1] * np.ones((n_samples, 1)),
            ]
        )
    elif field_name == "outside":
        # at u = 0: d act(W x + b)_j / dW_jl = act'(0) x_l s_jl, / db_j = act'(0)
        col_scale = scale[: n * n].reshape(n, n)[0]
        factor = zero_slope[0] * np.hstack(
            [xbar * col_scale, scale[n * n : n * n + 1] * np.ones((n_samples, 1))]
        )
    else:
        # bottleneck w act(a x + b) at w = a = b = 0: only dw_jm = act(0) survives
        col_scale = scale[: n * h].reshape(n, h)[0]
        factor = zero_value[0] * np.ones((n_samples, 1)) * col_scale[None, :]
    return factor, count


def one_layer_jacobian(model, xbar) -> np.ndarray:
    """Jacobian of one layer's increment at the states ``xbar`` and zero controls.

    Parameters
    ----------
    model : NeuralODE or SpaceTimeNetwork
    xbar : ndarray, shape (n_samples, width)

    Returns
    -------
    ndarray, shape (n_samples * width, n_per_layer)
        ``d (dt_0 f(xbar_i, u))_j / d u`` at ``u = 0``, rows ``i * width + j``,
        columns in the order of the model's parameters of one layer (``w`` row-major,
        then ``b``; for the bottleneck ``w``, ``a``, ``b``).

    Notes
    -----
    For the inside field ``f_j(x, u) = sum_l w_jl act(x_l) + b_j`` the derivative of
    component ``j`` of sample ``i`` is ``act(xbar_il)`` with respect to ``w_jl`` and 1
    with respect to ``b_j``, and zero with respect to the other rows: the matrix is
    ``I_width ⊗ [act(xbar) 1]`` up to the order of its columns, so its rank is
    ``width * rank([act(xbar) 1])`` and at most ``width (width + 1)``.
    """
    core = model.core
    xbar = np.asarray(xbar, dtype=np.float64)
    n_samples, n = xbar.shape
    factor, count = _jacobian_factor(model, xbar)
    eye = np.eye(n)
    dt = float(core.dt[0])
    jac = np.zeros((n_samples, n, count))
    if core.field.name in ("inside", "outside"):
        k = n * n
        jac[:, :, :k] = np.einsum("il,jm->ijml", factor[:, :n], eye).reshape(
            n_samples, n, k
        )
        jac[:, :, k : k + n] = np.einsum("i,jm->ijm", factor[:, n], eye)
    else:
        h = factor.shape[1]
        jac[:, :, : n * h] = np.einsum("im,jk->ijkm", factor, eye).reshape(
            n_samples, n, n * h
        )
    return dt * jac.reshape(n_samples * n, count)


@dataclass(frozen=True)
class Controllability:
    """Rank and singular values of the one-layer controls-to-states map.

    Attributes
    ----------
    rank : int
        Numerical rank (singular values above ``max(rows, columns) eps s_max``).
    rows : int
        ``n_samples * width``: the state directions to reach.
    columns : int
        Controls of one layer (``width^2 + width`` for the inside field).
    sigma_min : float
        The ``rows``-th singular value: how far the map is from failing to reach
        every state direction (0 when there are fewer controls than rows, or the
        rank falls short).
    sigma_max : float
    singular_values : ndarray, shape (min(rows, columns),)
    """

    rank: int
    rows: int
    columns: int
    sigma_min: float
    sigma_max: float
    singular_values: np.ndarray

    @property
    def full(self) -> bool:
        """Whether every state direction is reached: rank == rows."""
        return self.rank == self.rows


def controllability(model, xbar) -> Controllability:
    """Rank and smallest singular value of :func:`one_layer_jacobian` at ``xbar``.

    Notes
    -----
    The Jacobian is ``dt I_n ⊗ A`` up to column order (see
    :func:`one_layer_jacobian`), so its singular values are those of ``dt A``, each
    repeated ``n`` times, padded with zeros; they are computed that way, which is
    exact and avoids an SVD of a matrix with ``n_samples n`` rows.
    """
    xbar = np.asarray(xbar, dtype=np.float64)
    n_samples, n = xbar.shape
    factor, count = _jacobian_factor(model, xbar)
    dt = float(model.core.dt[0])
    s = dt * np.linalg.svd(factor, compute_uv=False)
    rows = n_samples * n
    size = min(rows, count)
    values = np.zeros(size)
    rep = np.repeat(s, n)[:size]
    values[: rep.size] = rep
    values = np.sort(values)[::-1]
    s_max = float(values[0]) if size else 0.0
    tol = max(rows, count) * np.finfo(np.float64).eps * s_max
    rank = int(np.sum(values > tol))
    return Controllability(
        rank=rank,
        rows=rows,
        columns=count,
        sigma_min=float(values[rows - 1]) if count >= rows else 0.0,
        sigma_max=s_max,
        singular_values=values,
    )


# ---------------------------------------------------------------------------
# The result of a study, its files and its table


@dataclass
class Study:
    """The analysis of a large-time study, as written to ``<kind>.h5``.

    Attributes
    ----------
    kind : {"depth", "lambda", "rescaling", "turnpike"}
    settings : dict
        The study's options, the fixed rules (fit window, confidence level) and the
        run config (as TOML text under ``"config"``).
    columns : dict of str to ndarray, each of shape (n_rows,)
        The table: one row per case (or per horizon and point for ``rescaling``).
    fits : dict of str to ndarray, each of shape (n_fits,)
        One row per fitted line: ``series``, ``quantity``, ``against``, ``slope`` and
        its interval ``slope_low``, ``slope_high``, ``intercept``, ``n_points``.
    curves : dict of str to dict of ndarray
        Per case (``folder:name`` in path studies): the rescaled controls ``s``,
        ``v`` (path studies), or ``t``,
        ``running`` and ``control`` (turnpike).
    summary : dict
        Scalars that sum the study up (and the diagnostic's singular values).
    path : Path or None
        The analysis file.
    paths : dict of str to Path
        Every file written.
    sweeps : list of SweepResult
        The sweeps that ran the cases (empty for a study read back from a file).
    """

    kind: str
    settings: dict
    columns: dict
    fits: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    path: Path | None = None
    paths: dict = field(default_factory=dict)
    sweeps: list = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        first = next(iter(self.columns.values()), np.zeros(0))
        return len(first)

    @property
    def complete(self) -> bool:
        """Whether every case of the study finished (converged or max_iter)."""
        if "status" not in self.columns:
            return True
        return all(s in _COMPLETE for s in self.columns["status"])

    @property
    def interrupted(self) -> bool:
        return any(s.interrupted for s in self.sweeps)

    def rows(self) -> list[dict]:
        """The table as one dictionary per row."""
        return [
            {k: _plain(v[i]) for k, v in self.columns.items()}
            for i in range(self.n_rows)
        ]

    def fit_rows(self) -> list[dict]:
        n = len(next(iter(self.fits.values()), []))
        return [{k: _plain(v[i]) for k, v in self.fits.items()} for i in range(n)]

    def fit(self, quantity: str, series: str | None = None) -> dict | None:
        """The fit of ``quantity`` (of one series), or None."""
        for row in self.fit_rows():
            if row["quantity"] == quantity and (
                series is None or row["series"] == series
            ):
                return row
        return None

    def csv(self) -> str:
        """The table as CSV text (one row per case)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(list(self.columns))
        for row in self.rows():
            writer.writerow([_csv(v) for v in row.values()])
        return buf.getvalue()

    def table(self) -> str:
        """The results as Markdown: the table, the fits and the summary."""
        return _TABLES[self.kind](self)


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode()
    return v


def _csv(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def _num(v, spec=".4g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:{spec}}"


def _fit_text(row) -> str:
    if row is None:
        return "not enough points"
    pct = f"{100 * row['confidence']:g}%"
    if not (math.isfinite(row["slope_low"]) and math.isfinite(row["slope_high"])):
        # two points: a line through them has no spread to measure
        return f"{row['slope']:.3f} (no interval from {row['n_points']} points)"
    return (
        f"{row['slope']:.3f} ({pct} CI [{_num(row['slope_low'], '.3f')}, "
        f"{_num(row['slope_high'], '.3f')}], {row['n_points']} points)"
    )


def _interval_text(low, high) -> str:
    """``[low, high]``, or a dash when the fit had too few points for one."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"[{_num(low, '.3f')}, {_num(high, '.3f')}]"


def _fit_record(series: str, quantity: str, against: str, fit) -> dict:
    return {
        "series": series,
        "quantity": quantity,
        "against": against,
        "slope": fit.slope,
        "slope_low": fit.slope_low,
        "slope_high": fit.slope_high,
        "intercept": fit.intercept,
        "slope_stderr": fit.slope_stderr,
        "n_points": fit.n_points,
        "dof": fit.dof,
        "confidence": fit.confidence,
    }


def _columns(rows: list[dict]) -> dict:
    """Rows of dictionaries as columns of arrays (strings as objects)."""
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if all(isinstance(v, bool | np.bool_) for v in values):
            out[key] = np.array(values, dtype=np.int8)
        elif all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values
        ):
            out[key] = np.array(values, dtype=np.int64)
        elif all(isinstance(v, int | float | np.number) for v in values):
            out[key] = np.array(values, dtype=np.float64)
        else:
            out[key] = np.array([str(v) for v in values], dtype=object)
    return out


# -- files -----------------------------------------------------------------


def _study_paths(folder: Path, kind: str) -> dict:
    names = [f"{kind}.h5", f"{kind}.csv", f"{kind}.md", f"{kind}.png"]
    return {name: folder / name for name in names}


def _check_folder(out) -> Path:
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"study output '{folder}' is a file: give a folder")
    _io.check_output_path(folder / "study.check", overwrite=True)
    return folder


def write_study(study: Study, folder) -> dict:
    """Write the analysis file, the CSV and Markdown tables and the figure.

    Each file is written under a temporary name and renamed when complete; running
    a study again replaces them.

    Returns
    -------
    dict of str to Path
    """
    import h5py

    folder = Path(folder)
    paths = _study_paths(folder, study.kind)
    h5 = paths[f"{study.kind}.h5"]
    strings = h5py.string_dtype()
    with _io.atomic_path(h5) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["study"] = study.kind
            f.attrs["settings"] = json.dumps(study.settings, default=_json_default)
            f.attrs["provenance"] = json.dumps(
                _io.provenance(int(study.settings.get("seed", 0)))
            )
            for name, table, dim in (
                ("cases", study.columns, "row"),
                ("fits", study.fits, "fit"),
            ):
                g = f.create_group(name)
                n = len(next(iter(table.values()), []))
                scale = g.create_dataset(dim, data=np.arange(n, dtype=np.int64))
                scale.make_scale(dim)
                for key, values in table.items():
                    data = np.asarray(values)
                    ds = g.create_dataset(
                        key, data=data, dtype=strings if data.dtype == object else None
                    )
                    ds.dims[0].attach_scale(scale)
            g = f.create_group("curves")
            for case, arrays in study.curves.items():
                cg = g.create_group(case)
                for key, values in arrays.items():
                    cg.create_dataset(key, data=np.asarray(values))
            g = f.create_group("summary")
            for key, value in study.summary.items():
                if isinstance(value, np.ndarray):
                    g.create_dataset(key, data=value)
                elif value is not None:
                    g.attrs[key] = value
    with _io.atomic_path(paths[f"{study.kind}.csv"]) as tmp:
        tmp.write_text(study.csv(), encoding="utf-8")
    with _io.atomic_path(paths[f"{study.kind}.md"]) as tmp:
        tmp.write_text(study.table(), encoding="utf-8")
    fig = plot_study(study)
    with _io.atomic_path(paths[f"{study.kind}.png"]) as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=80)
    study.path = h5
    study.paths = paths
    return paths


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"cannot store {type(v).__name__} in study settings")


def load_study(path) -> Study:
    """Read a study's analysis file (``<kind>.h5``) back.

    Raises
    ------
    RunFileError
        When the file is missing, damaged or not a study file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"study file '{path}' does not exist: check the path")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise RunFileError(
                    f"'{path}' is an HDF5 file but not a spacetime study file"
                )
            if f.attrs.get("format_version") != FORMAT_VERSION:
                raise RunFileError(
                    f"'{path}' has another study-file format version: use the "
                    "spacetime version that wrote it"
                )

            def table(g, dim):
                out = {}
                for key in g:
                    if key == dim:
                        continue
                    data = g[key][()]
                    if data.dtype == object:
                        data = np.array(
                            [x.decode() if isinstance(x, bytes) else x for x in data],
                            dtype=object,
                        )
                    out[key] = data
                return out

            kind = str(f.attrs["study"])
            settings = json.loads(f.attrs["settings"])
            order = settings.get("columns")
            columns = table(f["cases"], "row")
            if order:
                columns = {k: columns[k] for k in order if k in columns}
            fits = table(f["fits"], "fit")
            fit_order = settings.get("fit_columns")
            if fit_order:
                fits = {k: fits[k] for k in fit_order if k in fits}
            curves = {case: {k: g[k][()] for k in g} for case, g in f["curves"].items()}
            summary = {k: _plain(v) for k, v in f["summary"].attrs.items()}
            for k, ds in f["summary"].items():
                summary[k] = ds[()]
    except RunFileError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise RunFileError(f"study file '{path}' is damaged ({err})") from None
    return Study(kind, settings, columns, fits, curves, summary, path=path)


# ---------------------------------------------------------------------------
# Running the cases through the sweep machinery


def _config_and_text(config) -> tuple[dict, str]:
    if isinstance(config, str | Path):
        return load_config(config)
    cfg = validate(copy.deepcopy(config or {}))
    return cfg, dump(cfg)


def _default_out(config, kind: str) -> Path:
    stem = Path(config).stem if isinstance(config, str | Path) else "study"
    return Path("studies") / f"{stem}-{kind}"


class _Problems:
    """Builds the problem of a case config, loading each dataset once."""

    def __init__(self):
        self._data = {}

    def build(self, config):
        from ._run import build, load_data

        key = json.dumps(config["data"], sort_keys=True)
        if key not in self._data:
            self._data[key] = load_data(config)
        return build(config, self._data[key])


def _run_cases(config, grid: dict, chain, folder, run_options, warm_start=None):
    """Plan and run one sweep of the study; returns the plan and the sweep result.

    ``warm_start`` is the sweep's rule for chained cases (default: rescaling).
    """
    from ._sweep import plan_sweep, run_sweep

    raw = copy.deepcopy(config)
    raw["sweep"] = {"grid": grid, "out": str(folder)}
    if chain is not None:
        raw["sweep"]["chain"] = chain
        if warm_start is not None:
            raw["sweep"]["warm_start"] = warm_start
    plan = plan_sweep(raw)
    result = run_sweep(raw, **run_options)
    return plan, result


def _case_record(plan, record, problems):
    """Read a complete case back: the run record, model, problem and evaluation."""
    case = plan.cases[[c.name for c in plan.cases].index(record.name)]
    path = plan.out / case.file
    rec = _io.read_run(path)
    _, model, problem = problems.build(case.config)
    theta = model.pack(rec["controls"])
    z = problem.join(theta, rec["p"], rec["p0"])
    return case, path, rec, model, problem, theta, problem.evaluate(z)


def _uniform_dt(config) -> float:
    m = config["model"]
    if m["time_nodes"]:
        steps = np.diff(m["time_nodes"])
        if np.ptp(steps) > 1e-9 * steps.max():
            raise ConfigError(
                "a study at a fixed step needs a uniform time grid: remove "
                "model.time_nodes or make its steps equal"
            )
    return m["T"] / m["n_steps"]


def _nodes_at_step(T: float, dt: float) -> list:
    import grids

    n = round(T / dt)
    if n < 1 or abs(n * dt - T) > 1e-9 * T:
        raise ConfigError(
            f"the horizon T = {T:g} is not a whole number of steps dt = {dt:g}: "
            "choose horizons that are multiples of dt, or another dt"
        )
    return [float(t) for t in grids.time_grid(T, n).nodes]


def _horizon_grid(config, horizons, fixed_dt: bool, dt):
    """The sweep key and values that set each horizon, and the step used."""
    m = config["model"]
    if fixed_dt:
        step = float(dt) if dt is not None else _uniform_dt(config)
        if not (math.isfinite(step) and step > 0):
            raise ConfigError(f"the step dt must be > 0, got {dt!r}")
        return "model.time_nodes", [_nodes_at_step(T, step) for T in horizons], step
    if m["time_nodes"]:
        nodes = np.asarray(m["time_nodes"])
        return (
            "model.time_nodes",
            [[float(t) for t in nodes * (T / nodes[-1])] for T in horizons],
            None,
        )
    return "model.T", [float(T) for T in horizons], None


def _check_values(name: str, values, positive=True) -> list:
    out = []
    for v in values:
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not math.isfinite(v)
        ):
            raise ConfigError(f"{name} must be numbers, got {v!r}")
        if positive and not v > 0:
            raise ConfigError(f"{name} must be > 0, got {v!r}")
        out.append(float(v))
    if len(set(out)) != len(out):
        raise ConfigError(f"{name} lists a value twice: remove the repeat")
    if not out:
        raise ConfigError(f"{name} needs at least one value")
    return out


def _run_options(workers, scheduler, progress, threads, executor=None) -> dict:
    return {
        "workers": workers,
        "scheduler": scheduler,
        "progress": progress,
        "threads": threads,
        "executor": executor,
    }


# ---------------------------------------------------------------------------
# Path studies: horizons (depth) or weights (lambda)


def _path_study(
    kind,
    config,
    text,
    values,
    *,
    fixed_dt=False,
    dt=None,
    warm=True,
    lams=None,
    cold_seeds=(),
    folder,
    run_options,
    confidence=CONFIDENCE,
):
    """Run and analyse a depth or lambda study (see the public functions)."""
    variable = "T" if kind == "depth" else "lam"
    if kind == "depth":
        key, grid_values, step = _horizon_grid(config, values, fixed_dt, dt)
    else:
        key, grid_values, step = "problem.lam", list(values), None
    grid = {key: grid_values}
    if lams:
        grid["problem.lam"] = lams
    problems = _Problems()
    # one model to check the layout before any case runs
    _, model, problem = problems.build(config)
    layer_values(model, model.init_params(0, 0.1))

    sweeps = []
    plan, result = _run_cases(
        config, grid, key if warm else None, folder / "cases", run_options
    )
    sweeps.append(("warm" if warm else "cold", plan, result))
    if cold_seeds and not result.interrupted:
        cold_grid = dict(grid)
        cold_grid["seed"] = [int(s) for s in cold_seeds]
        cold_plan, cold_result = _run_cases(
            config, cold_grid, None, folder / "cold", run_options
        )
        sweeps.append(("cold", cold_plan, cold_result))

    rows, curves = [], {}
    for start, plan_i, result_i in sweeps:
        for record in result_i:
            case = plan_i.cases[[c.name for c in plan_i.cases].index(record.name)]
            cfg = case.config
            label = start
            if start == "cold" and cold_seeds and plan_i is not plan:
                label = f"cold seed={cfg['seed']}"
            if lams:
                label += f" lam={cfg['problem']['lam']:g}"
            row = {
                "name": case.name,
                "folder": plan_i.out.name,
                "series": label,
                "start": start,
                "T": float(cfg["model"]["T"]),
                "n_steps": int(cfg["model"]["n_steps"]),
                "dt": float(cfg["model"]["T"]) / int(cfg["model"]["n_steps"]),
                "lam": float(cfg["problem"]["lam"]),
                "seed": int(cfg["seed"]),
                "status": record.status,
                "n_iter": int(record.n_iter),
                "objective": math.nan,
                "risk": math.nan,
                "accuracy": math.nan,
                "running_cost": math.nan,
                "u_norm": math.nan,
                "v_norm": math.nan,
                "v_diff": math.nan,
                "grad_norm": math.nan,
            }
            if record.complete:
                _, _, rec, model, problem, theta, ev = _case_record(
                    plan_i, record, problems
                )
                s, v = rescaled_controls(model, theta)
                row.update(
                    status=rec["status"],
                    n_iter=int(rec["optimizer"]["n_iter"]),
                    objective=float(ev["objective"]),
                    risk=float(ev["risk"]),
                    accuracy=float(ev["accuracy"]),
                    running_cost=float(ev["running_cost"]),
                    u_norm=float(ev["control_norm"]),
                    v_norm=piecewise_norm(s, v),
                    grad_norm=float(ev["grad_norm"]),
                )
                curves[f"{plan_i.out.name}:{case.name}"] = {"s": s, "v": v}
            rows.append(row)
    # the path order: T increasing, lam decreasing
    sign = 1.0 if variable == "T" else -1.0
    rows.sort(key=lambda r: (r["folder"] != "cases", r["series"], sign * r[variable]))
    series_names = list(dict.fromkeys(r["series"] for r in rows))
    for name in series_names:
        members = [r for r in rows if r["series"] == name]
        for a, b in zip(members, members[1:], strict=False):
            ka, kb = (f"{r['folder']}:{r['name']}" for r in (a, b))
            if ka in curves and kb in curves:
                b["v_diff"] = piecewise_distance(
                    curves[ka]["s"], curves[ka]["v"], curves[kb]["s"], curves[kb]["v"]
                )
    _count_minima(rows, variable)
    if variable == "T" and step is None and model.homogeneous:
        _transported_values(rows)
    fits = []
    for name in series_names:
        members = [r for r in rows if r["series"] == name and r["status"] in _COMPLETE]
        xs = np.array([r[variable] for r in members])
        for quantity, against, kind_fit in (
            ("risk", variable, "power"),
            ("v_diff", variable, "power"),
            ("v_norm", f"log {variable}", "semilog"),
            ("T_risk", "log T", "semilog"),
        ):
            if quantity == "T_risk":
                if variable != "T":
                    continue
                # E = (a + b log T) / T, the form when the loss's minimum is not
                # attained, is a straight line of T E against log T
                ys = np.array([r["T"] * r["risk"] for r in members])
            else:
                ys = np.array([r[quantity] for r in members])
            ok = np.isfinite(ys) & (ys > 0)
            if ok.sum() < 2 or np.ptp(xs[ok]) == 0:
                continue
            fit = (
                fit_power_law(xs[ok], ys[ok], confidence)
                if kind_fit == "power"
                else fit_line(np.log(xs[ok]), ys[ok], confidence)
            )
            fits.append(_fit_record(name, quantity, against, fit))
    settings = {
        "study": kind,
        "variable": variable,
        "values": list(values),
        "layers": (
            f"fixed step dt = {step:g} (L = T / dt)"
            if step is not None
            else f"fixed number of layers L = {config['model']['n_steps']}"
        ),
        "fixed_dt": bool(fixed_dt),
        "dt": step,
        "warm": bool(warm),
        "warm_start": (
            "each case starts from the previous one's controls on the normalised "
            "interval [0, 1] (L2 projection onto the new layers when L changes), "
            "scaled by T_prev / T"
            if warm and variable == "T"
            else "each case starts from the previous lam's solution"
            if warm
            else f"cold: seeded initial controls (seed {config['seed']})"
        ),
        "lams": list(lams or []),
        "cold_seeds": [int(s) for s in cold_seeds],
        "confidence": confidence,
        "fit_rule": (
            "least squares over every complete case of a series with y > 0, on "
            "(log x, log y) for E and the distances, on (log x, y) for ||v|| and "
            "T E; the slope's interval from Student's t with n - 2 degrees of "
            "freedom"
        ),
        "minima_tolerance": MINIMA_TOLERANCE,
        "seed": config["seed"],
        "config": text,
        "out": str(folder),
    }
    table = _columns(rows)
    settings["columns"] = list(table)
    fit_table = _columns(fits)
    settings["fit_columns"] = list(fit_table)
    summary = {}
    main = [r for r in rows if r["start"] != "cold" or not cold_seeds]
    if main:
        done = [r for r in main if r["status"] in _COMPLETE]
        summary["n_cases"] = len(rows)
        summary["n_complete"] = sum(r["status"] in _COMPLETE for r in rows)
        if done:
            summary["max_minima"] = int(max(r["n_minima"] for r in done))
    study = Study(kind, settings, table, fit_table, curves, summary)
    study.sweeps = [s[2] for s in sweeps]
    return study


def _count_minima(rows, variable):
    """Distinct optimal values of the converged cases at each value (and lam)."""
    groups = {}
    for r in rows:
        groups.setdefault((r[variable], r["lam"]), []).append(r)
    for members in groups.values():
        values = sorted(
            r["objective"]
            for r in members
            if r["status"] == "converged" and math.isfinite(r["objective"])
        )
        distinct = 0
        last = None
        for v in values:
            if last is None or abs(v - last) > MINIMA_TOLERANCE * max(
                abs(last), 1e-300
            ):
                distinct += 1
                last = v
        best = values[0] if values else math.nan
        for r in members:
            r["n_minima"] = distinct
            r["best_objective"] = best
            r["gap_to_best"] = (
                (r["objective"] - best) / abs(best)
                if math.isfinite(r["objective"]) and best
                else math.nan
            )


def _transported_values(rows):
    """At a fixed number of layers: the objective of every other solution at ``T``.

    The flow of ``u = v / T`` on ``[0, T]`` with ``L`` steps is the flow of ``v`` on
    ``[0, 1]`` with ``L`` steps (F1), so the training error of ``v_T'`` is the same at
    every horizon and ``J_T(v_T' / T) = E_T' + (lam / T) ||v_T'||^2`` needs no new
    computation (without a running cost). ``transport_gap = J_T - min_T' J_T(v_T'/T)``
    is positive when another horizon's solution is better at ``T``: the optimiser
    stopped in a worse local minimum there.
    """
    for r in rows:
        r["transport_gap"] = math.nan
    for r in rows:
        if not (math.isfinite(r["objective"]) and r["running_cost"] == 0):
            continue
        best = math.inf
        for o in rows:
            if o["lam"] != r["lam"] or not math.isfinite(o["risk"]):
                continue
            best = min(best, o["risk"] + r["lam"] / r["T"] * o["v_norm"] ** 2)
        r["transport_gap"] = r["objective"] - best


def depth_study(
    config,
    T=(1, 2, 4, 8, 16, 32),
    *,
    fixed_dt=False,
    dt=None,
    warm=True,
    lams=None,
    cold_seeds=(),
    out=None,
    workers=None,
    scheduler=None,
    executor=None,
    threads=None,
    progress=True,
    confidence=CONFIDENCE,
) -> Study:
    """The same problem for growing horizons ``T``: training error and controls.

    Parameters
    ----------
    config : path-like or dict
        A run config (TOML file or nested dictionaries); its ``model.T`` is replaced
        by each horizon.
    T : sequence of float
        The horizons, run in increasing order.
    fixed_dt : bool
        Keep the step ``dt`` (default the config's ``T / n_steps``, or ``dt``) and
        use ``L = T / dt`` layers; by default the number of layers is the config's.
    warm : bool
        Start each horizon from the rescaled solution of the previous one (see
        Notes); cold starts from the seeded initial controls otherwise.
    lams : sequence of float, optional
        Several weights ``lam``: one path per weight (run in parallel).
    cold_seeds : sequence of int
        Also train every horizon from these seeds' cold starts (in ``out/cold``), to
        count the local minima met at each horizon.
    out : path-like, optional
        The study folder (default ``studies/<config stem>-depth``): the cases in
        ``cases/`` (a sweep folder), the analysis in ``depth.h5``, ``depth.csv``,
        ``depth.md`` and ``depth.png``.
    workers, scheduler, executor, threads, progress
        How the cases run, as for :func:`spacetime.run_sweep`.
    confidence : float
        Level of the slope intervals.

    Returns
    -------
    Study
        Columns per case: ``T``, ``n_steps``, ``status``, ``n_iter``, ``objective``,
        ``risk`` (the training error E), ``accuracy``, ``u_norm`` (``||u_T||``),
        ``v_norm`` (``||v_T||``), ``v_diff`` (``||v_T - v_T'||`` to the previous
        horizon of the path), ``n_minima``, ``transport_gap``; fits of ``risk`` and
        ``v_diff`` against ``T`` (log-log), and of ``v_norm`` and ``T_risk``
        (``T E``) against ``log T``: a positive slope of ``T E`` is the factor
        ``log T`` of a loss whose minimum is not attained.

    Notes
    -----
    Warm start at a fixed number of layers: ``u <- u T_prev / T`` layer by layer,
    which keeps the flow of a homogeneous field exactly (the same ``v``). At a fixed
    step the previous controls are first carried to the new layers in normalised
    time ``s = t / T`` by the ``L^2`` projection of piecewise constants
    (:func:`resample_controls`; a copy into two layers when ``T`` doubles), then
    scaled.
    """
    cfg, text = _config_and_text(config)
    horizons = sorted(_check_values("the horizons T", T))
    lams = _check_values("the weights lam", lams, positive=False) if lams else None
    folder = _check_folder(out if out is not None else _default_out(config, "depth"))
    study = _path_study(
        "depth",
        cfg,
        text,
        horizons,
        fixed_dt=fixed_dt,
        dt=dt,
        warm=warm,
        lams=lams,
        cold_seeds=tuple(cold_seeds),
        folder=folder,
        run_options=_run_options(workers, scheduler, progress, threads, executor),
        confidence=confidence,
    )
    write_study(study, folder)
    return study


def lambda_study(
    config,
    lams=(1e-1, 1e-2, 1e-3, 1e-4),
    *,
    warm=True,
    cold_seeds=(),
    out=None,
    workers=None,
    scheduler=None,
    executor=None,
    threads=None,
    progress=True,
    confidence=CONFIDENCE,
) -> Study:
    """The same problem at the config's ``T`` for decreasing weights ``lam``.

    Parameters
    ----------
    lams : sequence of float
        The weights, run in decreasing order; with ``warm`` each starts from the
        previous weight's solution.
    Other parameters as for :func:`depth_study` (the folder defaults to
    ``studies/<config stem>-lambda``, the files to ``lambda.*``).

    Returns
    -------
    Study
        The columns of :func:`depth_study` against ``lam``; fits of ``risk`` and
        ``v_diff`` against ``lam`` (log-log) and of ``v_norm`` against ``log lam``.

    Notes
    -----
    At a fixed number of layers the problem with ``(T, lam)`` is the problem with
    ``(1, lam / T)`` (F1), so this study and :func:`depth_study` explore the same
    one-parameter family when the field is homogeneous.
    """
    cfg, text = _config_and_text(config)
    values = sorted(_check_values("the weights lam", lams), reverse=True)
    folder = _check_folder(out if out is not None else _default_out(config, "lambda"))
    study = _path_study(
        "lambda",
        cfg,
        text,
        values,
        warm=warm,
        cold_seeds=tuple(cold_seeds),
        folder=folder,
        run_options=_run_options(workers, scheduler, progress, threads, executor),
        confidence=confidence,
    )
    write_study(study, folder)
    return study


# ---------------------------------------------------------------------------
# F1: rescaling


def rescaling_study(
    config,
    T=None,
    *,
    n_points=3,
    scale=1.0,
    seed=0,
    out=None,
) -> Study:
    """Check that horizon ``T`` with ``lam`` is horizon 1 with ``lam / T``.

    Parameters
    ----------
    config : path-like or dict
        A run config whose field is homogeneous in the controls (inside; outside
        with relu, leaky_relu or identity).
    T : sequence of float, optional
        The horizons to compare with 1; default the config's ``T`` and ten times it.
    n_points : int
        Random control sets per horizon (seeds ``seed, seed + 1, ...``).
    scale : float
        Their size, as ``model.init_scale``.
    out : path-like, optional
        Folder of ``rescaling.h5``, ``.csv``, ``.md``, ``.png`` (default
        ``studies/<config stem>-rescaling``). No training is done, so there are no
        case files.

    Returns
    -------
    Study
        One row per horizon and point: both objectives, the relative discrepancy of
        the objective and of the gradient.

    Raises
    ------
    ConfigError
        When the field is not homogeneous in its controls.

    Notes
    -----
    With ``z(s) = x(T s)`` and ``v(s) = T u(T s)``, ``z' = f(z, v)`` on ``[0, 1]``
    for a field with ``f(x, c u) = c f(x, u)``, and ``lam ||u||^2_{L^2(0,T)} =
    (lam / T) ||v||^2_{L^2(0,1)}``; a running cost ``beta int_0^T R dt`` becomes
    ``beta T int_0^1 R ds``. The discrete problems agree too: a Runge–Kutta step
    ``dt f(Y, u) = (dt / T) f(Y, T u)`` gives the same stages and states. So

        J_T(u) = J_1(T u),    grad_v J_1(T u) = grad_u J_T(u) / T,

    with the output map unchanged. The discrepancies reported are
    ``|J_1 - J_T| / |J_T|`` and ``|G_1 - G_T| / |G_T|`` with ``G_1`` the gradient of
    ``J_1`` with its control part multiplied by ``T``.
    """
    from ._model import NeuralODE

    cfg, text = _config_and_text(config)
    folder = _check_folder(
        out if out is not None else _default_out(config, "rescaling")
    )
    problems = _Problems()
    _, model, problem = problems.build(cfg)
    if not model.homogeneous:
        act = model.activation
        why = (
            f"the {model.field} field with {act} is not homogeneous in its controls "
            "(f(x, c u) != c f(x, u))"
            if model.field == "outside"
            else f"the {model.field} field w act(a x + b) is not homogeneous in all "
            "its controls"
        )
        raise ConfigError(
            f"{why}, so horizon T and horizon 1 are not the same problem: use the "
            "inside field, or outside with relu, leaky_relu or identity"
        )
    if not (isinstance(n_points, int) and n_points >= 1):
        raise ConfigError(f"n_points must be an integer >= 1, got {n_points!r}")
    horizons = (
        _check_values("the horizons T", T)
        if T is not None
        else sorted({float(cfg["model"]["T"]), 10.0 * float(cfg["model"]["T"])})
    )
    nodes0 = np.asarray(model.time.nodes)
    rows = []
    for horizon in horizons:
        long_cfg = copy.deepcopy(cfg)
        unit_cfg = copy.deepcopy(cfg)
        if cfg["model"]["time_nodes"]:
            long_cfg["model"]["time_nodes"] = list(nodes0 * (horizon / nodes0[-1]))
            unit_cfg["model"]["time_nodes"] = list(nodes0 / nodes0[-1])
        long_cfg["model"]["T"] = horizon
        unit_cfg["model"]["T"] = 1.0
        unit_cfg["problem"]["lam"] = cfg["problem"]["lam"] / horizon
        unit_cfg["problem"]["beta"] = cfg["problem"]["beta"] * horizon
        long_cfg, unit_cfg = validate(long_cfg), validate(unit_cfg)
        _, long_model, long_pb = problems.build(long_cfg)
        _, _, unit_pb = problems.build(unit_cfg)
        n = long_model.n_params
        for k in range(n_points):
            z = long_pb.initial_point(seed + k, scale)
            v = z.copy()
            v[:n] *= horizon
            f_long, g_long = long_pb(z)
            f_unit, g_unit = unit_pb(v)
            g_back = g_unit.copy()
            g_back[:n] *= horizon
            rows.append(
                {
                    "T": horizon,
                    "point": seed + k,
                    "n_steps": int(long_model.n_steps),
                    "lam": float(cfg["problem"]["lam"]),
                    "lam_unit": float(unit_cfg["problem"]["lam"]),
                    "beta": float(cfg["problem"]["beta"]),
                    "beta_unit": float(unit_cfg["problem"]["beta"]),
                    "objective": float(f_long),
                    "objective_unit": float(f_unit),
                    "objective_discrepancy": abs(f_unit - f_long) / abs(f_long),
                    "gradient_norm": float(np.linalg.norm(g_long)),
                    "gradient_discrepancy": float(
                        np.linalg.norm(g_back - g_long) / np.linalg.norm(g_long)
                    ),
                }
            )
    running = cfg["problem"]["running_cost"]
    settings = {
        "study": "rescaling",
        "values": horizons,
        "n_points": n_points,
        "scale": scale,
        "seed": seed,
        "scheme": cfg["model"]["scheme"],
        "field": cfg["model"]["field"],
        "activation": cfg["model"]["activation"],
        "kind": cfg["model"]["kind"],
        "running_cost": running,
        "rule": (
            "(T, lam, beta) against (1, lam / T, beta T) at controls u and v = T u; "
            "the output map is not rescaled"
        ),
        "config": text,
        "out": str(folder),
        "neural_ode": isinstance(model, NeuralODE),
    }
    table = _columns(rows)
    settings["columns"] = list(table)
    settings["fit_columns"] = []
    summary = {
        "max_objective_discrepancy": float(table["objective_discrepancy"].max()),
        "max_gradient_discrepancy": float(table["gradient_discrepancy"].max()),
    }
    study = Study("rescaling", settings, table, {}, {}, summary)
    write_study(study, folder)
    return study


# ---------------------------------------------------------------------------
# F4: turnpike


# ---------------------------------------------------------------------------
# The turnpike warm start


def one_uniform_step(*grids_nodes) -> bool:
    """Whether the time grids (their levels) all have one and the same step, which
    the turnpike warm start needs (it keeps controls at their absolute times)."""
    steps = np.concatenate([np.diff(np.asarray(n, float)) for n in grids_nodes])
    return bool(np.ptp(steps) <= 1e-9 * steps.max())


def turnpike_controls(controls, nodes_from, nodes_to, hold="zero"):
    """A longer (or shorter) horizon's controls that keep the arcs of a solution.

    Parameters
    ----------
    controls : dict or list of dict
        A neural ODE's controls by name, each of shape (n_from, ...), or a space-time
        network's per-layer dictionaries (one fixed grid).
    nodes_from : ndarray, shape (n_from + 1,)
        The levels of the solution, ``0 = t_0 < ... < t_n = T_from``.
    nodes_to : ndarray, shape (n_to + 1,)
        The new levels, with the same uniform step.
    hold : {"zero", "middle"}
        The control of the inserted middle layers: zero (for a field with
        ``f(x, 0) = 0``, such as any field homogeneous in its controls, zero controls
        keep every state where it is), or the solution's control at its middle
        layer (the one that starts at ``T_from / 2``).

    Returns
    -------
    The same structure with ``n_to`` layers.

    Notes
    -----
    The first ``h = floor(n_from / 2)`` layers (the approach arc, on
    ``[0, T_from / 2]``) are kept at the same absolute times, the last
    ``n_from - h`` layers (the exit arc) are kept at the same times before the new
    horizon, and the ``n_to - n_from`` layers between them take the ``hold``
    control. For a turnpike solution the states are at the targets at ``T_from / 2``,
    so with a holding control the new objective is the old one plus
    ``(T_to - T_from)`` times the running cost and control cost there. When
    ``n_to < n_from`` the middle of the solution is cut out instead: the first
    ``floor(n_to / 2)`` and the last ``n_to - floor(n_to / 2)`` layers are kept.
    The depth study's rescaling warm start (:func:`resample_controls`) stretches the
    approach arc to the new horizon instead, which is what a turnpike solution must
    not do.
    """
    nodes_from = np.asarray(nodes_from, dtype=np.float64)
    nodes_to = np.asarray(nodes_to, dtype=np.float64)
    n_from, n_to = len(nodes_from) - 1, len(nodes_to) - 1
    if n_from < 1 or n_to < 1:
        raise ConfigError("a turnpike warm start needs at least one layer per grid")
    if not one_uniform_step(nodes_from, nodes_to):
        raise ConfigError(
            "the turnpike warm start keeps controls at the same absolute times: "
            "both grids need one uniform step (use the same dt for every horizon)"
        )
    if hold not in ("zero", "middle"):
        raise ConfigError(f"hold must be 'zero' or 'middle', got {hold!r}")
    head = min(n_from // 2, n_to // 2)
    tail = min(n_from - n_from // 2, n_to - head)
    mid = n_to - head - tail
    source = list(range(head)) + [None] * mid + list(range(n_from - tail, n_from))
    centre = n_from // 2

    def layer(values, k):
        if k is not None:
            return np.array(values[k], dtype=np.float64)
        if hold == "zero":
            return np.zeros_like(np.asarray(values[0], dtype=np.float64))
        return np.array(values[centre], dtype=np.float64)

    if isinstance(controls, list):
        if len(controls) != n_from:
            raise ConfigError(
                f"{len(controls)} layers of controls for a grid of {n_from} steps"
            )
        return [
            {name: layer([c[name] for c in controls], k) for name in controls[0]}
            for k in source
        ]
    out = {}
    for name, values in controls.items():
        values = np.asarray(values, dtype=np.float64)
        if len(values) != n_from:
            raise ConfigError(
                f"{len(values)} layers of controls for a grid of {n_from} steps"
            )
        out[name] = np.stack([layer(values, k) for k in source])
    return out


def turnpike_hold(model) -> str:
    """The hold control of :func:`turnpike_controls` for a model: ``zero`` when its
    field is homogeneous in the controls (then ``f(x, 0) = 0``), else ``middle``."""
    return "zero" if model.homogeneous else "middle"


def running_cost_along(problem, states) -> np.ndarray:
    """``R(x(t_k))`` at every level, without the weight ``beta``.

    Parameters
    ----------
    problem : Problem
        With a running cost.
    states : ndarray, shape (n_levels, n_samples, width)

    Returns
    -------
    ndarray, shape (n_levels,)
        Tracking: ``(1/N) sum_i sum_j w_j phi(x_ij - xbar_ij)`` with
        ``phi(r) = (r^2 + eps^2)^(p/2) - eps^p``; risk: the empirical risk of
        ``P x(t_k)``.
    """
    rc = problem.running
    if rc is None:
        raise ConfigError("the problem has no running cost")
    n = problem.x0.shape[1]
    states = np.asarray(states)[:, :, :n]
    if rc.kind == "tracking":
        r = states - rc.targets[None]
        eps, p = rc.smoothing, rc.exponent
        phi = (r * r + eps * eps) ** (0.5 * p) - eps**p
        w = np.ones(n) if rc.weights is None else rc.weights
        return np.mean(phi @ w, axis=1)
    from ._plot import sample_losses

    w = problem.model.core.out_weight
    p_eff = problem.p if w is None else problem.p * w
    yhat = states @ p_eff.T + problem.p0
    return np.mean(
        sample_losses(problem.loss, yhat, problem.targets, problem.loss_p), 1
    )


def turnpike_study(
    config,
    T=(5, 10, 20, 40),
    *,
    dt=None,
    window=None,
    level=1e-2,
    seeds=None,
    warm=True,
    out=None,
    workers=None,
    scheduler=None,
    executor=None,
    threads=None,
    progress=True,
    confidence=CONFIDENCE,
) -> Study:
    """The turnpike: running cost and controls along ``t`` for several horizons.

    Parameters
    ----------
    config : path-like or dict
        A run config with ``problem.running_cost`` set (``tracking`` needs a fixed
        output map).
    T : sequence of float
        The horizons, each a whole number of steps ``dt``.
    dt : float, optional
        The step; default the config's ``T / n_steps``.
    window : (float, float), optional
        The window of ``t`` on which ``R(x(t)) + |u(t)| = C exp(-mu t)`` is fitted.
        Default: ``[0.1 T_min, 0.5 T_min]`` with ``T_min`` the smallest horizon, the
        same window for every ``T`` (a rule that uses no computed value).
    level : float
        The running-cost level: the layers needed are the first ``k`` with
        ``R(x(t_k)) <= level``.
    seeds : sequence of int, optional
        Starts per horizon (default the config's seed): with ``warm`` one path of
        horizons per seed, else a cold start per seed and horizon; the analysis
        keeps the lowest objective at each horizon.
    warm : bool or str
        ``True`` or ``"turnpike"`` (the default): start each horizon from the
        previous one's solution with its approach and exit arcs kept at the same
        absolute times and the middle held (:func:`turnpike_controls`), which keeps
        the local minimum found at the smallest horizon and costs at most the
        running cost on the turnpike per added time unit. ``"rescale"``: the depth
        study's warm start at a fixed step (the solution stretched in normalised
        time and scaled by ``T_prev / T``). ``False``: cold starts.
    out, workers, scheduler, executor, threads, progress, confidence
        As for :func:`depth_study` (files ``turnpike.*``).

    Returns
    -------
    Study
        Per case: ``objective`` (the optimal value), ``risk``, ``running_cost``,
        ``grad_norm`` (at the optimiser's stop), ``mu``, its interval, ``C``,
        ``layers_to_level``, ``time_to_level``,
        ``plateau`` (median of ``R`` over ``[T/4, 3T/4]``), ``best`` (kept for its
        horizon); curves ``t``, ``running`` (``R(x(t_k))``, levels ``0..L``) and
        ``control`` (``|u_k|``, layers ``0..L-1``); summary: the spread of ``mu``
        and of the layer counts, fits of the optimal value and of the plateau
        against ``T``, and the rank of the one-layer controls-to-states map at the
        targets (:func:`controllability`).
    """
    cfg, text = _config_and_text(config)
    if cfg["problem"]["running_cost"] == "none":
        raise ConfigError(
            "the turnpike study needs a running cost: set problem.running_cost = "
            "'tracking' (with output_map.trained = false) or 'risk'"
        )
    horizons = sorted(_check_values("the horizons T", T))
    if not (isinstance(level, int | float) and level > 0):
        raise ConfigError(f"the running-cost level must be > 0, got {level!r}")
    step = float(dt) if dt is not None else _uniform_dt(cfg)
    if window is None:
        window = window_rule(horizons)
        window_text = (
            f"t in [{WINDOW_FRACTIONS[0]:g} T_min, {WINDOW_FRACTIONS[1]:g} T_min] = "
            f"[{window[0]:g}, {window[1]:g}] with T_min = {horizons[0]:g}, for every T"
        )
    else:
        window = (float(window[0]), float(window[1]))
        if not 0 <= window[0] < window[1]:
            raise ConfigError(
                f"the fit window must satisfy 0 <= start < end, got {list(window)}"
            )
        window_text = f"t in [{window[0]:g}, {window[1]:g}] (given), for every T"
    if window[1] > horizons[0]:
        raise ConfigError(
            f"the fit window ends at t = {window[1]:g}, after the smallest horizon "
            f"T = {horizons[0]:g}: choose a window inside [0, {horizons[0]:g}]"
        )
    seeds = [int(s) for s in (seeds if seeds else [cfg["seed"]])]
    folder = _check_folder(out if out is not None else _default_out(config, "turnpike"))
    problems = _Problems()
    _, model0, problem0 = problems.build(cfg)  # checks the running cost early
    grid = {"model.time_nodes": [_nodes_at_step(t, step) for t in horizons]}
    if len(seeds) > 1:
        grid["seed"] = seeds
    if warm is True:
        warm = "turnpike"
    if warm not in (False, "turnpike", "rescale"):
        raise ConfigError(
            f"warm must be True, 'turnpike', 'rescale' or False, got {warm!r}"
        )
    options = _run_options(workers, scheduler, progress, threads, executor)
    plan, result = _run_cases(
        cfg,
        grid,
        "model.time_nodes" if warm else None,
        folder / "cases",
        options,
        warm_start=warm or None,
    )
    rows, curves = [], {}
    for record in result:
        case = plan.cases[[c.name for c in plan.cases].index(record.name)]
        c = case.config
        row = {
            "name": case.name,
            "T": float(c["model"]["T"]),
            "n_steps": int(c["model"]["n_steps"]),
            "seed": int(c["seed"]),
            "status": record.status,
            "n_iter": int(record.n_iter),
            "objective": math.nan,
            "risk": math.nan,
            "running_cost": math.nan,
            "u_norm": math.nan,
            "grad_norm": math.nan,
            "mu": math.nan,
            "mu_low": math.nan,
            "mu_high": math.nan,
            "C": math.nan,
            "fit_points": 0,
            "layers_to_level": -1,
            "time_to_level": math.nan,
            "plateau": math.nan,
            "best": False,
        }
        if record.complete:
            _, _, rec, model, problem, theta, ev = _case_record(plan, record, problems)
            from ._core import flow

            states = flow(model.core, theta, problem.x0)
            t = np.asarray(model.time.nodes)
            r_levels = running_cost_along(problem, states)
            u_layers = model.layer_norms(theta)
            curves[case.name] = {"t": t, "running": r_levels, "control": u_layers}
            row.update(
                status=rec["status"],
                n_iter=int(rec["optimizer"]["n_iter"]),
                objective=float(ev["objective"]),
                risk=float(ev["risk"]),
                running_cost=float(ev["running_cost"]),
                u_norm=float(ev["control_norm"]),
                grad_norm=float(ev["grad_norm"]),
            )
            try:
                fit = fit_decay(t[:-1], r_levels[:-1] + u_layers, window, confidence)
                row.update(
                    mu=fit.mu,
                    mu_low=fit.mu_low,
                    mu_high=fit.mu_high,
                    C=fit.C,
                    fit_points=fit.n_points,
                )
            except ConfigError as err:
                log.warning("no decay fit for %s: %s", case.name, err)
            below = np.flatnonzero(r_levels <= level)
            if below.size:
                row["layers_to_level"] = int(below[0])
                row["time_to_level"] = float(t[below[0]])
            middle = (t >= 0.25 * t[-1]) & (t <= 0.75 * t[-1])
            row["plateau"] = float(np.median(r_levels[middle]))
        rows.append(row)
    rows.sort(key=lambda r: (r["T"], r["seed"]))
    for horizon in horizons:
        members = [
            r for r in rows if r["T"] == horizon and math.isfinite(r["objective"])
        ]
        if members:
            min(members, key=lambda r: r["objective"])["best"] = True
    best = [r for r in rows if r["best"]]
    fits = []
    for quantity in ("objective", "plateau"):
        xs = np.array([r["T"] for r in best])
        ys = np.array([r[quantity] for r in best])
        ok = np.isfinite(ys) & (ys > 0)
        if ok.sum() >= 2:
            fits.append(
                _fit_record(
                    "best", quantity, "T", fit_power_law(xs[ok], ys[ok], confidence)
                )
            )
    xbar = (
        problem0.running.targets if problem0.running.kind == "tracking" else problem0.x0
    )
    diag = controllability(model0, xbar)
    mus = [r["mu"] for r in best]
    layers = [r["layers_to_level"] for r in best if r["layers_to_level"] >= 0]
    summary = {
        "mu_mean": float(np.nanmean(mus)) if best else math.nan,
        "mu_spread": spread(mus),
        "layers_min": int(min(layers)) if layers else -1,
        "layers_max": int(max(layers)) if layers else -1,
        "layers_spread": spread(layers) if len(layers) == len(best) else math.nan,
        "layers_reached": len(layers),
        "n_horizons": len(horizons),
        "rank": diag.rank,
        "rows": diag.rows,
        "columns": diag.columns,
        "sigma_min": diag.sigma_min,
        "sigma_max": diag.sigma_max,
        "controllable": int(diag.full),
        "singular_values": diag.singular_values,
        "diagnostic_at": (
            "the tracking targets xbar, zero controls"
            if problem0.running.kind == "tracking"
            else "the inputs, zero controls (a risk running cost has no targets)"
        ),
    }
    settings = {
        "study": "turnpike",
        "values": horizons,
        "dt": step,
        "window": list(window),
        "window_rule": window_text,
        "level": float(level),
        "seeds": seeds,
        "warm": warm or "cold",
        "start": (
            "one path per seed: each horizon starts from the previous one's controls "
            "at the same absolute times, the first half (approach arc) at the start "
            "and the second half (exit arc) at the end, the layers between them "
            + (
                "with zero controls (the field is homogeneous: zero controls hold "
                "every state)"
                if model0.homogeneous
                else "with the previous solution's control at T_prev / 2"
            )
            if warm == "turnpike"
            else "one path per seed: each horizon starts from the previous one's "
            "controls in normalised time (L2 projection onto the new layers), "
            "scaled by T_prev / T"
            if warm == "rescale"
            else "cold: seeded initial controls at every horizon"
        ),
        "fit_rule": (
            "least squares on log(R(x(t_k)) + |u_k|) = log C - mu t_k over the "
            "levels t_k < T in the window; intervals from Student's t with n - 2 "
            "degrees of freedom"
        ),
        "layers_rule": "the first level k with R(x(t_k)) <= level",
        "plateau_rule": "median of R(x(t_k)) over t_k in [T/4, 3T/4]",
        "spread_rule": "(max - min) / mean over the horizons",
        "running_cost": cfg["problem"]["running_cost"],
        "beta": cfg["problem"]["beta"],
        "tracking_p": cfg["problem"]["tracking_p"],
        "tracking_smoothing": cfg["problem"]["tracking_smoothing"],
        "lam": cfg["problem"]["lam"],
        "confidence": confidence,
        "seed": cfg["seed"],
        "config": text,
        "out": str(folder),
    }
    table = _columns(rows)
    settings["columns"] = list(table)
    fit_table = _columns(fits)
    settings["fit_columns"] = list(fit_table)
    study = Study("turnpike", settings, table, fit_table, curves, summary)
    study.sweeps = [result]
    write_study(study, folder)
    return study


# ---------------------------------------------------------------------------
# Markdown tables


def _incomplete_note(study: Study) -> list:
    """A warning line under the title when some case did not finish."""
    if study.complete:
        return []
    statuses = list(study.columns["status"])
    left = sum(st not in _COMPLETE for st in statuses)
    return [
        f"**Incomplete:** {left} of {len(statuses)} cases did not finish (see their "
        "status); run the same command again to finish them. The fits below use the "
        "finished cases only.",
        "",
    ]


def _path_table(study: Study) -> str:
    s = study.settings
    var = s["variable"]
    head = "T" if var == "T" else "lam"
    lines = [
        f"# {study.kind} study",
        "",
        *_incomplete_note(study),
        f"- layers: {s.get('layers', '')}",
        f"- start: {s.get('warm_start', '')}",
        f"- fits: {s.get('fit_rule', '')}",
        "",
        f"| series | {head} | L | status | iter | objective | E (risk) | accuracy |"
        " norm u | norm v | dist v to previous | minima met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in study.rows():
        lines.append(
            f"| {r['series']} | {r[var]:g} | {r['n_steps']} | {r['status']} | "
            f"{r['n_iter']} | {_num(r['objective'], '.6g')} | {_num(r['risk'], '.4e')} "
            f"| {_num(r['accuracy'], '.3f')} | {_num(r['u_norm'])} | "
            f"{_num(r['v_norm'])} | {_num(r['v_diff'], '.3e')} | {r['n_minima']} |"
        )
    lines += ["", "| series | quantity | against | fitted slope |", "|---|---|---|---|"]
    for f in study.fit_rows():
        lines.append(
            f"| {f['series']} | {f['quantity']} | {f['against']} | {_fit_text(f)} |"
        )
    return "\n".join(lines) + "\n"


def _rescaling_table(study: Study) -> str:
    s = study.settings
    lines = [
        "# rescaling study",
        "",
        f"- {s['rule']}",
        f"- model: {s['kind']}, {s['field']} field, {s['activation']}, "
        f"{s['scheme']}; running cost: {s['running_cost']}",
        "",
        "| T | L | point | lam | lam / T | objective J_T(u) | J_1(T u) |"
        " objective discrepancy | gradient discrepancy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in study.rows():
        lines.append(
            f"| {r['T']:g} | {r['n_steps']} | {r['point']} | {r['lam']:g} | "
            f"{r['lam_unit']:.4g} | {r['objective']:.12g} | "
            f"{r['objective_unit']:.12g} | {r['objective_discrepancy']:.2e} | "
            f"{r['gradient_discrepancy']:.2e} |"
        )
    sm = study.summary
    lines += [
        "",
        f"Largest relative discrepancy: objective "
        f"{sm['max_objective_discrepancy']:.2e}, gradient "
        f"{sm['max_gradient_discrepancy']:.2e}.",
    ]
    return "\n".join(lines) + "\n"


def _turnpike_table(study: Study) -> str:
    s, sm = study.settings, study.summary
    lines = [
        "# turnpike study",
        "",
        *_incomplete_note(study),
        f"- step dt = {s['dt']:g}; running cost {s['running_cost']} (beta "
        f"{s['beta']:g}, p {s['tracking_p']:g}, smoothing "
        f"{s['tracking_smoothing']:g}); lam {s['lam']:g}",
        f"- start: {s['start']}; seeds {s['seeds']}, the lowest objective kept per T",
        f"- fit window: {s['window_rule']}",
        f"- fit: {s['fit_rule']}",
        f"- layers to level {s['level']:g}: {s['layers_rule']}",
        f"- plateau: {s['plateau_rule']}",
        "",
        "| T | L | seed | status | iter | gradient | optimal value | E (risk) |"
        " beta int R | norm u | mu | mu interval | C | layers to level | plateau |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in study.rows():
        mark = " (best)" if r["best"] and len(s["seeds"]) > 1 else ""
        lines.append(
            f"| {r['T']:g} | {r['n_steps']} | {r['seed']}{mark} | {r['status']} | "
            f"{r['n_iter']} | {_num(r.get('grad_norm', math.nan), '.1e')} | "
            f"{_num(r['objective'], '.6g')} | {_num(r['risk'], '.4e')} "
            f"| {_num(r['running_cost'], '.4e')} | {_num(r['u_norm'])} | "
            f"{_num(r['mu'], '.4f')} | {_interval_text(r['mu_low'], r['mu_high'])} | "
            f"{_num(r['C'], '.3g')} | "
            f"{r['layers_to_level'] if r['layers_to_level'] >= 0 else 'never'} | "
            f"{_num(r['plateau'], '.3e')} |"
        )
    lines += [
        "",
        f"- mu: mean {_num(sm['mu_mean'], '.4f')}, spread "
        f"{_num(sm['mu_spread'], '.2%')} (max - min over the mean)",
        (
            f"- layers to reach {s['level']:g}: {sm['layers_min']} to "
            f"{sm['layers_max']} ({sm['layers_reached']} of {sm['n_horizons']} "
            f"horizons reach it), spread {_num(sm['layers_spread'], '.2%')}"
            if sm["layers_reached"]
            else f"- layers to reach {s['level']:g}: no horizon reaches it "
            f"(0 of {sm['n_horizons']})"
        ),
    ]
    for f in study.fit_rows():
        lines.append(f"- slope of {f['quantity']} against T (log-log): {_fit_text(f)}")
    verdict = "holds" if sm["controllable"] else "fails"
    lines.append(
        f"- hypothesis ({sm['diagnostic_at']}): the one-layer controls-to-states "
        f"map has rank {sm['rank']} for {sm['rows']} state directions and "
        f"{sm['columns']} controls, smallest singular value "
        f"{sm['sigma_min']:.3e} (largest {sm['sigma_max']:.3e}): it {verdict}"
    )
    return "\n".join(lines) + "\n"


_TABLES = {
    "depth": _path_table,
    "lambda": _path_table,
    "rescaling": _rescaling_table,
    "turnpike": _turnpike_table,
}


# ---------------------------------------------------------------------------
# Figures


def plot_study(study) -> "object":
    """The figure of a study (a matplotlib Figure drawn without pyplot).

    Parameters
    ----------
    study : Study or path-like
        A study, or its analysis file.
    """
    if not isinstance(study, Study):
        study = load_study(study)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _FIGURES[study.kind](study)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    return fig


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _series_rows(study):
    rows = study.rows()
    names = list(dict.fromkeys(r["series"] for r in rows))
    return {n: [r for r in rows if r["series"] == n] for n in names}


def _path_figure(study):
    var = study.settings["variable"]
    label = "T" if var == "T" else "λ"
    fig = _figure(11.0, 3.4)
    ax_e, ax_v, ax_d = fig.subplots(1, 3)
    for name, members in _series_rows(study).items():
        xs = np.array([r[var] for r in members])
        es = np.array([r["risk"] for r in members])
        ok = np.isfinite(es) & (es > 0)
        fit = study.fit("risk", name)
        text = f"{name}" + (f" (slope {fit['slope']:.2f})" if fit else "")
        lines = ax_e.loglog(xs[ok], es[ok], "o-", ms=3, label=text)
        if fit:
            xf = np.array([xs[ok].min(), xs[ok].max()])
            ax_e.loglog(
                xf,
                np.exp(fit["intercept"]) * xf ** fit["slope"],
                ":",
                color=lines[0].get_color(),
                lw=1,
            )
        vs = np.array([r["v_norm"] for r in members])
        ax_v.semilogx(xs, vs, "o-", ms=3, label=name)
        ds = np.array([r["v_diff"] for r in members])
        okd = np.isfinite(ds) & (ds > 0)
        if okd.any():
            ax_d.loglog(xs[okd], ds[okd], "o-", ms=3, label=name)
    ax_e.set_title("training error E at the final time", fontsize=9)
    ax_v.set_title("‖v‖ in L²(0,1), v(s) = T u(Ts)", fontsize=9)
    ax_d.set_title("‖v − v_previous‖ in L²(0,1)", fontsize=9)
    ax_e.set_ylabel("E")
    ax_v.set_ylabel("‖v‖")
    ax_d.set_ylabel("‖v − v_previous‖")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax in (ax_e, ax_v, ax_d):
        if var == "T":
            ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.grid(True, which="major", lw=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    if var == "lam":
        for ax in (ax_e, ax_v, ax_d):
            ax.invert_xaxis()
    return fig


def _rescaling_figure(study):
    fig = _figure(5.0, 3.4)
    ax = fig.subplots()
    r = study.columns
    floor = np.finfo(np.float64).eps / 2
    ax.semilogy(
        r["T"], np.maximum(r["objective_discrepancy"], floor), "o", label="objective"
    )
    ax.semilogy(
        r["T"],
        np.maximum(r["gradient_discrepancy"], floor),
        "s",
        mfc="none",
        label="gradient",
    )
    ax.axhline(1e-12, color="0.5", lw=0.8, ls=":", label="1e-12")
    ax.set_xlabel("T")
    ax.set_ylabel("relative discrepancy (0 drawn at eps/2)")
    ax.set_title("(T, λ) against (1, λ/T) at v = T u", fontsize=9)
    ax.grid(True, which="major", lw=0.3)
    ax.legend(fontsize=7)
    return fig


def _turnpike_figure(study):
    fig = _figure(10.0, 6.4)
    (ax_r, ax_u), (ax_l, ax_j) = fig.subplots(2, 2)
    rows = [r for r in study.rows() if r["best"]]
    w0, w1 = study.settings["window"]
    for r in rows:
        c = study.curves.get(r["name"])
        if c is None:
            continue
        t, run, ctl = c["t"], c["running"], c["control"]
        ok = run > 0
        lines = ax_r.semilogy(t[ok], run[ok], lw=1, label=f"T = {r['T']:g}")
        ax_u.semilogy(t[:-1], np.maximum(ctl, 1e-300), lw=1, label=f"T = {r['T']:g}")
        if math.isfinite(r["mu"]):
            tf = np.array([w0, w1])
            ax_r.semilogy(
                tf,
                r["C"] * np.exp(-r["mu"] * tf),
                "--",
                lw=0.8,
                color=lines[0].get_color(),
            )
    for ax in (ax_r, ax_u):
        ax.axvspan(w0, w1, color="0.9", zorder=0)
        ax.set_xlabel("t")
        ax.grid(True, which="major", lw=0.3)
        if ax.get_legend_handles_labels()[0]:  # no curves when every case failed
            ax.legend(fontsize=7)
    ax_r.axhline(study.settings["level"], color="0.5", lw=0.8, ls=":")
    ax_r.set_title(
        "running cost R(x(t)); dashed: C exp(−μt) fitted to R + |u|", fontsize=9
    )
    ax_u.set_title("|u(t)| per layer", fontsize=9)
    Ts = np.array([r["T"] for r in rows])
    layers = np.array([r["layers_to_level"] for r in rows], dtype=float)
    layers[layers < 0] = np.nan
    mus = np.array([r["mu"] for r in rows])
    ax_l.plot(
        Ts, layers, "o-", ms=4, label=f"layers to R ≤ {study.settings['level']:g}"
    )
    ax_l.set_xscale("log")
    ax_l.set_xlabel("T")
    ax_l.set_ylabel("layers")
    ax_m = ax_l.twinx()
    ax_m.plot(Ts, mus, "s--", ms=4, color="C1", label="μ")
    ax_m.set_ylabel("μ")
    ax_l.set_title("layers to the level, and the fitted rate μ", fontsize=9)
    ax_l.grid(True, which="major", lw=0.3)
    handles = ax_l.get_legend_handles_labels()
    more = ax_m.get_legend_handles_labels()
    # both axes from zero, so that a flat line is read as flat, not magnified
    if np.isfinite(layers).any():
        ax_l.set_ylim(0.0, 1.25 * np.nanmax(layers))
    if np.isfinite(mus).any() and np.nanmax(mus) > 0:
        ax_m.set_ylim(0.0, 1.25 * np.nanmax(mus))
    ax_l.legend(
        handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="lower right"
    )
    js = np.array([r["objective"] for r in rows])
    ax_j.loglog(Ts, js, "o-", ms=4, label="optimal value J_T")
    plat = np.array([r["plateau"] for r in rows])
    okp = np.isfinite(plat) & (plat > 0)
    if okp.any():
        ax_j.loglog(Ts[okp], plat[okp], "s--", ms=4, label="plateau of R")
    ax_j.set_xlabel("T")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax in (ax_l, ax_j):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(Ts)
    ax_j.set_title("optimal value and plateau against T", fontsize=9)
    ax_j.grid(True, which="major", lw=0.3)
    ax_j.legend(fontsize=7)
    return fig


_FIGURES = {
    "depth": _path_figure,
    "lambda": _path_figure,
    "rescaling": _rescaling_figure,
    "turnpike": _turnpike_figure,
}


def study_figures() -> dict:
    """The figure table of study files for ``spacetime plot`` (one figure)."""
    from ._plot import FigureKind

    return {
        "study": FigureKind(
            "study",
            plot_study,
            lambda study: None,
            "Study",
            "The figure of a large-time study: the quantities against T, lam or t "
            "with their fits (see docs/studies.md).",
        )
    }
