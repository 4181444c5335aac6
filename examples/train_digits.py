"""Train the model ``spacetime run`` trains by default, through the Python API.

An inside-field neural ODE ``x' = w(t) tanh(x) + b(t)`` on [0, 2], ten forward-Euler
steps (a ten-layer ResNet), on the bundled 8x8 handwritten digits; cross-entropy loss
plus ``1e-3 ||u||^2``, L-BFGS-B from a seeded start. Prints the test accuracy and
writes the trained controls and output map to ``OUT_DIR/digits.npz``.

    python examples/train_digits.py [--fast] [--out-dir DIR]

``--fast`` (or the environment variable SPACETIME_FAST=1) trains on a subset for a
few iterations, as the tests do.
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

data = spacetime.load_dataset(
    "digits", test_fraction=0.2, seed=0, max_samples=200 if fast else None
)
model = spacetime.NeuralODE(
    data.n_features, data.n_features, grids.time_grid(2.0, 10), field="inside"
)
problem = spacetime.Problem(
    model,
    data.x_train,
    data.y_train,
    loss="cross_entropy",
    lam=1e-3,
    n_classes=data.n_classes,
)
result = spacetime.solve(problem, max_iter=20 if fast else 300, seed=0)
scores = result.predict(data.x_test)  # shape (n_test, 10)
test_accuracy = float(np.mean(scores.argmax(axis=1) == data.y_test))
print(f"status {result.status} after {result.n_iter} iterations")
print(f"test accuracy {test_accuracy:.4f}")

out = Path(args.out_dir)
out.mkdir(parents=True, exist_ok=True)
np.savez(out / "digits.npz", p=result.p, p0=result.p0, **result.controls)
print(f"saved {out / 'digits.npz'}")
