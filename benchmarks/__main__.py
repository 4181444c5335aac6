"""Side-by-side timing of one objective-and-gradient evaluation.

    python -m benchmarks [--threads N] [--repeats 5] [--cases a,b,c,d] [--out FILE]

Times ``Problem.value_and_grad`` of this library against PyTorch (eager) and JAX
(``jit(value_and_grad)`` over ``lax.scan``) implementations of the identical discrete
problem (``benchmarks/references.py``), all float64 on the CPU with the same number
of threads, the same data and the same parameters, in one process. Before timing,
each reference's objective and gradient are checked against the library's (relative
difference at most 1e-10). In the same run it measures the machine's dgemm rate
and the time of the activations alone, the achieved GFLOP/s, the peak resident
memory of each implementation, how the cost grows with N and L, the speed-up of
2 threads over 1, and the start-up of a second ``spacetime run``.

Every time is the median of ``--repeats`` evaluations after one warm-up call; the
first call (compilation or cache load) is timed apart. The ratios, not the absolute
times, are the result: other processes on the machine slow every column alike.
"""

import argparse
import os
import sys

# Threads must be fixed before numba, torch and jax start their pools.
_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--threads", type=int, default=0)
_THREADS = _pre.parse_known_args()[0].threads or len(os.sched_getaffinity(0))
os.environ.setdefault("NUMBA_NUM_THREADS", str(_THREADS))

from . import references  # noqa: E402

XLA_FLAGS = references.configure_jax(_THREADS)

import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

import grids  # noqa: E402
import spacetime as st  # noqa: E402
from spacetime import _kernels as K  # noqa: E402

TOL = 1e-10


# ---------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    out = []
    for pool in threadpool_info():
        if pool.get("user_api") != "blas":
            continue
        out.append(
            {
                "library": os.path.basename(pool.get("filepath", "?")),
                "api": pool.get("internal_api"),
                "version": pool.get("version"),
                "kernel": pool.get("architecture"),
                "threads": pool.get("num_threads"),
            }
        )
    return out


def versions() -> dict:
    import jax
    import jaxlib
    import scipy
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "spacetime": st.__version__,
        "torch": torch.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
    }


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ---------------------------------------------------------------------------
# Timing and memory


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _release_free_memory():
    """Return freed heap memory to the system, so that a new peak shows."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_mib(fn):
    """Peak resident memory during ``fn()`` above the resident memory before, MiB."""
    _release_free_memory()
    if not _reset_peak():
        return math.nan
    base = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - base) / 1024


# ---------------------------------------------------------------------------
# Reference rates: dgemm and the activations alone


DGEMM_FLOPS = 2.0 * 1797 * 64 * 64


def dgemm_timer(flops):
    """A call of NumPy's ``(1797, 64) @ (64, 64)`` repeated to about ``flops``."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1797, 64))
    b = rng.normal(size=(64, 64))
    out = np.empty((1797, 64))
    reps = max(1, round(flops / DGEMM_FLOPS))

    def run():
        for _ in range(reps):
            np.dot(a, b, out=out)

    run()
    return run, reps * DGEMM_FLOPS


def _one_blas_thread(fn):
    from threadpoolctl import threadpool_limits

    def run():
        with threadpool_limits(1, user_api="blas"):
            fn()

    return run


def dgemm_rate(repeats):
    """GFLOP/s of NumPy's ``(1797, 64) @ (64, 64)`` (the wide case's product)."""
    run, flops = dgemm_timer(200 * DGEMM_FLOPS)
    return flops / median_time(run, repeats) / 1e9


@njit(parallel=True, cache=True)
def _libm_tanh(x, out, parts):
    n = x.shape[0]
    for c in prange(parts):
        lo = c * n // parts
        hi = (c + 1) * n // parts
        for i in range(lo, hi):
            out[i] = np.tanh(x[i])


def _tanh_loop(x, out, parts):
    n = x.shape[0]
    for c in prange(parts):
        lo = c * n // parts
        hi = (c + 1) * n // parts
        xs = x[lo:hi]
        os_ = out[lo:hi]
        for i in range(xs.shape[0]):
            os_[i] = K._tanh(xs[i])


