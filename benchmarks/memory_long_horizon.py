"""Peak memory of one objective-and-gradient evaluation over a long horizon.

RK4, L = 10,000 steps, N = 2,000 samples, d = 2, inside field with tanh: the
reverse pass with every level of a block stored, with checkpoints every
ceil(sqrt(L)) levels, and (for scale) the forward flow that stores every level of
every sample, as a run file's trajectories do. A second, wider case (d = 16,
N = 64) is one where the stored levels exceed the 64 MiB budget, so that the budget
itself switches checkpointing on.

Each measurement runs in a fresh process: it imports spacetime, compiles (or loads)
the kernels on a tiny problem of the same types, evaluates once more for warm-up,
then resets the kernel's peak resident set size (``echo 5 > /proc/self/clear_refs``)
and takes VmRSS as the baseline; after one evaluation the peak above that baseline is
VmHWM - baseline. Numba's allocations are invisible to tracemalloc, hence the
resident set size.

Usage::

    python benchmarks/memory_long_horizon.py [--steps 10000] [--samples 2000]
"""

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time

MIB = 2**20


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(mode, n_steps, n_samples, width, budget_mib):
    import numpy as np

    import grids
    import spacetime
    from spacetime._core import checkpoint_segment, reverse_memory

    def problem_for(steps, samples, budget):
        x, y = spacetime.spheres(samples, seed=0, dim=2)
        model = spacetime.NeuralODE(
            2, width, grids.time_grid(1.0, steps), field="inside", scheme="rk4"
        )
        problem = spacetime.Problem(
            model, x, y, loss="logistic", lam=1e-3, train_output=False,
            memory_budget_mib=budget,
        )
        return model, problem

    # warm-up: compile or load every kernel this process will run
    small_model, small = problem_for(9, 40, 0.0 if mode == "checkpointed" else None)
    small(small.initial_point(0, 0.5))
    small_model.flow(small_model.init_params(0, 0.5), np.zeros((3, 2)))

    budget = {"stored": math.inf, "checkpointed": 0.0, "budget": budget_mib,
              "flow": math.inf}[mode]
    model, problem = problem_for(n_steps, n_samples, budget)
    z = problem.initial_point(0, 0.5)
    x_train = problem.x0[:, :2].copy()
    segment = checkpoint_segment(model.core, n_samples, budget)
    stored_bytes = reverse_memory(model.core, n_samples, segment)

    reset = _reset_peak()
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    if mode == "flow":
        states = model.flow(z, x_train)
        digest = hashlib.sha256(states[-1].tobytes()).hexdigest()
        del states
    else:
        value, grad = problem(z)
        digest = hashlib.sha256(np.append(grad, value).tobytes()).hexdigest()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "mode": mode,
                "segment": segment,
                "stored_levels_mib": stored_bytes / MIB,
                "baseline_mib": base / 1024,
                "peak_above_baseline_mib": (peak - base) / 1024,
                "peak_reset": reset,
                "seconds": seconds,
                "digest": digest,
            }
        )
    )


def measure(mode, args, width, n_samples):
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--steps",
        str(args.steps),
        "--samples",
        str(n_samples),
        "--width",
        str(width),
        "--budget",
        str(args.budget),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--budget", type=float, default=64.0, help="MiB")
    parser.add_argument("--wide-width", type=int, default=16)
    parser.add_argument("--wide-samples", type=int, default=64)
    parser.add_argument("--child", choices=("stored", "checkpointed", "budget", "flow"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.samples, args.width, args.budget)
        return

    both = ("stored", "checkpointed", "budget")
    cases = [
        ("narrow", args.width, args.samples, (*both, "flow")),
        ("wide", args.wide_width, args.wide_samples, both),
    ]
    print(
        f"RK4, L = {args.steps} steps, inside field, tanh, logistic loss; "
        f"budget {args.budget:g} MiB"
    )
    for name, width, n_samples, modes in cases:
        rows = {m: measure(m, args, width, n_samples) for m in modes}
        print(f"\n{name}: d = {width}, N = {n_samples}")
        print(
            f"{'mode':<14}{'segment':>9}{'state buffers MiB':>19}"
            f"{'peak above baseline MiB':>25}{'seconds':>9}"
        )
        for m, r in rows.items():
            levels = "-" if m == "flow" else f"{r['stored_levels_mib']:.2f}"
            print(
                f"{m:<14}{r['segment']:>9}{levels:>19}"
                f"{r['peak_above_baseline_mib']:>25.1f}{r['seconds']:>9.2f}"
            )
        if not all(r["peak_reset"] for r in rows.values()):
            print("(the peak could not be reset after warm-up: upper bounds only)")
        same = rows["stored"]["digest"] == rows["checkpointed"]["digest"]
        ratio = (
            rows["stored"]["peak_above_baseline_mib"]
            / max(rows["checkpointed"]["peak_above_baseline_mib"], 1e-9)
        )
        print(
            f"stored / checkpointed peak: {ratio:.2f}; "
            f"identical objective and gradient: {same}"
        )
        chosen = rows["budget"]["segment"]
        print(f"the {args.budget:g} MiB budget chose segment {chosen}")


if __name__ == "__main__":
    main()
