"""Figures and reports of run files: the drawn data are the file's data."""

import dataclasses
import re
import shutil
import tomllib

import h5py
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from mpl_toolkits.mplot3d.art3d import Line3D

import spacetime
from spacetime import _plot, _report
from spacetime.cli import main

N_SAMPLES = 40


def _config(width, loss, **problem):
    return {
        "data": {"name": "spheres", "n_samples": N_SAMPLES},
        "model": {"width": width, "n_steps": 4},
        "problem": {"loss": loss, **problem},
        "optimizer": {"max_iter": 10},
    }


CASES = {
    "ce2": _config(2, "cross_entropy"),
    "logistic3": _config(3, "logistic"),
    "squared2": _config(2, "squared"),
    "lp2": _config(2, "lp", loss_p=3.0),
    # a space-time network on [0, 1] whose grid goes from 5 to 3 nodes at t = 1
    "st1": {
        **_config(0, "cross_entropy"),
        "model": {"kind": "spacetime", "n_steps": 4},
        "spacetime": {"widths": [[0, 5], [1, 3]]},
    },
    # images: 8x8 digits on grids 8x8 -> 4x4
    "st2": {
        "data": {"name": "digits", "max_samples": N_SAMPLES},
        "model": {"kind": "spacetime", "n_steps": 2},
        "spacetime": {"widths": [[0, 8, 8], [1, 4, 4]]},
        "optimizer": {"max_iter": 3},
    },
}
NEURAL = ["ce2", "logistic3", "squared2", "lp2"]


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    paths = {}
    for name, config in CASES.items():
        paths[name] = folder / f"{name}.h5"
        spacetime.train(config, out=paths[name])
    return paths


@pytest.fixture(scope="module")
def runs(run_files):
    return {name: spacetime.load_run(p) for name, p in run_files.items()}


def _inputs():
    """The run's training inputs, rebuilt from the generator and split."""
    ds = spacetime.load_dataset(
        "spheres", n_samples=N_SAMPLES, seed=0, test_fraction=0.2
    )
    return ds.x_train


def _logistic(yhat, y):
    s = 2.0 * y - 1.0
    return np.logaddexp(0.0, -s * yhat[:, 0])


def _cross_entropy(yhat, y):
    zmax = yhat.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(yhat - zmax).sum(axis=1))
    return lse - yhat[np.arange(len(y)), y]


def _sample_lines(fig):
    ax = fig.axes[0]
    return {
        int(line.get_gid().split("-")[1]): line
        for line in ax.get_lines()
        if (line.get_gid() or "").startswith("sample-")
    }


# ---------------------------------------------------------------------------
# What the figures hold


def test_history_lines_are_the_files_history_arrays(runs):
    run = runs["ce2"]
    fig = _plot.plot_history(run)
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    assert set(lines) == {"objective", "risk", "grad_norm"}
    for name, line in lines.items():
        np.testing.assert_array_equal(line.get_xdata(), run.history["iteration"])
        np.testing.assert_array_equal(line.get_ydata(), run.history[name])
    assert len(run.history["iteration"]) == run.optimizer["n_iter"] + 1


def test_planar_trajectory_lines_are_the_stored_states(runs):
    run = runs["ce2"]
    fig = _plot.plot_trajectories(run)
    lines = _sample_lines(fig)
    n_train = len(run.record["data"]["y_train"])
    assert sorted(lines) == list(range(n_train))
    for i, line in lines.items():
        np.testing.assert_array_equal(line.get_xydata(), run.trajectories[:, i, :])
    # coloured by label: the two classes get two colours, constant within a class
    y = run.record["data"]["y_train"]
    colours = {tuple(np.round(lines[i].get_color(), 6)) for i in range(n_train)}
    assert len(colours) == 2
    for c in (0, 1):
        members = np.flatnonzero(y == c)
        first = lines[members[0]].get_color()
        assert all(np.allclose(lines[i].get_color(), first) for i in members)


def test_planar_trajectories_show_the_zero_set_of_a_single_output(runs):
    run = runs["squared2"]  # two classes, squared loss: one output, sign = class
    fig = _plot.plot_trajectories(run)
    (line,) = [
        ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "output-zero-set"
    ]
    xy = line.get_xydata()
    assert len(xy) >= 2
    np.testing.assert_allclose(xy @ run.p[0] + run.p0[0], 0.0, atol=1e-9)
    assert not [
        ln
        for ln in _plot.plot_trajectories(runs["ce2"]).axes[0].get_lines()
        if ln.get_gid() == "output-zero-set"
    ]