# The kernels' tanh, compiled as the general kernels and as the fused kernels of
# narrow networks compile it (FMA contraction). Not cached: they compile in
# spacetime/_kernels.py's tanh, and Numba's cache of this file would not notice a
# change there.
_kernel_tanh = njit(parallel=True, error_model="numpy")(_tanh_loop)
_fused_tanh = njit(parallel=True, error_model="numpy", fastmath={"contract"})(
    _tanh_loop
)


def tanh_timers(count, fused):
    """Timed calls of ``count`` tanh: NumPy, Numba's libm loop, the kernels' tanh.

    The Numba loops split the numbers into one contiguous share per thread, so
    each thread runs one loop that vectorises (the kernels' tanh) or calls libm.
    The kernels' tanh is compiled as the case's kernels compile it: with FMA
    contraction (``fused``) for the fused kernels of narrow Euler networks.
    """
    x = np.random.default_rng(1).normal(size=count)
    out = np.empty_like(x)
    parts = numba.get_num_threads()
    kernel = _fused_tanh if fused else _kernel_tanh
    _libm_tanh(x[:64], out[:64], parts)
    kernel(x[:64], out[:64], parts)
    return {
        "tanh_numpy": lambda: np.tanh(x, out=out),
        "tanh_numba": lambda: _libm_tanh(x, out, parts),
        "tanh_kernel": lambda: kernel(x, out, parts),
    }


def interleaved(timers, repeats):
    """Median seconds of each timer, the timers taking turns in every round.

    In its turn each timer is called twice and the second call is timed: the first
    brings its threads and memory back after the other timers' turns (the thread
    pools of OpenBLAS, OpenMP and XLA, and the kernels' sample-group threads, go to
    sleep or keep spinning between calls), as in an optimiser that calls one
    implementation again and again.
    """
    times = {name: [] for name in timers}
    for _ in range(repeats):
        for name, fn in timers.items():
            fn()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in times.items()}


# ---------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    key: str
    label: str
    problem: object
    z: np.ndarray
    torch: bool = True
    jax: bool = True
    torch_sparse: bool = False
    results: dict = field(default_factory=dict)

    @property
    def core(self):
        return self.problem.model.core


def _xor(n):
    return st.load_dataset("xor", n_samples=n, test_fraction=0.0, seed=0)


def _digits():
    return st.load_dataset("digits", test_fraction=0.0)


def neural_ode_case(key, label, data, n_steps, field="bottleneck", scheme="euler"):
    width = data.x_train.shape[1]
    model = st.NeuralODE(
        width,
        width,
        grids.time_grid(1.0, n_steps),
        field=field,
        scheme=scheme,
        hidden=width,
    )
    problem = st.Problem(
        model,
        data.x_train,
        data.y_train,
        loss="cross_entropy",
        lam=1e-3,
        n_classes=data.n_classes,
    )
    return Case(key, label, problem, problem.initial_point(0, 1.0))


def spacetime_case(key, label, n_steps, field="bottleneck"):
    config = st.validate(
        {
            "data": {"name": "digits", "test_fraction": 0.0},
            "model": {
                "kind": "spacetime",
                "field": field,
                "activation": "tanh",
                "T": 3.0,
                "n_steps": n_steps,
            },
            "spacetime": {
                "rule": "midpoint",
                "widths": [[0.0, 8, 8], [1.0, 6, 6], [2.0, 4, 4]],
                "transfer": "linear",
                "l2_coordinates": True,
            },
            "problem": {"loss": "cross_entropy", "lam": 1e-3},
        }
    )
    _, _, problem = st.build(config)
    case = Case(key, label, problem, problem.initial_point(0, 1.0), jax=False)
    case.torch_sparse = True
    return case


def make_cases(selected):
    cases = []
    if "a" in selected:
        data = _xor(2000)
        for L in (100, 1000):
            cases.append(
                neural_ode_case(f"a-{L}", f"(a) bottleneck d=2, L={L}", data, L)
            )
        for L in (100, 1000):
            cases.append(
                neural_ode_case(
                    f"a-in-{L}", f"(a) inside d=2, L={L}", data, L, field="inside"
                )
            )
    if "b" in selected:
        data = _digits()
        for L in (50, 200):
            cases.append(neural_ode_case(f"b-{L}", f"(b) digits d=64, L={L}", data, L))
    if "c" in selected:
        cases.append(spacetime_case("c-20", "(c) space-time 8x8>6x6>4x4, L=20", 20))
    if "d" in selected:
        cases.append(
            neural_ode_case(
                "d-1000", "(d) RK4 d=2, L=1000", _xor(2000), 1000, scheme="rk4"
            )
        )
    return cases


