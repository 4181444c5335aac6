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
blocks of samples through all layers, forward and back, and accumulates its share of
the gradient in its own row of a per-group array; the rows are summed in a fixed order
afterwards. Results are therefore identical for any number of threads. Only the states
of one block are kept for the reverse pass; the stages are recomputed from them.

All functions are free functions on arrays and scalars; validation happens before they
are called, and they trust their inputs.
"""

from collections import namedtuple

import numpy as np
from numba import njit, prange

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

BLOCK = 32


# ---------------------------------------------------------------------------
# Activations


@njit(cache=True)
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def _softplus(z):
    # log(1 + e^z) without overflow
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))


@njit(cache=True)
def act_value(code, alpha, z):
    if code == ACT_TANH:
        return np.tanh(z)
    if code == ACT_IDENTITY:
        return z
    if code == ACT_SIGMOID:
        return _sigmoid(z)
    if code == ACT_RELU:
        return z if z > 0.0 else 0.0
    if code == ACT_LEAKY_RELU:
        return z if z > 0.0 else alpha * z
    return _softplus(z)


@njit(cache=True)
def act_deriv(code, alpha, z):
    if code == ACT_TANH:
        t = np.tanh(z)
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


# ---------------------------------------------------------------------------
# Vector fields on a block of samples


@njit(cache=True)
def field_forward(field, act, alpha, theta, off, n, h, Y, nb, out, Z):
    """Evaluate ``out[i, :n] = F(Y[i, :n])`` for the first ``nb`` rows.

    ``Z`` is scratch of shape ``(block, max(n, h))``.
    """
    if field == FIELD_INSIDE:
        ob = off + n * n
        for i in range(nb):
            for m in range(n):
                Z[i, m] = act_value(act, alpha, Y[i, m])
            for j in range(n):
                acc = theta[ob + j]
                row = off + j * n
                for m in range(n):
                    acc += theta[row + m] * Z[i, m]
                out[i, j] = acc
    elif field == FIELD_OUTSIDE:
        ob = off + n * n
        for i in range(nb):
            for j in range(n):
                acc = theta[ob + j]
                row = off + j * n
                for m in range(n):
                    acc += theta[row + m] * Y[i, m]
                out[i, j] = act_value(act, alpha, acc)
    else:
        oa = off + n * h
        ob = oa + h * n
        for i in range(nb):
            for q in range(h):
                acc = theta[ob + q]
                row = oa + q * n
                for m in range(n):
                    acc += theta[row + m] * Y[i, m]
                Z[i, q] = act_value(act, alpha, acc)
            for j in range(n):
                acc = 0.0
                row = off + j * h
                for q in range(h):
                    acc += theta[row + q] * Z[i, q]
                out[i, j] = acc


@njit(cache=True)
def field_vjp(field, act, alpha, theta, off, n, h, Y, nb, Kb, Yb, grad, Z, G):
    """Reverse of :func:`field_forward`.

    Sets ``Yb[i, :n] = (dF/dy)^T Kb[i]`` and adds ``(dF/du)^T Kb[i]``, summed over the
    rows, to ``grad[off:]``. ``Z`` and ``G`` are scratch of shape
    ``(block, max(n, h))``.
    """
    if field == FIELD_INSIDE:
        ob = off + n * n
        for i in range(nb):
            for m in range(n):
                Z[i, m] = act_value(act, alpha, Y[i, m])
                G[i, m] = act_deriv(act, alpha, Y[i, m])
        for i in range(nb):
            for j in range(n):
                kb = Kb[i, j]
                grad[ob + j] += kb
                row = off + j * n
                for m in range(n):
                    grad[row + m] += kb * Z[i, m]
        for i in range(nb):
            for m in range(n):
                Yb[i, m] = 0.0
            for j in range(n):
                kb = Kb[i, j]
                row = off + j * n
                for m in range(n):
                    Yb[i, m] += kb * theta[row + m]
            for m in range(n):
                Yb[i, m] *= G[i, m]
    elif field == FIELD_OUTSIDE:
        ob = off + n * n
        for i in range(nb):
            for j in range(n):
                acc = theta[ob + j]
                row = off + j * n
                for m in range(n):
                    acc += theta[row + m] * Y[i, m]
                G[i, j] = Kb[i, j] * act_deriv(act, alpha, acc)
        for i in range(nb):
            for j in range(n):
                g = G[i, j]
                grad[ob + j] += g
                row = off + j * n
                for m in range(n):
                    grad[row + m] += g * Y[i, m]
            for m in range(n):
                Yb[i, m] = 0.0
            for j in range(n):
                g = G[i, j]
                row = off + j * n
                for m in range(n):
                    Yb[i, m] += g * theta[row + m]
    else:
        oa = off + n * h
        ob = oa + h * n
        for i in range(nb):
            for q in range(h):
                acc = theta[ob + q]
                row = oa + q * n
                for m in range(n):
                    acc += theta[row + m] * Y[i, m]
                Z[i, q] = act_value(act, alpha, acc)
                G[i, q] = act_deriv(act, alpha, acc)
        for i in range(nb):
            # gradient of W and the back-propagated hidden adjoint
            for j in range(n):
                kb = Kb[i, j]
                row = off + j * h
                for q in range(h):
                    grad[row + q] += kb * Z[i, q]
            for q in range(h):
                Z[i, q] = 0.0
            for j in range(n):
                kb = Kb[i, j]
                row = off + j * h
                for q in range(h):
                    Z[i, q] += kb * theta[row + q]
            for q in range(h):
                G[i, q] *= Z[i, q]
            # gradient of A and b, and the state adjoint
            for q in range(h):
                g = G[i, q]
                grad[ob + q] += g
                row = oa + q * n
                for m in range(n):
                    grad[row + m] += g * Y[i, m]
            for m in range(n):
                Yb[i, m] = 0.0
            for q in range(h):
                g = G[i, q]
                row = oa + q * n
                for m in range(n):
                    Yb[i, m] += g * theta[row + m]


# ---------------------------------------------------------------------------
# Transfers between consecutive grids (CSR, one per layer, concatenated)


@njit(cache=True)
def _apply_transfer(
    k, tr_row_off, tr_nnz_off, tr_indptr, tr_indices, tr_data, n_out, src, nb, dst
):
    """``dst[i, :n_out] = Pi_k src[i, :]`` for the first ``nb`` rows."""
    ro = tr_row_off[k]
    zo = tr_nnz_off[k]
    for i in range(nb):
        for r in range(n_out):
            acc = 0.0
            for p in range(tr_indptr[ro + r], tr_indptr[ro + r + 1]):
                acc += tr_data[zo + p] * src[i, tr_indices[zo + p]]
            dst[i, r] = acc


@njit(cache=True)
def _apply_transfer_t(
    k, tr_row_off, tr_nnz_off, tr_indptr, tr_indices, tr_data, n_out, n_in, src, nb, dst
):
    """``dst[i, :n_in] = Pi_k^T src[i, :n_out]`` for the first ``nb`` rows."""
    ro = tr_row_off[k]
    zo = tr_nnz_off[k]
    for i in range(nb):
        for c in range(n_in):
            dst[i, c] = 0.0
        for r in range(n_out):
            s = src[i, r]
            for p in range(tr_indptr[ro + r], tr_indptr[ro + r + 1]):
                dst[i, tr_indices[zo + p]] += tr_data[zo + p] * s
    return


# ---------------------------------------------------------------------------
# One layer on a block


@njit(cache=True)
def _stages(
    k,
    field,
    act,
    alpha,
    theta,
    stage_off,
    widths,
    hidden,
    dt,
    rk_a,
    X,
    nb,
    Ys,
    Ks,
    Z,
    n_stages,
):
    """Stage values ``Ys[s]`` and slopes ``Ks[s]`` of layer ``k`` for ``s < n_stages``.

    ``Ys[0]`` is a copy of ``X``.
    """
    n = widths[k]
    h = hidden[k]
    for s in range(n_stages):
        off = stage_off[k, s]
        Y = Ys[s]
        for i in range(nb):
            for m in range(n):
                acc = X[i, m]
                for j in range(s):
                    a = rk_a[s, j]
                    if a != 0.0:
                        acc += dt[k] * a * Ks[j, i, m]
                Y[i, m] = acc
        field_forward(field, act, alpha, theta, off, n, h, Y, nb, Ks[s], Z)


@njit(cache=True)
def _step(
    k,
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
    X,
    nb,
    Xnext,
    Ys,
    Ks,
    Z,
    W,
):
    """``Xnext = Pi_k (X + dt_k sum_s b_s K_s)`` for the first ``nb`` rows."""
    n = widths[k]
    n_stages = rk_b.shape[0]
    _stages(
        k,
        field,
        act,
        alpha,
        theta,
        stage_off,
        widths,
        hidden,
        dt,
        rk_a,
        X,
        nb,
        Ys,
        Ks,
        Z,
        n_stages,
    )
    dst = W if tr_has[k] else Xnext
    for i in range(nb):
        for m in range(n):
            acc = X[i, m]
            for s in range(n_stages):
                acc += dt[k] * rk_b[s] * Ks[s, i, m]
            dst[i, m] = acc
    if tr_has[k]:
        _apply_transfer(
            k,
            tr_row_off,
            tr_nnz_off,
            tr_indptr,
            tr_indices,
            tr_data,
            widths[k + 1],
            W,
            nb,
            Xnext,
        )


@njit(cache=True)
def _step_reverse(
    k,
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
    X,
    nb,
    Xb_next,
    Xb,
    grad,
    Ys,
    Ks,
    Yb,
    Kb,
    Z,
    G,
    W,
    rc,
):
    """Adjoint of :func:`_step`: ``Xb = (dX^{k+1}/dX^k)^T Xb_next``.

    The parameter gradient of the layer is added to ``grad``. With a running cost
    (``rc.kind != 0``) the layer's share ``beta dt_k sum_s b_s R(Y_s) / N`` is added
    to ``rc.acc[0]`` and its gradient to the stage adjoints (and to the output map's
    gradient for the risk along the flow).
    """
    n = widths[k]
    h = hidden[k]
    n_stages = rk_b.shape[0]

    # adjoint of the transfer
    if tr_has[k]:
        _apply_transfer_t(
            k,
            tr_row_off,
            tr_nnz_off,
            tr_indptr,
            tr_indices,
            tr_data,
            widths[k + 1],
            n,
            Xb_next,
            nb,
            W,
        )
    else:
        for i in range(nb):
            for m in range(n):
                W[i, m] = Xb_next[i, m]

    # recompute the stage values (the last slope is not needed)
    _stages(
        k,
        field,
        act,
        alpha,
        theta,
        stage_off,
        widths,
        hidden,
        dt,
        rk_a,
        X,
        nb,
        Ys,
        Ks,
        Z,
        n_stages - 1,
    )
    s = n_stages - 1
    for i in range(nb):
        for m in range(n):
            acc = X[i, m]
            for j in range(s):
                acc += dt[k] * rk_a[s, j] * Ks[j, i, m]
            Ys[s, i, m] = acc

    # stages in reverse: Kb_s = dt (b_s Wb + sum_{r>s} a_rs Yb_r), Yb_s = J_s^T Kb_s
    for i in range(nb):
        for m in range(n):
            Xb[i, m] = W[i, m]
    for s in range(n_stages - 1, -1, -1):
        for i in range(nb):
            for m in range(n):
                acc = rk_b[s] * W[i, m]
                for r in range(s + 1, n_stages):
                    a = rk_a[r, s]
                    if a != 0.0:
                        acc += a * Yb[r, i, m]
                Kb[i, m] = dt[k] * acc
        off = stage_off[k, s]
        field_vjp(field, act, alpha, theta, off, n, h, Ys[s], nb, Kb, Yb[s], grad, Z, G)
        if rc.kind != RC_NONE and rk_b[s] != 0.0:
            _running_cost_stage(rc, rc.beta * dt[k] * rk_b[s], Ys[s], Yb[s], nb, n)
        for i in range(nb):
            for m in range(n):
                Xb[i, m] += Yb[s, i, m]


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


@njit(cache=True)
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


@njit(cache=True)
def _running_cost_stage(rc, coef, Y, Yb, nb, n):
    """Add ``coef * R_i(Y[i]) / N`` to ``rc.acc[0]`` and its gradient to ``Yb[i]``.

    Tracking: ``R_i(y) = sum_j w_j phi(y_j - xbar_ij)``. Risk along the flow:
    ``R_i(y) = l(p y + p0, target_i)``, whose gradient also reaches ``p`` and ``p0``.
    """
    scale = coef * rc.inv_n
    total = 0.0
    if rc.kind == RC_TRACKING:
        for i in range(nb):
            row = rc.r0[0] + i
            for m in range(n):
                val, d = tracking_term(rc.pw, rc.eps, Y[i, m] - rc.xbar[row, m])
                total += rc.w[m] * val
                Yb[i, m] += scale * rc.w[m] * d
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
                    rc.gp[r, c] += sr * Y[i, c]
            for c in range(n):
                acc = 0.0
                for r in range(m_out):
                    acc += rc.p[r, c] * rc.slope[r]
                Yb[i, c] += scale * acc
    rc.acc[0] += coef * total


# ---------------------------------------------------------------------------
# Output map and per-sample losses


@njit(cache=True)
def _output(p, p0, x, i, yhat):
    m_out, n = p.shape
    for r in range(m_out):
        acc = p0[r]
        for c in range(n):
            acc += p[r, c] * x[i, c]
        yhat[r] = acc


@njit(cache=True)
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


@njit(cache=True)
def group_bounds(n_samples, n_groups, g):
    return (g * n_samples) // n_groups, ((g + 1) * n_samples) // n_groups


@njit(cache=True)
def _block_forward(
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
    S,
    r0,
    nb,
    Ys,
    Ks,
    Z,
    W,
):
    n_layers = dt.shape[0]
    for k in range(n_layers):
        _step(
            k,
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
            S[k, r0 : r0 + nb],
            nb,
            S[k + 1, r0 : r0 + nb],
            Ys,
            Ks,
            Z,
            W,
        )


@njit(parallel=True, cache=True)
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
    states,
):
    """Flow the inputs through all layers, writing every state level.

    Parameters
    ----------
    x0 : ndarray, shape (n_samples, widths[0])
    states : ndarray, shape (n_steps + 1, n_samples, max_width)
        Output; level ``k`` of sample ``i`` is ``states[k, i, :widths[k]]``.
    """
    n_samples = x0.shape[0]
    n_stages = rk_b.shape[0]
    wmax = states.shape[2]
    hmax = max(wmax, hidden.max())
    for g in prange(n_groups):
        lo, hi = group_bounds(n_samples, n_groups, g)
        Ys = np.empty((n_stages, BLOCK, wmax))
        Ks = np.empty((n_stages, BLOCK, wmax))
        Z = np.empty((BLOCK, hmax))
        W = np.empty((BLOCK, wmax))
        for r0 in range(lo, hi, BLOCK):
            nb = min(BLOCK, hi - r0)
            for i in range(nb):
                for m in range(widths[0]):
                    states[0, r0 + i, m] = x0[r0 + i, m]
            _block_forward(
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
                states,
                r0,
                nb,
                Ys,
                Ks,
                Z,
                W,
            )


@njit(cache=True)
def _block_steps(
    k0,
    k1,
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
    S,
    nb,
    Ys,
    Ks,
    Z,
    W,
):
    """Layers ``k0 <= k < k1`` on a block: ``S[k - k0 + 1] = step_k(S[k - k0])``.

    ``S[0]`` holds level ``k0`` on entry; levels ``k0 + 1, ..., k1`` are written to
    ``S[1], ..., S[k1 - k0]``.
    """
    for k in range(k0, k1):
        _step(
            k,
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
            S[k - k0, 0:nb],
            nb,
            S[k - k0 + 1, 0:nb],
            Ys,
            Ks,
            Z,
            W,
        )


@njit(cache=True)
def _copy_rows(src, dst, nb, n):
    for i in range(nb):
        for m in range(n):
            dst[i, m] = src[i, m]


@njit(parallel=True, cache=True)
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
):
    """Empirical risk and its exact gradient, accumulated per group.

    The risk is ``(1/N) sum_i l(p X_i^L + p0, target_i)``. Group ``g`` writes its share
    of the risk to ``loss_g[g]`` and of the gradients to ``grad_g[g]`` (effective layer
    parameters), ``gp_g[g]`` and ``gp0_g[g]`` (output map). Predictions go to
    ``yhat_out``, shape (n_samples, n_outputs).

    The levels are cut into segments of ``segment`` layers (``1 <= segment``; a
    value ``>= n_layers`` keeps every level). The forward sweep of a block keeps only
    the first level of each segment (a checkpoint) and the levels of the last
    segment; the reverse sweep recomputes the levels of every other segment from its
    checkpoint into one segment buffer just before it back-propagates through that
    segment. Per group this stores ``ceil(L / segment) + segment + 1`` levels of one
    block instead of ``L + 1``, at the price of at most one extra forward sweep. The
    recomputation repeats the forward sweep's floating-point operations exactly, so
    the gradient does not depend on ``segment``, bit for bit.

    A running cost ``beta sum_k dt_k sum_s b_s R(Y_s^k)`` (the same tableau's
    quadrature of ``beta int_0^T R(x(t)) dt``; ``rc_kind`` 1: tracking of
    ``rc_xbar`` with node weights ``rc_w``, exponent ``rc_pw`` and smoothing
    ``rc_eps``; 2: the risk along the flow) is evaluated during the reverse sweep,
    where every stage value is formed once; group ``g`` adds its share, times ``N``,
    to ``rc_g[g]``.
    """
    n_samples = x0.shape[0]
    n_layers = dt.shape[0]
    n_stages = rk_b.shape[0]
    wmax = widths.max()
    hmax = max(wmax, hidden.max())
    m_out = p.shape[0]
    n_last = widths[n_layers]
    inv_n = 1.0 / n_samples
    seg = min(max(segment, 1), n_layers)
    n_seg = (n_layers + seg - 1) // seg
    for g in prange(n_groups):
        lo, hi = group_bounds(n_samples, n_groups, g)
        C = np.empty((n_seg, BLOCK, wmax))
        S = np.empty((seg + 1, BLOCK, wmax))
        Ys = np.empty((n_stages, BLOCK, wmax))
        Ks = np.empty((n_stages, BLOCK, wmax))
        Yb = np.empty((n_stages, BLOCK, wmax))
        Kb = np.empty((BLOCK, wmax))
        Z = np.empty((BLOCK, hmax))
        G = np.empty((BLOCK, hmax))
        W = np.empty((BLOCK, wmax))
        Xa = np.zeros((BLOCK, wmax))
        Xc = np.zeros((BLOCK, wmax))
        yhat = np.empty(m_out)
        slope = np.empty(m_out)
        grad = grad_g[g]
        loss_sum = 0.0
        rc = RunningCost(
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
            np.empty(m_out),
            np.empty(m_out),
            np.zeros(1, dtype=np.int64),
            np.zeros(1),
        )
        for r0 in range(lo, hi, BLOCK):
            nb = min(BLOCK, hi - r0)
            rc.r0[0] = r0
            for i in range(nb):
                for m in range(widths[0]):
                    S[0, i, m] = x0[r0 + i, m]

            # forward sweep, segment by segment, keeping each segment's first level
            for j in range(n_seg):
                k0 = j * seg
                k1 = min(n_layers, k0 + seg)
                if j > 0:
                    _copy_rows(S[seg], S[0], nb, widths[k0])
                _copy_rows(S[0], C[j], nb, widths[k0])
                _block_steps(
                    k0,
                    k1,
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
                    S,
                    nb,
                    Ys,
                    Ks,
                    Z,
                    W,
                )

            # risk at the final level and the adjoint seed
            XL = S[n_layers - (n_seg - 1) * seg]
            for i in range(nb):
                _output(p, p0, XL, i, yhat)
                loss_sum += loss_and_slope(loss, lparam, yhat, targets[r0 + i], slope)
                for r in range(m_out):
                    yhat_out[r0 + i, r] = yhat[r]
                    sr = slope[r] * inv_n
                    gp0_g[g, r] += sr
                    for c in range(n_last):
                        gp_g[g, r, c] += sr * XL[i, c]
                for c in range(n_last):
                    acc = 0.0
                    for r in range(m_out):
                        acc += p[r, c] * slope[r]
                    Xa[i, c] = acc * inv_n

            # reverse sweep; Xa and Xc alternate as the adjoint of the next level.
            # The last segment's levels are still in S; the others are recomputed.
            for j in range(n_seg - 1, -1, -1):
                k0 = j * seg
                k1 = min(n_layers, k0 + seg)
                if j < n_seg - 1:
                    _copy_rows(C[j], S[0], nb, widths[k0])
                    _block_steps(
                        k0,
                        k1 - 1,
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
                        S,
                        nb,
                        Ys,
                        Ks,
                        Z,
                        W,
                    )
                for k in range(k1 - 1, k0 - 1, -1):
                    _step_reverse(
                        k,
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
                        S[k - k0],
                        nb,
                        Xa,
                        Xc,
                        grad,
                        Ys,
                        Ks,
                        Yb,
                        Kb,
                        Z,
                        G,
                        W,
                        rc,
                    )
                    Xa, Xc = Xc, Xa
        loss_g[g] = loss_sum
        if rc_kind != RC_NONE:
            rc_g[g] = rc.acc[0]
