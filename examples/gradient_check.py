"""Check the exact gradient of your own configuration's problem.

Builds the problem a TOML configuration describes (the same one ``spacetime run``
would train) and compares its gradient with fourth-order finite differences of the
objective along random unit directions. Relative errors near 1e-10 mean the
gradient is the exact derivative of the discrete objective; errors near 1 mean it
is not.

    python examples/gradient_check.py [CONFIG] [--fast] [--out-dir DIR]

Without CONFIG a small bottleneck softplus model with the RK4 scheme is checked.
``--fast`` (or SPACETIME_FAST=1) keeps at most 50 training samples. The directional
derivatives are written to ``OUT_DIR/gradient_check.csv``.
"""

import argparse
import os
import tomllib
from pathlib import Path

import numpy as np

import spacetime

EXAMPLE = """
[data]
name = "rings"
n_samples = 200
[model]
field = "bottleneck"
activation = "softplus"
width = 4
hidden = 6
n_steps = 6
scheme = "rk4"
[problem]
loss = "cross_entropy"
lam = 0.01
"""

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("config", nargs="?", help="TOML file (default: a small example)")
parser.add_argument("--fast", action="store_true", help="at most 50 samples")
parser.add_argument("--out-dir", default="runs", help="output folder (default runs)")
args = parser.parse_args()
fast = args.fast or os.environ.get("SPACETIME_FAST") == "1"

if args.config:
    config, _ = spacetime.load_config(args.config)
else:
    config = spacetime.validate(tomllib.loads(EXAMPLE))
if fast:
    config["data"]["max_samples"] = 50
dataset, model, problem = spacetime.build(config)
check = spacetime.check_gradient(problem, n_directions=6, step=1e-4, seed=1)
print(check)
print(f"worst relative error {check.worst:.3e}")

out = Path(args.out_dir)
out.mkdir(parents=True, exist_ok=True)
table = np.column_stack([check.analytic, check.numeric, check.errors])
np.savetxt(
    out / "gradient_check.csv",
    table,
    delimiter=",",
    header="gradient_dot_v,finite_difference,relative_error",
    comments="",
)
print(f"saved {out / 'gradient_check.csv'}")
