"""Sweeps: local and Dask executors, the index, resuming, failures and chains."""

import copy
import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

import spacetime as st
from spacetime._run import build
from spacetime._sweep import case_hash, parse_sweep_table
from spacetime.cli import main

BASE = {
    "data": {"name": "spheres", "n_samples": 40},
    "model": {"width": 3, "n_steps": 4},
    "optimizer": {"max_iter": 15},
    "save": {"trajectories": False},
}
GRID = {"model.T": [1.0, 2.0, 3.0], "problem.lam": [1e-2, 1e-3]}


def sweep_config(out, grid=GRID, **table):
    cfg = copy.deepcopy(BASE)
    cfg["sweep"] = {"grid": copy.deepcopy(grid), "out": str(out), **table}
    return cfg


def case_files(folder):
    return sorted(p for p in folder.glob("*.h5") if p.name != "index.h5")


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    return st.run_sweep(sweep_config(out), workers=2, progress=False)


@pytest.fixture(scope="module")
def client():
    from dask import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


# -- the plan -----------------------------------------------------------------


def test_unknown_grid_key_names_the_closest_valid_one():
    with pytest.raises(st.ConfigError, match="did you mean 'problem.lam'"):
        parse_sweep_table({"grid": {"problem.lamb": [1.0]}})


def test_nested_and_dotted_grid_keys_are_the_same_sweep():
    dotted = parse_sweep_table({"grid": {"model.T": [1, 2]}})
    nested = parse_sweep_table({"grid": {"model": {"T": [1, 2]}}})
    assert dotted["grid"] == nested["grid"] == {"model.T": [1, 2]}


def test_chain_key_must_be_swept_and_keep_the_parameter_count():
    with pytest.raises(st.ConfigError, match="not a key of sweep.grid"):
        parse_sweep_table({"grid": {"model.T": [1, 2]}, "chain": "problem.lam"})
    with pytest.raises(st.ConfigError, match="number of parameters"):
        parse_sweep_table({"grid": {"model.width": [3, 4]}, "chain": "model.width"})


def test_warm_start_rule_is_checked_and_enters_the_chained_hashes_only(tmp_path):
    grid = {"model.T": [1.0, 2.0]}
    with pytest.raises(st.ConfigError, match="needs sweep.chain"):
        parse_sweep_table({"grid": grid, "warm_start": "turnpike"})
    with pytest.raises(st.ConfigError, match="'rescale', 'turnpike'"):
        parse_sweep_table({"grid": grid, "chain": "model.T", "warm_start": "stretch"})
    # horizons 0.5 and 1 at one step (the turnpike rule needs it)
    grid = {"model.time_nodes": [[0.0, 0.25, 0.5], [0.0, 0.25, 0.5, 0.75, 1.0]]}
    chain = "model.time_nodes"
    plain = st.plan_sweep(sweep_config(tmp_path / "s", grid=grid, chain=chain))
    rescale = st.plan_sweep(
        sweep_config(tmp_path / "s", grid=grid, chain=chain, warm_start="rescale")
    )
    turnpike = st.plan_sweep(
        sweep_config(tmp_path / "s", grid=grid, chain=chain, warm_start="turnpike")
    )
    assert plain.warm_start == "rescale" and turnpike.warm_start == "turnpike"
    # the default rule keeps the hashes of sweeps written before there were rules
    assert [c.hash for c in rescale.cases] == [c.hash for c in plain.cases]
    # the first case starts cold under either rule; the second does not
    assert turnpike.cases[0].hash == plain.cases[0].hash
    assert turnpike.cases[1].hash != plain.cases[1].hash


def test_turnpike_chain_needs_one_time_step_and_is_refused_before_running(tmp_path):
    # along model.T at a fixed number of layers the step changes with T
    cfg = sweep_config(
        tmp_path / "s",
        grid={"model.T": [1.0, 2.0]},
        chain="model.T",
        warm_start="turnpike",
    )
    with pytest.raises(st.ConfigError, match="one uniform time step.*time_nodes"):
        st.run_sweep(cfg, workers=1, progress=False)
    assert not (tmp_path / "s").exists()
    # along the time grid with one step the plan is accepted
    nodes = {"model.time_nodes": [[0.0, 0.25, 0.5], [0.0, 0.25, 0.5, 0.75, 1.0]]}
    ok = sweep_config(
        tmp_path / "t", grid=nodes, chain="model.time_nodes", warm_start="turnpike"
    )
    plan = st.plan_sweep(ok)
    assert plan.warm_start == "turnpike" and plan.cases[1].previous == 0


