"""Numba kernels of the discrete core: forward flow and exact reverse pass.

The core is a ResNet whose layer ``k`` maps a state of width ``n_k`` to one of width
``n_{k+1}`` by one step of an explicit Runge–Kutta scheme followed by a fixed linear
transfer,

    Y_s  = X^k + dt_k sum_{j<s} a_sj K_j,        K_s = F_k(Y_s; u_k),
    X^{k+1} = Pi_k ( X^k + dt_k sum_s b_s K_s ),

with ``Pi_k`` the identity or a sparse matrix in CSR form. The vector field ``F_k`` is
one of the three families below, written with *effective* parameters (quadrature
weights already folded in), so a finite-width network and a space-time network on a
grid run through the same code:

    inside      F(y) = W act(y) + b                W (n, n), b (n,)
    outside     F(y) = act(W y + b)                W (n, n), b (n,)
    bottleneck  F(y) = W act(A y + b)              W (n, h), A (h, n), b (h,)

The parameters used by stage ``s`` of layer ``k`` are stored contiguously in one flat
vector starting at ``stage_off[k, s]``, in the order (W, b) or (W, A, b), each matrix
row-major. Training uses piecewise-constant controls, one set per layer shared by its
stages; a diagnostic mode gives each stage its own set (controls sampled at the stage
times ``t_k + c_s dt_k``). The reverse pass adds each stage's gradient at its offset, so
both modes share the code.

Samples never interact, so the samples are split into a fixed number of groups that
depends only on the problem size (never on the thread count). Each group carries
blocks of ``lanes`` samples through all layers, forward and back, and accumulates its
share of the gradient in its own row of a per-group array; the rows are summed in a
fixed order afterwards. Results are therefore identical for any number of threads.

Inside a block the states are stored feature-major, ``X[m, i]`` for feature ``m`` and
sample ``i`` of the block, so that every loop over samples runs over contiguous memory
and compiles to SIMD instructions. A block always spans all ``lanes`` columns; the
columns past the last sample of a short block are held at zero state, so they add
exact zeros to every gradient. The forward sweep keeps, for every layer of the
current segment, the stage values and the activations with their derivatives; the
reverse sweep reads them instead of evaluating the activation again.

The products with the layer matrices run as plain loops over the samples for narrow
layers, and through BLAS (``np.dot`` on contiguous blocks) when ``n_k h_k`` reaches
``blas_min``. The choice depends only on the sizes, and a sum over the samples of a
block (a parameter gradient) is taken in an order fixed by the compiled code and the
block size (SIMD partial sums, see ``_REDUCE``).

Networks whose layers are all at most 4 wide, with one Euler stage and no
transfers, run through the fused kernels of ``_narrow`` instead (generated from a
template in ``_narrow_gen``, built on the helpers here; ``_core.Core.narrow_kernels``
chooses).

All functions are free functions on arrays and scalars; validation happens before they
are called, and they trust their inputs. Every function uses NumPy's floating-point
error model (a division by zero gives inf or nan, as in NumPy, instead of raising),
which lets the loops over samples compile to SIMD instructions.
"""

import math
from collections import namedtuple

import numpy as np
from numba import get_thread_id, njit, prange

# Integer codes; the tables in ``_registry`` map names to them.
FIELD_INSIDE = 0
FIELD_OUTSIDE = 1
FIELD_BOTTLENECK = 2

ACT_IDENTITY = 0
ACT_TANH = 1
ACT_SIGMOID = 2
ACT_RELU = 3
ACT_LEAKY_RELU = 4
ACT_SOFTPLUS = 5

LOSS_SQUARED = 0
LOSS_LP = 1
LOSS_CROSS_ENTROPY = 2
LOSS_LOGISTIC = 3

# Fewest samples per group (the group count is at most ceil(N / GROUP_MIN)).
GROUP_MIN = 32
# Samples of a block are a multiple of this (the partial sums of a sample reduction).
LANES = 8

_OPTS = {"cache": True, "error_model": "numpy"}

# layer_forward, layer_reverse, field_forward and field_vjp are inlined into the
# kernels (Numba IR inlining): called once per layer and block with a dozen array
# arguments each, their calls cost about a quarter of the time of narrow networks
# (d = 2, 2,000 samples, 1,000 layers: 20 ms against 29 ms on one thread). Inlining
# the products (_matmul, ...) as well gained another 5 to 10 % but made the first
# compilation four times as long, so they stay separate functions.


# ---------------------------------------------------------------------------
# Activations

# ln 2 split so that n * _LN2_HI is exact for |n| < 2^21
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634


@njit(inline="always", **_OPTS)
def _tanh(x):
    """tanh with straight-line arithmetic, so that loops over it vectorise.

    Notes
    -----
    ``tanh |x| = m / (m + 2)`` with ``m = e^y - 1``, ``y = 2 |x|`` capped at 40 (where
    ``tanh`` is 1 in double precision). With ``y = n ln 2 + r``, ``|r| <= ln(2) / 2``,

        e^y - 1 = 2^n q(r) + (2^n - 1),     q(r) = sum_{j=1}^{13} r^j / j!,

    the Taylor remainder being below ``2^-57`` relative; ``2^n`` is exact for the
    ``n <= 58`` that occur. No step cancels, so the result is within about three
    units in the last place of the exact value at every ``x``; the sign is restored
    at the end, and nan stays nan.
    """
    a = abs(x)
    y = 2.0 * (a if a < 20.0 else 20.0)
    n = np.floor(y * _INV_LN2 + 0.5)
    r = (y - n * _LN2_HI) - n * _LN2_LO
    q = 1.0 / 6227020800.0
    q = q * r + 1.0 / 479001600.0
    q = q * r + 1.0 / 39916800.0
    q = q * r + 1.0 / 3628800.0
    q = q * r + 1.0 / 362880.0
    q = q * r + 1.0 / 40320.0
    q = q * r + 1.0 / 5040.0
    q = q * r + 1.0 / 720.0
    q = q * r + 1.0 / 120.0
    q = q * r + 1.0 / 24.0
    q = q * r + 1.0 / 6.0
    q = q * r + 0.5
    q = q * r + 1.0
    q = q * r
    s = float(np.int64(1) << np.int64(n))
    m = s * q + (s - 1.0)
    t = m / (m + 2.0)
    t = t if x >= 0.0 else -t
    return t if x == x else x


