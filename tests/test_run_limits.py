"""Limits a run must honour exactly, and output places checked before training."""

from pathlib import Path

import pytest

import spacetime
from spacetime.cli import main

TINY = {
    "data": {"name": "spheres", "n_samples": 40, "test_fraction": 0.25},
    "model": {"width": 3, "n_steps": 3},
    "problem": {"loss": "logistic"},
}


def test_zero_iterations_take_no_optimiser_step(tmp_path):
    run = spacetime.train({**TINY, "optimizer": {"max_iter": 0}}, out=tmp_path / "r.h5")
    assert run.result.n_iter == 0
    assert run.result.status == "max_iter"
    assert list(run.result.history.iteration) == [0]


def test_resume_does_not_exceed_the_iteration_budget(tmp_path):
    first = spacetime.train(
        {**TINY, "optimizer": {"max_time": 1e-9}}, out=tmp_path / "r.h5"
    )
    assert first.result.status == "time_limit"
    done = first.result.n_iter
    again = spacetime.train(resume=tmp_path / "r.h5", max_iter=done, max_time=0)
    assert again.result.n_iter == done


def test_a_resumed_run_reports_totals_over_all_its_parts(tmp_path):
    stopped = spacetime.train(
        {**TINY, "optimizer": {"max_time": 1e-9}}, out=tmp_path / "s.h5"
    )
    part = spacetime.load_run(tmp_path / "s.h5")
    again = spacetime.train(
        resume=tmp_path / "s.h5", max_iter=stopped.result.n_iter + 4, max_time=0
    )
    whole = spacetime.load_run(tmp_path / "s.h5")
    assert again.result.n_iter == stopped.result.n_iter + 4
    # every iteration evaluates at least once: the count covers both parts
    assert whole.optimizer["n_fev"] >= part.optimizer["n_fev"] + 4
    assert whole.optimizer["wall_time"] > part.optimizer["wall_time"]
    assert whole.results["wall_time"] > part.results["wall_time"]


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a Linux /sys")
def test_a_folder_the_file_system_refuses_is_found_before_training(capsys):
    code = main(["run", "-o", "/sys/spacetime-run.h5", "--max-iter", "1"])
    assert code == 2
    assert "not writable" in capsys.readouterr().err