def test_invalid_case_value_is_refused_before_anything_runs(tmp_path):
    cfg = sweep_config(tmp_path / "s", grid={"model.T": [1.0, -1.0]})
    with pytest.raises(st.ConfigError, match="model.T"):
        st.run_sweep(cfg, workers=1, progress=False)
    assert not (tmp_path / "s").exists()


def test_case_hash_ignores_key_order_threads_and_output_path():
    a = st.validate({"model": {"T": 1, "n_steps": 4}, "problem": {"lam": 0.1}})
    b = st.validate({"problem": {"lam": 0.1}, "model": {"n_steps": 4, "T": 1.0}})
    b["threads"] = 7
    b["save"]["path"] = "elsewhere.h5"
    assert case_hash(a) == case_hash(b)
    b["model"]["T"] = 1.5
    assert case_hash(a) != case_hash(b)
    assert case_hash(a) != case_hash(a, warm_start="0123abcd")


def test_plan_names_cases_by_values_and_hash(tmp_path):
    plan = st.plan_sweep(sweep_config(tmp_path / "s"))
    assert len(plan.cases) == 6
    first = plan.cases[0]
    assert first.name == f"T=1_lam=0.01-{first.hash}"
    assert first.config["model"]["T"] == 1.0
    assert first.config["problem"]["lam"] == 1e-2
    assert len({c.hash for c in plan.cases}) == 6


# -- local runs, the index ----------------------------------------------------


def test_local_sweep_writes_one_file_per_case_and_an_index_matching_them(local):
    files = case_files(local.out)
    assert [p.name for p in files] == sorted(c.file for c in local.cases)
    index = st.load_sweep(local.out)
    with open(local.summary_path, newline="") as fh:
        rows = {row["name"]: row for row in csv.DictReader(fh)}
    assert len(index) == len(rows) == 6
    for rec in index:
        run = st.load_run(local.out / rec.file)
        assert rec.status == run.status == "max_iter"
        assert run.config["model"]["T"] == rec.values["model.T"]
        assert run.config["problem"]["lam"] == rec.values["problem.lam"]
        assert rec.objective == run.results["objective"]
        assert rec.risk == run.results["risk"]
        assert rec.test_accuracy == run.results["test_accuracy"]
        assert rec.test_risk == run.results["test_risk"]
        assert rec.n_iter == run.optimizer["n_iter"] == 15
        assert float(rows[rec.name]["objective"]) == rec.objective
        assert int(rows[rec.name]["n_iter"]) == rec.n_iter
        with h5py.File(local.out / rec.file) as f:
            assert f["sweep"].attrs["case_hash"] == rec.hash
    with h5py.File(local.index_path) as f:
        name = index[0].name
        linked = f["runs"][name]["results"].attrs["objective"]
        assert linked == index[0].objective


def test_case_lost_with_a_killed_local_worker_runs_again(local, tmp_path, caplog):
    killed = []

    def kill_a_worker(rec):
        if killed:
            return
        workers = [
            p
            for p in multiprocessing.active_children()
            if p.name.startswith("SpawnProcess") and p.is_alive()
        ]
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)

    res = st.run_sweep(
        sweep_config(tmp_path / "s"), workers=2, progress=False, on_case=kill_a_worker
    )
    assert killed
    assert "lost with its worker" in caplog.text
    assert res.complete
    for a, b in zip(res, local, strict=True):
        assert a.objective == b.objective


def test_pool_broken_before_the_next_submission_is_replaced(local, tmp_path, caplog):
    # the worker is dead and the pool knows it before the sweep submits its next
    # case: the submission must go to a new pool, not fail the sweep
    killed = []

    def kill_and_wait(rec):
        if killed:
            return
        worker = next(
            p
            for p in multiprocessing.active_children()
            if p.name.startswith("SpawnProcess") and p.is_alive()
        )
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        time.sleep(0.5)  # the pool's manager thread marks the pool broken
        killed.append(worker.pid)

    res = st.run_sweep(
        sweep_config(tmp_path / "s"), workers=2, progress=False, on_case=kill_and_wait
    )
    assert killed
    assert res.complete, res.summary()
    for a, b in zip(res, local, strict=True):
        assert a.objective == b.objective