def forward_flops(core, n_samples):
    """Matrix-product flops of one forward pass (all stages)."""
    per = 0
    for k in range(core.n_steps):
        n, h = int(core.widths[k]), int(core.hidden[k])
        per += 4 * n * h if core.field.name == "bottleneck" else 2 * n * n
    return per * n_samples * core.scheme.n_stages


def activation_count(core, n_samples):
    """Activations one forward pass evaluates (the reverse pass reuses them)."""
    return int(core.hidden.sum()) * n_samples * core.scheme.n_stages


# ---------------------------------------------------------------------------
# Running one case


def rel_diff(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def run_case(case, repeats, log):
    problem, z = case.problem, case.z
    res = case.results
    n = problem.x0.shape[0]
    theta, p, p0 = problem.split(z)

    t = time.perf_counter()
    with st.single_threaded_blas():
        f_lib, g_lib = problem(z)
    res["lib_first"] = time.perf_counter() - t
    threads = numba.get_num_threads()

    def lib_one_thread():
        numba.set_num_threads(1)
        try:
            problem(z)
        finally:
            numba.set_num_threads(threads)

    timers = {"lib": lambda: problem(z), "lib_1": lib_one_thread}

    y = np.asarray(problem.targets[:, 0], dtype=np.int64)
    refs = []
    if case.torch:
        refs.append(("torch", references.TorchReference))
    if case.torch_sparse:
        refs.append(
            ("torch_sparse", lambda *a: references.TorchReference(*a, sparse=True))
        )
    if case.jax:
        refs.append(("jax", references.JaxReference))
    for name, make in refs:
        ref = make(case.core, problem.x0, y, problem.lam)
        args = ref.parameters(theta, p, p0)
        t = time.perf_counter()
        f_ref, g_ref = ref.value_and_grad(args)
        res[f"{name}_first"] = time.perf_counter() - t
        res[f"{name}_dvalue"] = abs(f_ref - f_lib) / abs(f_lib)
        res[f"{name}_dgrad"] = rel_diff(g_ref, g_lib)
        if res[f"{name}_dvalue"] > TOL or res[f"{name}_dgrad"] > TOL:
            raise SystemExit(
                f"{name} disagrees with the library on {case.key}: objective "
                f"{res[f'{name}_dvalue']:.1e}, gradient {res[f'{name}_dgrad']:.1e}"
            )
        log(
            f"  {name}: objective and gradient agree (relative differences "
            f"{res[f'{name}_dvalue']:.1e}, {res[f'{name}_dgrad']:.1e})"
        )
        timers[name] = lambda ref=ref, args=args: ref.value_and_grad(args)

    count = activation_count(case.core, n)
    res["act_count"] = count
    for fn in list(timers.values()):
        fn()  # warm-up
    res["fused"] = case.core.narrow_kernels is not None
    timers.update(tanh_timers(count, res["fused"]))
    flops = 3 * forward_flops(case.core, n)
    res["load_before"] = load()
    # BLAS held to one thread through the rounds, as spacetime.solve holds it: the
    # library's own BLAS threads would otherwise spin between its calls. PyTorch's
    # MKL (linked into libtorch) and XLA's Eigen are not affected by the limit.
    with st.single_threaded_blas():
        res.update(interleaved(timers, repeats))
    # dgemm after the others, not in turn with them: OpenBLAS's threads keep
    # spinning for a while after a call and would take cores from the next timer
    gemm = {}
    gemm["dgemm"], res["dgemm_flops"] = dgemm_timer(flops)
    gemm["dgemm_1"] = _one_blas_thread(dgemm_timer(flops / _THREADS)[0])
    res["dgemm_1_flops"] = dgemm_timer(flops / _THREADS)[1]
    res.update(interleaved(gemm, repeats))
    res["load_after"] = load()
    for name in [k for k in timers if k in ("lib", "torch", "torch_sparse", "jax")]:
        fn = timers[name]
        with st.single_threaded_blas():
            res[f"{name}_rss"] = peak_rss_mib(fn)
    res["gflops"] = flops / res["lib"] / 1e9
    res["dgemm_gflops"] = res["dgemm_flops"] / res["dgemm"] / 1e9
    # one BLAS thread, times the thread count: the rate of perfect scaling
    res["dgemm_ideal_gflops"] = _THREADS * res["dgemm_1_flops"] / res["dgemm_1"] / 1e9
    log("  " + ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in res.items() if k in timers))