@njit(**_OPTS)
def tanh(x):
    """The kernels' tanh of one number (see :func:`_tanh`)."""
    return _tanh(x)


@njit(**_OPTS)
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(**_OPTS)
def _softplus(z):
    # log(1 + e^z) without overflow
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))


@njit(**_OPTS)
def act_value(code, alpha, z):
    if code == ACT_TANH:
        return _tanh(z)
    if code == ACT_IDENTITY:
        return z
    if code == ACT_SIGMOID:
        return _sigmoid(z)
    if code == ACT_RELU:
        return z if z > 0.0 else 0.0
    if code == ACT_LEAKY_RELU:
        return z if z > 0.0 else alpha * z
    return _softplus(z)


@njit(**_OPTS)
def act_deriv(code, alpha, z):
    if code == ACT_TANH:
        t = _tanh(z)
        return 1.0 - t * t
    if code == ACT_IDENTITY:
        return 1.0
    if code == ACT_SIGMOID:
        s = _sigmoid(z)
        return s * (1.0 - s)
    if code == ACT_RELU:
        return 1.0 if z > 0.0 else 0.0
    if code == ACT_LEAKY_RELU:
        return 1.0 if z > 0.0 else alpha
    return _sigmoid(z)


@njit(**_OPTS)
def _act_rows(code, alpha, P, Z, D, rows, lanes):
    """``Z = act(P)`` and ``D = act'(P)`` on the first ``rows`` rows of a block.

    For tanh only ``Z`` is written: its derivative ``1 - Z^2`` is formed where it is
    used (see :func:`_deriv`).
    """
    if code == ACT_TANH:
        for r in range(rows):
            pr = P[r]
            zr = Z[r]
            for i in range(lanes):
                zr[i] = _tanh(pr[i])
    else:
        for r in range(rows):
            for i in range(lanes):
                v = P[r, i]
                Z[r, i] = act_value(code, alpha, v)
                D[r, i] = act_deriv(code, alpha, v)


# ---------------------------------------------------------------------------
# Products of a layer matrix with a block of samples
#
# ``M`` is the row-major (rows, cols) matrix stored at ``theta[off:]``; blocks are
# feature-major arrays of shape (>= rows or cols, lanes).


# The sums over the samples of a block (the parameter gradients) are the one place
# that allows reassociation: with it the loop below compiles to SIMD partial sums,
# about four times faster than a strict left-to-right sum. The order of the
# additions is then fixed by the compiled loop and the block size alone, so it is the
# same for every thread count and for the stored and checkpointed reverse passes;
# it differs from a sequential sum (and from the kernels run without compilation) by
# rounding only.
_REDUCE = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc", "nsz"}}


@njit(**_REDUCE)
def _dot(a, b, lanes):
    """``sum_i a[i] b[i]`` over the first ``lanes`` entries."""
    acc = 0.0
    for i in range(lanes):
        acc += a[i] * b[i]
    return acc


@njit(**_REDUCE)
def _sum(a, lanes):
    """``sum_i a[i]`` over the first ``lanes`` entries."""
    acc = 0.0
    for i in range(lanes):
        acc += a[i]
    return acc


@njit(**_OPTS)
def _matmul(theta, off, rows, cols, X, out, lanes, boff, blas):
    """``out[r] = sum_c M[r, c] X[c] (+ theta[boff + r] if boff >= 0)``.

    In the loop form the sum runs from the bias (or zero) over ``c = 0, 1, ...``,
    two terms per pass over the samples.
    """
    if blas:
        M = theta[off : off + rows * cols].reshape(rows, cols)
        np.dot(M, X[:cols], out[:rows])
        if boff >= 0:
            for r in range(rows):
                o = out[r]
                bias = theta[boff + r]
                for i in range(lanes):
                    o[i] += bias
        return
    for r in range(rows):
        o = out[r]
        row = off + r * cols
        bias = theta[boff + r] if boff >= 0 else 0.0
        w0 = theta[row]
        x0 = X[0]
        if cols >= 2:
            w1 = theta[row + 1]
            x1 = X[1]
            for i in range(lanes):
                o[i] = (bias + w0 * x0[i]) + w1 * x1[i]
        else:
            for i in range(lanes):
                o[i] = bias + w0 * x0[i]
        c = 2
        while c + 1 < cols:
            w0 = theta[row + c]
            w1 = theta[row + c + 1]
            x0 = X[c]
            x1 = X[c + 1]
            for i in range(lanes):
                o[i] = (o[i] + w0 * x0[i]) + w1 * x1[i]
            c += 2
        if c < cols:
            w0 = theta[row + c]
            x0 = X[c]
            for i in range(lanes):
                o[i] += w0 * x0[i]