def test_any_executor_runs_the_sweep_with_the_same_results(local, tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        res = st.run_sweep(sweep_config(tmp_path / "t"), pool, progress=False)
    assert res.complete, res.summary()
    assert [c.objective for c in res] == [c.objective for c in local]


def test_dask_cluster_gives_the_local_results_bit_for_bit(local, client, tmp_path):
    res = st.run_sweep(sweep_config(tmp_path / "d"), scheduler=client, progress=False)
    assert res.complete
    assert [c.hash for c in res] == [c.hash for c in local]
    for a, b in zip(res, local, strict=True):
        assert a.objective == b.objective
        assert a.n_iter == b.n_iter


def test_dask_workers_running_other_config_keys_are_refused(
    client, tmp_path, monkeypatch
):
    from spacetime import _sweep

    keys = _sweep._dotted_keys()
    monkeypatch.setattr(_sweep, "_dotted_keys", lambda: [*keys, "problem.new_key"])
    with pytest.raises(st.ConfigError, match="another version of spacetime"):
        st.run_sweep(sweep_config(tmp_path / "v"), scheduler=client, progress=False)
    assert not (tmp_path / "v" / "index.h5").exists()


def test_killed_dask_worker_is_rescheduled_and_every_case_completes(
    local, client, tmp_path
):
    killed = []

    def kill_a_busy_worker(rec):
        if killed:
            return
        busy = [a for a, keys in client.processing().items() if keys]
        pids = client.run(os.getpid)
        victim = (busy or list(pids))[0]
        os.kill(pids[victim], signal.SIGKILL)
        killed.append(victim)

    res = st.run_sweep(
        sweep_config(tmp_path / "k"),
        scheduler=client,
        progress=False,
        on_case=kill_a_busy_worker,
    )
    assert killed
    assert res.complete and not res.interrupted
    for a, b in zip(res, local, strict=True):
        assert a.objective == b.objective


# -- resuming -------------------------------------------------------------------


def test_interrupted_sweep_resumes_without_redoing_finished_cases(tmp_path):
    grid = {"model.T": [1.0, 2.0], "problem.lam": [1e-2, 1e-3]}
    cfg = sweep_config(tmp_path / "s", grid=grid)
    seen = []

    def stop_after_two(rec):
        seen.append(rec.name)
        if len(seen) == 2:
            raise StopIteration

    first = st.run_sweep(cfg, workers=1, progress=False, on_case=stop_after_two)
    assert first.interrupted
    index = st.load_sweep(tmp_path / "s")
    assert index.interrupted
    assert [c.name for c in index if c.complete] == seen
    assert sorted(c.status for c in index if not c.complete) == ["pending"] * 2
    assert len(case_files(tmp_path / "s")) == 2
    mtimes = {n: (tmp_path / "s" / f"{n}.h5").stat().st_mtime_ns for n in seen}

    second = st.run_sweep(cfg, workers=1, progress=False)
    assert second.complete and not second.interrupted
    assert sorted(c.name for c in second if c.reused) == sorted(seen)
    assert sum(not c.reused for c in second) == 2
    for n, t in mtimes.items():
        assert (tmp_path / "s" / f"{n}.h5").stat().st_mtime_ns == t


def test_case_stopped_at_its_time_limit_resumes_from_its_iterate(tmp_path):
    cfg = sweep_config(tmp_path / "s", grid={"problem.lam": [1e-2]})
    cfg["optimizer"]["max_time"] = 1e-9  # stops after the first iteration
    first = st.run_sweep(cfg, workers=1, progress=False)
    rec = first[0]
    assert rec.status == "time_limit" and not first.complete
    partial = st.load_run(tmp_path / "s" / rec.file).history

    cfg["optimizer"]["max_time"] = 0.0  # no limit: the same case, resumed
    second = st.run_sweep(cfg, workers=1, progress=False)
    assert second[0].hash == rec.hash and second[0].status == "max_iter"
    full = st.load_run(tmp_path / "s" / rec.file).history
    k = len(partial["iteration"])
    np.testing.assert_array_equal(full["objective"][:k], partial["objective"])
    assert full["iteration"][-1] == 15 and len(full["iteration"]) == 16


def test_failing_case_is_recorded_and_the_others_complete(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[data]\nname = "spheres"\nn_samples = 40\n'
        "[model]\nn_steps = 4\n[optimizer]\nmax_iter = 15\n"
        "[save]\ntrajectories = false\n"
        f'[sweep]\ngrid = {{ "model.width" = [3, 1] }}\nout = "{tmp_path / "s"}"\n'
    )
    assert main(["sweep", str(path), "--workers", "2", "-q"]) == 1
    index = st.load_sweep(tmp_path / "s")
    good, bad = index
    assert good.status == "max_iter" and good.values["model.width"] == 3
    assert bad.status == "failed" and "width" in bad.error
    assert np.isnan(bad.objective)
    assert [p.name for p in case_files(tmp_path / "s")] == [good.file]
    with open(index.summary_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1]["status"] == "failed" and rows[1]["error"] == bad.error


# -- chains ---------------------------------------------------------------------


def test_chain_warm_starts_from_the_rescaled_predecessor_solution(tmp_path):
    grid = {"model.T": [1.0, 2.0], "problem.lam": [1e-3]}
    res = st.run_sweep(
        sweep_config(tmp_path / "s", grid=grid, chain="model.T"),
        workers=1,
        progress=False,
    )
    assert res.complete
    first, second = res
    assert second.previous == first.name
    prev = st.load_run(tmp_path / "s" / first.file)
    succ = st.load_run(tmp_path / "s" / second.file)
    _, _, problem = build(succ.config)
    z = problem.join(prev.theta * (1.0 / 2.0), prev.p, prev.p0)
    expected = problem(z)[0]
    assert succ.history["objective"][0] == pytest.approx(expected, rel=1e-12)
    # the risk of the rescaled start is the predecessor's final risk: same flow
    assert succ.history["risk"][0] == pytest.approx(prev.results["risk"], rel=1e-9)
    # the seeded start a case without a predecessor would take is worse
    cold_start = problem(problem.initial_point(0, succ.config["model"]["init_scale"]))
    assert succ.history["objective"][0] < cold_start[0]


# -- Ctrl-C ------------------------------------------------------------------------


def start_sweep_process(tmp_path, ignore_interrupts=False, long_iters=5000):
    """A ``spacetime sweep`` process with a short case, then one of many seconds.

    With ``ignore_interrupts`` it starts with SIGINT ignored, as a background job
    or a command under nohup does. The cases are large enough (1000 samples, 40
    layers: tens of milliseconds per iteration) that the long one is still running
    seconds after the short one is done.
    """
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[data]\nname = "digits"\nmax_samples = 1000\n'
        "[model]\nn_steps = 40\n"
        "[optimizer]\ngtol = 0.0\nftol = 0.0\n"
        "[save]\ntrajectories = false\n"
        f'[sweep]\ngrid = {{ "optimizer.max_iter" = [5, {long_iters}] }}\n'
        f'out = "{tmp_path / "s"}"\n'
    )
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    return subprocess.Popen(
        [sys.executable, "-m", "spacetime.cli", "sweep", str(path), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=ignore if ignore_interrupts else None,
    )


def wait_for_the_short_case(tmp_path, proc, pause):
    """Wait until the sweep's first case is complete, then ``pause`` seconds: both
    workers have started and the long case is inside the optimiser."""
    deadline = time.monotonic() + 120
    done = False
    while not done and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (tmp_path / "s" / "index.h5").exists():
            done = any(c.complete for c in st.load_sweep(tmp_path / "s"))
    time.sleep(pause)


def children(pid):
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_stops_the_sweep_with_status_130_and_a_valid_index(tmp_path, how):
    proc = start_sweep_process(tmp_path)
    try:
        wait_for_the_short_case(tmp_path, proc, 1.0)
        if how == "ctrl-c":  # the terminal sends SIGINT to the whole group
            os.killpg(proc.pid, signal.SIGINT)
        else:  # a batch system sends SIGTERM to the process it started
            os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err.decode()
    index = st.load_sweep(tmp_path / "s")
    assert index.interrupted
    short, long = index
    assert short.status == "max_iter" and short.n_iter == 5
    assert long.status == "interrupted" and 0 <= long.n_iter < 5000
    run = st.load_run(tmp_path / "s" / long.file)
    assert run.status == "interrupted"
    assert run.optimizer["n_iter"] == long.n_iter


def test_a_sweep_that_ignores_ctrl_c_runs_on_with_its_workers(tmp_path):
    # started with SIGINT ignored (a background job, nohup): the interrupt that
    # reaches the whole process group must not stop the workers' cases either
    proc = start_sweep_process(tmp_path, ignore_interrupts=True, long_iters=150)
    try:
        wait_for_the_short_case(tmp_path, proc, 0.5)
        assert proc.poll() is None, "the long case ended before the interrupt"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err.decode()
    index = st.load_sweep(tmp_path / "s")
    assert not index.interrupted
    short, long = index
    assert short.status == "max_iter" and short.n_iter == 5
    # the long case ran on to its own end (150 iterations or convergence)
    assert long.status in ("max_iter", "converged") and long.n_iter > 20


def running(pid):
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_of_a_killed_sweep_end_themselves(tmp_path):
    proc = start_sweep_process(tmp_path)
    try:
        deadline = time.monotonic() + 120
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            workers = [
                pid
                for pid in children(proc.pid)
                if b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()
            ]
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up in the sweep process
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(running, workers)):
            time.sleep(0.2)
        alive = [pid for pid in workers if running(pid)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive
