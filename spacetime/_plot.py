"""Figures of the files spacetime writes: runs, studies, sweeps, simulations.

Every ``plot_*`` function takes a loaded object and returns a
:class:`matplotlib.figure.Figure` built without :mod:`matplotlib.pyplot`: nothing
is shown, no global state is touched and any backend can save it
(``fig.savefig(...)``). :func:`save_figures` writes the figures of a file under
names that say what they are, ``<stem>-<figure>.png``.

Which figures a file has is a table, looked up through :data:`FILE_KINDS` by the
``format`` attribute of the HDF5 file: :data:`RUN_FIGURES` for run files (a
:class:`~spacetime.Run`, from :func:`~spacetime.load_run`; neural ODEs and
space-time networks), the study table of :mod:`spacetime._studies`,
:data:`CONVERGENCE_FIGURES` (a ``ConvergenceStudy``, from
:func:`load_convergence`), :data:`SWEEP_FIGURES` (a ``SweepResult``, from the
sweep's ``index.h5``) and :data:`SIMULATION_FIGURES` (a ``Simulation``).
"""

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import _io
from ._errors import ConfigError, DataError, RunFileError, SpacetimeError
from ._problem import encode_targets
from ._run import Run, load_data, load_run

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib is imported inside the functions that draw, so that importing the
# package does not pay for it.

log = logging.getLogger(__name__)

_FORMATS = ("png", "pdf")


# ---------------------------------------------------------------------------
# Quantities derived from a run file


def widths(run: Run) -> np.ndarray:
    """Width ``n_k`` of the state at each level, shape (n_steps + 1,)."""
    return np.asarray(run.model.core.widths, dtype=np.int64)


def _moving(run: Run):
    """The moving grid of a space-time run, or None for a neural ODE."""
    return getattr(run.model, "moving", None)


def train_states(run: Run) -> list[np.ndarray]:
    """The training samples' states at every time level.

    The stored trajectories when the file has them; otherwise the training inputs
    are rebuilt from the run's configuration and pushed through the trained model.

    Parameters
    ----------
    run : Run

    Returns
    -------
    list of ndarray, length n_steps + 1
        Entry ``k`` has shape (n_train, widths[k]): ``x_i(t_k)`` for each training
        sample ``i`` (the values at the nodes of grid ``k`` for a space-time run).

    Raises
    ------
    DataError
        When the file has no trajectories and the configuration's dataset no
        longer has the run's training samples.
    """
    if run.trajectories is not None:
        return list(run.trajectories)
    full = run.model.flow(run.theta, train_inputs(run))
    return [full[k, :, :n] for k, n in enumerate(widths(run))]


def train_inputs(run: Run) -> np.ndarray:
    """Standardised training inputs of a run, shape (n_train, n_inputs).

    Read from level 0 of the stored trajectories when that level holds the inputs
    themselves (padded with zeros, or on the input grid), else rebuilt from the
    configuration.
    """
    n_inputs = run.model.n_inputs
    moving = _moving(run)
    level0_is_input = moving is None or run.model.inputs.same_as(moving[0])
    if run.trajectories is not None and level0_is_input:
        return np.asarray(run.trajectories[0])[:, :n_inputs]
    dataset = load_data(run.config)
    n_train = len(run.record["data"]["y_train"])
    if dataset.n_train != n_train or dataset.n_features != n_inputs:
        raise DataError(
            f"run file '{run.path}' needs its training inputs, and its config's "
            f"dataset now has {dataset.n_train} training samples of "
            f"{dataset.n_features} features instead of {n_train} of {n_inputs}: "
            "restore the data file, or train the run again"
        )
    return dataset.x_train


def on_output_grid(run: Run, states, levels=None) -> np.ndarray:
    """States carried to the last level's grid by the network's own transfers.

    Parameters
    ----------
    run : Run
    states : sequence of ndarray
        Entry ``j`` of shape (n_samples, widths[levels[j]]).
    levels : sequence of int, optional
        The level of each entry; default ``0 .. n_steps``.

    Returns
    -------
    ndarray, shape (len(states), n_samples, widths[-1])

    Notes
    -----
    Level ``k`` goes through the transfers of the remaining layers,
    ``Π_{L-1} ... Π_k x(t_k)``: what the network would output were the controls
    of layers ``k .. L-1`` switched off (for the inside field with an activation
    vanishing at 0). For a neural ODE, or where the grid no longer changes, this
    is ``x(t_k)`` itself.
    """
    if levels is None:
        levels = range(len(states))
    moving = _moving(run)
    if moving is None:
        return np.stack([np.asarray(x) for x in states])
    from scipy import sparse

    import grids

    # carry[k] maps level k to level L: carry[L] = I, carry[k] = carry[k+1] Π_k
    pis = grids.transfers(moving, run.model.transfer, order=run.model.transfer_order)
    n_last = moving.widths[-1]
    carry = [None] * (moving.n_steps + 1)
    carry[-1] = sparse.identity(n_last, format="csr")
    for k in range(moving.n_steps - 1, -1, -1):
        carry[k] = carry[k + 1] if pis[k] is None else carry[k + 1] @ pis[k]
    return np.stack(
        [
            np.asarray(carry[k] @ np.asarray(x).T).T
            for k, x in zip(levels, states, strict=True)
        ]
    )


def level_outputs(run: Run, states: np.ndarray) -> np.ndarray:
    """The trained output map applied to states on the last level's grid.

    Parameters
    ----------
    run : Run
    states : ndarray, shape (n_levels, n_samples, widths[-1])
        As :func:`on_output_grid` returns them.

    Returns
    -------
    ndarray, shape (n_levels, n_samples, n_outputs)
        ``P x = p x + p0`` (for a space-time run ``sum_j p_j ω_j x_j + p0``, with
        the last grid's weights ``ω``).
    """
    w = run.model.core.out_weight
    p = run.p if w is None else run.p * w
    return states @ p.T + run.p0


def sample_losses(loss: str, yhat, targets, loss_p=2.0) -> np.ndarray:
    """Per-sample losses ``l(yhat_i, y_i)``, vectorised over leading axes.

    Parameters
    ----------
    loss : {"squared", "lp", "cross_entropy", "logistic"}
    yhat : ndarray, shape (..., n_samples, n_outputs)
    targets : ndarray, shape (n_samples, n_columns)
        Encoded as :func:`spacetime._problem.encode_targets` encodes them.
    loss_p : float
        Exponent of the lp loss.

    Returns
    -------
    ndarray, shape (..., n_samples)

    Notes
    -----
    The formulas of the kernels: squared ``1/2 |yhat - y|^2``; lp
    ``sum_r |yhat_r - y_r|^p``; cross-entropy ``logsumexp(yhat) - yhat_c``;
    logistic ``log(1 + exp(-y yhat_0))`` with ``y = +-1``.
    """
    yhat = np.asarray(yhat, dtype=np.float64)
    if loss == "squared":
        return 0.5 * np.sum((yhat - targets) ** 2, axis=-1)
    if loss == "lp":
        return np.sum(np.abs(yhat - targets) ** loss_p, axis=-1)
    if loss == "cross_entropy":
        c = targets[:, 0].astype(np.int64)
        zmax = yhat.max(axis=-1)
        tot = np.exp(yhat - zmax[..., None]).sum(axis=-1)
        return zmax + np.log(tot) - yhat[..., np.arange(len(c)), c]
    if loss == "logistic":
        z = -targets[:, 0] * yhat[..., 0]
        return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    raise ConfigError(
        f"unknown loss '{loss}': choose one of squared, lp, cross_entropy, logistic"
    )


def risk_along_t(run: Run, states=None) -> np.ndarray:
    """Empirical risk of the states at every level with the trained output map.

    Parameters
    ----------
    run : Run
    states : list of ndarray, optional
        As :func:`train_states` returns them (its default).

    Returns
    -------
    ndarray, shape (n_steps + 1,)
        ``E(x(t_k)) = (1/N) sum_i l(P x_i(t_k), y_i)``, the state carried to the
        output grid as in :func:`on_output_grid`; the last entry is the training
        loss of the run, the first the loss of ``P`` on the embedded inputs.
    """
    if states is None:
        states = train_states(run)
    pr = run.record["problem"]
    y = run.record["data"]["y_train"]
    targets = encode_targets(pr["loss"], pr["task"], y, int(pr["n_classes"]))
    outputs = level_outputs(run, on_output_grid(run, states))
    losses = sample_losses(pr["loss"], outputs, targets, float(pr["loss_p"]))
    return losses.mean(axis=-1)


def predicted_classes(yhat: np.ndarray) -> np.ndarray:
    """Class indices from outputs: their sign for one output, else the argmax.

    Parameters
    ----------
    yhat : ndarray, shape (..., n_outputs)

    Returns
    -------
    ndarray of int, shape (...)
    """
    if yhat.shape[-1] == 1:
        return (yhat[..., 0] > 0).astype(np.int64)
    return yhat.argmax(axis=-1)


# ---------------------------------------------------------------------------
# Shared drawing helpers


def _new_figure(width=6.4, height=4.6) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _is_classification(run: Run) -> bool:
    return run.record["problem"]["task"] == "classification"


def _class_colours(n: int) -> np.ndarray:
    import matplotlib

    name = "tab10" if n <= 10 else "tab20"
    cmap = matplotlib.colormaps[name]
    return np.array([cmap(i % cmap.N) for i in range(n)])


def _class_texts(values) -> list[str]:
    """The classes as the figures name them: the codes stored in the file's
    ``data/y_train`` (0, 1, ...), each with the data set's own label in brackets
    when some label differs from its code (spheres: class 0 is the label -1,
    the ball; class 1 the label 1)."""
    values = list(values)
    if all(str(v) == str(c) for c, v in enumerate(values)):
        return [str(c) for c in range(len(values))]
    return [f"{c} (label {v})" for c, v in enumerate(values)]


def _class_names(run: Run) -> list[str]:
    return _class_texts(run.class_values)


def _sample_colours(run: Run, y) -> tuple[np.ndarray, list]:
    """Per-sample colours and the legend handles (classes) or a mappable (values)."""
    from matplotlib.lines import Line2D

    if _is_classification(run):
        colours = _class_colours(len(run.class_values))
        handles = [
            Line2D([], [], color=colours[c], lw=2, label=name)
            for c, name in enumerate(_class_names(run))
        ]
        return colours[np.asarray(y, dtype=np.int64)], handles
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    value = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
    norm = Normalize(value.min(), value.max())
    cmap = matplotlib.colormaps["viridis"]
    return cmap(norm(value)), [ScalarMappable(norm, cmap)]


def _legend(fig, ax, handles, title):
    from matplotlib.lines import Line2D

    if handles and isinstance(handles[0], Line2D):
        # outside the axes, on the right: never over the data
        fig.legend(handles=handles, title=title, fontsize="small", loc="outside right")
    elif handles:
        fig.colorbar(handles[0], ax=ax, label=title, shrink=0.8)


def model_line(run: Run) -> str:
    """One line describing the network of a run (kind, field, sizes, steps)."""
    m = run.model
    moving = _moving(run)
    if moving is None:
        kind, size = "neural ODE", f"width {m.width}"
    else:
        shapes = [_shape_text(moving.shapes[0])]
        for shape in moving.shapes[1:]:
            if _shape_text(shape) != shapes[-1]:
                shapes.append(_shape_text(shape))
        kind, size = "space-time network", "grids " + " → ".join(shapes)
    return (
        f"{kind}, {m.field} field, {m.activation}, {size}, {m.n_steps} {m.scheme} "
        f"steps on [0, {m.T:g}]"
    )


def _wrapped_model_line(run: Run, width: int = 72) -> str:
    import textwrap

    return textwrap.fill(model_line(run), width)


# ---------------------------------------------------------------------------
# Trajectories


def _choose_samples(n: int, max_samples: int, seed: int) -> np.ndarray:
    if n <= max_samples:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_samples, replace=False))