@njit(inline="always", **_OPTS)
def _deriv(mode, d):
    """Factor of mode 1 (``d``) or mode 2 (``1 - d^2``: tanh's, from its value)."""
    return d if mode == 1 else 1.0 - d * d


@njit(**_OPTS)
def _matmul_t(theta, off, rows, cols, G, out, lanes, D, mode, blas):
    """``out[c] = sum_r M[r, c] G[r]``, times a factor elementwise.

    The factor is 1 (``mode`` 0), ``D[c]`` (mode 1) or ``1 - D[c]^2`` (mode 2). In
    the loop form the sum runs over ``r = 0, 1, ...``, two terms per pass over the
    samples, and the factor is applied in the last pass.
    """
    if blas:
        M = theta[off : off + rows * cols].reshape(rows, cols)
        np.dot(M.T, G[:rows], out[:cols])
        if mode != 0:
            for c in range(cols):
                o = out[c]
                d = D[c]
                for i in range(lanes):
                    o[i] *= _deriv(mode, d[i])
        return
    for c in range(cols):
        o = out[c]
        d = D[c]
        w0 = theta[off + c]
        g0 = G[0]
        if rows >= 2:
            w1 = theta[off + cols + c]
            g1 = G[1]
            if mode != 0 and rows == 2:
                for i in range(lanes):
                    o[i] = (w0 * g0[i] + w1 * g1[i]) * _deriv(mode, d[i])
            else:
                for i in range(lanes):
                    o[i] = w0 * g0[i] + w1 * g1[i]
        elif mode != 0:
            for i in range(lanes):
                o[i] = (w0 * g0[i]) * _deriv(mode, d[i])
        else:
            for i in range(lanes):
                o[i] = w0 * g0[i]
        r = 2
        while r + 1 < rows:
            w0 = theta[off + r * cols + c]
            w1 = theta[off + (r + 1) * cols + c]
            g0 = G[r]
            g1 = G[r + 1]
            if mode != 0 and r + 2 == rows:
                for i in range(lanes):
                    o[i] = ((o[i] + w0 * g0[i]) + w1 * g1[i]) * _deriv(mode, d[i])
            else:
                for i in range(lanes):
                    o[i] = (o[i] + w0 * g0[i]) + w1 * g1[i]
            r += 2
        if r < rows:
            w0 = theta[off + r * cols + c]
            g0 = G[r]
            if mode != 0:
                for i in range(lanes):
                    o[i] = (o[i] + w0 * g0[i]) * _deriv(mode, d[i])
            else:
                for i in range(lanes):
                    o[i] += w0 * g0[i]


@njit(**_OPTS)
def _outer_add(grad, off, rows, cols, G, X, lanes, T, blas):
    """``grad[off + r cols + c] += sum_i G[r, i] X[c, i]``; ``T`` is scratch."""
    if blas:
        Tm = T[: rows * cols].reshape(rows, cols)
        np.dot(G[:rows], X[:cols].T, Tm)
        for t in range(rows * cols):
            grad[off + t] += T[t]
        return
    for r in range(rows):
        g = G[r]
        row = off + r * cols
        for c in range(cols):
            grad[row + c] += _dot(g, X[c], lanes)


@njit(**_OPTS)
def _rowsum_add(grad, off, rows, G, lanes):
    """``grad[off + r] += sum_i G[r, i]``."""
    for r in range(rows):
        grad[off + r] += _sum(G[r], lanes)


# ---------------------------------------------------------------------------
# Vector fields on a block of samples


@njit(inline="always", **_OPTS)
def field_forward(field, act, alpha, theta, off, n, h, Y, K, Z, D, P, lanes, blas):
    """``K[:n] = F(Y[:n])`` on a block.

    The activations go to ``Z`` (``act(Y)`` for the inside field, ``act(A Y + b)``
    for the bottleneck; for the outside field they are ``K`` itself, which the caller
    then places in ``Z``) and their derivatives to ``D``, except for tanh (see
    :func:`_act_rows`). ``P`` is scratch of ``max(n, h)`` rows.
    """
    if field == FIELD_INSIDE:
        _act_rows(act, alpha, Y, Z, D, n, lanes)
        _matmul(theta, off, n, n, Z, K, lanes, off + n * n, blas)
    elif field == FIELD_OUTSIDE:
        _matmul(theta, off, n, n, Y, P, lanes, off + n * n, blas)
        _act_rows(act, alpha, P, K, D, n, lanes)
    else:
        oa = off + n * h
        _matmul(theta, oa, h, n, Y, P, lanes, oa + h * n, blas)
        _act_rows(act, alpha, P, Z, D, h, lanes)
        _matmul(theta, off, n, h, Z, K, lanes, -1, blas)


@njit(inline="always", **_OPTS)
def field_vjp(field, act, theta, off, n, h, Y, Z, D, Kb, Yb, grad, G, T, lanes, blas):
    """Reverse of :func:`field_forward` with its stored ``Z`` and ``D``.

    Sets ``Yb[:n] = (dF/dy)^T Kb`` and adds ``(dF/du)^T Kb``, summed over the samples,
    to ``grad[off:]``. ``G`` (``max(n, h)`` rows) and ``T`` (``n max(n, h)``
    entries) are scratch.
    """
    # the activation's derivative: 1 - Z^2 for tanh, else the stored D
    mode = 2 if act == ACT_TANH else 1
    Dv = Z if act == ACT_TANH else D
    if field == FIELD_INSIDE:
        _outer_add(grad, off, n, n, Kb, Z, lanes, T, blas)
        _rowsum_add(grad, off + n * n, n, Kb, lanes)
        _matmul_t(theta, off, n, n, Kb, Yb, lanes, Dv, mode, blas)
    elif field == FIELD_OUTSIDE:
        for m in range(n):
            gm = G[m]
            km = Kb[m]
            dm = Dv[m]
            for i in range(lanes):
                gm[i] = km[i] * _deriv(mode, dm[i])
        _outer_add(grad, off, n, n, G, Y, lanes, T, blas)
        _rowsum_add(grad, off + n * n, n, G, lanes)
        _matmul_t(theta, off, n, n, G, Yb, lanes, Dv, 0, blas)
    else:
        oa = off + n * h
        _outer_add(grad, off, n, h, Kb, Z, lanes, T, blas)
        _matmul_t(theta, off, n, h, Kb, G, lanes, Dv, mode, blas)
        _outer_add(grad, oa, h, n, G, Y, lanes, T, blas)
        _rowsum_add(grad, oa + h * n, h, G, lanes)
        _matmul_t(theta, oa, h, n, G, Yb, lanes, Dv, 0, blas)


