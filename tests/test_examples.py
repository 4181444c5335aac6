"""The scripts in examples/ run in fast mode and print numbers a broken model misses."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spacetime

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run_example(name, tmp_path, *args, fast_env=True):
    env = {**os.environ}
    if fast_env:
        env["SPACETIME_FAST"] = "1"
    out_dir = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--out-dir", str(out_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, out_dir


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, text
    return float(match.group(1))


@pytest.fixture(scope="module")
def digits_example(tmp_path_factory):
    """The digits example run once in fast mode: (stdout, output folder)."""
    return _run_example("train_digits.py", tmp_path_factory.mktemp("digits"))


def test_train_digits_reaches_a_test_accuracy_no_guess_reaches(digits_example):
    stdout, out_dir = digits_example
    accuracy = _number(r"test accuracy (\S+)", stdout)
    assert accuracy >= 0.6  # ten classes: guessing scores about 0.1
    saved = np.load(out_dir / "digits.npz")
    assert saved["w"].shape == (10, 64, 64)
    assert saved["b"].shape == (10, 64)
    assert saved["p"].shape == (10, 64)


def test_train_digits_does_what_spacetime_train_does_by_default(digits_example):
    stdout, _ = digits_example
    config = spacetime.default_config()
    config["data"]["max_samples"] = 200  # the example's fast mode
    config["optimizer"]["max_iter"] = 20
    run = spacetime.train(config, save=False)
    assert _number(r"test accuracy (\S+)", stdout) == round(run.test_accuracy, 4)
    assert f"after {run.result.n_iter} iterations" in stdout


def test_gradient_check_example_finds_the_gradient_exact(tmp_path):
    stdout, out_dir = _run_example("gradient_check.py", tmp_path)
    worst = _number(r"worst relative error (\S+)", stdout)
    assert worst <= 1e-6
    table = np.loadtxt(out_dir / "gradient_check.csv", delimiter=",", skiprows=1)
    assert table.shape == (6, 3)
    np.testing.assert_allclose(table[:, 0], table[:, 1], rtol=1e-6, atol=1e-12)
    assert table[:, 2].max() == pytest.approx(worst, rel=1e-3)


def test_gradient_check_example_reads_the_users_config(tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text(
        '[data]\nname = "xor"\nn_samples = 80\n'
        '[model]\nfield = "outside"\nactivation = "sigmoid"\nwidth = 3\n'
        'n_steps = 5\nscheme = "heun"\n[problem]\nloss = "squared"\n'
    )
    stdout, _ = _run_example(
        "gradient_check.py", tmp_path, str(cfg), "--fast", fast_env=False
    )
    assert _number(r"worst relative error (\S+)", stdout) <= 1e-6


def test_spheres_augmented_separates_the_disc_from_the_ring(tmp_path):
    stdout, out_dir = _run_example("spheres_augmented.py", tmp_path)
    assert _number(r"training accuracy (\S+)", stdout) >= 0.95
    saved = np.load(out_dir / "spheres_augmented.npz")
    states, labels = saved["states"], saved["labels"]
    assert states.shape == (11, 100, 3)
    np.testing.assert_array_equal(states[0, :, 2], 0.0)  # the zero padding
    assert set(np.unique(labels)) == {0, 1}