def project_states(states: np.ndarray, dims: int, projection: str):
    """Coordinates of states in a ``dims``-dimensional view.

    Parameters
    ----------
    states : ndarray, shape (n_levels, n_samples, width)
    dims : {2, 3}
    projection : {"components", "pca"}
        The first ``dims`` components, or the leading principal axes of all the
        given states (all levels and samples pooled, centred).

    Returns
    -------
    coords : ndarray, shape (n_levels, n_samples, dims)
    explained : float
        Share of the variance of the pooled states the view holds (for
        ``"components"``, of the components shown).
    """
    width = states.shape[-1]
    pooled = states.reshape(-1, width)
    centred = pooled - pooled.mean(axis=0)
    total = float(np.sum(centred**2))
    if projection == "components":
        coords = states[..., :dims]
        shown = float(np.sum(centred[:, :dims] ** 2))
    else:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        coords = (states - pooled.mean(axis=0)) @ vt[:dims].T
        shown = float(np.sum(s[:dims] ** 2))
    return coords, (shown / total if total > 0 else 1.0)


def plot_trajectories(
    run: Run,
    *,
    samples=None,
    max_samples: int = 100,
    dims: int | None = None,
    projection: str = "auto",
    seed: int = 0,
) -> "Figure":
    """Paths ``t -> x_i(t)`` of training samples, coloured by class.

    Each sample is one line through its states at the levels ``t_0 .. t_L`` (with
    a dot at ``t_0`` and a larger marker at ``T``). Width 2 is drawn in the plane,
    width 3 in a 3-D axes; wider states are projected on their leading principal
    axes (or, with ``projection="components"``, their first components). For one
    output (two classes) the zero set of the output map ``p x + p0 = 0`` is drawn
    too when the view shows the state itself: a line in 2-D, a plane in 3-D.
    A regression colours the samples by their (first) target value.

    Parameters
    ----------
    run : Run
    samples : sequence of int, optional
        Indices of the training samples to draw. Default: all, or a seeded random
        choice of ``max_samples`` of them.
    max_samples : int
    dims : {2, 3}, optional
        Dimension of the view; default the width if it is 2 or 3, else 2.
    projection : {"auto", "components", "pca"}
        ``"auto"`` shows the state itself when ``dims`` equals the width and
        principal axes otherwise.
    seed : int
        Seed of the random choice of samples.

    Returns
    -------
    Figure
        One axes; the line of sample ``i`` has ``gid`` ``"sample-i"``.
    """
    reason = _trajectories_unavailable(run)
    if reason:
        raise ConfigError(
            f"trajectories cannot be drawn for '{run.path}': {reason}; draw the "
            "'state' figure instead"
        )
    states = np.stack(train_states(run))
    width = states.shape[-1]
    if dims is None:
        dims = width if width in (2, 3) else 2
    if dims not in (2, 3) or dims > width:
        raise ConfigError(
            f"trajectories can be drawn in 2 or 3 dimensions up to the width "
            f"{width}, not {dims}: choose dims = 2 or 3"
        )
    if projection == "auto":
        projection = "components" if dims == width else "pca"
    if projection not in ("components", "pca"):
        raise ConfigError(
            f"unknown projection '{projection}': choose auto, components or pca"
        )
    n_train = states.shape[1]
    if samples is None:
        samples = _choose_samples(n_train, max_samples, seed)
    samples = np.asarray(samples, dtype=np.int64)
    if samples.size and (samples.min() < 0 or samples.max() >= n_train):
        raise ConfigError(
            f"sample indices must lie in 0 .. {n_train - 1}, the training samples "
            "of the run"
        )

    chosen = states[:, samples, :]
    coords, explained = project_states(chosen, dims, projection)
    y = run.record["data"]["y_train"][samples]
    colours, handles = _sample_colours(run, y)

    fig = _new_figure(6.4, 5.4 if dims == 3 else 4.8)
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    _draw_paths(ax, coords, colours, samples, dims)
    end = coords[-1]

    one_output = run.p.shape[0] == 1 and _is_classification(run)
    if projection == "components" and dims == width and one_output:
        zero_set = _draw_output_zero_set(ax, run, end, dims)
        if zero_set is not None:
            handles.append(zero_set)

    names = [f"x_{c + 1}" for c in range(dims)]
    if projection == "pca":
        names = [f"principal axis {c + 1}" for c in range(dims)]
        view = f"PCA projection of width {width} ({100 * explained:.0f}% of variance)"
    elif dims < width:
        view = f"first {dims} of {width} components"
    else:
        view = f"width {width}"
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if dims == 3:
        ax.set_zlabel(names[2])
    ax.set_title(
        f"Trajectories x_i(t), t in [0, {run.model.T:g}]: {len(samples)} of "
        f"{n_train} training samples\n{view}; dot at t = 0, circle at t = T",
        fontsize="medium",
    )
    _legend(fig, ax, handles, "class" if _is_classification(run) else "target")
    return fig


def _draw_paths(ax, coords, colours, samples, dims):
    """Lines through each sample's projected states (gid ``"sample-i"``), a dot
    at the first level and a circled marker at the last."""
    for j, i in enumerate(samples):
        path = [coords[:, j, c] for c in range(dims)]
        (line,) = ax.plot(*path, color=colours[j], lw=0.8, alpha=0.7)
        line.set_gid(f"sample-{i}")
    start, end = coords[0], coords[-1]
    kw = {"depthshade": False} if dims == 3 else {}
    ax.scatter(*start.T, color=colours, s=6, alpha=0.8, **kw)
    ax.scatter(*end.T, color=colours, s=22, edgecolor="k", linewidth=0.4, **kw)


def _trajectories_unavailable(run: Run) -> str | None:
    n = widths(run)
    if np.any(n != n[0]):
        return f"the width changes with depth ({n[0]} to {n[-1]})"
    return None


def _draw_output_zero_set(ax, run, end, dims):
    """Draw the hyperplane ``p x + p0 = 0`` over the box of the final states.

    Returns a legend handle for it, or None when ``p = 0``.
    """
    from matplotlib.patches import Patch

    w = run.model.core.out_weight
    p = (run.p if w is None else run.p * w)[0]
    p0 = float(run.p0[0])
    lo, hi = end.min(axis=0), end.max(axis=0)
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    solve = int(np.argmax(np.abs(p)))
    if p[solve] == 0:
        return None
    free = [c for c in range(dims) if c != solve]
    axes = np.meshgrid(*[np.linspace(lo[c], hi[c], 12) for c in free])
    pts = [None] * dims
    for c, a in zip(free, axes, strict=True):
        pts[c] = a
    pts[solve] = -(p0 + sum(p[c] * pts[c] for c in free)) / p[solve]
    inside = (pts[solve] >= lo[solve]) & (pts[solve] <= hi[solve])
    if dims == 2:
        (line,) = ax.plot(pts[0][inside], pts[1][inside], "k--", lw=1, label="P x = 0")
        line.set_gid("output-zero-set")
        return line
    pts[solve] = np.where(inside, pts[solve], np.nan)
    ax.plot_surface(*pts, color="0.5", alpha=0.25, linewidth=0)
    return Patch(color="0.5", alpha=0.4, label="P x = 0")


# ---------------------------------------------------------------------------
# Decision regions


def plot_decision_regions(
    run: Run,
    layers=None,
    *,
    resolution: int = 150,
    margin: float = 0.15,
) -> "Figure":
    """Predicted class over the input plane, after ``k`` layers, for 2-D inputs.

    Panel ``k`` colours each input ``x`` of a regular grid by the class of
    ``P x(t_k)``: the trained output map applied to the state the network reaches
    from ``x`` after ``k`` layers. Panel ``L`` (the last level) is the trained
    network's prediction; panel 0 is the output map alone on the padded input.
    The training samples are drawn on top, coloured by their label.

    Parameters
    ----------
    run : Run
        A classification run whose inputs have two features.
    layers : sequence of int, optional
        Levels ``k`` in ``0 .. L`` (negative counts from ``L``). Default
        ``0, L // 2, L``.
    resolution : int
        Grid points per axis.
    margin : float
        Share of the data range added on each side.

    Returns
    -------
    Figure
        One axes per level; each holds one image whose array is the class index
        at the grid cell centres, in the raw (unstandardised) input coordinates.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    reason = _regions_unavailable(run)
    if reason:
        raise ConfigError(
            f"decision regions cannot be drawn for '{run.path}': {reason}; they "
            "need a classification with two input features"
        )
    levels = _levels(run, layers)

    # the grid, in raw input coordinates
    x = train_inputs(run) * run.scale + run.shift
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = margin * np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - pad, hi + pad
    g0 = np.linspace(lo[0], hi[0], resolution)
    g1 = np.linspace(lo[1], hi[1], resolution)
    mesh = np.stack(np.meshgrid(g0, g1), axis=-1).reshape(-1, 2)
    full = run.model.flow(run.theta, (mesh - run.shift) / run.scale)
    n_k = widths(run)
    states = [full[k, :, : n_k[k]] for k in levels]
    classes = predicted_classes(level_outputs(run, on_output_grid(run, states, levels)))

    n_classes = len(run.class_values)
    colours = _class_colours(n_classes)
    light = 0.55 * colours + 0.45  # the same hues, paler, under the samples
    light[:, 3] = 1.0
    cmap = ListedColormap(light)
    d0, d1 = g0[1] - g0[0], g1[1] - g1[0]
    extent = (g0[0] - d0 / 2, g0[-1] + d0 / 2, g1[0] - d1 / 2, g1[-1] + d1 / 2)
    y = run.record["data"]["y_train"]

    n = len(levels)
    fig = _new_figure(3.3 * n + 0.6, 3.6)
    axes = fig.subplots(1, n, squeeze=False)[0]
    t = run.model.time.nodes
    for ax, k, cls in zip(axes, levels, classes, strict=True):
        ax.imshow(
            cls.reshape(resolution, resolution),
            origin="lower",
            extent=extent,
            cmap=cmap,
            vmin=-0.5,
            vmax=n_classes - 0.5,
            interpolation="nearest",
            aspect="auto",
        )
        ax.scatter(x[:, 0], x[:, 1], c=colours[y], s=8, edgecolor="k", linewidth=0.3)
        ax.set_title(f"after {k} layers (t = {t[k]:.3g})", fontsize="medium")
        ax.set_xlabel("input x_1")
    axes[0].set_ylabel("input x_2")
    handles = [
        Line2D([], [], marker="s", ls="", color=light[c], markersize=9, label=name)
        for c, name in enumerate(_class_names(run))
    ]
    fig.legend(
        handles=handles, title="predicted", fontsize="small", loc="outside right"
    )
    fig.suptitle(
        "Decision regions: class of P x(t_k) for inputs x, training samples on top",
        fontsize="medium",
    )
    return fig


def _regions_unavailable(run: Run) -> str | None:
    if not _is_classification(run):
        return "the run is a regression"
    if run.model.n_inputs != 2:
        return f"the inputs have {run.model.n_inputs} features, not 2"
    return None


def _levels(run: Run, layers) -> list[int]:
    L = run.model.n_steps
    if layers is None or len(layers) == 0:
        return sorted({0, L // 2, L})
    out = []
    for k in layers:
        k = int(k)
        if not -L - 1 <= k <= L:
            raise ConfigError(
                f"layer {k} does not exist: the run has levels 0 .. {L} "
                "(negative values count from the last)"
            )
        out.append(k % (L + 1))
    return out


# ---------------------------------------------------------------------------
# Along t: training error and control norm


def plot_risk_along_t(run: Run) -> "Figure":
    """Empirical risk ``E(x(t_k))`` with the trained output map, semi-log in y.

    Returns
    -------
    Figure
        One axes, one line: x-data the levels ``t_k``, y-data
        :func:`risk_along_t`.
    """
    t = run.model.time.nodes
    risk = risk_along_t(run)
    fig = _new_figure()
    ax = fig.add_subplot()
    (line,) = ax.semilogy(t, risk, "o-", ms=3, label="E(x(t_k)) with trained P")
    line.set_gid("risk")
    ax.set_xlabel("t")
    ax.set_ylabel(f"training error ({run.record['problem']['loss']} loss)")
    ax.set_title(
        f"Training error along t: risk of P x(t_k) on the training set\n"
        f"{_wrapped_model_line(run)}",
        fontsize="medium",
    )
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _draw_norm_steps(ax, t, norms):
    """Per-layer norms as steps over ``t_0 .. t_L`` (gid ``"control-norm"``), on a
    log scale when they span more than a decade."""
    patch = ax.stairs(norms, t, baseline=None, lw=1.5, label="|u_k| on [t_k, t_k+1)")
    patch.set_gid("control-norm")
    if bool(np.all(norms > 0)) and norms.max() > 10 * norms.min():
        ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.grid(True, which="both", alpha=0.3)
    return patch


def plot_control_norms(run: Run) -> "Figure":
    """Norm ``|u(t)|`` of the piecewise-constant controls, one step per layer.

    Returns
    -------
    Figure
        One axes holding a step patch over the edges ``t_0 .. t_L`` whose values
        are ``model.layer_norms(theta)``, shape (n_steps,): for a neural ODE the
        Euclidean norm of all entries of layer ``k``'s parameters, for a
        space-time network the quadrature ``L^2(Ω)`` norm of its kernels,
        ``(sum_jl ω_j ω_l w_jl^2 + sum_j ω_j b_j^2)^(1/2)``.
    """
    t = run.model.time.nodes
    norms = run.model.layer_norms(run.theta)
    fig = _new_figure()
    ax = fig.add_subplot()
    _draw_norm_steps(ax, t, norms)
    if _moving(run) is None:
        ax.set_ylabel("|u(t)|  (Euclidean norm of the layer's controls)")
    else:
        ax.set_ylabel("|u(t)|  (L2(Ω) norm of the layer's kernels)")
    ax.set_title(
        f"Control norm along t, ||u||_L2 = {run.results['control_norm']:.4g}\n"
        f"{_wrapped_model_line(run)}",
        fontsize="medium",
    )
    return fig


# ---------------------------------------------------------------------------
# Space-time networks: states on moving grids, widths, kernels


def _spacetime_unavailable(run: Run) -> str | None:
    if _moving(run) is None:
        return "the run is a neural ODE, not a space-time network"
    return None


def _cell_edges(nodes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Edges of the cells around sorted 1-D nodes: midpoints, and the domain ends.

    Parameters
    ----------
    nodes : ndarray, shape (n,)

    Returns
    -------
    ndarray, shape (n + 1,)
    """
    mid = 0.5 * (nodes[1:] + nodes[:-1])
    return np.concatenate([[lo], mid, [hi]])