def test_spatial_trajectory_lines_are_the_stored_states_of_the_chosen_samples(runs):
    run = runs["logistic3"]
    fig = _plot.plot_trajectories(run, max_samples=7, seed=3)
    lines = _sample_lines(fig)
    assert len(lines) == 7
    assert fig.axes[0].name == "3d"
    for i, line in lines.items():
        assert isinstance(line, Line3D)
        xyz = np.stack(line.get_data_3d(), axis=1)
        np.testing.assert_array_equal(xyz, run.trajectories[:, i, :])


def test_pca_view_of_trajectories_keeps_the_distances_in_the_principal_plane(runs):
    # the width-3 states seen on their first two principal axes: the projection
    # is an orthogonal map, so distances between states can only shrink, and the
    # full 3-axis projection preserves them
    states = runs["logistic3"].trajectories
    coords3, share3 = _plot.project_states(states, 3, "pca")
    coords2, share2 = _plot.project_states(states, 2, "pca")
    a, b = states.reshape(-1, 3), coords3.reshape(-1, 3)
    d_full = np.linalg.norm(a[:, None] - a[None], axis=-1)
    np.testing.assert_allclose(
        np.linalg.norm(b[:, None] - b[None], axis=-1), d_full, atol=1e-12
    )
    c = coords2.reshape(-1, 2)
    assert np.all(np.linalg.norm(c[:, None] - c[None], axis=-1) <= d_full + 1e-12)
    assert share3 == pytest.approx(1.0) and 0 < share2 < 1
    fig = _plot.plot_trajectories(runs["logistic3"], dims=2)
    assert "PCA" in fig.axes[0].get_title()


@pytest.mark.parametrize("case", list(CASES))
def test_risk_along_t_ends_at_the_stored_training_risk(runs, case):
    run = runs[case]
    fig = _plot.plot_risk_along_t(run)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "risk"]
    np.testing.assert_array_equal(line.get_xdata(), run.model.time.nodes)
    assert abs(line.get_ydata()[-1] - run.results["risk"]) <= 1e-12


@pytest.mark.parametrize(
    ("case", "loss"), [("ce2", _cross_entropy), ("logistic3", _logistic)]
)
def test_risk_along_t_starts_at_the_risk_of_the_untransformed_inputs(runs, case, loss):
    run = runs[case]
    x = _inputs()
    padded = np.zeros((len(x), run.model.width))
    padded[:, :2] = x
    yhat = padded @ run.p.T + run.p0
    expected = loss(yhat, run.record["data"]["y_train"]).mean()
    risk = _plot.risk_along_t(run)
    assert abs(risk[0] - expected) <= 1e-12


def test_risk_along_t_without_stored_trajectories_is_recomputed(run_files, tmp_path):
    path = tmp_path / "bare.h5"
    spacetime.train(CASES["ce2"], out=path, trajectories=False)
    bare = spacetime.load_run(path)
    assert bare.trajectories is None
    full = spacetime.load_run(run_files["ce2"])
    np.testing.assert_allclose(
        _plot.train_states(bare), full.trajectories, rtol=0, atol=1e-12
    )
    assert abs(_plot.risk_along_t(bare)[-1] - bare.results["risk"]) <= 1e-12


@pytest.mark.parametrize("case", ["ce2", "logistic3"])
def test_control_norm_steps_are_the_norms_of_each_layers_controls(runs, case):
    run = runs[case]
    fig = _plot.plot_control_norms(run)
    (patch,) = [p for p in fig.axes[0].patches if p.get_gid() == "control-norm"]
    values, edges, _ = patch.get_data()
    n_steps = run.model.n_steps
    per_layer = np.concatenate(
        [a.reshape(n_steps, -1) for a in run.controls.values()], axis=1
    )
    np.testing.assert_allclose(values, np.linalg.norm(per_layer, axis=1), rtol=1e-14)
    np.testing.assert_array_equal(edges, run.model.time.nodes)


