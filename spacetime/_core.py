"""The discrete core shared by every model: a ResNet with per-layer widths.

A :class:`Core` holds, in the flat form the kernels take, everything about a network
that does not change during training: the widths of the time levels, the layer
parameter offsets, the time steps, the Runge–Kutta tableau, the transfers between
levels, and how the optimised parameters map to the kernels' effective parameters.
"""

import contextlib
import functools
import math
import threading
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels as K
from ._registry import Activation, Field, Scheme

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)

# Most samples in one block of the kernels; networks with BLAS layers take longer
# blocks, whose products run closer to the BLAS's peak (the digits network, width
# 64, 200 layers: 272 ms against 298 ms per gradient on 2 threads, 232 against 120
# samples per block).
MAX_LANES = 128
MAX_LANES_BLAS = 256
# Euler networks at most this wide (and deep in the hidden layer) run through the
# fused layer kernels of ``_narrow``; 0 turns them off.
NARROW_MAX_WIDTH = 4
# Layers with n_k h_k >= BLAS_MIN multiply through BLAS, narrower ones in plain loops.
BLAS_MIN = 1024


def layer_param_count(field: Field, n: int, h: int) -> int:
    """Number of parameters of one layer of width ``n`` (hidden width ``h``)."""
    if field.code == K.FIELD_BOTTLENECK:
        return 2 * n * h + h
    return n * n + n