def _grid_changes(run: Run) -> list[int]:
    """Levels ``k >= 1`` whose grid differs from that of level ``k - 1``."""
    moving = _moving(run)
    return [k + 1 for k in range(moving.n_steps) if moving.changes(k)]


def _thin(values: list[int], at_most: int) -> list[int]:
    """At most ``at_most`` of the sorted ``values``, evenly spread, ends kept."""
    values = sorted(set(values))
    if len(values) <= at_most:
        return values
    keep = np.unique(np.round(np.linspace(0, len(values) - 1, at_most)).astype(int))
    return [values[i] for i in keep]


def _shape_text(shape) -> str:
    return "x".join(str(v) for v in shape)


def plot_state(run: Run, sample: int = 0, levels=None) -> "Figure":
    """One training sample's state ``x(t, ξ)`` on the moving grid.

    On a 1-D domain, a heat map over ``(t, ξ)``: level ``k`` fills the cells
    around its nodes ``ξ_j^k`` from halfway to the previous level to halfway to
    the next, and the nodes are drawn as dots, so the grid's changes with depth
    are visible. On a 2-D domain, one image per chosen level on that level's grid
    (cells around the nodes, row ``i0`` of the tensor grid at the top, as in an
    image), nodes drawn as dots.

    Parameters
    ----------
    run : Run
        A space-time run.
    sample : int
        Index of the training sample.
    levels : sequence of int, optional
        2-D domains: the levels shown. Default level 0, the levels where the
        grid changes and the last level, at most six.

    Returns
    -------
    Figure
        1-D: one axes; the mesh of level ``k`` has gid ``"level-k"`` and holds
        the values ``x(t_k, ξ_j^k)`` in node order; the dots have gid ``"nodes"``.
        2-D: one axes per level, each with one mesh (gid ``"level-k"``).
    """
    reason = _spacetime_unavailable(run)
    if reason:
        raise ConfigError(f"the states figure cannot be drawn: {reason}")
    states = train_states(run)
    n_train = states[0].shape[0]
    if not 0 <= sample < n_train:
        raise ConfigError(
            f"sample {sample} does not exist: the run has training samples "
            f"0 .. {n_train - 1}"
        )
    moving = _moving(run)
    t = run.model.time.nodes
    label = _sample_label(run, sample)
    values = [np.asarray(x[sample]) for x in states]
    (lo, hi) = moving.domain[0]
    if moving.dim == 1:
        vmin = min(v.min() for v in values)
        vmax = max(v.max() for v in values)
        fig = _new_figure(7.2, 4.4)
        ax = fig.add_subplot()
        mesh = _draw_state_1d(ax, list(moving), t, values, (lo, hi), vmin, vmax)
        fig.colorbar(mesh, ax=ax, label="x(t, ξ)")
        ax.set_title(
            f"State of training sample {sample}, {label}, on the moving "
            f"grid; dots: grid nodes\n{_wrapped_model_line(run)}",
            fontsize="medium",
        )
        return fig

    levels = (
        _thin([0, *_grid_changes(run), moving.n_steps], 6)
        if levels is None
        else _levels(run, levels)
    )
    fig = _new_figure(3.1 * len(levels), 3.3)
    _draw_state_panels(fig, list(moving), t, values, levels, moving.domain)
    fig.suptitle(
        f"State x(t, ξ) of training sample {sample}, {label}, at chosen "
        "levels, each with its colour scale; dots: grid nodes",
        fontsize="medium",
    )
    return fig


def _draw_state_1d(ax, level_grids, t, values, domain, vmin, vmax):
    """Heat map of one state over ``(t, ξ)`` on 1-D grids, nodes as dots.

    Level ``k`` fills the cells around its nodes from halfway to ``t_{k-1}`` to
    halfway to ``t_{k+1}``; its mesh has gid ``"level-k"``, the dots ``"nodes"``.
    Returns the last mesh (for a colour bar).
    """
    lo, hi = domain
    t_edges = _cell_edges(t, t[0], t[-1])
    node_t, node_xi = [], []
    for k, (grid, v) in enumerate(zip(level_grids, values, strict=True)):
        xi = grid.nodes[:, 0]
        mesh = ax.pcolormesh(
            t_edges[k : k + 2],
            _cell_edges(xi, lo, hi),
            np.asarray(v)[:, None],
            vmin=vmin,
            vmax=vmax,
            cmap="viridis",
        )
        mesh.set_gid(f"level-{k}")
        node_t.append(np.full(xi.size, t[k]))
        node_xi.append(xi)
    dots = ax.scatter(np.concatenate(node_t), np.concatenate(node_xi), s=4, c="w", lw=0)
    dots.set_gid("nodes")
    ax.set_xlabel("t")
    ax.set_ylabel("ξ")
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(lo, hi)
    return mesh


def _draw_state_panels(fig, level_grids, t, values, levels, domain):
    """One image per chosen level of a state on 2-D grids, each with its own
    colour scale (the input and the last state differ in range); the mesh of
    level ``k`` has gid ``"level-k"``."""
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    range0, range1 = domain[0], domain[1]
    for ax, k in zip(axes, levels, strict=True):
        grid, v = level_grids[k], np.asarray(values[k])
        mesh = _draw_on_grid(ax, grid, v, range0, range1, v.min(), v.max())
        mesh.set_gid(f"level-{k}")
        fig.colorbar(mesh, ax=ax, shrink=0.75)
        ax.set_title(
            f"level {k}, t = {t[k]:.3g}, grid {_shape_text(grid.shape)}",
            fontsize="small",
        )
        ax.set_xlabel("ξ_2")
        ax.set_aspect("equal")
    axes[0].set_ylabel("ξ_1")
    return axes


def _sample_label(run: Run, i: int) -> str:
    y = run.record["data"]["y_train"][i]
    if _is_classification(run):
        return f"class {_class_names(run)[int(y)]}"
    return f"target {np.ravel(y)[0]:.3g}"


def _draw_on_grid(ax, grid, values, range0, range1, vmin, vmax):
    """Nodal values of a 2-D grid as cells around its nodes (a tensor grid) or
    coloured dots (any other grid); axis 0 runs downwards, as in an image."""
    axes = grid.axes
    if axes is not None:
        e0 = _cell_edges(axes[0], *range0)
        e1 = _cell_edges(axes[1], *range1)
        mesh = ax.pcolormesh(
            e1, e0, values.reshape(grid.shape), vmin=vmin, vmax=vmax, cmap="viridis"
        )
        ax.scatter(*np.meshgrid(axes[1], axes[0]), s=3, c="w", lw=0)
    else:
        mesh = ax.scatter(
            grid.nodes[:, 1], grid.nodes[:, 0], c=values, vmin=vmin, vmax=vmax, s=30
        )
    ax.set_xlim(*range1)
    ax.set_ylim(range0[1], range0[0])
    return mesh


def _draw_widths(ax, t, level_widths, shapes):
    """Widths of the layers (levels ``0 .. L-1``) as a filled step patch (gid
    ``"widths"``) over ``t_0 .. t_L``, the grid shape written on each stretch."""
    n = np.asarray(level_widths)[:-1]
    patch = ax.stairs(n, t, baseline=0, fill=True, alpha=0.35, lw=1.5)
    patch.set_gid("widths")
    ax.stairs(n, t, baseline=None, lw=1.5, color=patch.get_facecolor()[:3])
    start = 0
    for k in range(1, len(n) + 1):
        if k == len(n) or shapes[k] != shapes[start]:
            ax.annotate(
                _shape_text(shapes[start]),
                (0.5 * (t[start] + t[k]), n[start]),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize="small",
            )
            start = k
    ax.set_ylim(0, 1.15 * n.max())
    ax.set_xlabel("t")
    ax.set_ylabel("width n_k (grid nodes)")
    ax.grid(True, alpha=0.3)
    return patch


def plot_widths(run: Run) -> "Figure":
    """Width ``n_k`` (number of grid nodes) of each layer along ``t``.

    Returns
    -------
    Figure
        One axes holding a step patch (gid ``"widths"``) over the edges
        ``t_0 .. t_L`` whose values are the widths of the layers, shape
        (n_steps,); the grid shape is written on each stretch of equal width.
    """
    reason = _spacetime_unavailable(run)
    if reason:
        raise ConfigError(f"the widths figure cannot be drawn: {reason}")
    moving = _moving(run)
    fig = _new_figure(7.4, 3.8)
    ax = fig.add_subplot()
    _draw_widths(ax, run.model.time.nodes, widths(run), moving.shapes)
    ax.set_title(
        f"Width per layer, {moving.dim}-D {run.config['spacetime']['rule']} grids"
        f"\n{_wrapped_model_line(run)}",
        fontsize="medium",
    )
    return fig


