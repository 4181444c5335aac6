"""Speed-up of a sweep on 2 local workers over 1.

Runs the same sweep of identical cases (digits subset, fixed iteration count, one
seed per case) with 1 and with 2 worker processes and prints the wall times and
their ratio, first with one Numba thread per case (pure process parallelism), then
with the default threads (cores // workers: 1 worker uses every core). Each sweep
writes to a fresh temporary folder, so no case is reused.

The CPU seconds per case and how busy the workers were tell a loaded machine from
poor scaling: if the workers were busy well below 100 %, other processes had the
cores and the wall-time ratio says little; equal CPU per case with 1 and 2 workers
means the cases run in parallel without overhead.

    python benchmarks/sweep_speedup.py [--cases 8] [--samples 500] [--iters 60]
                                       [--repeat 2]
"""

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import spacetime as st


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{cpu}, {cores or os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def config(out: Path, n_cases: int, samples: int, iters: int) -> dict:
    return {
        "data": {"name": "digits", "max_samples": samples},
        "model": {"n_steps": 10},
        # gtol = ftol = 0: every case runs exactly `iters` iterations
        "optimizer": {"max_iter": iters, "gtol": 0.0, "ftol": 0.0},
        "save": {"trajectories": False},
        "sweep": {"grid": {"seed": list(range(n_cases))}, "out": str(out)},
    }


def timed(root: Path, tag: str, cfg_args, workers: int, threads) -> float:
    cfg = config(root / tag, *cfg_args)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = st.run_sweep(cfg, workers=workers, threads=threads, progress=False)
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not result.complete:
        raise SystemExit(f"sweep {tag} did not complete: {result.counts()}")
    per_case = sum(c.wall_time for c in result) / len(result)
    # CPU seconds of the (finished) worker processes over the cores they could use
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    cores = workers * (threads or max(1, (os.cpu_count() or 1) // workers))
    print(
        f"  {workers} worker(s), {threads or 'default'} thread(s) per case: "
        f"{elapsed:6.1f} s  (mean case {per_case:.2f} s; CPU "
        f"{cpu / len(result):.2f} s per case; workers busy "
        f"{cpu / (elapsed * cores):.0%} of {cores} core(s))",
        flush=True,
    )
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each setting, interleaved; the fastest counts (default 2)",
    )
    args = ap.parse_args()
    cfg_args = (args.cases, args.samples, args.iters)
    print(f"machine: {machine()}")
    print(
        f"sweep: {args.cases} cases, digits ({args.samples} samples), width 64, "
        f"10 layers, {args.iters} L-BFGS-B iterations each; best of {args.repeat}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # compile the kernels (or load them from the cache) outside the timings
        st.run_sweep(config(root / "warm", 1, 50, 2), workers=1, progress=False)
        for threads, label in ((1, "1 thread per case"), (None, "default threads")):
            best = {1: float("inf"), 2: float("inf")}
            for r in range(args.repeat):
                for workers in (1, 2):
                    tag = f"w{workers}-t{threads or 0}-r{r}"
                    t = timed(root, tag, cfg_args, workers, threads)
                    best[workers] = min(best[workers], t)
            print(
                f"speed-up of 2 workers over 1, {label}: {best[1] / best[2]:.2f} "
                f"({best[1]:.1f} s / {best[2]:.1f} s)",
                flush=True,
            )
    print(f"machine afterwards: {machine()}")


if __name__ == "__main__":
    main()
