"""PyTorch and JAX implementations of the library's discrete problem, for timing.

Each reference computes the same objective as :class:`spacetime.Problem` with a
trained output map and the cross-entropy loss,

    J(theta, p, p0) = (1/N) sum_i CE(p_eff X_i^L + p0, y_i)
                      + lam sum(norm_weight * theta^2),

where ``X^L`` is the final level of the explicit Runge–Kutta flow

    Y_s = X^k + dt_k sum_{j<s} a_sj K_j,    K_s = F_k(Y_s),
    X^{k+1} = Pi_k (X^k + dt_k sum_s b_s K_s),

with the inside field ``F(y) = W tanh(y) + b`` or the bottleneck field
``F(y) = W tanh(A y + b)``, the effective parameters ``scale * theta`` (quadrature
weights folded in; ones for a finite-width network) and ``p_eff = p * out_weight``.
The gradient is returned in the library's layout: per layer the blocks
``(W, b)`` or ``(W, A, b)`` row-major, then ``p`` and ``p0``.

Both are written the way their users write such a model: PyTorch eagerly, a Python
loop over per-layer parameter tensors with ``F.linear`` and ``torch.autograd.grad``;
JAX as ``jit(value_and_grad(...))`` of a ``lax.scan`` over stacked per-layer
parameters. Both run in float64, batched over all samples.
"""

import warnings

import numpy as np


def layer_slices(core):
    """Per layer: offset, width ``n``, hidden width ``h`` and the block shapes."""
    from spacetime._core import layer_blocks

    out = []
    for k in range(core.n_steps):
        n, h = int(core.widths[k]), int(core.hidden[k])
        out.append((int(core.layer_off[k]), n, h, layer_blocks(core.field, n, h)))
    return out


def _check_supported(core):
    if core.field.name not in ("inside", "bottleneck"):
        raise ValueError(
            f"the references implement inside and bottleneck, not {core.field.name}"
        )
    if core.activation.name != "tanh":
        raise ValueError("the references implement the tanh activation only")
    if core.stage_off.shape[1] > 1 and np.any(
        core.stage_off[:, 1:] != core.stage_off[:, :1]
    ):
        raise ValueError("the references take one control set per layer")


class TorchReference:
    """The objective and its gradient with PyTorch autograd (eager, CPU, float64).

    Parameters
    ----------
    core : spacetime._core.Core
    x0 : ndarray, shape (n_samples, widths[0])
        Embedded inputs.
    y : ndarray, shape (n_samples,)
        Class indices.
    lam : float
    sparse : bool
        Apply the transfers as sparse CSR matrices (else dense).
    """

    def __init__(self, core, x0, y, lam, *, sparse=False):
        import torch

        _check_supported(core)
        self.torch = torch
        self.core = core
        self.lam = float(lam)
        self.layers = layer_slices(core)
        self.x0 = torch.from_numpy(np.ascontiguousarray(x0, dtype=np.float64))
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.dt = [float(v) for v in core.dt]
        self.a = np.asarray(core.scheme.a, dtype=np.float64)
        self.b = np.asarray(core.scheme.b, dtype=np.float64)
        scale = core.scale
        norm = core.norm_weight
        self.scale, self.norm = [], []
        for off, _, _, blocks in self.layers:
            size = sum(int(np.prod(s)) for _, s in blocks)
            self.scale.append(
                None if scale is None else torch.tensor(scale[off : off + size])
            )
            self.norm.append(torch.from_numpy(norm[off : off + size].copy()))
        self.out_weight = (
            None if core.out_weight is None else torch.tensor(core.out_weight)
        )
        self.transfers = []
        for k in range(core.n_steps):
            if not core.tr_has[k]:
                self.transfers.append(None)
                continue
            dense = _transfer_dense(core, k)
            if sparse:
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore", UserWarning)
                    self.transfers.append(torch.from_numpy(dense).to_sparse_csr())
            else:
                self.transfers.append(torch.from_numpy(dense))
        self.sparse = sparse

    def parameters(self, theta, p, p0):
        """Leaf tensors: one flat control vector per layer, then ``p`` and ``p0``."""
        torch = self.torch
        leaves = []
        for off, _, _, blocks in self.layers:
            size = sum(int(np.prod(s)) for _, s in blocks)
            leaves.append(torch.tensor(theta[off : off + size], requires_grad=True))
        leaves.append(torch.tensor(p, requires_grad=True))
        leaves.append(torch.tensor(p0, requires_grad=True))
        return leaves

    def _field(self, k, u, n, h, x):
        F = self.torch.nn.functional
        if self.scale[k] is not None:
            u = u * self.scale[k]
        if self.core.field.name == "inside":
            w = u[: n * n].view(n, n)
            return F.linear(self.torch.tanh(x), w, u[n * n :])
        w = u[: n * h].view(n, h)
        a = u[n * h : 2 * n * h].view(h, n)
        return F.linear(self.torch.tanh(F.linear(x, a, u[2 * n * h :])), w)

    def objective(self, leaves):
        torch = self.torch
        F = torch.nn.functional
        x = self.x0
        n_stages = len(self.b)
        for k, (_, n, h, _) in enumerate(self.layers):
            u, dt = leaves[k], self.dt[k]
            slopes = []
            for s in range(n_stages):
                y = x
                for j in range(s):
                    if self.a[s, j] != 0.0:
                        y = y + (dt * self.a[s, j]) * slopes[j]
                slopes.append(self._field(k, u, n, h, y))
            for s in range(n_stages):
                x = x + (dt * self.b[s]) * slopes[s]
            pi = self.transfers[k]
            if pi is not None:
                x = torch.sparse.mm(pi, x.T).T if self.sparse else F.linear(x, pi)
        p, p0 = leaves[-2], leaves[-1]
        if self.out_weight is not None:
            p = p * self.out_weight
        risk = F.cross_entropy(F.linear(x, p, p0), self.y)
        reg = sum(
            (w * u * u).sum() for w, u in zip(self.norm, leaves[:-2], strict=True)
        )
        return risk + self.lam * reg

    def value_and_grad(self, leaves):
        """Objective and gradient, both as float64 NumPy (gradient flat)."""
        value = self.objective(leaves)
        grads = self.torch.autograd.grad(value, leaves)
        return float(value.detach()), np.concatenate([g.numpy().ravel() for g in grads])