def plot_kernels(run: Run, layers=None, name: str = "w") -> "Figure":
    """Kernels ``w_k(ξ, ζ)`` of chosen layers as images.

    Parameters
    ----------
    run : Run
        A space-time run.
    layers : sequence of int, optional
        Layers ``0 .. L-1`` (negative counts from ``L``). Default the first
        layer, the first layer on each new grid and the last layer, at most four.
    name : {"w", "a"}
        The kernel: ``w`` (every field) or the bottleneck's inner ``a``.

    Returns
    -------
    Figure
        One axes per layer with one mesh (gid ``"layer-k"``) whose array is the
        kernel's values ``w[j, l] = w_k(ξ_j, ζ_l)`` in row-major order: row ``j``
        (vertical) the output node, column ``l`` the input node. On a 1-D domain
        the axes are ``ζ`` and ``ξ`` (cells around the nodes); on a 2-D domain
        node indices in the grid's row-major order.
    """
    reason = _spacetime_unavailable(run)
    if reason:
        raise ConfigError(f"the kernels figure cannot be drawn: {reason}")
    moving = _moving(run)
    L = moving.n_steps
    if layers is None:
        chosen = _thin([0, *(k for k in _grid_changes(run) if k < L), L - 1], 4)
    else:
        chosen = []
        for k in layers:
            if not -L <= int(k) < L:
                raise ConfigError(
                    f"layer {k} does not exist: the run has layers 0 .. {L - 1}"
                )
            chosen.append(int(k) % L)
    controls = run.model.unpack(run.theta)
    if name not in controls[0]:
        raise ConfigError(
            f"the run has no kernel '{name}': choose one of {', '.join(controls[0])}"
        )
    kernels = [controls[k][name] for k in chosen]
    fig = _new_figure(2.9 * len(chosen) + 1.2, 3.3)
    _draw_kernels(fig, [moving[k] for k in chosen], kernels, chosen, name)
    fig.suptitle(f"Kernels {name}_k(ξ, ζ) of chosen layers", fontsize="medium")
    return fig


def _draw_kernels(fig, layer_grids, kernels, chosen, name):
    """Kernel matrices as images with one symmetric colour scale; the mesh of
    layer ``k`` has gid ``"layer-k"``."""
    vmax = max(float(np.abs(w).max()) for w in kernels) or 1.0
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    dim = layer_grids[0].dim
    (lo, hi) = layer_grids[0].domain[0]
    for ax, k, w, grid in zip(axes, chosen, kernels, layer_grids, strict=True):
        if dim == 1:
            edges = _cell_edges(grid.nodes[:, 0], lo, hi)
            mesh = ax.pcolormesh(edges, edges, w, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xlabel("ζ")
            ax.set_ylim(hi, lo)
        else:
            idx = np.arange(w.shape[0] + 1) - 0.5
            mesh = ax.pcolormesh(idx, idx, w, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xlabel("input node l")
            ax.set_ylim(idx[-1], idx[0])
        mesh.set_gid(f"layer-{k}")
        ax.set_aspect("equal")
        ax.set_title(f"layer {k}, grid {_shape_text(grid.shape)}", fontsize="small")
    axes[0].set_ylabel("ξ" if dim == 1 else "output node j")
    fig.colorbar(mesh, ax=list(axes), label=f"{name}_k(ξ, ζ)", shrink=0.8)
    return axes


# ---------------------------------------------------------------------------
# Optimiser history


def plot_history(run: Run) -> "Figure":
    """Objective, training loss and gradient norm against iteration (semi-log).

    Returns
    -------
    Figure
        Two axes: objective and risk (gids ``"objective"``, ``"risk"``), and the
        gradient norm (gid ``"grad_norm"``); the lines' data are the file's history
        arrays.
    """
    h = run.history
    it = h["iteration"]
    fig = _new_figure(9.0, 3.8)
    left, right = fig.subplots(1, 2)
    for name, label in (("objective", "objective J"), ("risk", "training loss E")):
        (line,) = left.semilogy(it, h[name], label=label)
        line.set_gid(name)
    left.set_xlabel("iteration")
    left.set_ylabel("value")
    left.legend(fontsize="small")
    left.set_title("Objective and training loss", fontsize="medium")
    (line,) = right.semilogy(it, h["grad_norm"], color="C2")
    line.set_gid("grad_norm")
    right.set_xlabel("iteration")
    right.set_ylabel("|grad J|")
    right.set_title("Gradient norm", fontsize="medium")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"Optimiser history ({run.optimizer.get('method', '')}, "
        f"{run.status}, {h['time'][-1] if len(h['time']) else 0:.1f} s)",
        fontsize="medium",
    )
    return fig


# ---------------------------------------------------------------------------
# Reading the other kinds of file


def _hdf5_header(path, what: str, fmt: str, version: int) -> None:
    """Check that ``path`` is a readable HDF5 file of ``format = fmt``, version
    ``version``; raise one RunFileError that says what is wrong otherwise."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"{what} '{path}' does not exist: check the path")
    try:
        with h5py.File(path, "r") as f:
            found, found_version = f.attrs.get("format"), f.attrs.get("format_version")
    except (OSError, RuntimeError, ValueError):
        raise RunFileError(
            f"'{path}' is not a readable HDF5 file (truncated or corrupt): write it "
            "again"
        ) from None
    if isinstance(found, bytes):
        found = found.decode()
    if found != fmt:
        raise RunFileError(f"'{path}' is not a {what} (format '{found}')")
    if not _is_version(found_version, version):
        raise RunFileError(
            f"'{path}' has {what} format version {_io.version_text(found_version)}; "
            f"this spacetime reads version {version} (an integer): use the "
            "spacetime version that wrote it"
        )


def _is_version(found, version: int) -> bool:
    """Whether a stored ``format_version`` is the integer ``version``: a text
    ``"1"`` or a float ``1.0`` is not (spacetime writes an integer)."""
    if isinstance(found, bool | np.bool_) or not isinstance(found, int | np.integer):
        return False
    return int(found) == version


def _damaged(path, what: str, err) -> RunFileError:
    return RunFileError(
        f"{what} '{path}' is incomplete or damaged ({err}): write it again"
    )


def load_convergence(path):
    """Read a convergence-study file (``convergence.h5``) back.

    Parameters
    ----------
    path : path-like
        The file ``spacetime study convergence`` writes.

    Returns
    -------
    ConvergenceStudy
        With the forward, adjoint and trained series of the file and its settings;
        ``paths["convergence.h5"]`` is the file. ``settings["provenance"]`` holds
        the file's provenance.

    Raises
    ------
    RunFileError
        When the file is missing, truncated, of another kind or format version,
        or damaged.
    """
    import h5py

    from ._convergence import (
        FORMAT,
        FORMAT_VERSION,
        TRAINED_ARRAYS,
        AdjointResult,
        ConvergenceStudy,
        ForwardResult,
        TrainedResult,
    )

    what = "convergence-study file"
    _hdf5_header(path, what, FORMAT, FORMAT_VERSION)
    path = Path(path)
    forward, adjoint, trained = [], [], []
    try:
        with h5py.File(path, "r") as f:
            settings = json.loads(f.attrs["settings"])
            settings["provenance"] = json.loads(f.attrs.get("provenance", "{}"))
            for mode, g_mode in f["forward"].items():
                for field_name, g_field in g_mode.items():
                    for scheme, g in g_field.items():
                        forward.append(
                            ForwardResult(
                                scheme,
                                field_name,
                                mode,
                                g["n_steps"][()],
                                g["dt"][()],
                                g["error"][()],
                                float(g.attrs["observed_order"]),
                                int(g.attrs["n_fit_points"]),
                                int(g.attrs["expected_order"]),
                            )
                        )
            for field_name, g_field in f.get("adjoint", {}).items():
                for scheme, g in g_field.items():
                    adjoint.append(
                        AdjointResult(
                            scheme,
                            field_name,
                            g["n_steps"][()],
                            g["dt"][()],
                            g["gap"][()],
                            float(g.attrs["observed_order"]),
                            int(g.attrs["n_fit_points"]),
                        )
                    )
            for scheme, g in f.get("trained", {}).items():
                arrays = {name: g[name][()] for name in TRAINED_ARRAYS}
                thetas = [g["controls"][f"L{int(n)}"][()] for n in arrays["n_steps"]]
                trained.append(TrainedResult(scheme, **arrays, thetas=thetas))
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise _damaged(path, what, err) from None
    order = {m: i for i, m in enumerate(("stage", "left", "mid"))}
    forward.sort(key=lambda r: order.get(r.mode, len(order)))
    return ConvergenceStudy(
        forward,
        trained,
        settings,
        paths={"convergence.h5": path},
        adjoint=adjoint,
    )


def load_sweep_index(path):
    """Read a sweep's index (``index.h5``, or the sweep folder) for drawing.

    The same as :func:`spacetime.load_sweep`, with the format version checked
    first.

    Returns
    -------
    SweepResult

    Raises
    ------
    RunFileError
    """
    from ._sweep import INDEX_FORMAT, INDEX_FORMAT_VERSION, load_sweep

    path = Path(path)
    if path.is_dir():
        path = path / "index.h5"
    _hdf5_header(path, "sweep index", INDEX_FORMAT, INDEX_FORMAT_VERSION)
    return load_sweep(path)


def _source_path(obj) -> Path:
    """The file a loaded object was read from (or written to)."""
    path = getattr(obj, "path", None)
    if path is None and hasattr(obj, "index_path"):
        path = obj.index_path
    if path is None and getattr(obj, "paths", None):
        path = obj.paths.get("convergence.h5")
    if path is None:
        raise ConfigError(
            "this object was not read from a file or written to one: save its "
            "figures with fig.savefig(...)"
        )
    return Path(path)


# ---------------------------------------------------------------------------
# Convergence studies: observed orders


FIT_GAP = 3.0
"""How far below the data the line of the fitted slope is drawn (a factor): a
line through the points lay on them and could not be seen."""


def _fit_line_below(x, y, order, floor=0.0):
    """A line ``C x^order`` over the points with ``y > floor``, parallel to their
    least-squares fit (slope fixed) and ``FIT_GAP`` times below the lowest of
    them relative to it: its x and y, or None."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    use = (y > floor) & np.isfinite(y) & (x > 0)
    if use.sum() < 2 or not np.isfinite(order):
        return None
    xs, ys = x[use], y[use]
    log_c = np.min(np.log(ys) - order * np.log(xs)) - np.log(FIT_GAP)
    return xs, np.exp(log_c) * xs**order


_MODE_TITLES = {
    "stage": "controls at every stage time",
    "left": "controls frozen per step, u(t_k)",
    "mid": "controls frozen per step, u(t_k + dt/2)",
}


def plot_convergence(study) -> "Figure":
    """Forward errors against the step, log-log, one panel per mode and field.

    Parameters
    ----------
    study : ConvergenceStudy
        From :func:`spacetime.convergence_study` or :func:`load_convergence`.

    Returns
    -------
    Figure
        One axes per (sampling mode, field); in each, the line with gid
        ``"mode/field/scheme"`` holds the file's ``dt`` (x) and ``error`` (y),
        labelled with the fitted ``observed_order`` and the expected order; a
        dashed line (gid ``"fit:mode/field/scheme"``) of that slope spans the
        points used in the fit, :data:`FIT_GAP` times below the lowest of them
        (relative to the fit), so that it does not hide them.
    """
    from matplotlib.ticker import NullFormatter

    if not study.forward:
        raise ConfigError("the convergence study has no forward series to draw")
    floor = float(study.settings.get("forward", {}).get("error_floor", 0.0))
    modes = list(dict.fromkeys(r.mode for r in study.forward))
    fields = list(dict.fromkeys(r.field for r in study.forward))
    fig = _new_figure(3.9 * len(fields) + 1.0, 3.0 * len(modes) + 0.6)
    axes = fig.subplots(len(modes), len(fields), squeeze=False)
    schemes = list(dict.fromkeys(r.scheme for r in study.forward))
    colour = {s: f"C{i}" for i, s in enumerate(schemes)}
    for i, mode in enumerate(modes):
        for j, fname in enumerate(fields):
            ax = axes[i, j]
            series = [r for r in study.forward if r.mode == mode and r.field == fname]
            for r in series:
                _order_series(
                    ax,
                    r.dt,
                    r.errors,
                    r.order,
                    f"{r.scheme}: order {r.order:.2f} (expected {r.expected})",
                    colour[r.scheme],
                    f"{r.mode}/{r.field}/{r.scheme}",
                    floor,
                )
            if (
                floor > 0
                and series
                and min(r.errors.min() for r in series) < 10 * floor
            ):
                ax.axhline(floor, color="0.6", lw=0.8, ls=":")
            ax.set_title(f"{fname}: {_MODE_TITLES.get(mode, mode)}", fontsize="small")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.legend(fontsize="x-small", loc="lower right")
            ax.grid(True, which="major", alpha=0.3)
        axes[i, 0].set_ylabel("max error of x(T)")
    for ax in axes[-1]:
        ax.set_xlabel("step dt")
    fig.suptitle(
        _wrap_to(
            "Observed orders: error of the flow against the step (log-log); "
            f"dashed: the fitted slope, drawn {FIT_GAP:g}x below the points fitted"
            + (f"; dotted: fit floor {floor:g}" if floor > 0 else ""),
            fig.get_figwidth(),
        ),
        fontsize="medium",
    )
    return fig


def _order_series(ax, dt, err, order, label, colour, gid, floor=0.0) -> None:
    """One series of errors against the step (log-log, gid ``gid``) and its fitted
    slope drawn parallel below it (gid ``"fit:" + gid``)."""
    (line,) = ax.loglog(dt, err, "o-", ms=3, color=colour, label=label)
    line.set_gid(gid)
    fit = _fit_line_below(dt, err, order, floor)
    if fit is not None:
        (dashed,) = ax.loglog(*fit, "--", lw=0.8, color=colour, alpha=0.7)
        dashed.set_gid(f"fit:{gid}")


def plot_convergence_adjoint(study) -> "Figure":
    """Gap between the discrete and the continuous gradient against the step.

    Returns
    -------
    Figure
        One axes per field; the line with gid ``"adjoint/field/scheme"`` holds the
        file's ``dt`` and ``gap``, labelled with its fitted order.
    """
    from matplotlib.ticker import NullFormatter

    if not study.adjoint:
        raise ConfigError("the convergence study has no adjoint series to draw")
    fields = list(dict.fromkeys(a.field for a in study.adjoint))
    schemes = list(dict.fromkeys(a.scheme for a in study.adjoint))
    colour = {s: f"C{i}" for i, s in enumerate(schemes)}
    fig = _new_figure(3.9 * len(fields) + 1.0, 3.6)
    axes = fig.subplots(1, len(fields), squeeze=False)[0]
    from ._registry import SCHEMES

    for ax, fname in zip(axes, fields, strict=True):
        for a in study.adjoint:
            if a.field != fname:
                continue
            expected = SCHEMES[a.scheme].order if a.scheme in SCHEMES else "?"
            _order_series(
                ax,
                a.dt,
                a.gaps,
                a.order,
                f"{a.scheme}: order {a.order:.2f} (expected {expected})",
                colour[a.scheme],
                f"adjoint/{a.field}/{a.scheme}",
            )
        ax.set_title(f"{fname} field", fontsize="small")
        ax.set_xlabel("step dt")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize="x-small", loc="lower right")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("relative gap |g_discrete - g_continuous| / |g_continuous|")
    fig.suptitle(
        _wrap_to(
            "Exact discrete gradient against the continuous adjoint (log-log); "
            f"dashed: the fitted slope, drawn {FIT_GAP:g}x below the points",
            fig.get_figwidth(),
        ),
        fontsize="medium",
    )
    return fig


