"""The test risk: the mean loss of a trained model on held-out data.

The library's NumPy loss (``_problem.mean_loss``) against the kernels' training
risk, and against formulas written here from the loss definitions of docs/model.md.
"""

import math

import numpy as np
import pytest

import grids
import spacetime as st
from spacetime._problem import mean_loss


def _half_squared(pred, y):
    """(1/N) sum_i 1/2 |yhat_i - y_i|^2."""
    return 0.5 * float(np.sum((pred - y) ** 2)) / len(y)


def _cross_entropy(pred, y):
    """(1/N) sum_i (log sum_r exp(yhat_ir) - yhat_i,y_i)."""
    lse = np.log(np.sum(np.exp(pred), axis=1))
    return float(np.mean(lse - pred[np.arange(len(y)), y]))


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
