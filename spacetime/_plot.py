"""Figures of run files: trajectories, decision regions, errors along t, history.

Every ``plot_*`` function takes a :class:`~spacetime.Run` (from
:func:`~spacetime.load_run`) and returns a :class:`matplotlib.figure.Figure` built
without :mod:`matplotlib.pyplot`: nothing is shown, no global state is touched and
any backend can save it (``fig.savefig(...)``). :func:`save_figures` writes the
figures of a file under names that say what they are, ``<stem>-<figure>.png``.

Which figures a file has is a table: :data:`RUN_FIGURES` for run files, looked up
through :data:`FILE_KINDS` by the ``format`` attribute of the HDF5 file. Space-time
runs (per-level widths) and study files add their entries there.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import _io
from ._errors import ConfigError, DataError
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


def _class_names(run: Run) -> list[str]:
    return [str(v) for v in run.class_values]


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
    """Paths ``t -> x_i(t)`` of training samples, coloured by label.

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
    for j, i in enumerate(samples):
        path = [coords[:, j, c] for c in range(dims)]
        (line,) = ax.plot(*path, color=colours[j], lw=0.8, alpha=0.7)
        line.set_gid(f"sample-{i}")
    start, end = coords[0], coords[-1]
    kw = {"depthshade": False} if dims == 3 else {}
    ax.scatter(*start.T, color=colours, s=6, alpha=0.8, **kw)
    ax.scatter(*end.T, color=colours, s=22, edgecolor="k", linewidth=0.4, **kw)

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
    _legend(fig, ax, handles, "label" if _is_classification(run) else "target")
    return fig


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
            f"State of training sample {sample} (label {label}) on the moving "
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
        f"State x(t, ξ) of training sample {sample} (label {label}) at chosen "
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
        return str(run.class_values[int(y)])
    return f"{np.ravel(y)[0]:.3g}"


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
    """

    name: str
    make: Callable
    unavailable: Callable
    title: str
    caption: str


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
            "Paths of training samples through the network, coloured by label "
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

# HDF5 ``format`` attribute -> (reader, figure table). Study files add theirs here.
FILE_KINDS: dict[str, tuple[Callable, dict[str, FigureKind]]] = {
    _io.FORMAT: (load_run, RUN_FIGURES),
}


def load_file(path):
    """Read a file for drawing: the loaded object and its table of figures.

    The table is chosen by the file's HDF5 ``format`` attribute (see
    :data:`FILE_KINDS`); a file that is not one of the known kinds goes to the
    run-file reader, whose error says what is wrong with it.

    Returns
    -------
    run : Run
    table : dict of FigureKind
    """
    import h5py

    fmt = None
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except OSError:
        pass  # missing, truncated or not HDF5: the reader below says which
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    reader, table = FILE_KINDS.get(fmt, FILE_KINDS[_io.FORMAT])
    return reader(path), table


def figure_names(run, table=None) -> list[str]:
    """Names of the figures a loaded file can have, in drawing order."""
    table = RUN_FIGURES if table is None else table
    return [k.name for k in table.values() if k.unavailable(run) is None]


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
                f"unknown figure '{name}': choose from {', '.join(table)}"
            )
        kind = table[name]
        reason = kind.unavailable(run)
        if reason:
            raise ConfigError(
                f"the {name} figure cannot be drawn for '{run.path}': {reason}; "
                "ask for the other figures"
            )
        options = {"layers": layers} if name == "regions" else {}
        figures[name] = kind.make(run, **options)
    return figures


def figure_path(out, stem: str, name: str, fmt: str = "png") -> Path:
    """``out / f"{stem}-{name}.{fmt}"``."""
    return Path(out) / f"{stem}-{name}.{fmt}"


def check_dpi(dpi) -> None:
    """Refuse a resolution that is not a positive integer (ConfigError)."""
    if isinstance(dpi, bool) or not (isinstance(dpi, int) and dpi > 0):
        raise ConfigError(f"the resolution must be a positive integer, got {dpi!r}")


def save_figure(fig: "Figure", path, *, dpi: int = 90) -> Path:
    """Write a figure atomically; the format is the path's suffix."""
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    with _io.atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def save_figures(
    file, out=None, what=None, *, fmt: str = "png", layers=None, dpi: int = 90
) -> list[Path]:
    """Draw the figures of a run file and write them next to each other.

    Parameters
    ----------
    file : path-like or Run
    out : path-like, optional
        Folder of the images; default the folder of the run file.
    what : sequence of str, optional
        Figure names; default all the file can have.
    fmt : {"png", "pdf"}
    layers : sequence of int, optional
        Levels of the decision regions.
    dpi : int
        Resolution of PNG images.

    Returns
    -------
    list of Path
        ``out / "<stem>-<name>.<fmt>"`` for each figure, in order.

    Raises
    ------
    RunFileError
        When the file cannot be read (nothing is written).
    ConfigError
        For an unknown figure, format or layer, or a figure the file cannot have.
    """
    if fmt not in _FORMATS:
        raise ConfigError(f"unknown image format '{fmt}': choose png or pdf")
    check_dpi(dpi)
    if isinstance(file, str | Path):
        run, table = load_file(file)
    else:
        run, table = file, RUN_FIGURES
    out = Path(run.path).parent if out is None else Path(out)
    stem = Path(run.path).stem
    figures = make_figures(run, what, layers=layers, table=table)
    paths = [figure_path(out, stem, name, fmt) for name in figures]
    for p in paths:
        _io.check_output_path(p, overwrite=True)
    for fig, p in zip(figures.values(), paths, strict=True):
        save_figure(fig, p, dpi=dpi)
        log.info("wrote %s", p)
    return paths


def plot_file(path, what=None, *, layers=None) -> dict[str, "Figure"]:
    """Read a file and draw its figures (see :func:`make_figures`)."""
    run, table = load_file(path)
    return make_figures(run, what, layers=layers, table=table)


__all__ = [
    "FILE_KINDS",
    "RUN_FIGURES",
    "FigureKind",
    "figure_names",
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
    "save_figure",
    "save_figures",
    "train_inputs",
    "train_states",
]

# study files (spacetime study ...) draw their one figure from their analysis file
from ._studies import FORMAT as _STUDY_FORMAT  # noqa: E402
from ._studies import load_study as _load_study  # noqa: E402
from ._studies import study_figures as _study_figures  # noqa: E402

FILE_KINDS[_STUDY_FORMAT] = (_load_study, _study_figures())