def plot_convergence_trained(study) -> "Figure":
    """How the optimal value and the trained controls settle as layers double.

    Returns
    -------
    Figure
        Two axes: ``|J_L - J_2L|`` (gid ``"objective/scheme"``) and
        ``||R u_L - u_2L||`` (gid ``"controls/scheme"``) against the finer level's
        number of layers ``2L`` (the file's ``n_steps[1:]``), labelled with the
        last observed rate (``objective_rate[-1]``, ``control_rate[-1]``).
    """
    from matplotlib.ticker import NullFormatter

    if not study.trained:
        raise ConfigError("the convergence study has no trained series to draw")
    fig = _new_figure(9.0, 3.8)
    ax_j, ax_u = fig.subplots(1, 2)
    for i, t in enumerate(study.trained):
        layers = np.asarray(t.n_steps[1:])
        for ax, name, diff, rate in (
            (ax_j, "objective", t.objective_diff, t.final_objective_rate),
            (ax_u, "controls", t.control_diff, t.final_control_rate),
        ):
            (line,) = ax.loglog(
                layers,
                diff,
                "o-",
                ms=3,
                color=f"C{i}",
                label=f"{t.scheme}: rate {rate:.2f}",
            )
            line.set_gid(f"{name}/{t.scheme}")
    ax_j.set_ylabel("|J_L - J_2L|")
    ax_j.set_title("optimal value", fontsize="small")
    ax_u.set_ylabel("||R u_L - u_2L||  in L2(0, T)")
    ax_u.set_title("trained controls", fontsize="small")
    for ax in (ax_j, ax_u):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("layers 2L of the finer level")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize="x-small")
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        "Trained: successive differences as the layers double (log-log); rate = "
        "log2 of the ratio of the last two",
        fontsize="medium",
    )
    return fig


# ---------------------------------------------------------------------------
# Sweeps: headline numbers against the swept keys, status of the cases


#: Statuses in the order of the status figure's legend, with their colours.
SWEEP_STATUS_COLOURS = {
    "converged": "#2ca02c",
    "max_iter": "#98df8a",
    "stopped": "#bcbd22",
    "time_limit": "#ff7f0e",
    "interrupted": "#ffbb78",
    "failed": "#d62728",
    "skipped": "#9467bd",
    "running": "#1f77b4",
    "pending": "#c7c7c7",
}


def _short_keys(keys) -> dict:
    """Each dotted key's last part, unless two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {
        k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)
    }


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool
    )


def _value_text(v) -> str:
    return f"{v:g}" if _is_number(v) else str(v)


def sweep_layout(result):
    """How a sweep's cases are laid out in its figures.

    The x axis is one swept key: the chain key when its values are numbers, else
    the first key with numbers and more than one value, else the first key with
    more than one value (as categories). Every combination of the other keys'
    values is one curve.

    Returns
    -------
    x_key : str or None
        None for a sweep of one case or without swept keys.
    x_values : list
        The x key's distinct values, in the order of the sweep.
    numeric : bool
        Whether ``x_values`` are numbers (else they are categories 0, 1, ...).
    groups : list of (str, list of int)
        A label for each combination of the other keys' values and the indices of
        its cases, in the order of ``x_values`` (-1 where the combination has no
        case of that value).
    """
    cases = list(result.cases)
    keys = list(result.keys)

    def distinct(key):
        return list(dict.fromkeys(c.values[key] for c in cases))

    multi = [k for k in keys if len(distinct(k)) > 1]
    numeric_keys = [k for k in multi if all(_is_number(v) for v in distinct(k))]
    if result.chain in numeric_keys:
        x_key = result.chain
    elif numeric_keys:
        x_key = numeric_keys[0]
    elif multi:
        x_key = multi[0]
    else:
        x_key = None
    x_values = distinct(x_key) if x_key else [None]
    numeric = x_key in numeric_keys
    if numeric:
        x_values = sorted(x_values)
    short = _short_keys(keys)
    others = [k for k in keys if k != x_key and k in multi]
    groups: dict = {}
    for i, c in enumerate(cases):
        label = ", ".join(f"{short[k]}={_value_text(c.values[k])}" for k in others)
        row = groups.setdefault(label, [-1] * len(x_values))
        x = c.values[x_key] if x_key else None
        row[x_values.index(x)] = i
    return x_key, x_values, numeric, list(groups.items())


_SWEEP_QUANTITIES = {
    "objective": "final objective J",
    "risk": "training loss E",
    "test_accuracy": "test accuracy",
    "train_accuracy": "train accuracy",
}


def plot_sweep(result, quantities=None) -> "Figure":
    """Headline numbers of a sweep's cases against a swept key.

    Parameters
    ----------
    result : SweepResult
        From :func:`spacetime.run_sweep`, :func:`spacetime.load_sweep` or
        :func:`load_sweep_index`.
    quantities : sequence of str, optional
        Among ``objective``, ``risk``, ``test_accuracy``, ``train_accuracy``;
        default the objective, the training loss and, when some case has one,
        the test accuracy.

    Returns
    -------
    Figure
        One axes per quantity; the x axis is the key :func:`sweep_layout`
        chooses, and each combination of the other keys' values is one line with
        gid ``"<quantity>:<label>"`` whose y-data are the index's values of its
        cases (NaN where a case has no file). Categorical keys are drawn at 0,
        1, ... with their values as tick labels.
    """
    x_key, x_values, numeric, groups = sweep_layout(result)
    cases = list(result.cases)
    if quantities is None:
        quantities = ["objective", "risk"]
        if any(np.isfinite(c.test_accuracy) for c in cases):
            quantities.append("test_accuracy")
    for q in quantities:
        if q not in _SWEEP_QUANTITIES:
            raise ConfigError(
                f"unknown sweep quantity '{q}': choose from "
                f"{', '.join(_SWEEP_QUANTITIES)}"
            )
    x = np.asarray(x_values, dtype=np.float64) if numeric else np.arange(len(x_values))
    log_x = bool(numeric and np.all(x > 0) and x.max() >= 10 * x.min())
    fig = _new_figure(3.6 * len(quantities) + 1.8, 3.8)
    axes = fig.subplots(1, len(quantities), squeeze=False)[0]
    many = len(groups) > 10
    for ax, q in zip(axes, quantities, strict=True):
        all_y = []
        for g, (label, idx) in enumerate(groups):
            y = np.array(
                [getattr(cases[i], q) if i >= 0 else np.nan for i in idx],
                dtype=np.float64,
            )
            all_y.append(y)
            (line,) = ax.plot(
                x,
                y,
                "o-",
                ms=4,
                lw=1.2,
                color=f"C{g % 10}",
                label=label or "all cases",
            )
            line.set_gid(f"{q}:{label}")
        finite = np.concatenate(all_y)
        finite = finite[np.isfinite(finite)]
        if (
            q in ("objective", "risk")
            and finite.size
            and finite.min() > 0
            and finite.max() > 10 * finite.min()
        ):
            ax.set_yscale("log")
        if log_x:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(x, [_value_text(v) for v in x_values])
        ax.set_xlabel(x_key or "case")
        ax.set_title(_SWEEP_QUANTITIES[q], fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
    if any(label for label, _ in groups) and not many:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize="small", loc="outside right")
    counts = result.counts()
    missing = sum(1 for c in cases if not np.isfinite(c.objective))
    fig.suptitle(
        f"Sweep {result.out.name}: {len(cases)} cases ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + ")"
        + (f"; {missing} without a file are not drawn" if missing else ""),
        fontsize="medium",
    )
    return fig


def plot_sweep_status(result) -> "Figure":
    """Status of each case of a sweep, laid out like :func:`plot_sweep`.

    Returns
    -------
    Figure
        One axes with an image (gid ``"status"``): row ``r`` is the ``r``-th
        combination of the other keys, column ``c`` the x key's ``c``-th value, and
        the value is the position of the case's status in
        :data:`SWEEP_STATUS_COLOURS` (NaN where there is no case). Up to 300
        cells carry the number of optimiser iterations as text.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    x_key, x_values, numeric, groups = sweep_layout(result)
    cases = list(result.cases)
    names = list(SWEEP_STATUS_COLOURS)
    grid = np.full((len(groups), len(x_values)), np.nan)
    for r, (_, idx) in enumerate(groups):
        for c, i in enumerate(idx):
            if i >= 0:
                status = cases[i].status
                grid[r, c] = names.index(status) if status in names else np.nan
    cmap = ListedColormap(list(SWEEP_STATUS_COLOURS.values())).with_extremes(
        bad="white"
    )
    fig = _new_figure(
        min(2.6 + 0.7 * len(x_values), 12.0), min(1.8 + 0.35 * len(groups), 12.0)
    )
    ax = fig.add_subplot()
    image = ax.imshow(
        grid,
        cmap=cmap,
        vmin=-0.5,
        vmax=len(names) - 0.5,
        aspect="auto",
        interpolation="nearest",
    )
    image.set_gid("status")
    if grid.size <= 300:
        for r, (_, idx) in enumerate(groups):
            for c, i in enumerate(idx):
                if i >= 0 and cases[i].n_iter >= 0:
                    ax.text(
                        c,
                        r,
                        str(cases[i].n_iter),
                        ha="center",
                        va="center",
                        fontsize="x-small",
                    )
    ax.set_xticks(range(len(x_values)), [_value_text(v) for v in x_values])
    ax.set_xlabel(x_key or "case")
    labels = [label or "all cases" for label, _ in groups]
    if len(groups) <= 40:
        ax.set_yticks(range(len(groups)), labels, fontsize="small")
    else:
        ax.set_ylabel(f"{len(groups)} combinations of the other keys")
    present = [s for s in names if any(c.status == s for c in cases)]
    handles = [
        Patch(color=SWEEP_STATUS_COLOURS[s], label=f"{s} ({result.counts()[s]})")
        for s in present
    ]
    fig.legend(handles=handles, fontsize="small", loc="outside right", title="status")
    # a figure title, wrapped to the figure's width: an axes title wider than a
    # narrow sweep's figure was cut off at both ends
    fig.suptitle(
        _wrap_to(
            f"Status of the cases of sweep {result.out.name}; numbers: iterations",
            fig.get_figwidth(),
        ),
        fontsize="medium",
    )
    return fig