# ---------------------------------------------------------------------------
# Transfers between consecutive grids (CSR, one per layer, concatenated)


@njit(**_OPTS)
def _apply_transfer(k, net, src, dst, lanes):
    """``dst[:n_{k+1}] = Pi_k src`` on a block."""
    ro = net.tr_row_off[k]
    zo = net.tr_nnz_off[k]
    for r in range(net.widths[k + 1]):
        d = dst[r]
        for i in range(lanes):
            d[i] = 0.0
        for q in range(net.tr_indptr[ro + r], net.tr_indptr[ro + r + 1]):
            v = net.tr_data[zo + q]
            s = src[net.tr_indices[zo + q]]
            for i in range(lanes):
                d[i] += v * s[i]


@njit(**_OPTS)
def _apply_transfer_t(k, net, src, dst, lanes):
    """``dst[:n_k] = Pi_k^T src`` on a block."""
    ro = net.tr_row_off[k]
    zo = net.tr_nnz_off[k]
    for c in range(net.widths[k]):
        d = dst[c]
        for i in range(lanes):
            d[i] = 0.0
    for r in range(net.widths[k + 1]):
        s = src[r]
        for q in range(net.tr_indptr[ro + r], net.tr_indptr[ro + r + 1]):
            v = net.tr_data[zo + q]
            d = dst[net.tr_indices[zo + q]]
            for i in range(lanes):
                d[i] += v * s[i]


# ---------------------------------------------------------------------------
# One layer on a block

# The layer description the per-block functions share.
Net = namedtuple(
    "Net",
    [
        "field",
        "act",
        "alpha",
        "theta",
        "stage_off",
        "widths",
        "hidden",
        "dt",
        "rk_a",
        "rk_b",
        "tr_has",
        "tr_row_off",
        "tr_nnz_off",
        "tr_indptr",
        "tr_indices",
        "tr_data",
        "blas_min",
    ],
)


@njit(**_OPTS)
def _uses_blas(net, n, h):
    return net.blas_min > 0 and n * h >= net.blas_min


@njit(**_OPTS)
def _zero_tail(X, rows, nb, lanes):
    for m in range(rows):
        for i in range(nb, lanes):
            X[m, i] = 0.0


@njit(inline="always", **_OPTS)
def layer_forward(net, k, X, Xn, Ks, Ys, Zs, Ds, P, U, nb, lanes):
    """``Xn = Pi_k (X + dt_k sum_s b_s K_s)`` on a block of ``nb`` samples.

    Stage ``s >= 1`` values go to ``Ys[s - 1]`` (stage 0 is ``X``), the activations
    and derivatives of stage ``s`` to ``Zs[s]`` and ``Ds[s]`` (no derivatives for
    tanh), the slopes to ``Ks[s]`` (to ``Zs[s]`` for the outside field, whose slopes
    are its activations). ``P`` and ``U`` are scratch. Columns ``nb`` and up of
    ``Xn`` are set to zero.
    """
    n = net.widths[k]
    h = net.hidden[k]
    n_stages = net.rk_b.shape[0]
    dtk = net.dt[k]
    blas = _uses_blas(net, n, h)
    # the outside field's slopes are its activations: keep them where the reverse
    # pass reads activations
    KS = Zs if net.field == FIELD_OUTSIDE else Ks
    for s in range(n_stages):
        if s == 0:
            Y = X
        else:
            Y = Ys[s - 1]
            for m in range(n):
                ym = Y[m]
                xm = X[m]
                first = True
                for j in range(s):
                    a = net.rk_a[s, j]
                    if a != 0.0:
                        c = dtk * a
                        kjm = KS[j, m]
                        if first:
                            for i in range(lanes):
                                ym[i] = xm[i] + c * kjm[i]
                            first = False
                        else:
                            for i in range(lanes):
                                ym[i] += c * kjm[i]
                if first:
                    for i in range(lanes):
                        ym[i] = xm[i]
        field_forward(
            net.field,
            net.act,
            net.alpha,
            net.theta,
            net.stage_off[k, s],
            n,
            h,
            Y,
            KS[s],
            Zs[s],
            Ds[s],
            P,
            lanes,
            blas,
        )
    dst = U if net.tr_has[k] else Xn
    for m in range(n):
        dm = dst[m]
        xm = X[m]
        c = dtk * net.rk_b[0]
        ksm = KS[0, m]
        for i in range(lanes):
            dm[i] = xm[i] + c * ksm[i]
        for s in range(1, n_stages):
            c = dtk * net.rk_b[s]
            ksm = KS[s, m]
            for i in range(lanes):
                dm[i] += c * ksm[i]
    if net.tr_has[k]:
        _apply_transfer(k, net, U, Xn, lanes)
    if nb < lanes:
        _zero_tail(Xn, net.widths[k + 1], nb, lanes)