def _grid_centres(image):
    left, right, bottom, top = image.get_extent()
    ny, nx = image.get_array().shape
    xs = left + (np.arange(nx) + 0.5) * (right - left) / nx
    ys = bottom + (np.arange(ny) + 0.5) * (top - bottom) / ny
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@pytest.mark.parametrize("case", ["ce2", "logistic3", "st1"])
def test_decision_regions_after_all_layers_agree_with_predict(runs, case):
    run = runs[case]
    fig = _plot.plot_decision_regions(run, layers=[0, -1], resolution=40)
    first, last = (ax.get_images()[0] for ax in fig.axes[:2])
    shown = np.asarray(last.get_array()).ravel()
    points = _grid_centres(last)
    out = run.predict(points)
    predicted = (out[:, 0] > 0) if out.shape[1] == 1 else out.argmax(axis=1)
    np.testing.assert_array_equal(shown, predicted)
    assert len(np.unique(shown)) == 2  # the regions of both classes are drawn

    if case != "st1":
        # after 0 layers: the output map on the padded input, a half-plane
        yhat = points @ run.p[:, :2].T + run.p0
        level0 = (yhat[:, 0] > 0) if yhat.shape[1] == 1 else yhat.argmax(axis=1)
        np.testing.assert_array_equal(np.asarray(first.get_array()).ravel(), level0)

    # the training samples are drawn on top
    (dots,) = [c for c in fig.axes[1].collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(dots.get_offsets(), _inputs(), atol=1e-12)


def test_unknown_or_impossible_figure_is_refused(runs):
    with pytest.raises(spacetime.ConfigError, match="unknown figure 'nope'"):
        _plot.make_figures(runs["ce2"], ["nope"])
    with pytest.raises(spacetime.ConfigError, match="layer 9 does not exist"):
        _plot.plot_decision_regions(runs["ce2"], layers=[9])


# ---------------------------------------------------------------------------
# Space-time networks


def _grids(run):
    """(nodes, weights) of each level, as the file stores them."""
    return run.record["grids"]


def test_spacetime_risk_on_the_last_grid_needs_no_transfer(runs):
    # levels 2 .. 4 of st1 live on the last grid (3 nodes): P applies directly
    run = runs["st1"]
    weights = _grids(run)[-1][1]
    risk = _plot.risk_along_t(run)
    y = run.record["data"]["y_train"]
    for k in (2, 3):
        x = run.trajectories[k]
        assert x.shape[1] == 3
        yhat = x @ (run.p * weights).T + run.p0
        assert abs(risk[k] - _cross_entropy(yhat, y).mean()) <= 1e-12


def test_spacetime_risk_at_level_0_carries_the_state_through_the_transfers(runs):
    import grids

    run = runs["st1"]
    moving = run.model.moving
    x = run.trajectories[0]
    for k in range(moving.n_steps):  # one transfer after another
        pi = grids.transfer(moving[k], moving[k + 1], "linear")
        if pi is not None:
            x = (pi @ x.T).T
    yhat = x @ (run.p * _grids(run)[-1][1]).T + run.p0
    expected = _cross_entropy(yhat, run.record["data"]["y_train"]).mean()
    assert abs(_plot.risk_along_t(run)[0] - expected) <= 1e-12


def test_spacetime_control_norms_are_quadrature_norms_of_the_kernels(runs):
    run = runs["st1"]
    fig = _plot.plot_control_norms(run)
    (patch,) = [p for p in fig.axes[0].patches if p.get_gid() == "control-norm"]
    expected = []
    for k, layer in enumerate(run.controls):
        om = _grids(run)[k][1]
        expected.append(np.sqrt(om @ layer["w"] ** 2 @ om + om @ layer["b"] ** 2))
    np.testing.assert_allclose(patch.get_data()[0], expected, rtol=1e-12)


def test_state_heat_map_holds_each_levels_values_at_its_nodes(runs):
    run = runs["st1"]
    fig = _plot.plot_state(run, sample=5)
    ax = fig.axes[0]
    meshes = {m.get_gid(): m for m in ax.collections if m.get_gid()}
    t = run.model.time.nodes
    for k in range(run.model.n_steps + 1):
        values = np.asarray(meshes[f"level-{k}"].get_array()).ravel()
        np.testing.assert_array_equal(values, run.trajectories[k][5])
    expected = np.concatenate(
        [
            np.stack([np.full(len(n), t[k]), n[:, 0]], 1)
            for k, (n, _) in enumerate(_grids(run))
        ]
    )
    np.testing.assert_array_equal(meshes["nodes"].get_offsets(), expected)


def test_state_images_on_image_grids_are_the_stored_states(runs):
    run = runs["st2"]
    fig = _plot.plot_state(run, sample=2, levels=[0, 1, 2])
    for k, ax in enumerate(fig.axes[:3]):
        (mesh,) = [m for m in ax.collections if m.get_gid() == f"level-{k}"]
        values = np.asarray(mesh.get_array())
        assert values.shape == ((8, 8) if k == 0 else (4, 4))
        np.testing.assert_array_equal(values.ravel(), run.trajectories[k][2])


def test_widths_steps_are_the_grid_sizes_of_the_layers(runs):
    run = runs["st1"]
    fig = _plot.plot_widths(run)
    (patch,) = [p for p in fig.axes[0].patches if p.get_gid() == "widths"]
    values, edges, _ = patch.get_data()
    np.testing.assert_array_equal(values, [5, 5, 3, 3])
    np.testing.assert_array_equal(values, [len(w) for _, w in _grids(run)[:-1]])
    np.testing.assert_array_equal(edges, run.model.time.nodes)


@pytest.mark.parametrize("case", ["st1", "st2"])
def test_kernel_images_are_the_stored_kernels(runs, case):
    run = runs[case]
    last = run.model.n_steps - 1
    fig = _plot.plot_kernels(run, layers=[0, -1])
    for ax, k in zip(fig.axes[:2], (0, last), strict=True):
        (mesh,) = [m for m in ax.collections if m.get_gid() == f"layer-{k}"]
        w = run.controls[k]["w"]
        values = np.asarray(mesh.get_array())
        assert values.shape == w.shape
        np.testing.assert_allclose(values, w, rtol=1e-14, atol=0)


def test_each_kind_of_run_gets_its_own_figures(runs):
    assert _plot.figure_names(runs["ce2"]) == [
        "trajectories",
        "regions",
        "risk",
        "controls",
        "history",
    ]
    assert _plot.figure_names(runs["st1"]) == [
        "regions",
        "risk",
        "controls",
        "state",
        "widths",
        "kernels",
        "history",
    ]
    assert _plot.figure_names(runs["st2"]) == [
        "risk",
        "controls",
        "state",
        "widths",
        "kernels",
        "history",
    ]
    with pytest.raises(spacetime.ConfigError, match="width changes with depth"):
        _plot.plot_trajectories(runs["st1"])
    with pytest.raises(spacetime.ConfigError, match="not a space-time network"):
        _plot.make_figures(runs["ce2"], ["kernels"])


# ---------------------------------------------------------------------------
# Files: images, reports and the command line


def test_save_figures_writes_one_named_file_per_figure(run_files, tmp_path):
    paths = _plot.save_figures(run_files["ce2"], tmp_path, fmt="pdf")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"ce2-{n}.pdf"
        for n in ("trajectories", "regions", "risk", "controls", "history")
    )
    for p in paths:
        assert p.read_bytes()[:5] == b"%PDF-"
    (png,) = _plot.save_figures(run_files["ce2"], tmp_path, ["history"], dpi=50)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([*names, png.name])