def _wrap_to(text: str, width_inches: float, points: float = 10.0) -> str:
    """``text`` broken into lines no wider than ``width_inches`` at a font of
    ``points`` (an average character of DejaVu Sans is under 0.62 em wide)."""
    import textwrap

    chars = max(12, int(width_inches * 72.0 / (0.62 * points)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False))


# ---------------------------------------------------------------------------
# Simulations with prescribed controls


def _simulation_attrs(sim) -> dict:
    """What a simulation file keeps beyond :class:`Simulation`: model, config,
    provenance, expressions (empty for a simulation not written to a file)."""
    import h5py

    out = {"model": {}, "config": "", "provenance": {}, "controls": {}, "inputs": []}
    if getattr(sim, "network", None) is not None:
        out["model"] = dict(sim.network.describe())
    if sim.path is None or not Path(sim.path).is_file():
        return out

    def text(v):
        return v.decode() if isinstance(v, bytes) else v

    try:
        with h5py.File(sim.path, "r") as f:
            out["model"] = {k: text(v) for k, v in f["model"].attrs.items()}
            out["config"] = text(f["config"].attrs.get("toml", ""))
            out["provenance"] = {k: text(v) for k, v in f["provenance"].attrs.items()}
            out["controls"] = {k: text(v) for k, v in f["controls"].attrs.items()}
            out["inputs"] = json.loads(text(f["inputs"].attrs.get("expressions", "[]")))
            out["created"] = text(f.attrs.get("created", ""))
    except (OSError, KeyError, ValueError) as err:
        raise _damaged(sim.path, "simulation file", err) from None
    return out


def simulation_labels(sim) -> tuple[list[str], np.ndarray | None]:
    """A name for each simulated sample, and its class when it has one.

    Samples given as expressions are named by them. Samples taken from a
    dataset (``simulate.inputs = []``) get their training labels when the
    configuration's dataset still has the same inputs; otherwise they are
    ``sample i``.

    Returns
    -------
    names : list of str, length n_samples
    classes : ndarray of int or None
        Class index of each sample (names are then the class values).
    """
    info = _simulation_attrs(sim)
    n = sim.n_samples
    if len(info["inputs"]) == n:
        return [str(e) for e in info["inputs"]], None
    if info["config"]:
        try:
            import tomllib

            from ._config import validate

            config = validate(tomllib.loads(info["config"]))
            dataset = load_data(config)
            x = dataset.x_train[:n]
            if (
                dataset.task == "classification"
                and x.shape == sim.inputs.shape
                and np.array_equal(x, sim.inputs)
            ):
                classes = np.asarray(dataset.y_train[:n], dtype=np.int64)
                values = dataset.class_values
                texts = _class_texts(values)
                return [texts[c] for c in classes], classes
        except (SpacetimeError, OSError, ValueError, KeyError) as err:
            log.info("no labels for the simulated samples: %s", err)
    return [f"sample {i}" for i in range(n)], None


def _simulation_colours(sim):
    """Per-sample colours and legend handles: by class, else one per sample."""
    from matplotlib.lines import Line2D

    names, classes = simulation_labels(sim)
    if classes is not None:
        colours = _class_colours(int(classes.max()) + 1)[classes]
        seen = dict.fromkeys(zip(classes.tolist(), names, strict=True))
        handles = [
            Line2D(
                [],
                [],
                color=_class_colours(int(classes.max()) + 1)[c],
                lw=2,
                label=name,
            )
            for c, name in seen
        ]
        return colours, handles, "label"
    colours = _class_colours(len(names))
    handles = [
        Line2D([], [], color=colours[i], lw=2, label=name)
        for i, name in enumerate(names)
    ]
    return colours, handles, "initial state"


def _simulation_line(sim) -> str:
    import textwrap

    m = _simulation_attrs(sim)["model"]
    shapes = [_shape_text(sim.grids[0].shape)]
    for g in sim.grids[1:]:
        if _shape_text(g.shape) != shapes[-1]:
            shapes.append(_shape_text(g.shape))
    text = (
        f"space-time network, {m.get('field', '?')} field, "
        f"{m.get('activation', '?')}, grids {' → '.join(shapes)}, "
        f"{len(sim.times) - 1} {m.get('scheme', '?')} steps on "
        f"[{sim.times[0]:g}, {sim.times[-1]:g}], prescribed controls"
    )
    return textwrap.fill(text, 72)


def _fixed_width_unavailable(sim) -> str | None:
    w = sim.widths
    if any(n != w[0] for n in w):
        return f"the width changes with depth ({w[0]} to {w[-1]})"
    return None


def _grid_fixed_unavailable(sim) -> str | None:
    if all(g.same_as(sim.grids[0]) for g in sim.grids[1:]):
        return "the grid does not change with depth"
    return None