@njit(inline="always", **_OPTS)
def layer_reverse(
    net, k, X, Ys, Zs, Ds, Xb_next, Xb, grad, Ybs, Kb, G, U, T, rc, nb, lanes
):
    """Adjoint of :func:`layer_forward`: ``Xb = (dX^{k+1}/dX^k)^T Xb_next``.

    Reads the stage values, activations and derivatives the forward sweep stored.
    The parameter gradient of the layer is added to ``grad``. With a running cost
    (``rc.kind != 0``) the layer's share ``beta dt_k sum_s b_s R(Y_s) / N`` is added
    to ``rc.acc[0]`` and its gradient to the stage adjoints (and to the output map's
    gradient for the risk along the flow).
    """
    n = net.widths[k]
    h = net.hidden[k]
    n_stages = net.rk_b.shape[0]
    dtk = net.dt[k]
    blas = _uses_blas(net, n, h)

    # adjoint of the transfer
    if net.tr_has[k]:
        _apply_transfer_t(k, net, Xb_next, U, lanes)
        Ub = U
    else:
        Ub = Xb_next

    # stages in reverse: Kb_s = dt (b_s Ub + sum_{r>s} a_rs Yb_r), Yb_s = J_s^T Kb_s,
    # Xb = Ub + sum_s Yb_s
    for s in range(n_stages - 1, -1, -1):
        bs = net.rk_b[s]
        later = False
        for r in range(s + 1, n_stages):
            if net.rk_a[r, s] != 0.0:
                later = True
        for m in range(n):
            km = Kb[m]
            um = Ub[m]
            if not later:
                for i in range(lanes):
                    km[i] = dtk * (bs * um[i])
                continue
            for i in range(lanes):
                km[i] = bs * um[i]
            for r in range(s + 1, n_stages):
                a = net.rk_a[r, s]
                if a != 0.0:
                    yrm = Ybs[r, m]
                    for i in range(lanes):
                        km[i] += a * yrm[i]
            for i in range(lanes):
                km[i] = dtk * km[i]
        Y = X if s == 0 else Ys[s - 1]
        field_vjp(
            net.field,
            net.act,
            net.theta,
            net.stage_off[k, s],
            n,
            h,
            Y,
            Zs[s],
            Ds[s],
            Kb,
            Ybs[s],
            grad,
            G,
            T,
            lanes,
            blas,
        )
        if rc.kind != RC_NONE and bs != 0.0:
            _running_cost_stage(rc, rc.beta * dtk * bs, Y, Ybs[s], nb, n)
        for m in range(n):
            xm = Xb[m]
            ym = Ybs[s, m]
            if s == n_stages - 1:
                um = Ub[m]
                for i in range(lanes):
                    xm[i] = um[i] + ym[i]
            else:
                for i in range(lanes):
                    xm[i] += ym[i]


# ---------------------------------------------------------------------------
# Running cost of the turnpike objective

RC_NONE = 0
RC_TRACKING = 1
RC_RISK = 2

# What the reverse pass needs to add a running cost: scalars, the targets of the
# tracking cost, the output map for the risk along the flow, scratch, the row offset
# of the current block (r0[0]) and the group's accumulated cost (acc[0]).
RunningCost = namedtuple(
    "RunningCost",
    [
        "kind",
        "beta",
        "pw",
        "eps",
        "inv_n",
        "xbar",
        "w",
        "targets",
        "p",
        "p0",
        "loss",
        "lparam",
        "gp",
        "gp0",
        "yhat",
        "slope",
        "r0",
        "acc",
    ],
)


@njit(**_OPTS)
def tracking_term(pw, eps, r):
    """``phi(r) = (r^2 + eps^2)^(pw/2) - eps^pw`` and ``phi'(r)``.

    With ``eps = 0`` this is ``|r|^pw``; ``eps > 0`` smooths the kink of ``pw < 2``.
    """
    if eps == 0.0:
        a = abs(r)
        if a == 0.0:
            return 0.0, 0.0
        val = a**pw
        return val, pw * val / r
    q = r * r + eps * eps
    val = q ** (0.5 * pw)
    return val - eps**pw, pw * r * val / q


@njit(**_OPTS)
def group_running_cost(
    kind, beta, pw, eps, inv_n, xbar, w, targets, p, p0, loss, lparam, gp, gp0
):
    """The :class:`RunningCost` of one sample group, with its own scratch.

    ``gp`` and ``gp0`` are the group's rows of the output map's gradient (which the
    risk along the flow adds to); the accumulated cost starts at zero.
    """
    m_out = p.shape[0]
    return RunningCost(
        kind,
        beta,
        pw,
        eps,
        inv_n,
        xbar,
        w,
        targets,
        p,
        p0,
        loss,
        lparam,
        gp,
        gp0,
        np.empty(m_out),
        np.empty(m_out),
        np.zeros(1, dtype=np.int64),
        np.zeros(1),
    )