# ---------------------------------------------------------------------------
# Scaling, threads, start-up


def fit_exponent(xs, ts):
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def min_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def scaling(repeats, log):
    """Fitted exponents of the library's time in N (L = 200) and in L (N = 2000).

    Case (a), with all threads and with one; the least of ``repeats`` times per
    size, the least being the least disturbed by other processes.
    """
    data = _xor(16000)
    out = {}
    threads = numba.get_num_threads()
    # from N = 2,000 on every group's blocks are full (128 samples); below, smaller
    # blocks make a sample dearer and the fitted exponent sublinear
    for name, sizes in (("N", [2000, 4000, 8000, 16000]), ("L", [125, 250, 500, 1000])):
        for n_threads in (threads, 1):
            numba.set_num_threads(n_threads)
            try:
                ts = []
                for size in sizes:
                    if name == "N":
                        case = neural_ode_case("", "", _subset(data, size), 200)
                    else:
                        case = neural_ode_case("", "", _subset(data, 2000), size)
                    with st.single_threaded_blas():
                        ts.append(
                            min_time(lambda case=case: case.problem(case.z), repeats)
                        )
            finally:
                numba.set_num_threads(threads)
            key = f"{name}{n_threads}"
            out[key] = (sizes, ts, fit_exponent(sizes, ts))
            log(f"  {n_threads} thread(s): time ~ {name}^{out[key][2]:.3f}")
    return out


def _subset(data, n):
    class Sub:
        pass

    sub = Sub()
    sub.x_train = data.x_train[:n]
    sub.y_train = data.y_train[:n]
    sub.n_classes = data.n_classes
    return sub


def thread_speedup(cases, repeats, log):
    """Library time with one thread against all threads, taking turns."""
    out = {}
    for case in cases:
        if case.key not in ("a-1000", "b-50", "c-20"):
            continue
        threads = numba.get_num_threads()

        def one(case=case, threads=threads):
            numba.set_num_threads(1)
            try:
                case.problem(case.z)
            finally:
                numba.set_num_threads(threads)

        with st.single_threaded_blas():
            times = interleaved(
                {"one": one, "all": lambda case=case: case.problem(case.z)}, repeats
            )
        out[case.key] = (times["one"], times["all"], times["one"] / times["all"])
        log(
            f"  {case.key}: 1 thread {fmt_ms(times['one'])} ms, {threads} threads "
            f"{fmt_ms(times['all'])} ms, speed-up {out[case.key][2]:.2f}"
        )
    return out