def _transfer_dense(core, k):
    ro, zo = int(core.tr_row_off[k]), int(core.tr_nnz_off[k])
    n_out, n_in = int(core.widths[k + 1]), int(core.widths[k])
    dense = np.zeros((n_out, n_in))
    for r in range(n_out):
        for q in range(core.tr_indptr[ro + r], core.tr_indptr[ro + r + 1]):
            dense[r, core.tr_indices[zo + q]] += core.tr_data[zo + q]
    return dense


def configure_jax(threads):
    """Set the XLA flags for ``threads`` CPU threads; call before importing jax."""
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    extra = (
        f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={threads}"
    )
    os.environ["XLA_FLAGS"] = (flags + " " + extra).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return os.environ["XLA_FLAGS"]


class JaxReference:
    """The objective and its gradient with ``jax.jit(jax.value_and_grad(...))``.

    The layers run in a ``lax.scan`` over parameters stacked along a leading layer
    axis, so the network must have one width (no transfers).
    """

    def __init__(self, core, x0, y, lam):
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        _check_supported(core)
        if np.any(core.widths != core.widths[0]) or np.any(core.tr_has):
            raise ValueError("the JAX reference takes a network of one width")
        if core.scale is not None or core.out_weight is not None:
            raise ValueError("the JAX reference takes a finite-width network")
        self.jax, self.jnp = jax, jnp
        self.core = core
        self.layers = layer_slices(core)
        self.n = int(core.widths[0])
        self.h = int(core.hidden[0])
        self.inside = core.field.name == "inside"
        self.x0 = jnp.asarray(x0, dtype=jnp.float64)
        self.y = jnp.asarray(np.asarray(y, dtype=np.int64))
        self.dt = jnp.asarray(core.dt)
        self.norm = jnp.asarray(core.norm_weight.reshape(core.n_steps, -1))
        self.lam = float(lam)
        a, b = np.asarray(core.scheme.a), np.asarray(core.scheme.b)
        n_stages = len(b)

        def field(params, x):
            if self.inside:
                w, bias = params
                return jnp.tanh(x) @ w.T + bias
            w, a_, bias = params
            return jnp.tanh(x @ a_.T + bias) @ w.T

        def step(x, layer):
            params, dt = layer
            slopes = []
            for s in range(n_stages):
                y_ = x
                for j in range(s):
                    if a[s, j] != 0.0:
                        y_ = y_ + (dt * a[s, j]) * slopes[j]
                slopes.append(field(params, y_))
            for s in range(n_stages):
                x = x + (dt * b[s]) * slopes[s]
            return x, None

        def objective(params, p, p0):
            x, _ = jax.lax.scan(step, self.x0, (params, self.dt))
            logits = x @ p.T + p0
            logp = jax.nn.log_softmax(logits, axis=1)
            risk = -jnp.mean(jnp.take_along_axis(logp, self.y[:, None], axis=1))
            reg = sum(
                jnp.sum(w * u.reshape(u.shape[0], -1) ** 2)
                for w, u in zip(self._norm_blocks(), params, strict=True)
            )
            return risk + self.lam * reg

        self.fn = jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2)))

    def _norm_blocks(self):
        n, h = self.n, self.h
        cuts = [n * n] if self.inside else [n * h, 2 * n * h]
        return np.split(np.asarray(self.norm), cuts, axis=1)

    def parameters(self, theta, p, p0):
        """Stacked per-layer blocks ``(W, b)`` or ``(W, A, b)``, then ``p``, ``p0``."""
        jnp = self.jnp
        n, h, L = self.n, self.h, self.core.n_steps
        per = theta.reshape(L, -1)
        if self.inside:
            params = (per[:, : n * n].reshape(L, n, n), per[:, n * n :])
        else:
            params = (
                per[:, : n * h].reshape(L, n, h),
                per[:, n * h : 2 * n * h].reshape(L, h, n),
                per[:, 2 * n * h :],
            )
        return (
            tuple(jnp.asarray(a) for a in params),
            jnp.asarray(p),
            jnp.asarray(p0),
        )

    def value_and_grad(self, args):
        value, (gparams, gp, gp0) = self.fn(*args)
        value.block_until_ready()
        L = self.core.n_steps
        blocks = [np.asarray(g).reshape(L, -1) for g in gparams]
        flat = np.concatenate(blocks, axis=1).ravel()
        return float(value), np.concatenate(
            [flat, np.asarray(gp).ravel(), np.asarray(gp0)]
        )