@njit(**_OPTS)
def _tracking_row(pw, eps, y, xbar, r0, coef, yb, nb):
    """``sum_i phi(y[i] - xbar[r0 + i])`` over a row of a block; ``yb += coef phi'``.

    The exponents 2 and 1 (with or without smoothing) take loops without ``pow``
    that compile to SIMD instructions: ``phi(r) = r^2`` for ``pw = 2``, whatever
    ``eps`` (``(r^2 + eps^2) - eps^2`` exactly); ``sqrt(r^2 + eps^2) - eps`` for
    ``pw = 1``. Other exponents go through :func:`tracking_term`. The running cost
    of a long horizon evaluates this for every sample, feature and layer, as often
    as the fused layers themselves.
    """
    acc = 0.0
    if pw == 2.0:
        for i in range(nb):
            r = y[i] - xbar[r0 + i]
            acc += r * r
            yb[i] += coef * (2.0 * r)
    elif pw == 1.0:
        e2 = eps * eps
        for i in range(nb):
            r = y[i] - xbar[r0 + i]
            q = math.sqrt(r * r + e2)
            acc += q - eps
            # the kink of |r| (eps = 0) gets the derivative 0, as in tracking_term
            yb[i] += coef * (r / q if q > 0.0 else 0.0)
    else:
        for i in range(nb):
            val, d = tracking_term(pw, eps, y[i] - xbar[r0 + i])
            acc += val
            yb[i] += coef * d
    return acc


@njit(**_OPTS)
def _running_cost_stage(rc, coef, Y, Yb, nb, n):
    """Add ``coef * R_i(Y[:, i]) / N`` to ``rc.acc[0]`` and its gradient to ``Yb``.

    Tracking: ``R_i(y) = sum_j w_j phi(y_j - xbar_ij)``. Risk along the flow:
    ``R_i(y) = l(p y + p0, target_i)``, whose gradient also reaches ``p`` and ``p0``.
    Only the first ``nb`` columns (the block's samples) count.
    """
    scale = coef * rc.inv_n
    total = 0.0
    if rc.kind == RC_TRACKING:
        for m in range(n):
            total += rc.w[m] * _tracking_row(
                rc.pw, rc.eps, Y[m], rc.xbar[:, m], rc.r0[0], scale * rc.w[m], Yb[m], nb
            )
    else:
        m_out = rc.p.shape[0]
        for i in range(nb):
            _output(rc.p, rc.p0, Y, i, rc.yhat)
            total += loss_and_slope(
                rc.loss, rc.lparam, rc.yhat, rc.targets[rc.r0[0] + i], rc.slope
            )
            for r in range(m_out):
                sr = scale * rc.slope[r]
                rc.gp0[r] += sr
                for c in range(n):
                    rc.gp[r, c] += sr * Y[c, i]
            for c in range(n):
                acc = 0.0
                for r in range(m_out):
                    acc += rc.p[r, c] * rc.slope[r]
                Yb[c, i] += scale * acc
    rc.acc[0] += coef * total


# ---------------------------------------------------------------------------
# Output map and per-sample losses


@njit(**_OPTS)
def _output(p, p0, X, i, yhat):
    """``yhat = p X[:, i] + p0`` for column ``i`` of a feature-major block."""
    m_out, n = p.shape
    for r in range(m_out):
        acc = p0[r]
        for c in range(n):
            acc += p[r, c] * X[c, i]
        yhat[r] = acc


@njit(**_OPTS)
def loss_and_slope(loss, lparam, yhat, target, g):
    """Per-sample loss ``l(yhat, target)``; sets ``g = dl/dyhat``.

    ``target`` holds the target vector (squared, lp), the class index in its first entry
    (cross-entropy), or the label +1/-1 in its first entry (logistic).
    """
    m_out = yhat.shape[0]
    if loss == LOSS_SQUARED:
        val = 0.0
        for r in range(m_out):
            d = yhat[r] - target[r]
            val += 0.5 * d * d
            g[r] = d
        return val
    if loss == LOSS_LP:
        val = 0.0
        for r in range(m_out):
            d = yhat[r] - target[r]
            a = abs(d)
            val += a**lparam
            if a > 0.0:
                g[r] = lparam * a ** (lparam - 1.0) * (1.0 if d > 0.0 else -1.0)
            else:
                g[r] = 0.0
        return val
    if loss == LOSS_CROSS_ENTROPY:
        c = int(target[0])
        zmax = yhat[0]
        for r in range(1, m_out):
            if yhat[r] > zmax:
                zmax = yhat[r]
        tot = 0.0
        for r in range(m_out):
            g[r] = np.exp(yhat[r] - zmax)
            tot += g[r]
        for r in range(m_out):
            g[r] /= tot
        g[c] -= 1.0
        return zmax + np.log(tot) - yhat[c]
    # logistic: log(1 + exp(-y yhat))
    y = target[0]
    margin = y * yhat[0]
    g[0] = -y * _sigmoid(-margin)
    for r in range(1, m_out):
        g[r] = 0.0
    return _softplus(-margin)


# ---------------------------------------------------------------------------
# Drivers over all samples


@njit(**_OPTS)
def group_bounds(n_samples, n_groups, g):
    return (g * n_samples) // n_groups, ((g + 1) * n_samples) // n_groups


@njit(**_OPTS)
def _load_block(x0, r0, nb, n, X, lanes):
    """``X[:n, :nb] = x0[r0:r0 + nb].T``, the other columns zero."""
    for m in range(n):
        for i in range(nb):
            X[m, i] = x0[r0 + i, m]
        for i in range(nb, lanes):
            X[m, i] = 0.0


@njit(**_OPTS)
def _copy_rows(src, dst, n):
    for m in range(n):
        s = src[m]
        d = dst[m]
        for i in range(s.shape[0]):
            d[i] = s[i]


