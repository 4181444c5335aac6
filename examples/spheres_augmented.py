"""Concentric spheres with augmented states: inputs zero-padded to width d = 3.

The data are a disc of one class inside a ring of the other. The flow of
``x' = f(x, u(t))`` is a homeomorphism of the state space, so in the plane it has to
squeeze the ring between the samples to make the classes linearly separable;
padding each input ``(x1, x2)`` to ``(x1, x2, 0)`` gives the flow a third
dimension to lift the disc through. This script trains an inside-field tanh neural
ODE of width 3 with the logistic loss and prints its training accuracy. The states
at every level are written to ``OUT_DIR/spheres_augmented.npz`` (array ``states`` of
shape (n_steps + 1, n_samples, 3), with the ``labels``) for plotting.

    python examples/spheres_augmented.py [--fast] [--out-dir DIR]

``--fast`` (or SPACETIME_FAST=1) uses fewer samples and iterations.
"""

import argparse
import os
from pathlib import Path

import numpy as np

import grids
import spacetime

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--fast", action="store_true", help="small and quick")
parser.add_argument("--out-dir", default="runs", help="output folder (default runs)")
args = parser.parse_args()
fast = args.fast or os.environ.get("SPACETIME_FAST") == "1"

x, y = spacetime.spheres(n_samples=100 if fast else 400, seed=0)  # y in {-1, +1}
classes = (y > 0).astype(np.int64)  # disc -> 0, ring -> 1
model = spacetime.NeuralODE(
    2, 3, grids.time_grid(4.0, 10 if fast else 20), field="inside", activation="tanh"
)
problem = spacetime.Problem(model, x, classes, loss="logistic", lam=1e-3)
result = spacetime.solve(problem, max_iter=80 if fast else 500, seed=0, init_scale=0.5)
print(f"status {result.status} after {result.n_iter} iterations")
print(f"training accuracy {result.evaluate()['accuracy']:.4f}")

out = Path(args.out_dir)
out.mkdir(parents=True, exist_ok=True)
states = model.flow(result.theta, x)
np.savez(out / "spheres_augmented.npz", states=states, labels=classes)
print(f"saved {out / 'spheres_augmented.npz'}")
