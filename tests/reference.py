"""An independent plain-NumPy implementation of the finite-width model, for tests.

Written from the equations, not from the kernels: states are whole arrays of shape
(n_samples, width), each field is a one-line formula, and the scheme is applied
stage by stage from its Butcher tableau.
"""

import json
import os
import subprocess
import sys

import numpy as np

ACT = {
    "identity": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z, s=0.01: np.where(z > 0, z, s * z),
    "softplus": lambda z: np.logaddexp(0.0, z),
}


def field(name, act, controls, k, x):
    """f(x, u_k) for all samples; x has shape (n_samples, width)."""
    s = ACT[act]
    w, b = controls["w"][k], controls["b"][k]
    if name == "inside":
        return s(x) @ w.T + b
    if name == "outside":
        return s(x @ w.T + b)
    a = controls["a"][k]
    return s(x @ a.T + b) @ w.T


def flow(name, act, controls, x0, nodes, a_tab, b_tab):
    """States at every time level, shape (n_steps + 1, n_samples, width)."""
    x = np.array(x0, dtype=float)
    out = [x.copy()]
    for k in range(len(nodes) - 1):
        dt = nodes[k + 1] - nodes[k]
        slopes = []
        for s in range(len(b_tab)):
            y = x + dt * sum(a_tab[s][j] * slopes[j] for j in range(s))
            slopes.append(field(name, act, controls, k, y))
        x = x + dt * sum(b_tab[s] * slopes[s] for s in range(len(b_tab)))
        out.append(x.copy())
    return np.array(out)


def risk(loss, yhat, y, p=2.0):
    """Mean per-sample loss; y holds classes (cross-entropy), +-1 or target vectors."""
    if loss == "squared":
        return np.mean(0.5 * np.sum((yhat - y) ** 2, axis=1))
    if loss == "lp":
        return np.mean(np.sum(np.abs(yhat - y) ** p, axis=1))
    if loss == "cross_entropy":
        z = yhat - yhat.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(logp[np.arange(len(y)), y])
    return np.mean(np.logaddexp(0.0, -y * yhat[:, 0]))


def run_without_jit(script):
    """Run ``script`` in a fresh interpreter with Numba's JIT off.

    The script prints JSON on its last line; returns it decoded. The kernels then
    run as plain Python, the reference the compiled kernels are compared with.
    """
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ, NUMBA_DISABLE_JIT="1"),
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])