def _table(markdown):
    return dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", markdown, flags=re.M))


@pytest.mark.parametrize("case", ["logistic3", "st1"])
def test_report_has_the_headline_numbers_and_links_to_existing_images(
    run_files, tmp_path, case
):
    md = _report.write_report(run_files[case], tmp_path)
    run = spacetime.load_run(run_files[case])
    text = md.read_text()
    table = _table(text)
    for label, key in (
        ("objective", "objective"),
        ("training loss", "risk"),
        ("test loss", "test_risk"),
        ("train accuracy", "train_accuracy"),
        ("test accuracy", "test_accuracy"),
    ):
        assert float(table[label]) == pytest.approx(run.results[key], rel=1e-4)
    assert int(table["iterations"]) == run.optimizer["n_iter"]
    assert table["status"].startswith(run.status)
    assert table["git revision"] == (run.provenance["git_revision"] or "unknown")
    assert table["spacetime"] == run.provenance["spacetime"]

    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == len(_plot.figure_names(run))
    for link in links:
        assert (md.parent / link).is_file()

    toml = re.search(r"```toml\n(.*?)\n```", text, flags=re.S).group(1)
    assert tomllib.loads(toml)["model"] == run.config["model"]


def test_cli_plot_names_the_files_after_the_run(run_files, tmp_path, capsys):
    out = tmp_path / "figs"
    assert (
        main(
            [
                "plot",
                str(run_files["ce2"]),
                "--what",
                "risk",
                "history",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(x.name for x in out.iterdir()) == ["ce2-history.png", "ce2-risk.png"]
    assert str(out / "ce2-risk.png") in capsys.readouterr().out


@pytest.mark.parametrize("command", ["plot", "report"])
def test_cli_refuses_truncated_file_and_writes_nothing(
    run_files, tmp_path, capsys, command
):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(run_files["ce2"].read_bytes()[:4000])
    out = tmp_path / "out"
    assert main([command, str(broken), "--out", str(out)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", ["plot", "report"])
def test_cli_refuses_a_history_of_unequal_lengths_and_writes_nothing(
    run_files, tmp_path, capsys, command
):
    damaged = tmp_path / "damaged.h5"
    shutil.copy(run_files["ce2"], damaged)
    with h5py.File(damaged, "r+") as f:
        h = f["optimizer/history"]
        risk = h["risk"][()]
        del h["risk"]
        h.create_dataset("risk", data=risk[:-1])
    out = tmp_path / "out"
    assert main([command, str(damaged), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error:") and "history arrays" in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("command", ["plot", "report"])
def test_cli_refuses_other_format_version_and_writes_nothing(
    run_files, tmp_path, capsys, command
):
    other = tmp_path / "other.h5"
    shutil.copy(run_files["ce2"], other)
    with h5py.File(other, "r+") as f:
        f.attrs["format_version"] = 99
    out = tmp_path / "out"
    assert main([command, str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error:") and "format version 99" in err
    assert not out.exists()


def test_wide_inputs_get_pca_trajectories_and_no_decision_regions(tmp_path, capsys):
    path = tmp_path / "digits.h5"
    config = {
        "data": {"name": "digits", "max_samples": N_SAMPLES},
        "model": {"n_steps": 2},
        "optimizer": {"max_iter": 3},
    }
    spacetime.train(config, out=path)
    run = spacetime.load_run(path)
    assert "regions" not in _plot.figure_names(run)
    title = _plot.plot_trajectories(run).axes[0].get_title()
    assert "PCA projection of width 64" in title

    out = tmp_path / "out"
    assert main(["plot", str(path), "--what", "regions", "--out", str(out)]) == 2
    assert "64 features, not 2" in capsys.readouterr().err
    assert not out.exists()


def _interrupt_on_call(monkeypatch, n):
    """Make the n-th image rendered raise KeyboardInterrupt (Ctrl-C) instead;
    the earlier ones are written as usual. Returns the list of rendered paths."""
    from matplotlib.figure import Figure

    real = Figure.savefig
    calls = []

    def savefig(self, fname, *args, **kwargs):
        calls.append(fname)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return calls


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.parametrize("out_exists", [False, True])
def test_ctrl_c_during_the_second_image_leaves_no_image_of_the_call(
    run_files, tmp_path, capsys, monkeypatch, command, out_exists
):
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    calls = _interrupt_on_call(monkeypatch, 2)
    assert main([command, str(run_files["ce2"]), "--out", str(out)]) == 130
    assert len(calls) == 2  # the first image was rendered, then Ctrl-C
    assert "interrupted; nothing was written" in capsys.readouterr().err
    if out_exists:
        # no image, no report, no temporary file: only what was there before
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    else:
        assert not out.exists()


def test_ctrl_c_inside_a_figure_function_leaves_nothing(
    run_files, tmp_path, capsys, monkeypatch
):
    def interrupted(run, **options):
        raise KeyboardInterrupt

    table = dict(_plot.RUN_FIGURES)
    table["risk"] = dataclasses.replace(table["risk"], make=interrupted)
    monkeypatch.setattr(_plot, "RUN_FIGURES", table)
    monkeypatch.setitem(_plot.FILE_KINDS, spacetime._io.FORMAT, (
        spacetime.load_run, table))
    out = tmp_path / "out"
    code = main(["plot", str(run_files["ce2"]), "--what", "history", "risk",
                 "--out", str(out)])
    assert code == 130 and not out.exists()


def test_a_resolution_too_large_is_refused_before_any_image_is_rendered(
    run_files, tmp_path, capsys, monkeypatch
):
    calls = _interrupt_on_call(monkeypatch, 10**9)
    out = tmp_path / "out"
    # the risk figure is 6.4 x 4.6 inches: 128000 x 92000 pixels at 20000 dpi
    code = main(["plot", str(run_files["ce2"]), "--what", "risk", "--dpi", "20000",
                 "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dpi 20000" in err
    assert "128000 x 92000 pixels" in err and "fewer layers" not in err
    # the largest dpi that fits: 6.4 * 4.6 * dpi^2 <= 50e6
    assert f"use --dpi {int((50e6 / (6.4 * 4.6)) ** 0.5)} or less" in err
    # two figures, only the second (9 x 3.8 in) too large at 1250 dpi (risk:
    # 46 megapixels, history: 53): neither is rendered
    code = main(["plot", str(run_files["ce2"]), "--what", "risk", "history",
                 "--dpi", "1250", "--out", str(out)])
    assert code == 2 and "the history figure" in capsys.readouterr().err
    assert calls == [] and not out.exists()
    assert main(["report", str(run_files["ce2"]), "--out", str(out)]) == 0
    assert len(calls) == len(_plot.figure_names(spacetime.load_run(run_files["ce2"])))

    # the Python functions that save refuse the same way
    fig = _plot.plot_history(spacetime.load_run(run_files["ce2"]))  # 9 x 3.8 in
    before = len(calls)
    with pytest.raises(spacetime.ConfigError, match="--dpi 3000 would make"):
        _plot.save_figure(fig, tmp_path / "h.png", dpi=3000)
    with pytest.raises(spacetime.ConfigError, match="--dpi 3000 would make"):
        _plot.save_figures(run_files["ce2"], tmp_path / "api", dpi=3000)
    with pytest.raises(spacetime.ConfigError, match="--dpi 3000 would make"):
        _report.write_report(run_files["ce2"], tmp_path / "rep", dpi=3000)
    assert len(calls) == before
    assert not (tmp_path / "h.png").exists() and not (tmp_path / "api").exists()
    assert not (tmp_path / "rep").exists()
    # the cap itself: 9 x 3.8 inches is 50e6 pixels at 1209.1 dpi
    _plot.check_pixels({"history": fig}, 1209)
    with pytest.raises(spacetime.ConfigError, match="use --dpi 1209 or less"):
        _plot.check_pixels({"history": fig}, 1210)


@pytest.mark.parametrize("command", ["plot", "report"])
def test_out_of_memory_while_drawing_gives_the_drawing_advice(
    run_files, tmp_path, capsys, monkeypatch, command
):
    from matplotlib.figure import Figure

    def savefig(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Figure, "savefig", savefig)
    out = tmp_path / "out"
    assert main([command, str(run_files["ce2"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "out of memory" in err and "fewer layers" not in err
    assert ("--dpi" in err) == (command == "plot") and "--what" in err
    assert not out.exists()


@pytest.mark.parametrize("case", ["ce2", "logistic3"])
def test_classes_are_named_by_the_codes_the_file_stores(runs, run_files, case):
    # spheres: the file stores 0 and 1 in data/y_train; the data set's own labels
    # -1 (ball) and 1 (shell) are kept in data/class_values and shown in brackets
    with h5py.File(run_files[case], "r") as f:
        y = f["data/y_train"][()]
    assert sorted(np.unique(y)) == [0, 1]
    run = runs[case]
    assert [str(v) for v in run.class_values] == ["-1", "1"]
    expected = ["0 (label -1)", "1 (label 1)"]
    fig = _plot.plot_trajectories(run)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()][:2] == expected
    lines = _sample_lines(fig)
    for code, handle in enumerate(legend.legend_handles[:2]):
        i = int(np.flatnonzero(y == code)[0])  # a sample of that stored code
        assert np.allclose(lines[i].get_color(), handle.get_color())
    if case == "ce2":
        (legend,) = _plot.plot_decision_regions(run).legends
        assert [t.get_text() for t in legend.get_texts()] == expected