_STARTUP = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import sys, json
    import spacetime
    t_import = time.perf_counter() - t0
    from spacetime import _problem
    marks = {}
    original = _problem.Problem._evaluate
    def timed(self, z):
        marks.setdefault("start", time.perf_counter() - t0)
        out = original(self, z)
        marks.setdefault("first", time.perf_counter() - t0)
        return out
    _problem.Problem._evaluate = timed
    from spacetime.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    print(json.dumps({"import": t_import, "before_first": marks["start"],
                      "first_done": marks["first"],
                      "total": time.perf_counter() - t0}))
    """
)


def startup(log):
    """Start-up of ``spacetime run`` (default experiment, one iteration), twice.

    Times from the interpreter's start: ``import spacetime``, the start of the first
    objective evaluation (data, model, problem built) and its end (which loads the
    compiled kernels from Numba's cache, or compiles them). The second run is the
    one a user sees every time after the first.
    """
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(2):
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _STARTUP,
                    "run",
                    "-q",
                    "--max-iter",
                    "1",
                    "--overwrite",
                    "-o",
                    os.path.join(tmp, "run.h5"),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=tmp,
            )
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = out[-1]
            log(
                f"  run {run + 1}: import {r['import']:.2f} s, first evaluation "
                f"{r['before_first']:.2f} s to {r['first_done']:.2f} s"
            )
    return out


# ---------------------------------------------------------------------------
# Report


def fmt_ms(t):
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return "-"
    return f"{t * 1e3:.0f}" if t >= 0.1 else f"{t * 1e3:.1f}"


def _ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"


def report(cases, info, extra):
    threads = info["threads"]
    out = []
    out.append(
        f"- Machine: {info['cpu']}, {info['cores']} cores; load average at "
        f"start {info['load_start']}, at end {info['load_end']}."
    )
    for b in info["blas"]:
        out.append(
            f"- BLAS: {b['library']} ({b['api']} {b['version']}, kernel "
            f"{b['kernel']}, {b['threads']} threads)."
        )
    out.append(
        f"- OPENBLAS_CORETYPE={info['coretype']!r}, OPENBLAS_L2_SIZE={info['l2']!r}."
    )
    out.append(
        "- Versions: "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + "."
    )
    out.append(
        f"- Threads: {threads} for every implementation (NUMBA_NUM_THREADS, "
        f"torch.set_num_threads({threads}), XLA_FLAGS='{info['xla']}')."
    )
    out.append(
        f"- dgemm, NumPy (1797x64) @ (64x64): {info['dgemm']:.1f} GFLOP/s at the "
        "start. Each case also times it after the implementations, on as "
        "many flops as the library's count (three times the forward pass's matrix "
        f"products), with {_THREADS} BLAS threads and with one thread on a "
        f"{_THREADS}-th of the flops; the library's rate is given as a share of the "
        f"second times {_THREADS} (perfect scaling: the higher, on a busy machine)."
    )
    out.append("")
    out.append(
        "Milliseconds per objective-and-gradient evaluation, median of "
        f"{info['repeats']} after a warm-up, the implementations taking turns:"
    )
    out.append("")
    out.append(
        f"| case | library | library, 1 thread | PyTorch | JAX | PyTorch / library | "
        "JAX / library | library GFLOP/s (of dgemm's, ideal) | dgemm GFLOP/s: "
        f"{_THREADS} BLAS threads / 1 thread x {_THREADS} (ideal) |"
    )
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cases:
        r = c.results
        tor = r.get("torch")
        if "torch_sparse" in r:
            tor = min(r["torch"], r["torch_sparse"])
        jx = r.get("jax")
        out.append(
            f"| {c.label} | {fmt_ms(r['lib'])} | {fmt_ms(r['lib_1'])} | "
            f"{fmt_ms(tor)} | {fmt_ms(jx)} | "
            f"{_ratio(tor, r['lib'])} | {_ratio(jx, r['lib'])} | "
            f"{r['gflops']:.1f} ({100 * r['gflops'] / r['dgemm_ideal_gflops']:.0f}%)"
            f" | {r['dgemm_gflops']:.1f} / {r['dgemm_ideal_gflops']:.1f} |"
        )
    out.append("")
    out.append(
        "The activations alone: tanh over as many numbers as one evaluation "
        "takes (the forward pass evaluates each once; the reverse pass "
        "reuses them), in milliseconds. The kernels' tanh is compiled as the "
        "case's kernels compile it: with FMA contraction (marked *) for the fused "
        "kernels of narrow Euler networks, without for the others:"
    )
    out.append("")
    out.append(
        f"| case | tanh count | NumPy np.tanh (1 thread) | Numba np.tanh loop "
        f"({threads} threads) | kernels' tanh ({threads} threads) | "
        "library / NumPy tanh | library / kernels' tanh |"
    )
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cases:
        r = c.results
        out.append(
            f"| {c.label} | {r['act_count']:,} | {fmt_ms(r['tanh_numpy'])} | "
            f"{fmt_ms(r['tanh_numba'])} | {fmt_ms(r['tanh_kernel'])}"
            f"{'*' if r['fused'] else ''} | "
            f"{r['lib'] / r['tanh_numpy']:.1f} | {r['lib'] / r['tanh_kernel']:.1f} |"
        )
    out.append("")
    out.append(
        "First call (compilation or cache load) and peak resident memory "
        "above the process's before the call:"
    )
    out.append("")
    out.append(
        "| case | first call s: library / PyTorch / JAX | peak RSS MiB: "
        "library / PyTorch / JAX | largest relative difference to the "
        "library (objective, gradient) |"
    )
    out.append("| --- | --- | --- | --- |")
    for c in cases:
        r = c.results

        def get(key, fmt, r=r):
            return fmt.format(r[key]) if key in r else "-"

        diffs = [
            max(r[f"{k}_dvalue"], r[f"{k}_dgrad"])
            for k in ("torch", "torch_sparse", "jax")
            if f"{k}_dvalue" in r
        ]
        out.append(
            f"| {c.label} | {get('lib_first', '{:.2f}')} / "
            f"{get('torch_first', '{:.2f}')} / {get('jax_first', '{:.2f}')} | "
            f"{get('lib_rss', '{:.0f}')} / {get('torch_rss', '{:.0f}')} / "
            f"{get('jax_rss', '{:.0f}')} | {max(diffs):.1e} |"
        )
    for c in cases:
        if "torch_sparse" in c.results:
            out.append("")
            out.append(
                f"{c.label}: PyTorch with dense transfer matrices "
                f"{fmt_ms(c.results['torch'])} ms, with sparse CSR ones "
                f"{fmt_ms(c.results['torch_sparse'])} ms (the table shows the "
                "faster)."
            )
    if "scaling" in extra:
        s = extra["scaling"]
        out.append("")
        for n_threads in (threads, 1):
            out.append(
                "Scaling, case (a) bottleneck, {} thread(s): time ~ N^{:.2f} over "
                "N = {} at L = 200, ~ L^{:.2f} over L = {} at N = 2000 (least of {} "
                "runs each).".format(
                    n_threads,
                    s[f"N{n_threads}"][2],
                    s[f"N{n_threads}"][0],
                    s[f"L{n_threads}"][2],
                    s[f"L{n_threads}"][0],
                    info["repeats"],
                )
            )
    if "threads" in extra:
        out.append("")
        for key, (one, many, ratio) in extra["threads"].items():
            out.append(
                f"Threads, {key}: 1 thread {fmt_ms(one)} ms, {threads} "
                f"threads {fmt_ms(many)} ms: {ratio:.2f}x."
            )
    if "startup" in extra:
        out.append("")
        for i, r in enumerate(extra["startup"]):
            out.append(
                f"Start-up of `spacetime run` (default experiment), run {i + 1}: "
                f"`import spacetime` {r['import']:.2f} s; first evaluation starts "
                f"at {r['before_first']:.2f} s and ends at {r['first_done']:.2f} s."
            )
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads for every implementation (default: all cores)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cases", default="a,b,c,d", help="comma-separated subset of a, b, c, d"
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip the scaling, thread and start-up measurements",
    )
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    repeats = max(args.repeats, 5)

    import torch

    torch.set_num_threads(_THREADS)
    numba.set_num_threads(min(_THREADS, numba.config.NUMBA_NUM_THREADS))

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    info = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "threads": _THREADS,
        "xla": XLA_FLAGS,
        "versions": versions(),
        "coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "l2": os.environ.get("OPENBLAS_L2_SIZE"),
        "load_start": load(),
        "repeats": repeats,
    }
    info["blas"] = blas_info()
    info["dgemm"] = dgemm_rate(repeats)
    log(f"dgemm {info['dgemm']:.1f} GFLOP/s")

    cases = make_cases(set(args.cases.split(",")))
    for case in cases:
        log(f"{case.label}:")
        run_case(case, repeats, log)
    extra = {}
    if not args.no_extras:
        log("scaling:")
        extra["scaling"] = scaling(repeats, log)
        log("threads:")
        extra["threads"] = thread_speedup(cases, repeats, log)
        log("start-up:")
        extra["startup"] = startup(log)
    info["load_end"] = load()
    text = report(cases, info, extra)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