@njit(**_OPTS)
def _seed_adjoint(
    p,
    p0,
    loss,
    lparam,
    targets,
    XL,
    Xa,
    r0,
    nb,
    lanes,
    inv_n,
    yhat,
    slope,
    yhat_out,
    gp,
    gp0,
):
    """Risk of a block at its final level ``XL``; seeds the adjoint ``Xa``.

    Writes the predictions to ``yhat_out``, adds the output map's gradient to ``gp``
    and ``gp0``, sets ``Xa[:, i]`` to ``d risk / d XL[:, i]`` (zero past ``nb``)
    and returns the block's summed loss. ``yhat`` and ``slope`` are scratch.
    """
    m_out, n_last = p.shape
    total = 0.0
    for i in range(nb):
        _output(p, p0, XL, i, yhat)
        total += loss_and_slope(loss, lparam, yhat, targets[r0 + i], slope)
        for r in range(m_out):
            yhat_out[r0 + i, r] = yhat[r]
            sr = slope[r] * inv_n
            gp0[r] += sr
            for c in range(n_last):
                gp[r, c] += sr * XL[c, i]
        for c in range(n_last):
            acc = 0.0
            for r in range(m_out):
                acc += p[r, c] * slope[r]
            Xa[c, i] = acc * inv_n
    for c in range(n_last):
        for i in range(nb, lanes):
            Xa[c, i] = 0.0
    return total


@njit(parallel=True, **_OPTS)
def forward(
    x0,
    field,
    act,
    alpha,
    theta,
    stage_off,
    widths,
    hidden,
    dt,
    rk_a,
    rk_b,
    tr_has,
    tr_row_off,
    tr_nnz_off,
    tr_indptr,
    tr_indices,
    tr_data,
    n_groups,
    lanes,
    blas_min,
    states,
):
    """Flow the inputs through all layers, writing every state level.

    Parameters
    ----------
    x0 : ndarray, shape (n_samples, widths[0])
    lanes : int
        Samples per block, a multiple of :data:`LANES`.
    blas_min : int
        Layers with ``n_k h_k >= blas_min`` multiply through BLAS (0: never).
    states : ndarray, shape (n_steps + 1, n_samples, max_width)
        Output; level ``k`` of sample ``i`` is ``states[k, i, :widths[k]]``.
    """
    net = Net(
        field,
        act,
        alpha,
        theta,
        stage_off,
        widths,
        hidden,
        dt,
        rk_a,
        rk_b,
        tr_has,
        tr_row_off,
        tr_nnz_off,
        tr_indptr,
        tr_indices,
        tr_data,
        blas_min,
    )
    n_samples = x0.shape[0]
    n_layers = dt.shape[0]
    n_stages = rk_b.shape[0]
    wmax = widths.max()
    hmax = max(wmax, hidden.max())
    for g in prange(n_groups):
        lo, hi = group_bounds(n_samples, n_groups, g)
        S = np.empty((2, wmax, lanes))
        Ys = np.empty((n_stages - 1, wmax, lanes))
        Zs = np.empty((n_stages, hmax, lanes))
        Ds = np.empty((n_stages, hmax, lanes))
        Ks = np.empty((n_stages, wmax, lanes))
        P = np.empty((hmax, lanes))
        U = np.empty((wmax, lanes))
        for r0 in range(lo, hi, lanes):
            nb = min(lanes, hi - r0)
            _load_block(x0, r0, nb, widths[0], S[0], lanes)
            for i in range(nb):
                for m in range(widths[0]):
                    states[0, r0 + i, m] = x0[r0 + i, m]
            for k in range(n_layers):
                X = S[k % 2]
                Xn = S[(k + 1) % 2]
                layer_forward(net, k, X, Xn, Ks, Ys, Zs, Ds, P, U, nb, lanes)
                for i in range(nb):
                    for m in range(widths[k + 1]):
                        states[k + 1, r0 + i, m] = Xn[m, i]