def plot_simulation_norms(sim) -> "Figure":
    """Discrete ``L^2(Ω)`` norm of each simulated state along ``t``.

    Parameters
    ----------
    sim : Simulation
        From :func:`spacetime.simulate` or :func:`spacetime.load_simulation`.

    Returns
    -------
    Figure
        One axes; the line with gid ``"sample-i"`` holds ``sim.times`` and
        ``sim.norms()[:, i]``, coloured by label (by sample when there are none).
    """
    norms = sim.norms()
    colours, handles, title = _simulation_colours(sim)
    fig = _new_figure(7.4, 4.2)
    ax = fig.add_subplot()
    for i in range(sim.n_samples):
        (line,) = ax.plot(sim.times, norms[:, i], "-", lw=1.2, color=colours[i])
        line.set_gid(f"sample-{i}")
    changes = [
        sim.times[k]
        for k in range(1, len(sim.grids))
        if not sim.grids[k].same_as(sim.grids[k - 1])
    ]
    for t in changes:
        ax.axvline(t, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("t")
    ax.set_ylabel("||x_i(t)||  (L2(Ω), grid quadrature)")
    ax.grid(True, alpha=0.3)
    ax.set_title(
        "Norm of each state along t"
        + ("; dotted: the grid changes" if changes else "")
        + f"\n{_simulation_line(sim)}",
        fontsize="medium",
    )
    if len(handles) <= 12:
        fig.legend(handles=handles, title=title, fontsize="small", loc="outside right")
    return fig


def plot_simulation_trajectories(sim, *, dims: int = 2) -> "Figure":
    """Paths of the simulated states in a plane (or 3-D) view, coloured by label.

    Needs one grid for every level. States of width 2 (3) are drawn as they are;
    wider ones on the leading principal axes of all states (:func:`project_states`).

    Returns
    -------
    Figure
        One axes; the line with gid ``"sample-i"`` holds the projected path of
        sample ``i`` through the levels.
    """
    reason = _fixed_width_unavailable(sim)
    if reason:
        raise ConfigError(f"trajectories cannot be drawn: {reason}; draw 'norms'")
    states = np.stack([np.asarray(x) for x in sim.states])
    width = states.shape[-1]
    if dims not in (2, 3) or dims > width:
        raise ConfigError(
            f"trajectories can be drawn in 2 or 3 dimensions up to the width "
            f"{width}, not {dims}"
        )
    projection = "components" if dims == width else "pca"
    coords, explained = project_states(states, dims, projection)
    colours, handles, title = _simulation_colours(sim)
    fig = _new_figure(6.4, 5.4 if dims == 3 else 4.8)
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    _draw_paths(ax, coords, colours, range(sim.n_samples), dims)
    if projection == "pca":
        names = [f"principal axis {c + 1}" for c in range(dims)]
        view = f"PCA projection of width {width} ({100 * explained:.0f}% of variance)"
    else:
        names, view = [f"x_{c + 1}" for c in range(dims)], f"width {width}"
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if dims == 3:
        ax.set_zlabel(names[2])
    ax.set_title(
        f"Paths of the simulated states, t in [{sim.times[0]:g}, {sim.times[-1]:g}]"
        f"\n{view}; dot at t = 0, circle at t = T",
        fontsize="medium",
    )
    if len(handles) <= 12:
        fig.legend(handles=handles, title=title, fontsize="small", loc="outside right")
    return fig


def plot_simulation_state(sim, samples=None, levels=None) -> "Figure":
    """The simulated states ``x_i(t, ξ)`` on the moving grid.

    On a 1-D domain, one heat map over ``(t, ξ)`` per sample (at most four, one
    colour scale), drawn as in :func:`plot_state`. On a 2-D domain, one sample's
    state at chosen levels.

    Parameters
    ----------
    sim : Simulation
    samples : sequence of int, optional
        Default the first four (1-D) or the first (2-D).
    levels : sequence of int, optional
        2-D domains: the levels shown; default level 0, the levels where the grid
        changes and the last, at most six.

    Returns
    -------
    Figure
        1-D: one axes per sample; its mesh with gid ``"level-k"`` holds
        ``sim.states[k][i]``. 2-D: one axes per level, each with one mesh
        (gid ``"level-k"``).
    """
    n = sim.n_samples
    dim = sim.grids[0].dim
    if samples is None:
        samples = list(range(min(n, 4 if dim == 1 else 1)))
    samples = [int(i) for i in samples]
    if not samples or any(not 0 <= i < n for i in samples):
        raise ConfigError(f"samples must lie in 0 .. {n - 1}, the simulated states")
    names, _ = simulation_labels(sim)
    t = np.asarray(sim.times)
    domain = sim.grids[0].domain
    if dim == 1:
        values = {i: [np.asarray(x[i]) for x in sim.states] for i in samples}
        vmin = min(v.min() for vs in values.values() for v in vs)
        vmax = max(v.max() for vs in values.values() for v in vs)
        fig = _new_figure(3.3 * len(samples) + 1.4, 3.8)
        axes = fig.subplots(1, len(samples), squeeze=False, sharey=True)[0]
        for ax, i in zip(axes, samples, strict=True):
            mesh = _draw_state_1d(
                ax, list(sim.grids), t, values[i], domain[0], vmin, vmax
            )
            ax.set_title(f"sample {i}: {names[i]}", fontsize="small")
        for ax in axes[1:]:
            ax.set_ylabel("")
        fig.colorbar(mesh, ax=list(axes), label="x(t, ξ)", shrink=0.85)
        fig.suptitle(
            f"Simulated states on the moving grid; dots: grid nodes\n"
            f"{_simulation_line(sim)}",
            fontsize="medium",
        )
        return fig
    L = len(t) - 1
    if levels is None:
        changes = [
            k for k in range(1, L + 1) if not sim.grids[k].same_as(sim.grids[k - 1])
        ]
        levels = _thin([0, *changes, L], 6)
    else:
        levels = [int(k) % (L + 1) for k in levels if -L - 1 <= int(k) <= L]
    i = samples[0]
    fig = _new_figure(3.1 * len(levels), 3.3)
    _draw_state_panels(
        fig, list(sim.grids), t, [x[i] for x in sim.states], levels, domain
    )
    fig.suptitle(
        f"Simulated state of sample {i} ({names[i]}) at chosen levels, each with "
        "its colour scale; dots: grid nodes",
        fontsize="medium",
    )
    return fig


def simulation_control_norms(sim) -> np.ndarray:
    """Quadrature ``L^2(Ω)`` norm of each layer's prescribed controls.

    Returns
    -------
    ndarray, shape (n_steps,)
        ``(sum_jl ω_j ω_l (w_jl^2 + a_jl^2) + sum_j ω_j b_j^2)^(1/2)`` with the
        weights ``ω`` of the layer's grid (``a`` for the bottleneck only).
    """
    out = np.empty(len(sim.controls))
    for k, (layer, grid) in enumerate(zip(sim.controls, sim.grids, strict=False)):
        om = grid.weights
        total = 0.0
        for name in ("w", "a"):
            if name in layer:
                total += float(om @ (np.asarray(layer[name]) ** 2) @ om)
        if "b" in layer:
            total += float(om @ np.asarray(layer["b"]) ** 2)
        out[k] = np.sqrt(total)
    return out


def plot_simulation_controls(sim) -> "Figure":
    """Norm of the prescribed controls per layer, a step function of ``t``.

    Returns
    -------
    Figure
        One axes with a step patch (gid ``"control-norm"``) over ``sim.times``
        whose values are :func:`simulation_control_norms`.
    """
    norms = simulation_control_norms(sim)
    fig = _new_figure()
    ax = fig.add_subplot()
    _draw_norm_steps(ax, np.asarray(sim.times), norms)
    ax.set_ylabel("|u(t)|  (L2(Ω) norm of the layer's kernels)")
    texts = _simulation_attrs(sim)["controls"]
    shown = [f"{k} = {texts[k]}" for k in ("w", "b", "a") if texts.get(k)]
    import textwrap

    ax.set_title(
        "Norm of the prescribed controls along t"
        + ("\n" + textwrap.fill("; ".join(shown), 80) if shown else "")
        + f"\n{_simulation_line(sim)}",
        fontsize="small",
    )
    return fig


def plot_simulation_widths(sim) -> "Figure":
    """Width (grid nodes) of each layer of a simulation, as :func:`plot_widths`."""
    reason = _grid_fixed_unavailable(sim)
    if reason:
        raise ConfigError(f"the widths figure cannot be drawn: {reason}")
    fig = _new_figure(7.4, 3.8)
    ax = fig.add_subplot()
    _draw_widths(ax, np.asarray(sim.times), sim.widths, [g.shape for g in sim.grids])
    ax.set_title(f"Width per layer\n{_simulation_line(sim)}", fontsize="medium")
    return fig


def plot_simulation_kernels(sim, layers=None, name: str = "w") -> "Figure":
    """Prescribed kernels of chosen layers as images, as :func:`plot_kernels`.

    Parameters
    ----------
    layers : sequence of int, optional
        Default the first layer, the first on each new grid and the last, at
        most four.
    name : {"w", "a"}
    """
    L = len(sim.controls)
    if layers is None:
        changes = [k for k in range(1, L) if not sim.grids[k].same_as(sim.grids[k - 1])]
        layers = _thin([0, *changes, L - 1], 4)
    chosen = []
    for k in layers:
        if not -L <= int(k) < L:
            raise ConfigError(
                f"layer {k} does not exist: the simulation has 0 .. {L - 1}"
            )
        chosen.append(int(k) % L)
    if name not in sim.controls[0]:
        raise ConfigError(
            f"the simulation has no kernel '{name}': choose one of "
            f"{', '.join(sim.controls[0])}"
        )
    fig = _new_figure(2.9 * len(chosen) + 1.2, 3.3)
    _draw_kernels(
        fig,
        [sim.grids[k] for k in chosen],
        [np.asarray(sim.controls[k][name]) for k in chosen],
        chosen,
        name,
    )
    fig.suptitle(
        f"Prescribed kernels {name}_k(ξ, ζ) of chosen layers", fontsize="medium"
    )
    return fig


# ---------------------------------------------------------------------------
# The table of figures and the files they go to


@dataclass(frozen=True)
class FigureKind:
    """One figure a file can have.

    Attributes
    ----------
    name : str
        The ``--what`` name and the file-name suffix.
    make : callable
        ``make(run, **options) -> Figure``.
    unavailable : callable
        ``unavailable(run) -> str | None``: why the file cannot have this figure,
        or None when it can.
    title : str
        A heading.
    caption : str
        One or two sentences on what the figure shows.
    noted : bool
        Whether leaving the figure out of the default set is said in one line
        (when the reason is a surprise, as a sweep whose every case failed,
        rather than the kind of file, as a regression without decision regions).
    """

    name: str
    make: Callable
    unavailable: Callable
    title: str
    caption: str
    noted: bool = False


def _always(run):
    return None


RUN_FIGURES: dict[str, FigureKind] = {
    k.name: k
    for k in (
        FigureKind(
            "trajectories",
            plot_trajectories,
            _trajectories_unavailable,
            "Trajectories",
            "Paths of training samples through the network, coloured by class "
            "(by target value in a regression).",
        ),
        FigureKind(
            "regions",
            plot_decision_regions,
            _regions_unavailable,
            "Decision regions",
            "Class of the trained output map applied to the state reached after k "
            "layers, over a grid of inputs; the last panel is the network's "
            "prediction.",
        ),
        FigureKind(
            "risk",
            plot_risk_along_t,
            _always,
            "Training error along t",
            "Empirical risk of the states at each level t_k under the trained "
            "output map (a space-time state is first carried to the last grid by "
            "the network's transfers); the last point is the training loss.",
        ),
        FigureKind(
            "controls",
            plot_control_norms,
            _always,
            "Control norm along t",
            "Euclidean norm of each layer's controls (piecewise constant in t).",
        ),
        FigureKind(
            "state",
            plot_state,
            _spacetime_unavailable,
            "State on the moving grid",
            "One training sample's state x(t, ξ) on the grid of each level, with "
            "the grid nodes drawn.",
        ),
        FigureKind(
            "widths",
            plot_widths,
            _spacetime_unavailable,
            "Width per layer",
            "Number of grid nodes of each layer along t.",
        ),
        FigureKind(
            "kernels",
            plot_kernels,
            _spacetime_unavailable,
            "Kernels",
            "The kernels w_k(ξ, ζ) of chosen layers, at the nodes of their grids.",
        ),
        FigureKind(
            "history",
            plot_history,
            _always,
            "Optimiser history",
            "Objective, training loss and gradient norm at each iteration.",
        ),
    )
}


def _has(attr: str, what: str):
    def unavailable(study):
        return None if getattr(study, attr) else f"the study has no {what}"

    return unavailable


CONVERGENCE_FIGURES: dict[str, FigureKind] = {
    k.name: k
    for k in (
        FigureKind(
            "orders",
            plot_convergence,
            _has("forward", "forward series"),
            "Observed orders",
            "Error of the discrete flow at T against the step dt, log-log, for each "
            "scheme, vector field and way of sampling the controls; the legend "
            "gives the fitted order (least-squares slope over the errors above the "
            "floor) and the order theory predicts. The dashed line beside each "
            f"series has the fitted slope; it is drawn {FIT_GAP:g} times below the "
            "points, parallel to them, so as not to hide them.",
        ),
        FigureKind(
            "adjoint",
            plot_convergence_adjoint,
            _has("adjoint", "adjoint series"),
            "Discrete gradient against the continuous adjoint",
            "Relative gap between the exact gradient of the discrete problem and "
            "the continuous adjoint gradient, against the step, with fitted "
            f"orders; the dashed lines have the fitted slopes, drawn {FIT_GAP:g} "
            "times below the points.",
        ),
        FigureKind(
            "trained",
            plot_convergence_trained,
            _has("trained", "trained series"),
            "Trained optimal values and controls",
            "Differences of the optimal values and of the trained controls between "
            "successive doublings of the layers; the legend gives the last rate.",
        ),
    )
}

def _sweep_numbers_unavailable(result) -> str | None:
    if not len(result):
        return "the sweep has no cases"
    if any(np.isfinite(c.objective) for c in result.cases):
        return None
    counts = result.counts()
    if counts.get("failed", 0) == len(result):
        return f"all {len(result)} cases of the sweep failed, so none has numbers"
    return (
        "no case of the sweep has a result file yet ("
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + ")"
    )


SWEEP_FIGURES: dict[str, FigureKind] = {
    k.name: k
    for k in (
        FigureKind(
            "cases",
            plot_sweep,
            _sweep_numbers_unavailable,
            "Headline numbers against the swept key",
            "Final objective, training loss and (for classifications) test accuracy "
            "of every case against one swept key; one line per combination of the "
            "other swept keys.",
            noted=True,
        ),
        FigureKind(
            "status",
            plot_sweep_status,
            lambda result: None if len(result) else "the sweep has no cases",
            "Status of the cases",
            "The status of each case, laid out like the headline figure; the "
            "numbers are optimiser iterations.",
        ),
    )
}

SIMULATION_FIGURES: dict[str, FigureKind] = {
    k.name: k
    for k in (
        FigureKind(
            "norms",
            plot_simulation_norms,
            _always,
            "Norm of the states along t",
            "Discrete L2(Ω) norm of each simulated state at each level, coloured "
            "by label (by initial state when there are no labels).",
        ),
        FigureKind(
            "trajectories",
            plot_simulation_trajectories,
            _fixed_width_unavailable,
            "Trajectories",
            "Paths of the simulated states through the levels, on their leading "
            "principal axes (a fixed grid only).",
        ),
        FigureKind(
            "state",
            plot_simulation_state,
            _always,
            "States on the moving grid",
            "The simulated states x_i(t, ξ) on the grid of each level, with the "
            "grid nodes drawn.",
        ),
        FigureKind(
            "controls",
            plot_simulation_controls,
            _always,
            "Control norm along t",
            "Quadrature L2(Ω) norm of each layer's prescribed kernels.",
        ),
        FigureKind(
            "widths",
            plot_simulation_widths,
            _grid_fixed_unavailable,
            "Width per layer",
            "Number of grid nodes of each layer along t.",
        ),
        FigureKind(
            "kernels",
            plot_simulation_kernels,
            _always,
            "Kernels",
            "The prescribed kernels w_k(ξ, ζ) of chosen layers at the nodes of "
            "their grids.",
        ),
    )
}

# HDF5 ``format`` attribute -> (reader, figure table). Study files add theirs here.
FILE_KINDS: dict[str, tuple[Callable, dict[str, FigureKind]]] = {
    _io.FORMAT: (load_run, RUN_FIGURES),
}


def file_format(path) -> str | None:
    """The HDF5 ``format`` attribute of a file: ``""`` when it has none, None
    when the file cannot be opened (missing, truncated, not HDF5)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
    except (OSError, RuntimeError, ValueError):
        return None
    return fmt.decode() if isinstance(fmt, bytes) else str(fmt)


_KINDS_ACCEPTED = (
    "a run, study, convergence-study, sweep-index or simulation file (.h5)"
)


def load_file(path):
    """Read a file for drawing: the loaded object and its table of figures.

    The table is chosen by the file's HDF5 ``format`` attribute (see
    :data:`FILE_KINDS`); a file that is not one of the known kinds goes to the
    run-file reader, whose error says what is wrong with it. A sweep folder
    stands for its ``index.h5``.

    Returns
    -------
    obj : Run, Study, ConvergenceStudy, SweepResult or Simulation
    table : dict of FigureKind
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "index.h5").is_file():
            raise RunFileError(
                f"'{path}' is a folder with no index.h5, so not a sweep folder: give "
                f"a sweep folder (with its index.h5) or {_KINDS_ACCEPTED}"
            )
        path = path / "index.h5"
    if not path.exists():
        raise RunFileError(f"file '{path}' does not exist: check the path")
    fmt = file_format(path)
    if fmt is None:  # missing, truncated or not HDF5: the run reader says which
        fmt = _io.FORMAT
    if fmt not in FILE_KINDS:
        raise RunFileError(
            f"'{path}' is an HDF5 file of "
            + (f"format '{fmt}'" if fmt else "no spacetime format")
            + ", which plot and report do not read: give a run, study, "
            "convergence-study, sweep-index or simulation file"
        )
    reader, table = FILE_KINDS[fmt]
    return reader(path), table