def layer_blocks(field: Field, n: int, h: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the parameter blocks of one layer, in storage order."""
    if field.code == K.FIELD_BOTTLENECK:
        return [("w", (n, h)), ("a", (h, n)), ("b", (h,))]
    return [("w", (n, n)), ("b", (n,))]


@dataclass(frozen=True, eq=False)
class Core:
    """A ResNet in kernel form.

    Attributes
    ----------
    widths : ndarray, shape (n_steps + 1,)
        Width ``n_k`` of each time level.
    hidden : ndarray, shape (n_steps,)
        Hidden width of each layer (the bottleneck's ``h``; equal to the width else).
    layer_off : ndarray, shape (n_steps,)
        Offset of each layer's parameters in the flat parameter vector.
    stage_off : ndarray, shape (n_steps, n_stages)
        Offset of the parameters each Runge–Kutta stage uses: ``layer_off[k]`` for
        every stage (piecewise-constant controls), or one set per stage.
    dt : ndarray, shape (n_steps,)
        Time steps ``t_{k+1} - t_k``.
    scale : ndarray, shape (n_params,) or None
        Effective parameters are ``scale * theta`` (quadrature weights folded into the
        kernels); None means the identity, as for a finite-width network.
    norm_weight : ndarray, shape (n_params,)
        The discrete control norm is ``sum(norm_weight * theta**2)``.
    out_weight : ndarray, shape (widths[-1],) or None
        The output map acts as ``p * out_weight`` (quadrature weights of the last
        grid); None means ones.
    transfers : tuple of (scipy.sparse.csr_matrix or None), length n_steps
        ``Pi_k``; None is the identity.
    """

    field: Field
    activation: Activation
    alpha: float
    scheme: Scheme
    widths: np.ndarray
    hidden: np.ndarray
    layer_off: np.ndarray
    stage_off: np.ndarray
    dt: np.ndarray
    n_params: int
    scale: np.ndarray | None
    norm_weight: np.ndarray
    out_weight: np.ndarray | None
    tr_has: np.ndarray
    tr_row_off: np.ndarray
    tr_nnz_off: np.ndarray
    tr_indptr: np.ndarray
    tr_indices: np.ndarray
    tr_data: np.ndarray

    @property
    def n_steps(self) -> int:
        return self.dt.shape[0]

    @property
    def max_width(self) -> int:
        return int(self.widths.max())

    def n_groups(self, n_samples: int) -> int:
        """Number of sample groups: a function of the sizes only, never of threads.

        A power of two, at most 16, at most one per ``K.GROUP_MIN`` samples, and
        (above 4 groups) small enough that the per-group gradient rows take at most
        16 MiB (each evaluation zeroes, fills and sums them).
        """
        blocks = -(-n_samples // K.GROUP_MIN)
        by_memory = max(4, (16 * 2**20) // (8 * max(self.n_params, 1)))
        groups = max(1, min(16, blocks, by_memory))
        # a power of two, so that 2, 4, ... threads get equal shares
        return 1 << (groups.bit_length() - 1)

    def lanes(self, n_samples: int) -> int:
        """Samples per block: a multiple of ``K.LANES``, a function of the sizes only.

        A group of ``ceil(N / groups)`` samples is cut into the fewest blocks of at
        most :data:`MAX_LANES` samples (:data:`MAX_LANES_BLAS` if some layer
        multiplies through BLAS), of equal size up to rounding.
        """
        cap = MAX_LANES_BLAS if self.uses_blas else MAX_LANES
        per_group = -(-n_samples // self.n_groups(n_samples))
        blocks = -(-per_group // cap)
        per_block = -(-per_group // blocks)
        return int(K.LANES * -(-per_block // K.LANES))

    @property
    def narrow_kernels(self):
        """The kernel with fused layers for this network, or None.

        There is one for every network whose layers are all ``n`` wide, with hidden
        width ``h``, both at most :data:`NARROW_MAX_WIDTH`, one Euler stage per
        layer and no transfers (see ``spacetime._narrow``).
        """
        key = self._narrow_key
        if key is None or max(key[1], key[2]) > NARROW_MAX_WIDTH:
            return None
        from . import _narrow

        return _narrow.KERNELS.get(key)

    @functools.cached_property
    def _narrow_key(self):
        n = int(self.widths[0])
        h = int(self.hidden[0])
        if (
            self.scheme.n_stages != 1
            or float(self.scheme.b[0]) != 1.0
            or self.tr_has.any()
            or np.any(self.widths != n)
            or np.any(self.hidden != h)
        ):
            return None
        return (self.field.name, n, h)

    @property
    def blas_min(self) -> int:
        """Layers with ``n_k h_k`` at least this multiply through BLAS."""
        return BLAS_MIN

    @property
    def uses_blas(self) -> bool:
        """Whether some layer multiplies through BLAS."""
        return self.blas_min > 0 and self._widest_product >= self.blas_min

    @functools.cached_property
    def _widest_product(self) -> int:
        """The largest ``n_k h_k`` of a layer (asked at every evaluation)."""
        return int((self.widths[:-1] * self.hidden).max(initial=0))

    def kernel_args(self):
        """The layer description in the order the kernels take it."""
        return (
            self.field.code,
            self.activation.code,
            float(self.alpha),
        )

    def layer_args(self):
        return (
            self.stage_off,
            self.widths,
            self.hidden,
            self.dt,
            np.ascontiguousarray(self.scheme.a),
            np.ascontiguousarray(self.scheme.b),
            self.tr_has,
            self.tr_row_off,
            self.tr_nnz_off,
            self.tr_indptr,
            self.tr_indices,
            self.tr_data,
        )

    def effective(self, theta: np.ndarray) -> np.ndarray:
        return theta if self.scale is None else self.scale * theta


def build_core(
    field: Field,
    activation: Activation,
    alpha: float,
    scheme: Scheme,
    widths,
    hidden,
    dt,
    *,
    scale=None,
    norm_weight=None,
    out_weight=None,
    transfers=None,
    per_stage=False,
) -> Core:
    """Assemble a :class:`Core` from per-layer sizes.

    Parameters
    ----------
    widths : sequence of int, length n_steps + 1
    hidden : sequence of int, length n_steps
    dt : sequence of float, length n_steps
    norm_weight : ndarray, shape (n_params,), optional
        Default: every entry of layer ``k`` weighted by ``dt[k]``, which makes the
        control norm ``sum_k dt_k |u_k|^2``.
    transfers : sequence of (sparse matrix or None), length n_steps, optional
    per_stage : bool
        Give every Runge–Kutta stage its own parameter set (a diagnostic mode for
        controls that vary within a step); the parameters of layer ``k``, stage ``s``
        follow those of stage ``s - 1``.
    """
    widths = np.ascontiguousarray(widths, dtype=np.int64)
    hidden = np.ascontiguousarray(hidden, dtype=np.int64)
    dt = np.ascontiguousarray(dt, dtype=np.float64)
    n_steps = dt.shape[0]
    per_set = np.array(
        [
            layer_param_count(field, int(widths[k]), int(hidden[k]))
            for k in range(n_steps)
        ],
        dtype=np.int64,
    )
    n_sets = scheme.n_stages if per_stage else 1
    counts = per_set * n_sets
    layer_off = np.zeros(n_steps, dtype=np.int64)
    layer_off[1:] = np.cumsum(counts)[:-1]
    stage_off = np.repeat(layer_off[:, None], scheme.n_stages, axis=1)
    if per_stage:
        stage_off += per_set[:, None] * np.arange(scheme.n_stages)[None, :]
    n_params = int(counts.sum())
    if norm_weight is None:
        norm_weight = np.repeat(dt, counts)

    tr_has = np.zeros(n_steps, dtype=np.bool_)
    tr_row_off = np.zeros(n_steps, dtype=np.int64)
    tr_nnz_off = np.zeros(n_steps, dtype=np.int64)
    indptr, indices, data = [], [], []
    rows = nnz = 0
    for k, pi in enumerate(transfers or [None] * n_steps):
        if pi is None:
            continue
        pi = pi.tocsr()
        pi.sort_indices()
        tr_has[k] = True
        tr_row_off[k] = rows
        tr_nnz_off[k] = nnz
        indptr.append(pi.indptr.astype(np.int64))
        indices.append(pi.indices.astype(np.int64))
        data.append(pi.data.astype(np.float64))
        rows += pi.shape[0] + 1
        nnz += pi.nnz

    return Core(
        field=field,
        activation=activation,
        alpha=float(alpha),
        scheme=scheme,
        widths=widths,
        hidden=hidden,
        layer_off=layer_off,
        stage_off=np.ascontiguousarray(stage_off),
        dt=dt,
        n_params=n_params,
        scale=None if scale is None else np.ascontiguousarray(scale, dtype=np.float64),
        norm_weight=np.ascontiguousarray(norm_weight, dtype=np.float64),
        out_weight=None if out_weight is None else np.asarray(out_weight, np.float64),
        tr_has=tr_has,
        tr_row_off=tr_row_off,
        tr_nnz_off=tr_nnz_off,
        tr_indptr=np.concatenate(indptr) if indptr else _EMPTY_I,
        tr_indices=np.concatenate(indices) if indices else _EMPTY_I,
        tr_data=np.concatenate(data) if data else _EMPTY_F,
    )


_blas_lock = threading.Lock()
_blas_state = {"users": 0, "limiter": None, "controller": None}


@contextlib.contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread for the duration of a ``with`` block.

    The kernels run their sample groups on Numba's threads, and the wide layers call
    BLAS from inside each group: BLAS threads of its own would compete with the
    groups' threads. Worse, OpenBLAS threads that were allowed to run keep spinning
    for a while after each call (and after the thread count is raised again), so
    switching the limit on and off around every evaluation leaves them taking the
    cores the kernels need: measured 8.0 ms instead of 1.5 ms per evaluation (digits,
    300 samples, width 64, 10 layers, 2 threads). :func:`spacetime.solve` therefore
    holds the limit for the whole optimisation; wrap your own loops that call a
    :class:`~spacetime.Problem` many times in this context for the same speed.

    Process-wide, re-entrant and thread-safe: the previous BLAS settings return when
    the outermost block ends. Needs threadpoolctl (a dependency of spacetime); when it
    cannot be imported this does nothing.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        yield
        return
    with _blas_lock:
        if _blas_state["users"] == 0:
            if _blas_state["controller"] is None:
                _blas_state["controller"] = ThreadpoolController()
            _blas_state["limiter"] = _blas_state["controller"].limit(
                limits=1, user_api="blas"
            )
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                _blas_state["limiter"].restore_original_limits()
                _blas_state["limiter"] = None


@contextlib.contextmanager
def _one_blas_thread(core: Core):
    """:func:`single_threaded_blas` while a kernel with BLAS layers runs.

    Inside an outer :func:`single_threaded_blas` block (as in :func:`spacetime.solve`)
    this costs nothing; on its own it switches the limit on and off around the call.
    """
    if not core.uses_blas:
        yield
        return
    with single_threaded_blas():
        yield


_work = threading.local()


def _workspace(core: Core, n_samples: int, segment: int):
    """The stored-state workspaces of ``value_and_grad``, one row per thread.

    Kept for the next call from the same Python thread while the shapes stay the
    same, so that repeated evaluations (an optimiser's) reuse mapped memory instead
    of faulting in fresh pages every time; this holds :func:`reverse_memory` bytes
    between calls.
    """
    threads = numba.get_num_threads()
    n = core.n_steps
    seg = min(max(int(segment), 1), n)
    wmax = core.max_width
    hmax = max(wmax, int(core.hidden.max()))
    stages = core.scheme.n_stages
    lanes = core.lanes(n_samples)
    dmax = 0 if core.activation.code == K.ACT_TANH else hmax
    shapes = [
        (threads, -(-n // seg), wmax, lanes),
        (threads, seg + 1, wmax, lanes),
        (threads, seg, stages - 1, wmax, lanes),
        (threads, seg, stages, hmax, lanes),
        (threads, seg, stages, dmax, lanes),
    ]
    arrays = getattr(_work, "arrays", None)
    if arrays is None or [a.shape for a in arrays] != shapes:
        _work.arrays = None  # free the old ones first
        arrays = tuple(np.empty(shape) for shape in shapes)
        _work.arrays = arrays
    return arrays


def _gradient_rows(groups: int, n_params: int) -> np.ndarray:
    """Zeroed per-group gradient rows, shape (groups, n_params), kept between calls.

    Refilling mapped memory with zeros is cheaper than mapping fresh zero pages.
    The rows are summed into a new array before the next call can reuse them.
    """
    rows = getattr(_work, "grad_rows", None)
    if rows is None or rows.shape != (groups, n_params):
        _work.grad_rows = None
        rows = np.zeros((groups, n_params))
        _work.grad_rows = rows
    else:
        rows.fill(0.0)
    return rows


def _running_kernels(core: Core):
    """The settings the parallel kernels run under.

    BLAS is held to one thread (:func:`_one_blas_thread`), and the sample groups go
    to the threads one at a time as threads come free rather than in fixed shares,
    so that a thread slowed by other processes does not hold up the others. Which
    thread runs a group does not change the result.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(_one_blas_thread(core))
    stack.enter_context(numba.parallel_chunksize(1))
    return stack


def flow(core: Core, theta: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """All state levels of the flow of ``x0``.

    Parameters
    ----------
    theta : ndarray, shape (n_params,)
    x0 : ndarray, shape (n_samples, widths[0])

    Returns
    -------
    states : ndarray, shape (n_steps + 1, n_samples, max_width)
        Level ``k`` of sample ``i`` is ``states[k, i, :widths[k]]``; the rest is zero.
    """
    x0 = np.ascontiguousarray(x0, dtype=np.float64)
    n_samples = x0.shape[0]
    states = np.zeros((core.n_steps + 1, n_samples, core.max_width))
    with _running_kernels(core):
        K.forward(
            x0,
            *core.kernel_args(),
            np.ascontiguousarray(core.effective(theta)),
            *core.layer_args(),
            core.n_groups(n_samples),
            core.lanes(n_samples),
            core.blas_min,
            states,
        )
    return states


DEFAULT_MEMORY_BUDGET_MIB = 512.0


def reverse_memory(core: Core, n_samples: int, segment: int) -> int:
    """Bytes the reverse pass keeps for the states, over all concurrent groups.

    Each running sample group keeps, for one block of ``core.lanes(n_samples)``
    samples, ``ceil(L / segment)`` checkpoints and a buffer of ``segment + 1``
    levels, each ``max_width`` wide, and for each of the ``segment`` layers of the
    buffer the stage values (``n_stages - 1`` of width ``max_width``) and the
    activations with their derivatives (``2 n_stages`` of width ``max(max_width,
    max hidden)``; ``n_stages`` for tanh, whose derivative comes from its value).
    """
    n = core.n_steps
    seg = min(max(int(segment), 1), n)
    wmax = core.max_width
    hmax = max(wmax, int(core.hidden.max()))
    stages = core.scheme.n_stages
    per_act = 1 if core.activation.code == K.ACT_TANH else 2
    per_layer = (stages - 1) * wmax + per_act * stages * hmax
    rows = (-(-n // seg) + seg + 1) * wmax + seg * per_layer
    running = min(numba.get_num_threads(), core.n_groups(n_samples))
    return 8 * rows * core.lanes(n_samples) * running


def checkpoint_segment(core: Core, n_samples: int, memory_budget_mib=None) -> int:
    """Layers per checkpoint segment of the reverse pass under a memory budget.

    Returns ``L`` (keep every level, no recomputation) when that fits in
    ``memory_budget_mib`` MiB, else ``ceil(sqrt(L))``, which minimises the stored
    levels ``ceil(L / c) + c + 1`` over the segment length ``c`` and costs one extra
    forward sweep. ``None`` means :data:`DEFAULT_MEMORY_BUDGET_MIB`.
    """
    budget = memory_budget_mib
    if budget is None:
        budget = DEFAULT_MEMORY_BUDGET_MIB
    n = core.n_steps
    if reverse_memory(core, n_samples, n) <= budget * 2**20:
        return n
    return max(1, math.isqrt(n - 1) + 1)


def risk_and_grad(
    core,
    theta,
    p,
    p0,
    x0,
    targets,
    loss_code,
    loss_param,
    *,
    memory_budget_mib=None,
    segment=None,
    running=None,
):
    """Empirical risk (plus a running cost), its gradient and the predictions.

    Parameters
    ----------
    theta : ndarray, shape (n_params,)
    p : ndarray, shape (n_outputs, widths[-1])
    p0 : ndarray, shape (n_outputs,)
    x0 : ndarray, shape (n_samples, widths[0])
    targets : ndarray, shape (n_samples, n_target_columns)
    memory_budget_mib : float, optional
        Memory the reverse pass may use for stored states (MiB, over all threads);
        above it the reverse pass keeps checkpoints and recomputes the levels in
        between (:func:`checkpoint_segment`). The gradient is the same bit for bit.
    segment : int, optional
        Layers per checkpoint segment, overriding the budget (``>= L``: none).
    running : RunningCost, optional
        A running cost ``beta int_0^T R(x(t)) dt``, integrated by the scheme's own
        quadrature; its gradient is included in the returned gradients.

    Returns
    -------
    risk : float
        The empirical risk at the final level.
    grad_theta : ndarray, shape (n_params,)
    grad_p : ndarray, shape (n_outputs, widths[-1])
    grad_p0 : ndarray, shape (n_outputs,)
    yhat : ndarray, shape (n_samples, n_outputs)
    running_value : float
        ``beta sum_k dt_k sum_s b_s R(Y_s^k)``; 0 without a running cost.
    """
    n_samples = x0.shape[0]
    m_out, n_last = p.shape
    rc = _running_args(running, core, groups := core.n_groups(n_samples))
    p_eff = p if core.out_weight is None else p * core.out_weight
    loss_g = np.zeros(groups)
    grad_g = _gradient_rows(groups, core.n_params)
    gp_g = np.zeros((groups, m_out, n_last))
    gp0_g = np.zeros((groups, m_out))
    yhat = np.empty((n_samples, m_out))
    if segment is None:
        segment = checkpoint_segment(core, n_samples, memory_budget_mib)
    narrow = core.narrow_kernels
    with _running_kernels(core):
        if narrow is not None:
            # checkpoints, levels, activations, derivatives: the workspaces of
            # K.value_and_grad but the stage values, which one Euler stage has none of
            work = _workspace(core, n_samples, segment)
            narrow(
                x0,
                targets,
                core.activation.code,
                float(core.alpha),
                np.ascontiguousarray(core.effective(theta)),
                np.ascontiguousarray(core.stage_off[:, 0]),
                core.dt,
                np.ascontiguousarray(p_eff),
                np.ascontiguousarray(p0, dtype=np.float64),
                loss_code,
                float(loss_param),
                groups,
                core.lanes(n_samples),
                int(segment),
                loss_g,
                grad_g,
                gp_g,
                gp0_g,
                yhat,
                *rc,
                work[0],
                work[1],
                work[3],
                work[4],
            )
        else:
            K.value_and_grad(
                x0,
                targets,
                *core.kernel_args(),
                np.ascontiguousarray(core.effective(theta)),
                *core.layer_args(),
                np.ascontiguousarray(p_eff),
                np.ascontiguousarray(p0, dtype=np.float64),
                loss_code,
                float(loss_param),
                groups,
                core.lanes(n_samples),
                core.blas_min,
                int(segment),
                loss_g,
                grad_g,
                gp_g,
                gp0_g,
                yhat,
                *rc,
                *_workspace(core, n_samples, segment),
            )
    # reduce the groups in a fixed order
    risk = loss_g.sum() / n_samples
    running_value = rc[-1].sum() / n_samples if running is not None else 0.0
    grad = grad_g.sum(axis=0)
    grad_p = gp_g.sum(axis=0)
    grad_p0 = gp0_g.sum(axis=0)
    if core.scale is not None:
        grad *= core.scale
    if core.out_weight is not None:
        grad_p *= core.out_weight
    return risk, grad, grad_p, grad_p0, yhat, running_value


@dataclass(frozen=True, eq=False)
class RunningCost:
    """The running cost ``beta int_0^T R(x(t)) dt`` of the turnpike objective.

    Attributes
    ----------
    kind : {"tracking", "risk"}
        ``tracking``: ``R(x) = (1/N) sum_i sum_j w_j phi(x_ij - xbar_ij)`` with
        ``phi(r) = (r^2 + eps^2)^(p/2) - eps^p`` (``|r|^p`` when ``eps = 0``) and
        ``w`` the node weights of the grid (ones for a finite-width network);
        ``risk``: the empirical risk ``(1/N) sum_i l(P x_i, y_i)`` along the flow.
    beta : float
    targets : ndarray, shape (n_samples, width), optional
        The tracking targets ``xbar_i``.
    exponent : float
        ``p >= 1`` of the tracking cost.
    smoothing : float
        ``eps >= 0``.
    weights : ndarray, shape (width,), optional
    """

    kind: str
    beta: float
    targets: np.ndarray | None = None
    exponent: float = 2.0
    smoothing: float = 0.0
    weights: np.ndarray | None = None


def _running_args(running, core, groups):
    """The running-cost arguments of ``value_and_grad``, in its order."""
    if running is None:
        return (K.RC_NONE, 0.0, 2.0, 0.0, np.zeros((1, 1)), np.zeros(1), np.zeros(1))
    if running.kind == "tracking":
        kind = K.RC_TRACKING
        xbar = np.ascontiguousarray(running.targets, dtype=np.float64)
        n = int(core.widths[0])
        w = np.ones(n) if running.weights is None else running.weights
    else:
        kind = K.RC_RISK
        xbar, w = np.zeros((1, 1)), np.zeros(1)
    return (
        kind,
        float(running.beta),
        float(running.exponent),
        float(running.smoothing),
        xbar,
        np.ascontiguousarray(w, dtype=np.float64),
        np.zeros(groups),
    )