@njit(parallel=True, **_OPTS)
def value_and_grad(
    x0,
    targets,
    field,
    act,
    alpha,
    theta,
    stage_off,
    widths,
    hidden,
    dt,
    rk_a,
    rk_b,
    tr_has,
    tr_row_off,
    tr_nnz_off,
    tr_indptr,
    tr_indices,
    tr_data,
    p,
    p0,
    loss,
    lparam,
    n_groups,
    lanes,
    blas_min,
    segment,
    loss_g,
    grad_g,
    gp_g,
    gp0_g,
    yhat_out,
    rc_kind,
    rc_beta,
    rc_pw,
    rc_eps,
    rc_xbar,
    rc_w,
    rc_g,
    work_c,
    work_s,
    work_y,
    work_z,
    work_d,
):
    """Empirical risk and its exact gradient, accumulated per group.

    The risk is ``(1/N) sum_i l(p X_i^L + p0, target_i)``. Group ``g`` writes its share
    of the risk to ``loss_g[g]`` and of the gradients to ``grad_g[g]`` (effective layer
    parameters), ``gp_g[g]`` and ``gp0_g[g]`` (output map). Predictions go to
    ``yhat_out``, shape (n_samples, n_outputs). A group runs through its samples in
    blocks of ``lanes`` (a multiple of :data:`LANES`); layers with
    ``n_k h_k >= blas_min`` multiply through BLAS (0: never).

    The levels are cut into segments of ``segment`` layers (``1 <= segment``; a
    value ``>= n_layers`` keeps every level). The forward sweep of a block keeps only
    the first level of each segment (a checkpoint) and the levels, stage values and
    activations of the last segment; the reverse sweep recomputes those of every
    other segment from its checkpoint just before it back-propagates through that
    segment. Per group this stores ``ceil(L / segment)`` checkpoints and the data of
    ``segment`` layers for one block instead of ``L`` layers, at the price of at most
    one extra forward sweep. The recomputation repeats the forward sweep's
    floating-point operations exactly, so the gradient does not depend on
    ``segment``, bit for bit.

    A running cost ``beta sum_k dt_k sum_s b_s R(Y_s^k)`` (the same tableau's
    quadrature of ``beta int_0^T R(x(t)) dt``; ``rc_kind`` 1: tracking of
    ``rc_xbar`` with node weights ``rc_w``, exponent ``rc_pw`` and smoothing
    ``rc_eps``; 2: the risk along the flow) is evaluated during the reverse sweep,
    where every stage value is at hand; group ``g`` adds its share, times ``N``, to
    ``rc_g[g]``.

    The stored levels, stage values and activations of a group live in row ``t`` of
    the workspaces ``work_c`` (checkpoints, shape (threads, n_seg, wmax, lanes)),
    ``work_s`` (levels, (threads, seg + 1, wmax, lanes)), ``work_y`` (stage values,
    (threads, seg, n_stages - 1, wmax, lanes)), ``work_z`` and ``work_d``
    (activations and derivatives, (threads, seg, n_stages, hmax or 0, lanes)), ``t``
    the number of the thread that runs the group: they are written before they are
    read in every call, so they can be kept from call to call (no new pages to map).
    """
    net = Net(
        field,
        act,
        alpha,
        theta,
        stage_off,
        widths,
        hidden,
        dt,
        rk_a,
        rk_b,
        tr_has,
        tr_row_off,
        tr_nnz_off,
        tr_indptr,
        tr_indices,
        tr_data,
        blas_min,
    )
    n_samples = x0.shape[0]
    n_layers = dt.shape[0]
    n_stages = rk_b.shape[0]
    wmax = widths.max()
    hmax = max(wmax, hidden.max())
    m_out = p.shape[0]
    inv_n = 1.0 / n_samples
    seg = min(max(segment, 1), n_layers)
    n_seg = (n_layers + seg - 1) // seg
    for g in prange(n_groups):
        lo, hi = group_bounds(n_samples, n_groups, g)
        t = get_thread_id()
        C = work_c[t]
        S = work_s[t]
        Ys = work_y[t]
        Zs = work_z[t]
        Ds = work_d[t]
        Ks = np.empty((n_stages, wmax, lanes))
        Ybs = np.empty((n_stages, wmax, lanes))
        Kb = np.empty((wmax, lanes))
        G = np.empty((hmax, lanes))
        P = np.empty((hmax, lanes))
        U = np.empty((wmax, lanes))
        T = np.empty(max(8, wmax * hmax))
        Xa = np.zeros((wmax, lanes))
        Xc = np.zeros((wmax, lanes))
        yhat = np.empty(m_out)
        slope = np.empty(m_out)
        grad = grad_g[g]
        loss_sum = 0.0
        rc = group_running_cost(
            rc_kind,
            rc_beta,
            rc_pw,
            rc_eps,
            inv_n,
            rc_xbar,
            rc_w,
            targets,
            p,
            p0,
            loss,
            lparam,
            gp_g[g],
            gp0_g[g],
        )
        for r0 in range(lo, hi, lanes):
            nb = min(lanes, hi - r0)
            rc.r0[0] = r0
            _load_block(x0, r0, nb, widths[0], S[0], lanes)

            # forward sweep, segment by segment, keeping each segment's first level;
            # the stage data of the last segment stay in Ys, Zs, Ds
            for j in range(n_seg):
                k0 = j * seg
                k1 = min(n_layers, k0 + seg)
                if j > 0:
                    _copy_rows(S[seg], S[0], widths[k0])
                _copy_rows(S[0], C[j], widths[k0])
                for k in range(k0, k1):
                    kk = k - k0
                    layer_forward(
                        net,
                        k,
                        S[kk],
                        S[kk + 1],
                        Ks,
                        Ys[kk],
                        Zs[kk],
                        Ds[kk],
                        P,
                        U,
                        nb,
                        lanes,
                    )

            # risk at the final level and the adjoint seed
            XL = S[n_layers - (n_seg - 1) * seg]
            loss_sum += _seed_adjoint(
                p,
                p0,
                loss,
                lparam,
                targets,
                XL,
                Xa,
                r0,
                nb,
                lanes,
                inv_n,
                yhat,
                slope,
                yhat_out,
                gp_g[g],
                gp0_g[g],
            )

            # reverse sweep; Xa and Xc alternate as the adjoint of the next level.
            # The last segment's data are still stored; the others are recomputed.
            for j in range(n_seg - 1, -1, -1):
                k0 = j * seg
                k1 = min(n_layers, k0 + seg)
                if j < n_seg - 1:
                    _copy_rows(C[j], S[0], widths[k0])
                    for k in range(k0, k1):
                        kk = k - k0
                        layer_forward(
                            net,
                            k,
                            S[kk],
                            S[kk + 1],
                            Ks,
                            Ys[kk],
                            Zs[kk],
                            Ds[kk],
                            P,
                            U,
                            nb,
                            lanes,
                        )
                for k in range(k1 - 1, k0 - 1, -1):
                    kk = k - k0
                    layer_reverse(
                        net,
                        k,
                        S[kk],
                        Ys[kk],
                        Zs[kk],
                        Ds[kk],
                        Xa,
                        Xc,
                        grad,
                        Ybs,
                        Kb,
                        G,
                        U,
                        T,
                        rc,
                        nb,
                        lanes,
                    )
                    Xa, Xc = Xc, Xa
        loss_g[g] = loss_sum
        if rc_kind != RC_NONE:
            rc_g[g] = rc.acc[0]
