"""The ``spacetime`` command end to end: run, info, config, check-gradient, resume.

A real Ctrl-C is sent to a real ``spacetime run`` process, and the progress bar is
looked for on a pseudo-terminal and on a pipe.
"""

import argparse
import contextlib
import fcntl
import io
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

import spacetime
from spacetime.cli import _parser, main

SPACETIME = Path(sys.executable).with_name("spacetime")

TINY = """
[data]
name = "spheres"
n_samples = 60
test_fraction = 0.25

[model]
width = 3
n_steps = 4

[optimizer]
max_iter = 20
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny spheres run trained once through ``main``: (path, stdout)."""
    folder = tmp_path_factory.mktemp("tiny")
    cfg = folder / "tiny.toml"
    cfg.write_text(TINY)
    path = folder / "sub" / "tiny.h5"  # a folder that does not exist yet
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(cfg), "--out", str(path)])
    assert code == 0
    return path, out.getvalue()


def test_run_writes_a_file_whose_model_predicts_its_stored_predictions(tiny_run):
    path, _ = tiny_run
    run = spacetime.load_run(path)
    assert run.status in ("converged", "max_iter")
    dataset, _, _ = spacetime.build(run.config)
    assert dataset.n_train == 45 and dataset.n_test == 15
    np.testing.assert_array_equal(run.record["data"]["y_train"], dataset.y_train)
    np.testing.assert_array_equal(run.record["data"]["y_test"], dataset.y_test)
    train = run.predict(dataset.x_train, standardized=True)
    test = run.predict(dataset.x_test, standardized=True)
    np.testing.assert_allclose(train, run.predictions["train"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(test, run.predictions["test"], rtol=0, atol=1e-12)
    # the stored accuracy is that of the stored predictions
    scores = run.predictions["test"]
    assert scores.shape == (15, 2)  # cross-entropy on two classes
    hits = scores.argmax(axis=1) == dataset.y_test
    assert run.results["test_accuracy"] == pytest.approx(hits.mean())
    # and the test risk their mean cross-entropy, log sum exp - the true score
    lse = np.log(np.exp(scores).sum(axis=1))
    ce = lse - scores[np.arange(15), dataset.y_test]
    assert run.results["test_risk"] == pytest.approx(ce.mean(), rel=1e-13)


def test_run_prints_a_summary_naming_status_and_output(tiny_run):
    path, stdout = tiny_run
    run = spacetime.load_run(path)
    assert re.search(rf"^status\s+{run.status} ", stdout, re.M)
    assert re.search(rf"^output\s+{re.escape(str(path))}$", stdout, re.M)
    assert re.search(rf"^iterations\s+{run.optimizer['n_iter']}$", stdout, re.M)
    assert re.search(rf"^test loss\s+{run.results['test_risk']:.6g}$", stdout, re.M)


def test_run_history_counts_iterations_from_zero(tiny_run):
    run = spacetime.load_run(tiny_run[0])
    it = run.history["iteration"]
    np.testing.assert_array_equal(it, np.arange(len(it)))
    assert it[-1] == run.optimizer["n_iter"] <= 20
    assert run.history["objective"][-1] < run.history["objective"][0]


def test_info_prints_the_status_and_numbers_of_the_file(tiny_run, capsys):
    path, _ = tiny_run
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    run = spacetime.load_run(path)
    assert re.search(rf"^status\s+{run.status} \(", out, re.M)
    assert re.search(
        r"^model\s+.*inside field, tanh, width 3, 4 euler steps", out, re.M
    )
    objective = float(re.search(r"^objective\s+(\S+)$", out, re.M).group(1))
    assert objective == pytest.approx(run.results["objective"], rel=1e-5)
    test_loss = float(re.search(r"^test loss\s+(\S+)$", out, re.M).group(1))
    assert test_loss == pytest.approx(run.results["test_risk"], rel=1e-5)


def test_config_prints_valid_toml_equal_to_the_defaults(capsys):
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    parsed = tomllib.loads(text)
    assert parsed == spacetime.default_config()
    assert spacetime.validate(parsed) == spacetime.default_config()


def test_config_with_comments_parses_to_the_same_defaults(capsys):
    assert main(["config", "--comments"]) == 0
    text = capsys.readouterr().out
    assert "#" in text
    assert tomllib.loads(text) == spacetime.default_config()


def test_check_gradient_reports_a_worst_error_below_1e_6(tmp_path, capsys):
    cfg = tmp_path / "check.toml"
    cfg.write_text(TINY.replace("width = 3", 'width = 3\nscheme = "rk4"'))
    assert main(["check-gradient", str(cfg), "--directions", "4"]) == 0
    out = capsys.readouterr().out
    worst = float(re.search(r"worst relative error (\S+)", out).group(1))
    assert 0 <= worst <= 1e-6
    pairs = re.findall(r"gradient\s+(\S+)\s+finite difference\s+(\S+)", out)
    assert len(pairs) == 4
    for analytic, numeric in pairs:
        assert float(analytic) == pytest.approx(float(numeric), rel=1e-6, abs=1e-12)


def test_check_gradient_exits_1_when_the_tolerance_is_not_met(tmp_path, capsys):
    cfg = tmp_path / "check.toml"
    cfg.write_text(TINY)
    # finite differences never match to 1e-30: the check must fail
    assert main(["check-gradient", str(cfg), "--tol", "1e-30", "-q"]) == 1


def test_time_limited_run_resumes_with_continuing_history(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    first = tmp_path / "first.h5"
    assert main(["run", str(cfg), "--out", str(first), "--max-time", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert f"resume with 'spacetime run --resume {first}'" in err
    stopped = spacetime.load_run(first)
    assert stopped.status == "time_limit"
    np.testing.assert_array_equal(stopped.history["iteration"], [0, 1])

    resumed_path = tmp_path / "resumed.h5"
    code = main(
        ["run", "--resume", str(first), "--out", str(resumed_path), "--max-time", "0"]
    )
    assert code == 0
    resumed = spacetime.load_run(resumed_path)
    assert resumed.status in ("converged", "max_iter")
    it = resumed.history["iteration"]
    np.testing.assert_array_equal(it, np.arange(len(it)))
    assert it[-1] == resumed.optimizer["n_iter"] > 1
    for key in ("objective", "risk", "grad_norm", "time"):
        np.testing.assert_array_equal(resumed.history[key][:2], stopped.history[key])
    assert np.all(np.diff(resumed.history["time"]) >= 0)
    # the first file is left as it was
    assert spacetime.load_run(first).status == "time_limit"


def test_resume_without_out_rewrites_the_stopped_file(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    path = tmp_path / "run.h5"
    assert main(["run", str(cfg), "-o", str(path), "--max-time", "1e-9", "-q"]) == 0
    assert main(["run", "--resume", str(path), "-q"]) == 0
    run = spacetime.load_run(path)
    np.testing.assert_array_equal(run.history["iteration"], [0, 1, 2])
    assert run.status == "time_limit"  # the stored --max-time still applies
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5", "tiny.toml"]


def test_ctrl_c_saves_an_interrupted_run_that_resumes(tmp_path):
    cfg = tmp_path / "long.toml"
    cfg.write_text(
        # gtol = ftol = 0: no convergence test stops it before the interrupt
        "[model]\nn_steps = 40\n[optimizer]\nmax_iter = 100000\n"
        "gtol = 0.0\nftol = 0.0\n[save]\ntrajectories = false\n"
    )
    path = tmp_path / "long.h5"
    log = tmp_path / "stderr.txt"
    start = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [str(SPACETIME), "run", str(cfg), "--out", str(path), "-v"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
        )
        try:
            # the model is built and the optimiser about to start
            deadline = start + 300
            while "training" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "training never started"
                time.sleep(0.2)
            time.sleep(max(2.0, 5.0 - (time.monotonic() - start)))
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert code == 130, text
    assert "Traceback" not in text
    assert f"interrupted: resume with 'spacetime run --resume {path}'" in text
    run = spacetime.load_run(path)
    assert run.status == "interrupted"
    it = run.history["iteration"]
    assert len(it) >= 1
    np.testing.assert_array_equal(it, np.arange(len(it)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "long.h5",
        "long.toml",
        "stderr.txt",
    ]

    resumed_path = tmp_path / "resumed.h5"
    code = main(
        ["run", "--resume", str(path), "-o", str(resumed_path), "--max-time", "1e-9"]
    )
    assert code == 0
    resumed = spacetime.load_run(resumed_path)
    assert resumed.status == "time_limit"
    np.testing.assert_array_equal(resumed.history["iteration"], np.arange(len(it) + 1))
    np.testing.assert_array_equal(
        resumed.history["objective"][: len(it)], run.history["objective"]
    )


def _run_options():
    run = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["run"]
    return [a for a in run._actions if a.option_strings]


def test_run_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    options = _run_options()
    assert {"--out", "--overwrite", "--max-time", "--max-iter", "--resume"} <= {
        s for a in options for s in a.option_strings
    }
    for action in options:
        assert action.help and action.help != argparse.SUPPRESS, action.option_strings
        for s in action.option_strings:
            assert s in text
        first_words = " ".join(action.help.split()[:4])
        assert first_words in text
    assert "progress bar" in text


def test_top_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    sub = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert {"run", "config", "check-gradient", "info"} <= set(sub.choices)
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name in sub.choices:
        assert name in text
        assert " ".join(helps[name].split()[:4]) in text


def _stderr_of_tiny_run(tmp_path, terminal: bool) -> bytes:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / ("tty.h5" if terminal else "pipe.h5")
    args = [str(SPACETIME), "run", str(cfg), "--out", str(out)]
    if not terminal:
        proc = subprocess.run(args, capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr
    leader, follower = pty.openpty()
    # a terminal of 24 rows and 100 columns (tqdm draws nothing in 0 columns)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=300) == 0, b"".join(chunks)
    return b"".join(chunks)


def test_progress_bar_shows_on_a_terminal_only(tmp_path):
    assert b"optimising" in _stderr_of_tiny_run(tmp_path, terminal=True)
    assert b"optimising" not in _stderr_of_tiny_run(tmp_path, terminal=False)


def test_ctrl_c_while_the_command_starts_is_a_clean_exit(monkeypatch, capsys):
    # the console script's module imports the package only inside main(), so an
    # interrupt during that import is caught there, not printed as a traceback
    import builtins

    import spacetime_entry

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "spacetime.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert spacetime_entry.main() == 130
    assert capsys.readouterr().err == (
        "spacetime: interrupted while starting; nothing was done\n"
    )


def test_console_script_runs_the_command_line_through_the_light_entry_module():
    text = SPACETIME.read_text()
    assert "from spacetime_entry import main" in text
    out = subprocess.run(
        [str(SPACETIME), "config", "--default-experiment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'kind = "spacetime"' in out
