"""The test risk: the trained model's mean loss on the held-out test set.

Every stored test risk is checked against a NumPy formula written here from the
loss definitions of docs/model.md (not from the library's helper), applied to the
stored test predictions and labels. Regression runs use an .npz file with two
targets per sample and the squared loss.
"""

import contextlib
import csv
import io
import math
import re
import shutil

import h5py
import numpy as np
import pytest

import grids
import spacetime as st
from spacetime import _report
from spacetime._problem import mean_loss
from spacetime.cli import main

N_REG = 48


def _half_squared(pred, y):
    """(1/N) sum_i 1/2 |yhat_i - y_i|^2."""
    return 0.5 * float(np.sum((pred - y) ** 2)) / len(y)


def _cross_entropy(pred, y):
    """(1/N) sum_i (log sum_r exp(yhat_ir) - yhat_i,y_i)."""
    lse = np.log(np.sum(np.exp(pred), axis=1))
    return float(np.mean(lse - pred[np.arange(len(y)), y]))


@pytest.fixture(scope="module")
def regression_file(tmp_path_factory):
    """An .npz of 48 samples, 2 inputs and 2 smooth targets of them."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, size=(N_REG, 2))
    y = np.column_stack([np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1], x[:, 0] * x[:, 1]])
    path = tmp_path_factory.mktemp("data") / "reg.npz"
    np.savez(path, x=x, y=y)
    return path


def _regression_config(path, **data):
    return {
        "data": {
            "name": "file",
            "path": str(path),
            "task": "regression",
            "test_fraction": 0.25,
            **data,
        },
        "model": {"width": 3, "n_steps": 4},
        "problem": {"loss": "squared", "lam": 1e-3},
        "optimizer": {"max_iter": 25},
        "save": {"trajectories": False},
    }


@pytest.fixture(scope="module")
def regression_run(regression_file, tmp_path_factory):
    """The regression run trained through ``spacetime run``: (path, stdout)."""
    folder = tmp_path_factory.mktemp("reg")
    cfg = folder / "reg.toml"
    cfg.write_text(
        "[data]\n"
        'name = "file"\n'
        f'path = "{regression_file}"\n'
        'task = "regression"\n'
        "test_fraction = 0.25\n"
        "[model]\nwidth = 3\nn_steps = 4\n"
        '[problem]\nloss = "squared"\nlam = 1e-3\n'
        "[optimizer]\nmax_iter = 25\n"
        "[save]\ntrajectories = false\n"
    )
    path = folder / "reg.h5"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["run", str(cfg), "--out", str(path)]) == 0
    return path, out.getvalue()


# -- the loss helper against the kernels --------------------------------------


PROBLEMS = {
    "cross_entropy": ("classification", {}),
    "logistic": ("classification", {}),
    "squared classes": ("classification", {}),
    "squared vector": ("regression", {}),
    "lp 1.5": ("regression", {"loss_p": 1.5}),
    "lp 3": ("regression", {"loss_p": 3.0}),
}


@pytest.mark.parametrize("case", PROBLEMS)
@pytest.mark.parametrize("running", [False, True])
def test_mean_loss_of_the_predictions_is_the_kernels_training_risk(case, running):
    rng = np.random.default_rng(7)
    task, extra = PROBLEMS[case]
    loss = case.split()[0]
    x = rng.normal(size=(41, 3))
    if task == "regression":
        y = rng.normal(size=(41, 2))
    else:
        y = rng.integers(0, 2 if loss == "logistic" else 3, size=41)
    model = st.NeuralODE(3, 4, grids.time_grid(1.5, 3), field="inside")
    problem = st.Problem(
        model,
        x,
        y,
        loss=loss,
        task=task,
        lam=0.1,
        running_cost={"kind": "risk", "beta": 0.5} if running else None,
        **extra,
    )
    ev = problem.evaluate(problem.initial_point(0, 0.8))
    # outputs far from the targets, so that every loss is well away from 0
    assert ev["risk"] > 0.3
    risk = problem.empirical_risk(ev["predictions"], y)
    assert abs(risk - ev["risk"]) <= 1e-13
    assert mean_loss(ev["predictions"], problem.targets, loss, problem.loss_p) == risk
    # without the regulariser and the running cost, which the objective has
    reg = ev["objective"] - ev["risk"] - ev["running_cost"]
    assert reg > 1e-3
    assert (ev["running_cost"] > 1e-3) == running


def test_mean_loss_follows_the_loss_definitions():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(9, 3)) * 4.0
    y = rng.integers(0, 3, size=9)
    onehot = np.eye(3)[y]
    assert mean_loss(pred, onehot, "squared") == pytest.approx(
        _half_squared(pred, onehot), rel=1e-15
    )
    assert mean_loss(pred, onehot, "lp", 3.0) == pytest.approx(
        float(np.mean(np.sum(np.abs(pred - onehot) ** 3, axis=1))), rel=1e-14
    )
    assert mean_loss(pred, y[:, None].astype(float), "cross_entropy") == (
        pytest.approx(_cross_entropy(pred, y), rel=1e-14)
    )
    sign = 2.0 * (y % 2) - 1.0
    assert mean_loss(pred[:, :1], sign[:, None], "logistic") == pytest.approx(
        float(np.mean(np.log1p(np.exp(-sign * pred[:, 0])))), rel=1e-14
    )
    # large margins: no overflow, and the loss of a confident wrong answer
    big = np.array([[800.0], [-800.0]])
    assert mean_loss(big, np.array([[-1.0], [-1.0]]), "logistic") == 400.0
    assert math.isnan(mean_loss(np.zeros((0, 2)), np.zeros((0, 2)), "squared"))


# -- runs ---------------------------------------------------------------------


def test_regression_run_stores_the_test_risk_of_its_test_predictions(
    regression_run, regression_file
):
    path, _ = regression_run
    run = st.load_run(path)
    y_test = run.record["data"]["y_test"]
    y_train = run.record["data"]["y_train"]
    assert y_test.shape == (12, 2) and y_train.shape == (36, 2)
    test_pred = run.predictions["test"]
    # the predictions are those of the trained model and its output map
    dataset = st.load_dataset(
        "file", path=regression_file, task="regression", test_fraction=0.25
    )
    np.testing.assert_array_equal(dataset.y_test, y_test)
    np.testing.assert_allclose(
        run.predict(dataset.x_test, standardized=True), test_pred, atol=1e-12, rtol=0
    )
    test_risk = run.results["test_risk"]
    assert math.isfinite(test_risk) and test_risk > 0
    assert test_risk == pytest.approx(_half_squared(test_pred, y_test), rel=1e-13)
    # the training loss is the same formula on the training predictions
    assert run.results["risk"] == pytest.approx(
        _half_squared(run.predictions["train"], y_train), rel=1e-13, abs=1e-15
    )
    # not the objective: that one adds lam |u|^2
    assert run.results["objective"] > run.results["risk"] * (1 + 1e-9)
    assert math.isnan(run.results["test_accuracy"])


def test_run_and_info_print_the_test_loss(regression_run, capsys):
    path, stdout = regression_run
    run = st.load_run(path)
    printed = re.search(r"^test loss\s+(\S+)$", stdout, re.M)
    assert printed and float(printed.group(1)) == pytest.approx(
        run.results["test_risk"], rel=1e-5
    )
    # after the training loss, in the column of the other numbers
    lines = stdout.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("training loss"))
    assert lines[i + 1].startswith("test loss")
    assert lines[i + 1].index(printed.group(1)) == lines[i].index(lines[i].split()[-1])
    assert "accuracy" not in stdout
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    shown = re.search(r"^test loss\s+(\S+)$", out, re.M)
    assert shown and shown.group(1) == printed.group(1)


def test_report_shows_the_test_loss(regression_run):
    run = st.load_run(regression_run[0])
    table = dict(
        re.findall(r"^\| ([^|]+?) \| (.+?) \|$", _report.report_markdown(run), re.M)
    )
    assert float(table["test loss"]) == pytest.approx(
        run.results["test_risk"], rel=1e-5
    )


def test_classification_run_stores_test_risk_and_accuracy(tmp_path):
    config = {
        "data": {"name": "spheres", "n_samples": 60, "test_fraction": 0.25},
        "model": {"width": 3, "n_steps": 4},
        "problem": {"loss": "cross_entropy"},
        "optimizer": {"max_iter": 15},
        "save": {"trajectories": False},
    }
    trained = st.train(config, out=tmp_path / "c.h5")
    run = st.load_run(tmp_path / "c.h5")
    y_test = run.record["data"]["y_test"]
    pred = run.predictions["test"]
    assert run.results["test_risk"] == pytest.approx(
        _cross_entropy(pred, y_test), rel=1e-13
    )
    assert trained.test_risk == run.results["test_risk"]
    hits = pred.argmax(axis=1) == y_test
    assert run.results["test_accuracy"] == pytest.approx(hits.mean())
    summary = trained.summary()
    assert re.search(r"^test loss\s+\S+$", summary, re.M)
    assert re.search(r"^test accuracy\s+\S+$", summary, re.M)


def test_without_a_test_set_the_test_risk_is_nan_and_not_printed(tmp_path, capsys):
    config = {
        "data": {"name": "spheres", "n_samples": 40, "test_fraction": 0.0},
        "model": {"width": 3, "n_steps": 4},
        "optimizer": {"max_iter": 5},
        "save": {"trajectories": False},
    }
    trained = st.train(config, out=tmp_path / "n.h5")
    assert math.isnan(trained.test_risk)
    assert "test loss" not in trained.summary()
    run = st.load_run(tmp_path / "n.h5")
    assert math.isnan(run.results["test_risk"])
    assert main(["info", str(tmp_path / "n.h5")]) == 0
    assert "test loss" not in capsys.readouterr().out
    table = dict(
        re.findall(r"^\| ([^|]+?) \| (.+?) \|$", _report.report_markdown(run), re.M)
    )
    assert table["test loss"] == "n/a"


def _strip_test_risk(path):
    """Make ``path`` look like a file written before the test risk was stored."""
    with h5py.File(path, "r+") as f:
        del f["results"].attrs["test_risk"]


def test_old_run_file_without_test_risk_loads_shows_and_resumes(
    regression_run, tmp_path, capsys
):
    old = tmp_path / "old.h5"
    shutil.copy(regression_run[0], old)
    _strip_test_risk(old)
    with h5py.File(old, "r+") as f:
        f.attrs["status"] = "interrupted"  # a run stopped early, to resume
    run = st.load_run(old)
    assert math.isnan(run.results["test_risk"])
    assert main(["info", str(old)]) == 0
    out = capsys.readouterr().out
    assert "training loss" in out and "test loss" not in out
    table = dict(
        re.findall(r"^\| ([^|]+?) \| (.+?) \|$", _report.report_markdown(run), re.M)
    )
    assert table["test loss"] == "n/a"
    # resumed, the run computes and stores its test risk
    n_iter = run.optimizer["n_iter"]
    resumed = st.train(resume=old, out=tmp_path / "resumed.h5", max_iter=n_iter + 3)
    again = st.load_run(tmp_path / "resumed.h5")
    assert again.optimizer["n_iter"] > n_iter
    assert resumed.test_risk == again.results["test_risk"]
    assert again.results["test_risk"] == pytest.approx(
        _half_squared(again.predictions["test"], again.record["data"]["y_test"]),
        rel=1e-13,
    )


# -- sweeps -------------------------------------------------------------------


SWEEP_GRID = {"problem.lam": [1e-2, 1e-3]}


@pytest.fixture(scope="module")
def regression_sweep(regression_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "reg"
    cfg = _regression_config(regression_file)
    cfg["sweep"] = {"grid": SWEEP_GRID, "chain": "problem.lam", "out": str(out)}
    return st.run_sweep(cfg, workers=1, progress=False)


def test_sweep_records_index_and_table_hold_the_test_risk(regression_sweep):
    result = regression_sweep
    index = st.load_sweep(result.out)
    assert len(index) == 2
    # the second case starts from the first's solution (_train_warm)
    assert index[1].previous == index[0].name
    with open(result.summary_path, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    column = header.index("test_risk")
    for rec, mem, row in zip(index, result, rows, strict=True):
        run = st.load_run(result.out / rec.file)
        expected = _half_squared(run.predictions["test"], run.record["data"]["y_test"])
        assert rec.test_risk == mem.test_risk == run.results["test_risk"]
        assert rec.test_risk == pytest.approx(expected, rel=1e-13)
        assert float(row[column]) == rec.test_risk
    table = result.summary().splitlines()
    head = next(ln for ln in table if ln.startswith("case"))
    end = head.index("test loss") + len("test loss")
    for rec in index:
        line = next(ln for ln in table if ln.startswith(rec.name))
        # right-aligned under its heading
        assert line[:end].split()[-1] == f"{rec.test_risk:.4g}"
        assert line[end] == " "
    md = _report.sweep_markdown(index)
    assert "| test loss |" in md


def test_old_sweep_index_and_case_files_without_test_risk_load(
    regression_sweep, regression_file, tmp_path
):
    folder = tmp_path / "old"
    shutil.copytree(regression_sweep.out, folder)
    with h5py.File(folder / "index.h5", "r+") as f:
        del f["cases/test_risk"]
    index = st.load_sweep(folder)
    assert len(index) == 2 and all(math.isnan(c.test_risk) for c in index)
    assert all(math.isfinite(c.objective) for c in index)
    # the case files too: a rerun reuses them and shows a dash
    for c in index:
        _strip_test_risk(folder / c.file)
    cfg = _regression_config(regression_file)
    cfg["sweep"] = {"grid": SWEEP_GRID, "chain": "problem.lam", "out": str(folder)}
    again = st.run_sweep(cfg, workers=1, progress=False)
    assert all(c.reused for c in again) and all(math.isnan(c.test_risk) for c in again)
    table = again.summary().splitlines()
    head = next(ln for ln in table if ln.startswith("case"))
    end = head.index("test loss") + len("test loss")
    for c in again:
        line = next(ln for ln in table if ln.startswith(c.name))
        assert line[:end].split()[-1] == "-"
