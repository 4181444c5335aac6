"""Every bad input of ``spacetime run`` and ``spacetime info`` fails cleanly.

Clean means: exit status 2 (3 for a diverging run), exactly one line on stderr that
starts with ``spacetime`` and says what is wrong and what to do, no traceback, and
nothing written: the working folder (where a default output path would land) and the
output folder hold exactly what they held before.
"""

import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import spacetime
import spacetime._data
import spacetime._run
from spacetime._run import load_data, memory_needed
from spacetime.cli import main

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

SPACETIME = Path(sys.executable).with_name("spacetime")


def _with(section_line: str, extra: str, base: str = TINY) -> str:
    """``base`` with ``extra`` lines added right after ``section_line``."""
    assert section_line in base
    return base.replace(section_line, f"{section_line}\n{extra}", 1)


def _snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with its size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working folder with an empty ``out/``; the current folder during the test."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    return tmp_path


def _write(work: Path, text: str, name="run.toml") -> str:
    path = work / name
    path.write_text(text)
    return str(path)


def _fails_cleanly(capsys, work, args, status=2) -> str:
    """Run the CLI; check status, one stderr line, nothing written; return the line."""
    before = _snapshot(work)
    code = main(args)
    captured = capsys.readouterr()
    assert code == status, captured.err
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("spacetime")
    assert _snapshot(work) == before
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A small trained run file (status max_iter or converged), built once."""
    folder = tmp_path_factory.mktemp("finished")
    cfg = folder / "run.toml"
    cfg.write_text(TINY)
    path = folder / "run.h5"
    assert main(["run", str(cfg), "--out", str(path), "-q"]) == 0
    return path


# ---------------------------------------------------------------------------
# The configuration file


def test_missing_config_file_is_named(capsys, work):
    line = _fails_cleanly(capsys, work, ["run", "nowhere.toml", "--out", "out/r.h5"])
    assert "'nowhere.toml' does not exist" in line
    assert "spacetime config" in line


def test_config_path_that_is_a_folder_is_refused(capsys, work):
    (work / "folder.toml").mkdir()
    line = _fails_cleanly(capsys, work, ["run", "folder.toml", "--out", "out/r.h5"])
    assert "is a folder, not a file" in line


def test_invalid_toml_is_refused_with_its_position(capsys, work):
    cfg = _write(work, "[model\nwidth = 3\n")
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert "is not valid TOML" in line
    assert "line 1" in line


def test_config_that_is_not_utf8_is_refused(capsys, work):
    path = work / "latin1.toml"
    path.write_bytes('[data]\nname = "sph\xe8res"\n'.encode("latin-1"))
    line = _fails_cleanly(capsys, work, ["run", str(path), "--out", "out/r.h5"])
    assert "not UTF-8" in line
    assert "save it as UTF-8" in line


@pytest.mark.parametrize(
    ("extra", "where", "named", "suggested"),
    [
        ("lamda = 0.1", "[optimizer]", "'optimizer.lamda'", None),
        ("[problem]\nlamda = 0.1", "max_iter = 20", "'problem.lamda'", "'lam'"),
        ("[modle]\nwidth = 3", "max_iter = 20", "'modle'", "'model'"),
        ("n_step = 3", "[model]", "'model.n_step'", "'n_steps'"),
        ("test_fractoin = 0.1", "[data]", "'data.test_fractoin'", "'test_fraction'"),
    ],
)
def test_unknown_key_is_named_with_the_closest_valid_one(
    capsys, work, extra, where, named, suggested
):
    cfg = _write(work, _with(where, extra))
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert f"unknown config key {named}" in line
    if suggested:
        assert f"did you mean {suggested}?" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_with("[model]", 'T = "one"'), "'model.T' must be a number, got 'one'"),
        (
            TINY.replace("n_steps = 4", "n_steps = 2.5"),
            "'model.n_steps' must be an integer, got 2.5",
        ),
        (
            TINY.replace("max_iter = 20", 'max_iter = "20"'),
            "'optimizer.max_iter' must be an integer, got '20'",
        ),
        (TINY + "[save]\ntrajectories = 1\n", "'save.trajectories' must be true/false"),
        ('model = 3\n[data]\nname = "xor"\n', "section 'model' must be a table"),
    ],
)
def test_wrong_type_is_named_with_what_to_write(capsys, work, text, expected):
    cfg = _write(work, text)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert expected in line
    assert re.search(r"write it like|write \[model\]", line)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "n_steps = 4",
            "n_steps = 4\nT = 0.0",
            "'model.T' must be a finite number > 0, got 0.0",
        ),
        (
            "n_steps = 4",
            "n_steps = 4\nT = -2",
            "'model.T' must be a finite number > 0, got -2.0",
        ),
        (
            "n_steps = 4",
            "n_steps = 4\nT = inf",
            "'model.T' must be a finite number > 0, got inf",
        ),
        ("n_steps = 4", "n_steps = 0", "'model.n_steps' must be >= 1, got 0"),
        ("n_steps = 4", "n_steps = -3", "'model.n_steps' must be >= 1, got -3"),
        (
            "max_iter = 20",
            "max_iter = 20\n[problem]\nlam = -0.5",
            "'problem.lam' must be a finite number >= 0, got -0.5",
        ),
        (
            "max_iter = 20",
            "max_iter = 20\n[problem]\nlam = nan",
            "'problem.lam' must be a finite number >= 0, got nan",
        ),
        ("test_fraction = 0.25", "test_fraction = 1.0", "must be in [0, 1)"),
        ("n_samples = 60", "n_samples = 60\nseed = -1", "'data.seed' must be >= 0"),
    ],
)
def test_value_out_of_range_is_refused(capsys, work, old, new, expected):
    cfg = _write(work, TINY.replace(old, new, 1))
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert expected in line


@pytest.mark.parametrize(
    ("key", "bad", "suggested"),
    [
        ("model.activation", "tahn", "tanh"),
        ("model.activation", "leakyrelu", "leaky_relu"),
        ("problem.loss", "crossentropy", "cross_entropy"),
        ("problem.loss", "logistc", "logistic"),
        ("model.field", "outsde", "outside"),
        ("model.scheme", "rk44", "rk4"),
        ("model.scheme", "eular", "euler"),
        ("data.name", "digit", "digits"),
        ("data.name", "breast-cancer", "breast_cancer"),
    ],
)
def test_unknown_choice_is_refused_with_a_suggestion(capsys, work, key, bad, suggested):
    section, name = key.split(".")
    text = TINY if section != "problem" else TINY + "[problem]\n"
    text = text.replace('name = "spheres"\n', "") if key == "data.name" else text
    cfg = _write(work, _with(f"[{section}]", f'{name} = "{bad}"', text))
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert f"'{key}' has unknown value '{bad}'" in line
    assert f"did you mean '{suggested}'?" in line
    assert "choose one of" in line


# ---------------------------------------------------------------------------
# Data


def _file_config(path: Path) -> str:
    return TINY.replace(
        'name = "spheres"\nn_samples = 60', f'name = "file"\npath = "{path}"'
    )


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", ""])
def test_csv_with_non_finite_inputs_is_refused(capsys, work, bad):
    rows = ["a,b,label"] + [f"{i % 3},{i % 5},{i % 2}" for i in range(20)]
    rows[7] = f"1,{bad},0"
    data = work / "data.csv"
    data.write_text("\n".join(rows) + "\n")
    cfg = _write(work, _file_config(data))
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert "data.csv" in line
    assert "NaN or inf" in line
    assert "line 8" in line


def test_npz_with_fewer_labels_than_inputs_is_refused(capsys, work):
    data = work / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((30, 2)), y=np.arange(29) % 2)
    cfg = _write(work, _file_config(data))
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert "30 input rows but 29 labels" in line


def test_missing_data_file_is_named(capsys, work):
    cfg = _write(work, _file_config(work / "absent.csv"))
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert "absent.csv" in line
    assert "does not exist" in line


# ---------------------------------------------------------------------------
# Sizes that do not fit in memory


def _forbidden(*args, **kwargs):
    raise AssertionError("allocated before the memory check")


def _no_allocation(monkeypatch):
    """Make building a time grid, a model or generated data fail the test."""
    monkeypatch.setattr(spacetime._run.grids, "time_grid", _forbidden)
    monkeypatch.setattr(spacetime._run, "NeuralODE", _forbidden)
    for name in list(spacetime._data._GENERATORS):
        monkeypatch.setitem(spacetime._data._GENERATORS, name, _forbidden)


def test_huge_model_is_refused_before_allocating_with_the_estimate(
    capsys, work, monkeypatch
):
    text = """