def table_for(obj) -> dict:
    """The figure table of a loaded object (a run, study, sweep, ...)."""
    from ._convergence import ConvergenceStudy
    from ._simulate import Simulation
    from ._studies import Study
    from ._sweep import SweepResult

    for cls, fmt in (
        (ConvergenceStudy, _CONVERGENCE_FORMAT),
        (SweepResult, _SWEEP_FORMAT),
        (Simulation, _SIMULATION_FORMAT),
        (Study, _STUDY_FORMAT),
    ):
        if isinstance(obj, cls):
            return FILE_KINDS[fmt][1]
    return RUN_FIGURES


def all_figure_names() -> list[str]:
    """Every figure name of every kind of file, each once."""
    names = {}
    for _, table in FILE_KINDS.values():
        names.update(dict.fromkeys(table))
    return list(names)


def figure_names(run, table=None) -> list[str]:
    """Names of the figures a loaded file can have, in drawing order."""
    table = RUN_FIGURES if table is None else table
    return [k.name for k in table.values() if k.unavailable(run) is None]


def left_out(run, table=None) -> list[str]:
    """One line for each figure that the default set leaves out for a reason a
    reader would not expect (see ``FigureKind.noted``): its name and why."""
    table = RUN_FIGURES if table is None else table
    notes = []
    for kind in table.values():
        reason = kind.noted and kind.unavailable(run)
        if reason:
            notes.append(f"the {kind.name} figure is left out: {reason}")
    return notes


def _warn(note: str) -> None:
    log.warning("%s", note)


def make_figures(run, what=None, *, layers=None, table=None) -> dict[str, "Figure"]:
    """Draw the named figures of a loaded file.

    Parameters
    ----------
    run : Run
    what : sequence of str, optional
        Figure names (see :data:`RUN_FIGURES`); default every figure the file can
        have.
    layers : sequence of int, optional
        Levels of the decision regions.
    table : dict, optional
        The figure table; default :data:`RUN_FIGURES`.

    Returns
    -------
    dict
        Name to Figure, in the order asked.

    Raises
    ------
    ConfigError
        For an unknown name, or a figure the file cannot have.
    """
    table = RUN_FIGURES if table is None else table
    if not what:
        what = figure_names(run, table)
    figures = {}
    for name in what:
        if name not in table:
            raise ConfigError(
                f"unknown figure '{name}' for this kind of file: choose from "
                f"{', '.join(table)}"
            )
        kind = table[name]
        reason = kind.unavailable(run)
        if reason:
            raise ConfigError(
                f"the {name} figure cannot be drawn for '{_name_of(run)}': "
                f"{reason}; ask for the other figures"
            )
        options = {"layers": layers} if name == "regions" else {}
        figures[name] = kind.make(run, **options)
    return figures


def file_stem(obj) -> str:
    """The stem of the names of a loaded file's figures and report: the file's
    name without ``.h5``; for a sweep index, the sweep folder's name."""
    source = _source_path(obj)
    if hasattr(obj, "index_path") and source.name == "index.h5":
        return source.parent.name
    return source.stem


def _name_of(obj) -> str:
    try:
        return str(_source_path(obj))
    except ConfigError:
        return type(obj).__name__


def figure_path(out, stem: str, name: str, fmt: str = "png") -> Path:
    """``out / f"{stem}-{name}.{fmt}"``."""
    return Path(out) / f"{stem}-{name}.{fmt}"


def check_dpi(dpi) -> None:
    """Refuse a resolution that is not a positive integer (ConfigError)."""
    if isinstance(dpi, bool) or not (isinstance(dpi, int) and dpi > 0):
        raise ConfigError(f"the resolution must be a positive integer, got {dpi!r}")


MAX_PIXELS = 50_000_000
"""The most pixels one image may have (width x height at the chosen dpi): a
larger image needs gigabytes to render and is refused before any is rendered."""


def check_pixels(figures: dict, dpi: int) -> None:
    """Refuse, before any image is rendered, a resolution at which one of the
    figures would have more than :data:`MAX_PIXELS` pixels.

    Parameters
    ----------
    figures : dict
        Name to Figure; the size of each is its size in inches times ``dpi``.
    dpi : int

    Raises
    ------
    ConfigError
        Naming the figure, its size in pixels and the largest ``--dpi`` that fits.
    """
    check_dpi(dpi)
    for name, fig in figures.items():
        w, h = fig.get_size_inches()
        pixels = (w * dpi) * (h * dpi)
        if pixels > MAX_PIXELS:
            largest = math.floor(math.sqrt(MAX_PIXELS / (w * h)))
            raise ConfigError(
                f"--dpi {dpi} would make the {name} figure {round(w * dpi)} x "
                f"{round(h * dpi)} pixels ({pixels / 1e6:.0f} megapixels, more than "
                f"{MAX_PIXELS / 1e6:.0f}): use --dpi {largest} or less; nothing "
                "was written"
            )


def _render(fig: "Figure", path: Path, fmt: str, dpi: int) -> None:
    fig.savefig(path, format=fmt, dpi=dpi)


def save_figure(fig: "Figure", path, *, dpi: int = 90) -> Path:
    """Write a figure atomically; the format is the path's suffix.

    Raises
    ------
    ConfigError
        When the image would have more than :data:`MAX_PIXELS` pixels at ``dpi``.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    check_pixels({path.stem: fig}, dpi)
    with _io.atomic_path(path) as tmp:
        _render(fig, tmp, fmt, dpi)
    return path


def write_all(figures: dict, paths: dict, dpi: int, extra: dict | None = None):
    """Write every figure, and the text files ``extra`` (path to text), all or
    none: each goes to a temporary name and all are renamed at the end, so that
    an error or Ctrl-C part of the way leaves none of them (and no temporary
    file, and no folder this call created).

    Parameters
    ----------
    figures, paths : dict
        Name to Figure, and name to output path (the format is its suffix).
    dpi : int
    extra : dict, optional
        Output path to text (a report), written with the figures.
    """
    check_pixels(figures, dpi)
    extra = extra or {}
    targets = {("figure", name): paths[name] for name in figures}
    targets.update({("text", str(p)): p for p in extra})
    with _io.atomic_paths(targets) as tmps:
        for (kind, key), tmp in tmps.items():
            if kind == "figure":
                _render(figures[key], tmp, paths[key].suffix.lstrip("."), dpi)
            else:
                tmp.write_text(extra[Path(key)], encoding="utf-8")
    for p in targets.values():
        log.info("wrote %s", p)


def save_figures(
    file,
    out=None,
    what=None,
    *,
    fmt: str = "png",
    layers=None,
    dpi: int = 90,
    on_note: Callable = _warn,
) -> list[Path]:
    """Draw the figures of a file and write them next to each other.

    Parameters
    ----------
    file : path-like or a loaded object
        A run, study, convergence-study, sweep-index or simulation file (a sweep
        folder stands for its index), or what :func:`load_file` returns for one.
    out : path-like, optional
        Folder of the images; default the folder of the run file.
    what : sequence of str, optional
        Figure names; default all the file can have.
    fmt : {"png", "pdf"}
    layers : sequence of int, optional
        Levels of the decision regions.
    dpi : int
        Resolution of PNG images.
    on_note : callable, optional
        Called with one line for each figure the default set leaves out for a
        reason a reader would not expect (:func:`left_out`); default a logged
        warning.

    Returns
    -------
    list of Path
        ``out / "<stem>-<name>.<fmt>"`` for each figure, in order (the stem of
        a sweep index is the sweep folder's name).

    Raises
    ------
    RunFileError
        When the file cannot be read (nothing is written).
    ConfigError
        For an unknown figure, format or layer, a figure the file cannot have, or
        a ``dpi`` at which a figure would have more than :data:`MAX_PIXELS`
        pixels (refused before any image is rendered).

    Notes
    -----
    The images are written all or none (see :func:`write_all`): an error or
    Ctrl-C part of the way leaves none of this call's images.
    """
    if fmt not in _FORMATS:
        raise ConfigError(f"unknown image format '{fmt}': choose png or pdf")
    check_dpi(dpi)
    if isinstance(file, str | Path):
        run, table = load_file(file)
    else:
        run, table = file, table_for(file)
    source = _source_path(run)
    out = source.parent if out is None else Path(out)
    stem = file_stem(run)
    figures = make_figures(run, what, layers=layers, table=table)
    if not what:
        for note in left_out(run, table):
            on_note(note)
    paths = {name: figure_path(out, stem, name, fmt) for name in figures}
    for p in paths.values():
        _io.check_output_path(p, overwrite=True)
    write_all(figures, paths, dpi)
    return list(paths.values())


def plot_file(path, what=None, *, layers=None) -> dict[str, "Figure"]:
    """Read a file and draw its figures (see :func:`make_figures`)."""
    run, table = load_file(path)
    return make_figures(run, what, layers=layers, table=table)


__all__ = [
    "CONVERGENCE_FIGURES",
    "FILE_KINDS",
    "RUN_FIGURES",
    "SIMULATION_FIGURES",
    "SWEEP_FIGURES",
    "SWEEP_STATUS_COLOURS",
    "all_figure_names",
    "file_format",
    "file_stem",
    "load_convergence",
    "load_sweep_index",
    "plot_convergence",
    "plot_convergence_adjoint",
    "plot_convergence_trained",
    "plot_simulation_controls",
    "plot_simulation_kernels",
    "plot_simulation_norms",
    "plot_simulation_state",
    "plot_simulation_trajectories",
    "plot_simulation_widths",
    "plot_sweep",
    "plot_sweep_status",
    "simulation_control_norms",
    "simulation_labels",
    "sweep_layout",
    "table_for",
    "FigureKind",
    "figure_names",
    "left_out",
    "level_outputs",
    "load_file",
    "model_line",
    "on_output_grid",
    "plot_kernels",
    "plot_state",
    "plot_widths",
    "widths",
    "make_figures",
    "plot_control_norms",
    "plot_decision_regions",
    "plot_file",
    "plot_history",
    "plot_risk_along_t",
    "plot_trajectories",
    "predicted_classes",
    "project_states",
    "risk_along_t",
    "sample_losses",
    "MAX_PIXELS",
    "check_pixels",
    "save_figure",
    "save_figures",
    "write_all",
    "train_inputs",
    "train_states",
]

# the other kinds of file, by their ``format`` attribute
from ._convergence import FORMAT as _CONVERGENCE_FORMAT  # noqa: E402
from ._simulate import FORMAT as _SIMULATION_FORMAT  # noqa: E402
from ._simulate import load_simulation as _load_simulation  # noqa: E402
from ._studies import FORMAT as _STUDY_FORMAT  # noqa: E402
from ._studies import load_study as _load_study  # noqa: E402
from ._studies import study_figures as _study_figures  # noqa: E402
from ._sweep import INDEX_FORMAT as _SWEEP_FORMAT  # noqa: E402

# study files (spacetime study ...) draw their one figure from their analysis file
FILE_KINDS[_STUDY_FORMAT] = (_load_study, _study_figures())
FILE_KINDS[_CONVERGENCE_FORMAT] = (load_convergence, CONVERGENCE_FIGURES)
FILE_KINDS[_SWEEP_FORMAT] = (load_sweep_index, SWEEP_FIGURES)
FILE_KINDS[_SIMULATION_FORMAT] = (_load_simulation, SIMULATION_FIGURES)