[model]
width = 20000
n_steps = 100000
"""
    cfg = _write(work, text)
    config = spacetime.validate({"model": {"width": 20000, "n_steps": 100000}})
    data = load_data(config)  # the bundled digits: small, read before the check
    need = memory_needed(config, data.n_train, data.n_test, data.n_features)
    _no_allocation(monkeypatch)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    match = re.search(r"needs about ([0-9.e+]+) GiB of memory", line)
    assert match, line
    assert float(match.group(1)) == pytest.approx(need / 2**30, rel=5e-3)
    assert "save.trajectories = false" in line


def test_huge_space_time_grids_are_refused_before_allocating(capsys, work, monkeypatch):
    text = TINY.replace("width = 3\n", 'kind = "spacetime"\n').replace(
        "n_steps = 4", "n_steps = 100000"
    )
    cfg = _write(work, text + "[spacetime]\nwidths = [[0, 3000]]\n")
    config, _ = spacetime.load_config(cfg)
    need = memory_needed(config, 45, 15, 2)
    assert need > 3000**2 * 100000 * 8  # at least the kernels themselves
    _no_allocation(monkeypatch)
    monkeypatch.setattr(spacetime._run.grids, "moving_grid", _forbidden)
    monkeypatch.setattr(spacetime._run, "SpaceTimeNetwork", _forbidden)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    match = re.search(r"needs about ([0-9.e+]+) GiB of memory", line)
    assert match, line
    assert float(match.group(1)) == pytest.approx(need / 2**30, rel=5e-3)


def test_check_gradient_refuses_a_huge_model_before_allocating(
    capsys, work, monkeypatch
):
    cfg = _write(work, "[model]\nwidth = 20000\nn_steps = 100000\n")
    _no_allocation(monkeypatch)
    line = _fails_cleanly(capsys, work, ["check-gradient", cfg])
    assert "GiB of memory" in line


def test_largest_toml_integers_do_not_overflow_the_memory_check(
    capsys, work, monkeypatch
):
    big = 2**63 - 1  # the largest integer TOML holds
    cfg = _write(work, f"[model]\nwidth = {big}\nn_steps = {big}\n")
    _no_allocation(monkeypatch)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert "GiB of memory" in line


def test_huge_generated_dataset_is_refused_before_it_is_drawn(
    capsys, work, monkeypatch
):
    cfg = _write(work, TINY.replace("n_samples = 60", "n_samples = 1000000000000"))
    _no_allocation(monkeypatch)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert "GiB of memory" in line
    assert "fewer samples" in line


# ---------------------------------------------------------------------------
# Output paths


def test_output_under_a_regular_file_is_refused(capsys, work):
    (work / "plain").write_text("not a folder")
    cfg = _write(work, TINY)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "plain/sub/r.h5"])
    assert "'plain' is a file, not a folder" in line


def test_output_that_is_an_existing_folder_is_refused(capsys, work):
    cfg = _write(work, TINY)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out"])
    assert "'out' is a folder: give a file name" in line


def test_default_output_under_a_regular_file_is_refused(capsys, work):
    (work / "runs").write_text("a file where the default folder would be")
    cfg = _write(work, TINY)
    line = _fails_cleanly(capsys, work, ["run", cfg])
    assert "'runs' is a file, not a folder" in line


def test_existing_run_is_kept_without_overwrite(capsys, work, finished_run):
    target = work / "out" / "r.h5"
    target.write_bytes(finished_run.read_bytes())
    cfg = _write(work, TINY)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", str(target)])
    assert "exists already" in line
    assert "--overwrite" in line
    assert target.read_bytes() == finished_run.read_bytes()


def test_resuming_a_finished_run_is_refused(capsys, work, finished_run):
    target = work / "out" / "r.h5"
    target.write_bytes(finished_run.read_bytes())
    line = _fails_cleanly(capsys, work, ["run", "--resume", str(target)])
    status = spacetime.load_run(target).status
    assert f"is finished ({status})" in line
    assert "nothing to resume" in line


def test_config_together_with_resume_is_refused(capsys, work, finished_run):
    cfg = _write(work, TINY)
    line = _fails_cleanly(
        capsys, work, ["run", cfg, "--resume", str(finished_run), "--out", "out/r.h5"]
    )
    assert "either a CONFIG or --resume FILE, not both" in line


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--max-iter", "-1", "argument --max-iter: must be >= 0, got -1"),
        ("--max-iter", "ten", "argument --max-iter: 'ten' is not an integer"),
        ("--max-time", "-5", "argument --max-time: must be >= 0, got -5"),
        ("--max-time", "nan", "argument --max-time: must be a finite number"),
        ("--threads", "-2", "argument --threads: must be >= 0, got -2"),
    ],
)
def test_bad_option_value_is_one_line(capsys, work, option, value, expected):
    cfg = _write(work, TINY)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", cfg, "--out", "out/r.h5", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert expected in err
    assert "see 'spacetime run --help'" in err
    assert _snapshot(work / "out") == {}


# ---------------------------------------------------------------------------
# Damaged run files given to --resume and to info


def _damaged(kind: str, finished_run: Path, folder: Path) -> Path:
    path = folder / f"{kind}.h5"
    data = finished_run.read_bytes()
    if kind == "half":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "tail_cut":
        path.write_bytes(data[: len(data) - 512])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other_hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(5.0)
    elif kind == "missing_group":
        path.write_bytes(data)
        with h5py.File(path, "a") as f:
            del f["controls"]
    return path


DAMAGE = ["half", "tail_cut", "random", "empty", "other_hdf5", "missing_group"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_file_given_to_resume_is_refused(capsys, work, finished_run, kind):
    bad = _damaged(kind, finished_run, work)
    line = _fails_cleanly(
        capsys, work, ["run", "--resume", str(bad), "--out", "out/r.h5"]
    )
    assert str(bad) in line
    assert re.search(
        r"not a readable HDF5 file|not a spacetime run file|incomplete or damaged",
        line,
    )


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_file_given_to_info_is_refused(capsys, work, finished_run, kind):
    bad = _damaged(kind, finished_run, work)
    line = _fails_cleanly(capsys, work, ["info", str(bad)])
    assert str(bad) in line
    assert re.search(
        r"not a readable HDF5 file|not a spacetime run file|incomplete or damaged",
        line,
    )


def test_damaged_file_resumed_in_place_is_left_as_it_was(capsys, work, finished_run):
    bad = _damaged("half", finished_run, work / "out")
    line = _fails_cleanly(capsys, work, ["run", "--resume", str(bad)])
    assert "truncated or corrupt" in line


def test_bytes_flipped_in_a_run_file_never_raise_a_traceback(tmp_path, finished_run):
    data = np.frombuffer(finished_run.read_bytes(), dtype=np.uint8)
    rng = np.random.default_rng(1)
    path = tmp_path / "flipped.h5"
    for _ in range(60):
        damaged = data.copy()
        where = rng.integers(0, data.size, 16)
        damaged[where] = rng.integers(0, 256, 16, dtype=np.uint8)
        path.write_bytes(damaged.tobytes())
        try:
            spacetime.load_run(path)
        except spacetime.SpacetimeError:
            pass  # refused cleanly; a flip inside array data may also load


def test_info_on_a_folder_or_missing_file_is_refused(capsys, work):
    line = _fails_cleanly(capsys, work, ["info", "out"])
    assert "is a folder, not a run file" in line
    line = _fails_cleanly(capsys, work, ["info", "out/none.h5"])
    assert "does not exist" in line


# ---------------------------------------------------------------------------
# Divergence


def test_diverging_run_stops_with_status_3_and_writes_nothing(capsys, work):
    text = _with(
        "[model]", 'activation = "identity"\ninit_scale = 1e6\nT = 1e6', TINY
    ).replace("n_steps = 4", "n_steps = 40")
    cfg = _write(work, text)
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"], status=3)
    assert line.startswith("spacetime: training diverged:")
    assert re.search(r"became (nan|inf|-inf)", line)
    assert "init_scale" in line


# ---------------------------------------------------------------------------
# The real command, as a process


def _missing_config(work):
    return ["run", "missing.toml", "--out", "out/r.h5"]


def _unknown_key(work):
    return ["run", _write(work, TINY + "[problem]\nlamda = 1.0\n"), "-o", "x.h5"]


def _random_bytes(work):
    path = work / "noise.h5"
    path.write_bytes(np.random.default_rng(2).bytes(3000))
    return ["info", str(path)]


def _bad_option(work):
    return ["run", "--max-iter", "-4"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_missing_config, "does not exist"),
        (_unknown_key, "did you mean 'lam'?"),
        (_random_bytes, "not a readable HDF5 file"),
        (_bad_option, "must be >= 0"),
    ],
)
def test_command_process_prints_one_line_and_exits_2(tmp_path, make, expected):
    (tmp_path / "out").mkdir()
    args = make(tmp_path)
    before = _snapshot(tmp_path)
    proc = subprocess.run(
        [str(SPACETIME), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# spacetime study convergence


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--schemes", ",", "no time scheme given: the list schemes (--schemes)"),
        ("--schemes", " , ", "no time scheme given"),
        ("--fields", ",", "no vector field given: the list fields (--fields)"),
        ("--modes", ",", "no sampling mode given: the list modes (--modes)"),
        ("--trained-schemes", ",", "--no-trained"),
        ("--schemes", "rk4,euler,rk4", "'rk4' is given twice in schemes"),
        ("--modes", "mid,mid", "'mid' is given twice in modes"),
        ("--schemes", "euler,rk5", "did you mean 'rk4'?"),
        ("--refinements", "15", "must be between 2 and 14, got 15"),
        ("--refinements", "1000000", "must be between 2 and 14"),
    ],
)
@pytest.mark.parametrize("fast", [False, True])
def test_convergence_study_bad_list_or_size_is_refused_before_any_work(
    capsys, work, option, value, expected, fast
):
    args = ["study", "convergence", "-o", "out/conv", option, value]
    line = _fails_cleanly(capsys, work, args + (["--fast"] if fast else []))
    assert line.startswith("spacetime: error: ")
    assert expected in line


@pytest.mark.parametrize("value", ["1", "0", "-3", "two"])
def test_convergence_study_refinements_below_two_is_a_usage_error(
    capsys, work, value
):
    before = _snapshot(work)
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "convergence", "-o", "out/conv", "--refinements", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --refinements" in err
    assert _snapshot(work) == before


def test_convergence_study_existing_files_name_the_option_that_exists(tmp_path):
    (tmp_path / "convergence.md").write_text("kept")
    with pytest.raises(spacetime.RunFileError) as info:
        spacetime.convergence_study(tmp_path, schemes=("euler",))
    message = str(info.value)
    assert "--overwrite" in message
    assert "save.overwrite" not in message  # a run's key: studies have none
    assert (tmp_path / "convergence.md").read_text() == "kept"


# ---------------------------------------------------------------------------
# Misuses of the Python API: a spacetime error that says what to do


def _small_problem(train_output=True):
    import grids

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 2))
    y = (x[:, 0] > 0).astype(int)
    model = spacetime.NeuralODE(2, 3, grids.time_grid(1.0, 4))
    return spacetime.Problem(model, x, y, loss="logistic", train_output=train_output)


@pytest.mark.parametrize("n_columns", [1, 3])
def test_predict_with_the_wrong_number_of_features_names_the_right_one(
    finished_run, n_columns
):
    run = spacetime.load_run(finished_run)
    assert run.predict(np.zeros((4, 2))).shape == (4, 2)  # 2 features, 2 classes
    for standardized in (False, True):
        with pytest.raises(spacetime.DataError, match=r"trained on 2 features") as info:
            run.predict(np.zeros((4, n_columns)), standardized=standardized)
        assert "(n_samples, 2)" in str(info.value)
    with pytest.raises(spacetime.DataError, match="trained on 2 features"):
        run.predict(np.zeros((4, 2, 1)))


def test_predict_refuses_non_finite_or_non_numeric_inputs(finished_run):
    run = spacetime.load_run(finished_run)
    x = np.zeros((5, 2))
    x[1, 0] = np.nan
    x[3, 1] = np.inf
    with pytest.raises(spacetime.DataError, match="NaN or inf in 2 of 5 samples"):
        run.predict(x)
    with pytest.raises(spacetime.DataError, match="array of numbers"):
        run.predict([["a", "b"]])


@pytest.mark.parametrize("train_output", [True, False])
@pytest.mark.parametrize("change", [-1, 1])
def test_problem_called_with_z_of_the_wrong_length_names_the_length(
    train_output, change
):
    problem = _small_problem(train_output)
    n = problem.n_variables
    assert n == 4 * 12 + (4 if train_output else 0)
    z = problem.initial_point()
    problem(z)  # the right length works
    wrong = np.resize(z, n + change)
    for call in (problem, problem.value_and_grad, problem.evaluate,
                 lambda v: problem.predict(v, np.zeros((2, 2)))):
        with pytest.raises(spacetime.ConfigError, match=f"length {n}") as info:
            call(wrong)
        assert f"shape ({n + change},)" in str(info.value)
    with pytest.raises(spacetime.ConfigError, match=f"length {n}"):
        problem(z[None, :])


def test_problem_called_with_nan_in_z_is_refused():
    problem = _small_problem()
    z = problem.initial_point()
    z[[3, 7]] = [np.nan, -np.inf]
    with pytest.raises(spacetime.ConfigError, match="NaN or inf at 2 of their 52"):
        problem(z)


@pytest.mark.parametrize("n_directions", [0, -2, 2.5, True])
def test_check_gradient_needs_at_least_one_direction(n_directions):
    with pytest.raises(spacetime.ConfigError, match="n_directions must be an integer"):
        spacetime.check_gradient(_small_problem(), n_directions=n_directions)


@pytest.mark.parametrize("step", [0, 0.0, -1e-4, np.nan, np.inf, "1e-4"])
def test_check_gradient_needs_a_positive_finite_step(step):
    with pytest.raises(spacetime.ConfigError, match="step must be a finite number > 0"):
        spacetime.check_gradient(_small_problem(), step=step)


def test_check_gradient_with_valid_arguments_still_agrees():
    check = spacetime.check_gradient(_small_problem(), n_directions=1, step=1e-3)
    assert check.errors.shape == (1,)
    assert check.worst < 1e-6


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((2, 3, 5), {}, r"time must be a grids.TimeGrid, got int 5: .*time_grid"),
        ((2, 3, [0.0, 0.5, 1.0]), {}, "time must be a grids.TimeGrid, got list"),
        ((2.5, 3, None), {}, r"n_inputs must be an integer >= 1, got 2.5"),
        ((0, 3, None), {}, r"n_inputs must be an integer >= 1, got 0"),
        ((2, "3", None), {}, r"width must be an integer >= 1, got '3'"),
        ((2, 3, None), {"field": "bottleneck", "hidden": -1}, "hidden must be"),
        ((2, 3, None), {"leaky_slope": np.nan}, "leaky_slope must be a finite"),
    ],
)
def test_neural_ode_with_arguments_of_the_wrong_kind_is_refused(args, kwargs, expected):
    import grids

    if args[2] is None:
        args = (*args[:2], grids.time_grid(1.0, 4))
    with pytest.raises(spacetime.ConfigError, match=expected):
        spacetime.NeuralODE(*args, **kwargs)


# ---------------------------------------------------------------------------
# Keys the chosen model does not use


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('rule = "trapezoid"', "spacetime.rule is for model.kind = 'spacetime'"),
        ("widths = [[0.0, 5]]", "spacetime.widths is"),
        ("l2_coordinates = true", "spacetime.l2_coordinates is"),
        (
            'transfer = "l2"\ntransfer_order = 5',
            "spacetime.transfer and spacetime.transfer_order are",
        ),
    ],
)
def test_spacetime_keys_for_a_neural_ode_are_refused(capsys, work, extra, named):
    cfg = _write(work, TINY + f"\n[spacetime]\n{extra}\n")
    line = _fails_cleanly(capsys, work, ["run", cfg, "--out", "out/r.h5"])
    assert named in line
    assert "model.kind is 'neural_ode'" in line
    assert "set model.kind = 'spacetime' in [model]" in line
    assert "or remove spacetime." in line


def test_spacetime_keys_at_their_defaults_or_with_kind_spacetime_are_accepted():
    default = spacetime.validate({"spacetime": {"rule": "midpoint", "widths": []}})
    assert default["model"]["kind"] == "neural_ode"
    used = spacetime.validate(
        {"model": {"kind": "spacetime"}, "spacetime": {"rule": "trapezoid"}}
    )
    assert used["spacetime"]["rule"] == "trapezoid"
    spacetime.validate(spacetime.default_config())
    spacetime._config.default_experiment()


def test_run_file_whose_config_has_ignored_spacetime_keys_still_loads(
    tmp_path, finished_run
):
    """Files written before the refusal keep loading: the keys were ignored then."""
    import json

    path = tmp_path / "old.h5"
    path.write_bytes(finished_run.read_bytes())
    with h5py.File(path, "r+") as f:
        config = json.loads(f["config"].attrs["json"])
        assert config["model"]["kind"] == "neural_ode"
        config["spacetime"]["rule"] = "trapezoid"
        f["config"].attrs["json"] = json.dumps(config, sort_keys=True)
    run = spacetime.load_run(path)
    assert run.config["spacetime"]["rule"] == "trapezoid"
    expected = spacetime.load_run(finished_run).predict(np.ones((1, 2)))
    np.testing.assert_array_equal(run.predict(np.ones((1, 2))), expected)


# ---------------------------------------------------------------------------
# spacetime info describes the model as spacetime run does


def test_info_names_the_kind_and_the_widths_per_layer_as_run_does(
    tmp_path, capsys
):
    text = TINY.replace("width = 3\n", 'kind = "spacetime"\nT = 1.0\n').replace(
        "max_iter = 20", "max_iter = 2"
    )
    # levels at t = 0, 0.25 on 4 nodes, from t = 0.5 on 3 nodes
    cfg = _write(tmp_path, text + "[spacetime]\nwidths = [[0.0, 4], [0.5, 3]]\n")
    path = tmp_path / "st.h5"
    assert main(["run", cfg, "--out", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert main(["info", str(path)]) == 0
    info = capsys.readouterr().out.splitlines()
    model = [ln for ln in info if ln.startswith(("model ", "widths per layer "))]
    assert model == [
        "model           space-time inside field, tanh, width 4, 4 euler steps "
        "on [0, 1]",
        "widths per layer 4 (2 layers), 3 (2 layers)",
    ]
    assert [ln for ln in printed if ln in model] == model  # run printed the same


def test_info_of_a_neural_ode_names_its_kind(capsys, finished_run):
    assert main(["info", str(finished_run)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^model           neural ODE inside field, tanh, width 3, 4 euler steps "
        r"on \[0, 2\]$", out, re.M,
    )
    assert "widths per layer" not in out
