"""Figures and reports of convergence-study, sweep, simulation and study files.

Each kind of file is made for real (a small study, sweep or simulation, seconds
each); the drawn data are compared with the file as h5py reads it, and the
fitted orders and rates in the legends with fits recomputed here from the
file's raw arrays.
"""

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import spacetime
from spacetime import _io, _plot, _report
from spacetime.cli import main

# -- the files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv")
    spacetime.convergence_study(
        out,
        schemes=("euler", "heun", "rk4"),
        fields=("inside",),
        modes=("stage", "mid"),
        n_refinements=5,
        trained_schemes=("euler", "rk4"),
        trained_levels=3,
        trained_first_steps=4,
        trained_samples=40,
        trained_max_iter=400,
        adjoint_steps=(4, 8, 16),
    )
    return out / "convergence.h5"


SWEEP = {
    "data": {"name": "spheres", "n_samples": 40},
    "model": {"width": 3, "n_steps": 4},
    "optimizer": {"max_iter": 15},
    "sweep": {"grid": {"model.T": [1.0, 2.0, 4.0], "problem.lam": [1e-2, 1e-3]}},
}


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "spheres-T"
    spacetime.run_sweep(SWEEP, out=out, workers=1, progress=False)
    return out


def _sim_config(widths, inputs, out, **model):
    return {
        "model": {"kind": "spacetime", "T": 1.5, "n_steps": 12, **model},
        "spacetime": {"rule": "trapezoid", "widths": widths},
        "simulate": {
            "w": "2 * exp(-((xi - zeta) / 0.15)**2) * cos(pi * t)",
            "b": "0.1 * xi",
            "inputs": inputs,
            "out": str(out),
        },
    }


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    paths = {
        "moving": folder / "moving.h5",
        "fixed": folder / "fixed.h5",
        "digits": folder / "digits.h5",
    }
    profiles = ["sin(pi*xi)", "4*xi*(1-xi)", "xi"]
    spacetime.run_simulation(
        _sim_config([[0.0, 17], [0.5, 9], [1.0, 5]], profiles, paths["moving"])
    )
    spacetime.run_simulation(_sim_config([[0.0, 2]], profiles, paths["fixed"]))
    digits = {
        "data": {"name": "digits", "max_samples": 40},
        "model": {"kind": "spacetime", "T": 1.0, "n_steps": 4},
        "spacetime": {"widths": [[0.0, 8, 8], [0.5, 4, 4]]},
        "simulate": {
            "w": "exp(-((xi0 - zeta0)**2 + (xi1 - zeta1)**2) / 0.1)",
            "n_samples": 5,
            "out": str(paths["digits"]),
        },
    }
    spacetime.run_simulation(digits)
    return paths


# -- helpers --------------------------------------------------------------------


def _lines(fig):
    return {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines if ln.get_gid()}


def _legend_of(line):
    return line.get_label()


def _fit_slope(x, y, floor=0.0):
    """Least-squares slope of log y against log x over y > floor (an independent
    fit of the file's raw arrays)."""
    use = y > floor
    return np.polyfit(np.log(x[use]), np.log(y[use]), 1)[0]


# -- convergence ----------------------------------------------------------------


def test_orders_figure_draws_the_files_errors_with_their_fitted_orders(conv_file):
    study = _plot.load_convergence(conv_file)
    fig = _plot.plot_convergence(study)
    lines = _lines(fig)
    with h5py.File(conv_file, "r") as f:
        floor = 1e-9
        names = []
        for mode in f["forward"]:
            for field in f["forward"][mode]:
                for scheme, g in f["forward"][mode][field].items():
                    name = f"{mode}/{field}/{scheme}"
                    names.append(name)
                    dt, err = g["dt"][()], g["error"][()]
                    line = lines[name]
                    np.testing.assert_array_equal(line.get_xdata(), dt)
                    np.testing.assert_array_equal(line.get_ydata(), err)
                    order = _fit_slope(dt, err, floor)
                    label = _legend_of(line)
                    assert f"order {order:.2f}" in label
                    assert f"expected {g.attrs['expected_order']}" in label
                    # the dashed line has the fitted slope, over the fitted points
                    fx, fy = lines[f"fit:{name}"].get_data()
                    slope = np.diff(np.log(fy)) / np.diff(np.log(fx))
                    np.testing.assert_allclose(slope, order, rtol=1e-9)
                    # ... and lies apart from them, below every one of them by a
                    # factor 3 or more (3 at the closest), so that both are seen
                    np.testing.assert_array_equal(fx, dt[err > floor])
                    ratio = err[err > floor] / fy
                    assert ratio.min() == pytest.approx(3.0, rel=1e-12)
    assert len(names) == 3 * 1 * 2
    assert len(fig.axes) == 2  # two modes, one field
    # the schemes' classical orders show where the controls are sampled per stage
    for scheme, p in (("euler", 1), ("heun", 2), ("rk4", 4)):
        label = _legend_of(lines[f"stage/inside/{scheme}"])
        observed = float(re.search(r"order ([0-9.]+)", label).group(1))
        assert abs(observed - p) < 0.15


def test_adjoint_and_trained_figures_hold_the_files_series(conv_file):
    study = _plot.load_convergence(conv_file)
    adjoint = _lines(_plot.plot_convergence_adjoint(study))
    trained = _lines(_plot.plot_convergence_trained(study))
    with h5py.File(conv_file, "r") as f:
        for scheme, g in f["adjoint/inside"].items():
            line = adjoint[f"adjoint/inside/{scheme}"]
            np.testing.assert_array_equal(line.get_ydata(), g["gap"][()])
            order = _fit_slope(g["dt"][()], g["gap"][()])
            assert f"order {order:.2f}" in _legend_of(line)
        assert set(f["trained"]) == {"euler", "rk4"}
        for scheme, g in f["trained"].items():
            layers = g["n_steps"][()][1:]
            for name, diff in (
                ("objective", np.abs(np.diff(g["objective"][()]))),
                ("controls", g["control_diff"][()]),
            ):
                line = trained[f"{name}/{scheme}"]
                np.testing.assert_array_equal(line.get_xdata(), layers)
                np.testing.assert_allclose(line.get_ydata(), diff, rtol=1e-12)
                rate = np.log2(diff[-2] / diff[-1])
                assert f"rate {rate:.2f}" in _legend_of(line)


def test_load_convergence_gives_back_what_the_study_returned(conv_file):
    study = _plot.load_convergence(conv_file)
    assert study.settings["forward"]["n_steps"] == [8, 16, 32, 64, 128]
    assert {r.mode for r in study.forward} == {"stage", "mid"}
    with h5py.File(conv_file, "r") as f:
        for r in study.forward:
            g = f[f"forward/{r.mode}/{r.field}/{r.scheme}"]
            assert r.order == g.attrs["observed_order"]
            np.testing.assert_array_equal(r.n_steps, g["n_steps"][()])
        for t in study.trained:
            for n, theta in zip(t.n_steps, t.thetas, strict=True):
                np.testing.assert_array_equal(
                    theta, f[f"trained/{t.scheme}/controls/L{n}"][()]
                )


# -- sweeps ---------------------------------------------------------------------


def _case_results(folder):
    """{(T, lam): results attrs} read from the case files themselves."""
    out = {}
    for path in folder.glob("*.h5"):
        if path.name == "index.h5":
            continue
        with h5py.File(path, "r") as f:
            config = spacetime.load_run(path).config
            key = (config["model"]["T"], config["problem"]["lam"])
            out[key] = dict(f["results"].attrs) | {"status": f.attrs["status"]}
    return out


def test_sweep_figure_plots_each_lam_against_T_with_the_case_files_numbers(
    sweep_folder,
):
    result = _plot.load_sweep_index(sweep_folder)
    cases = _case_results(sweep_folder)
    assert len(cases) == 6
    fig = _plot.plot_sweep(result)
    lines = _lines(fig)
    assert [ax.get_xlabel() for ax in fig.axes] == ["model.T"] * 3
    for lam in (1e-2, 1e-3):
        for quantity in ("objective", "risk", "test_accuracy"):
            line = lines[f"{quantity}:lam={lam:g}"]
            np.testing.assert_array_equal(line.get_xdata(), [1.0, 2.0, 4.0])
            expected = [cases[(T, lam)][quantity] for T in (1.0, 2.0, 4.0)]
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    assert len(lines) == 6


def test_sweep_layout_follows_the_chain_key_and_categorical_keys():
    from spacetime._sweep import CaseRecord, SweepResult

    def case(i, **values):
        return CaseRecord(f"c{i}", "h", values, f"c{i}.h5", objective=float(i))

    cases = [
        case(0, seed=0, field="inside", T=1.0),
        case(1, seed=0, field="outside", T=1.0),
        case(2, seed=0, field="inside", T=3.0),
        case(3, seed=0, field="outside", T=3.0),
    ]
    result = SweepResult(Path("/nowhere"), ["seed", "field", "T"], "T", cases)
    key, values, numeric, groups = _plot.sweep_layout(result)
    assert (key, values, numeric) == ("T", [1.0, 3.0], True)
    assert groups == [("field=inside", [0, 2]), ("field=outside", [1, 3])]
    # without a numeric key the strings are categories at 0, 1, ...
    result = SweepResult(Path("/nowhere"), ["field"], None, cases[:2])
    fig = _plot.plot_sweep(result, ["objective"])
    (line,) = fig.axes[0].lines
    np.testing.assert_array_equal(line.get_xdata(), [0, 1])
    np.testing.assert_array_equal(line.get_ydata(), [0.0, 1.0])
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["inside", "outside"]


def test_status_figure_holds_each_cases_status(sweep_folder):
    result = _plot.load_sweep_index(sweep_folder)
    # one case recorded as failed, as a sweep records a case that raised
    result.cases[3].status = "failed"
    fig = _plot.plot_sweep_status(result)
    (image,) = [im for im in fig.axes[0].images if im.get_gid() == "status"]
    grid = np.asarray(image.get_array())
    names = list(_plot.SWEEP_STATUS_COLOURS)
    _, _, _, groups = _plot.sweep_layout(result)
    assert grid.shape == (2, 3)
    for r, (_, idx) in enumerate(groups):
        for c, i in enumerate(idx):
            assert names[int(grid[r, c])] == result.cases[i].status
    assert sorted(names[int(v)] for v in grid.ravel()).count("failed") == 1


def _title_inside(fig, start):
    """The words of the title that starts with ``start``, after checking that
    the title is drawn inside the figure (not cut off at an edge)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (title,) = [t for t in fig.findobj(Text) if t.get_text().startswith(start)]
    box = title.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width, (box, fig.bbox)
    assert box.y1 <= fig.bbox.height
    return " ".join(title.get_text().split())


def test_status_figure_title_is_inside_the_figure(sweep_folder):
    result = _plot.load_sweep_index(sweep_folder)
    for keep in (result.cases, result.cases[:2], result.cases[:1]):
        result.cases = list(keep)
        words = _title_inside(_plot.plot_sweep_status(result), "Status of")
        assert words == "Status of the cases of sweep spheres-T; numbers: iterations"


def test_convergence_titles_are_inside_the_figures(conv_file):
    study = _plot.load_convergence(conv_file)
    words = _title_inside(_plot.plot_convergence(study), "Observed orders")
    assert "dashed: the fitted slope, drawn 3x below the points fitted" in words
    words = _title_inside(_plot.plot_convergence_adjoint(study), "Exact discrete")
    assert words.endswith("dashed: the fitted slope, drawn 3x below the points")


def test_a_sweep_whose_every_case_failed_has_no_cases_figure(tmp_path, capsys):
    cfg = dict(SWEEP, model={"width": 1, "n_steps": 4})  # width 1 < 2 features
    cfg["sweep"] = {"grid": {"problem.lam": [1e-2, 1e-3]}}
    folder = tmp_path / "allfailed"
    result = spacetime.run_sweep(cfg, out=folder, workers=1, progress=False)
    assert result.counts() == {"failed": 2}
    out = tmp_path / "out"
    assert main(["plot", str(folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert [p.name for p in out.iterdir()] == ["allfailed-status.png"]
    assert captured.out.splitlines() == [str(out / "allfailed-status.png")]
    assert captured.err == (
        "spacetime: note: the cases figure is left out: all 2 cases of the sweep "
        "failed, so none has numbers\n"
    )
    assert main(["report", str(folder), "--out", str(out)]) == 0
    text = (out / "allfailed.md").read_text()
    assert "allfailed-status.png" in text and "allfailed-cases" not in text
    assert "left out" in capsys.readouterr().err
    assert main(["plot", str(folder), "--what", "cases", "--out", str(tmp_path)]) == 2
    assert "all 2 cases of the sweep failed" in capsys.readouterr().err
    # a case with numbers is enough for the figure
    result.cases[0].objective = 1.0
    assert _plot.left_out(result, _plot.SWEEP_FIGURES) == []
    assert "cases" in _plot.figure_names(result, _plot.SWEEP_FIGURES)


# -- simulations ----------------------------------------------------------------


def _solution(path):
    with h5py.File(path, "r") as f:
        n = len(f["time/t"])
        states = [f[f"solution/level_{k:05d}"][()] for k in range(n)]
        weights = [f[f"grids/level_{k:05d}/weights"][()] for k in range(n)]
        controls = [
            {k: v[()] for k, v in f[f"controls/layer_{k:05d}"].items()}
            for k in range(n - 1)
        ]
        return f["time/t"][()], states, weights, controls, f["grids/width"][()]


def test_simulation_norms_are_quadrature_norms_of_the_stored_solution(sim_files):
    sim = spacetime.load_simulation(sim_files["moving"])
    t, states, weights, _, _ = _solution(sim_files["moving"])
    lines = _lines(_plot.plot_simulation_norms(sim))
    assert len(lines) == 3
    for i in range(3):
        expected = [
            np.sqrt(np.sum(w * x[i] ** 2)) for w, x in zip(weights, states, strict=True)
        ]
        np.testing.assert_array_equal(lines[f"sample-{i}"].get_xdata(), t)
        np.testing.assert_allclose(lines[f"sample-{i}"].get_ydata(), expected)


def test_simulation_samples_are_named_by_their_expressions_or_labels(sim_files):
    sim = spacetime.load_simulation(sim_files["moving"])
    names, classes = _plot.simulation_labels(sim)
    assert names == ["sin(pi*xi)", "4*xi*(1-xi)", "xi"] and classes is None
    # the digits the simulation started from: the first training samples of the
    # config's split (its default seed and test fraction)
    data = spacetime.default_config()["data"]
    digits = spacetime.load_dataset(
        "digits", max_samples=40, seed=data["seed"], test_fraction=data["test_fraction"]
    )
    sim = spacetime.load_simulation(sim_files["digits"])
    np.testing.assert_array_equal(sim.inputs, digits.x_train[:5])
    names, classes = _plot.simulation_labels(sim)
    np.testing.assert_array_equal(classes, digits.y_train[:5])
    assert names == [str(digits.class_values[c]) for c in digits.y_train[:5]]


def test_simulation_state_panels_hold_each_samples_values(sim_files):
    sim = spacetime.load_simulation(sim_files["moving"])
    _, states, _, _, _ = _solution(sim_files["moving"])
    fig = _plot.plot_simulation_state(sim)
    panels = [
        ax for ax in fig.axes if ax.collections and ax.get_label() != "<colorbar>"
    ]
    assert len(panels) == 3
    for i, ax in enumerate(panels):
        meshes = {c.get_gid(): c for c in ax.collections if c.get_gid()}
        for k, x in enumerate(states):
            np.testing.assert_array_equal(
                np.asarray(meshes[f"level-{k}"].get_array()).ravel(), x[i]
            )
    # images: one sample at the first level and where the grid changes
    fig = _plot.plot_simulation_state(spacetime.load_simulation(sim_files["digits"]))
    _, states, _, _, _ = _solution(sim_files["digits"])
    meshes = {c.get_gid(): c for ax in fig.axes for c in ax.collections if c.get_gid()}
    assert sorted(meshes) == ["level-0", "level-2", "level-4"]
    np.testing.assert_array_equal(
        np.asarray(meshes["level-4"].get_array()).reshape(-1), states[4][0]
    )


def test_simulation_controls_widths_and_kernels_are_the_stored_ones(sim_files):
    sim = spacetime.load_simulation(sim_files["moving"])
    t, _, weights, controls, width = _solution(sim_files["moving"])
    (patch,) = [
        p
        for p in _plot.plot_simulation_controls(sim).axes[0].patches
        if p.get_gid() == "control-norm"
    ]
    expected = [
        np.sqrt(w @ c["w"] ** 2 @ w + w @ c["b"] ** 2)
        for w, c in zip(weights, controls, strict=False)
    ]
    np.testing.assert_allclose(patch.get_data().values, expected, rtol=1e-12)
    np.testing.assert_array_equal(patch.get_data().edges, t)

    (patch,) = [
        p
        for p in _plot.plot_simulation_widths(sim).axes[0].patches
        if p.get_gid() == "widths"
    ]
    np.testing.assert_array_equal(patch.get_data().values, width[:-1])

    fig = _plot.plot_simulation_kernels(sim)
    meshes = {c.get_gid(): c for ax in fig.axes for c in ax.collections if c.get_gid()}
    assert sorted(meshes) == ["layer-0", "layer-11", "layer-4", "layer-8"]
    for name, mesh in meshes.items():
        k = int(name.split("-")[1])
        np.testing.assert_array_equal(
            np.asarray(mesh.get_array()).reshape(controls[k]["w"].shape),
            controls[k]["w"],
        )


def test_simulation_trajectories_only_on_a_fixed_grid(sim_files):
    moving = spacetime.load_simulation(sim_files["moving"])
    assert "trajectories" not in _plot.figure_names(moving, _plot.SIMULATION_FIGURES)
    assert "widths" in _plot.figure_names(moving, _plot.SIMULATION_FIGURES)
    fixed = spacetime.load_simulation(sim_files["fixed"])
    assert "widths" not in _plot.figure_names(fixed, _plot.SIMULATION_FIGURES)
    _, states, _, _, _ = _solution(sim_files["fixed"])
    lines = _lines(_plot.plot_simulation_trajectories(fixed))
    for i in range(3):
        np.testing.assert_array_equal(
            np.column_stack(lines[f"sample-{i}"].get_data()),
            np.array([x[i] for x in states]),
        )


def test_simulation_figures_take_a_simulation_that_was_not_written():
    import grids

    time = grids.time_grid(1.0, 6)
    moving = grids.moving_grid(time, "trapezoid", [(0.0, 9), (0.5, 5)])
    net = spacetime.SpaceTimeNetwork(moving, moving[0], activation="tanh")
    sim = spacetime.simulate(net, ["sin(pi*xi)"], w="exp(-(xi - zeta)**2)")
    lines = _lines(_plot.plot_simulation_norms(sim))
    np.testing.assert_allclose(lines["sample-0"].get_ydata(), sim.norms()[:, 0])
    with pytest.raises(spacetime.ConfigError, match="not read from a file"):
        _plot.save_figures(sim)


# -- the command line and the reports ---------------------------------------------


def test_cli_plot_draws_every_figure_of_each_kind(
    conv_file, sweep_folder, sim_files, tmp_path, capsys
):
    for source, expected in (
        (
            conv_file,
            ["convergence-adjoint", "convergence-orders", "convergence-trained"],
        ),
        (sweep_folder, ["spheres-T-cases", "spheres-T-status"]),
        (
            sim_files["moving"],
            [
                "moving-controls",
                "moving-kernels",
                "moving-norms",
                "moving-state",
                "moving-widths",
            ],
        ),
    ):
        out = tmp_path / source.stem
        assert main(["plot", str(source), "--out", str(out)]) == 0
        assert sorted(p.stem for p in out.iterdir()) == expected
        for p in out.iterdir():
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "pdf"
    assert (
        main(
            [
                "plot",
                str(conv_file),
                "--what",
                "orders",
                "--format",
                "pdf",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert [p.name for p in out.iterdir()] == ["convergence-orders.pdf"]


def test_cli_plot_refuses_a_figure_of_another_kind(sim_files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["plot", str(sim_files["moving"]), "--what", "history", "--out", str(out)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error: unknown figure 'history'")
    assert "norms" in err
    code = main(["plot", str(sim_files["moving"]), "--what", "trajectories"])
    assert code == 2
    assert "the width changes with depth" in capsys.readouterr().err
    assert not out.exists()


def _table(markdown):
    return dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", markdown, flags=re.M))


def _links_exist(md):
    text = md.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links
    for link in links:
        assert (md.parent / link).is_file(), link
    return text


def test_convergence_report_lists_the_observed_orders(conv_file, tmp_path):
    md = _report.write_report(conv_file, tmp_path)
    text = _links_exist(md)
    study = _plot.load_convergence(conv_file)
    rows = {
        tuple(c.strip() for c in line.strip("|").split("|")[:2]): line
        for line in text.splitlines()
        if line.startswith("| stage") or line.startswith("| mid")
    }
    for r in study.forward:
        assert f"{r.order:.2f} ({r.expected})" in rows[(r.mode, r.field)]
    assert text.count("![") == 3


def test_sweep_report_links_every_case_file_and_its_status(sweep_folder, tmp_path):
    md = _report.write_report(sweep_folder, tmp_path / "rep")
    assert md.name == "spheres-T.md"
    text = _links_exist(md)
    result = spacetime.load_sweep(sweep_folder)
    for case in result:
        row = next(ln for ln in text.splitlines() if f"[{case.name}]" in ln)
        assert f"| {case.status} |" in row
        assert f"| {case.objective:.6g} |" in row
    # a sweep config given as a dict is kept as JSON
    assert "```json" in text and '"name": "spheres"' in text


def test_simulation_report_has_the_norms_and_the_expressions(sim_files, tmp_path):
    md = _report.write_report(sim_files["moving"], tmp_path)
    text = _links_exist(md)
    sim = spacetime.load_simulation(sim_files["moving"])
    norms = sim.norms()
    for i, expr in enumerate(["sin(pi*xi)", "4*xi*(1-xi)", "xi"]):
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {i} |"))
        assert f"| {expr} | {norms[0, i]:.6g} | {norms[-1, i]:.6g} |" in row
    assert "2 * exp(-((xi - zeta) / 0.15)**2) * cos(pi * t)" in text
    assert _table(text)["git revision"]


def test_study_report_has_the_table_and_the_figure(tmp_path):
    cfg = tmp_path / "depth.toml"
    cfg.write_text(
        '[data]\nname = "spheres"\nn_samples = 12\ntest_fraction = 0.0\n'
        "[model]\nwidth = 3\nn_steps = 3\n[output_map]\ntrained = false\n"
        '[problem]\nloss = "logistic"\n[optimizer]\nmax_iter = 5\n'
    )
    study = spacetime.depth_study(
        cfg, [1, 2], out=tmp_path / "study", workers=1, progress=False
    )
    assert main(["report", str(study.path), "--out", str(tmp_path / "rep")]) == 0
    text = _links_exist(tmp_path / "rep" / "depth-report.md")
    assert study.table().strip().splitlines()[0] in text
    assert "(depth-study.png)" in text
    # next to the study (no --out) the report keeps the study's own table
    own = (tmp_path / "study" / "depth.md").read_text()
    assert main(["report", str(study.path)]) == 0
    assert (tmp_path / "study" / "depth.md").read_text() == own
    assert (tmp_path / "study" / "depth-report.md").exists()


KINDS = ["conv", "sweep", "sim"]


def _file_of(kind, conv_file, sweep_folder, sim_files):
    return {
        "conv": conv_file,
        "sweep": sweep_folder / "index.h5",
        "sim": sim_files["moving"],
    }[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["plot", "report"])
def test_cli_refuses_truncated_or_other_version_files_and_writes_nothing(
    conv_file, sweep_folder, sim_files, tmp_path, capsys, kind, command
):
    source = _file_of(kind, conv_file, sweep_folder, sim_files)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(source.read_bytes()[:3000])
    out = tmp_path / "out"
    assert main([command, str(broken), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error:") and "truncated or corrupt" in err
    assert err.count("\n") == 1

    other = tmp_path / "other.h5"
    shutil.copy(source, other)
    with h5py.File(other, "r+") as f:
        f.attrs["format_version"] = 99
    assert main([command, str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spacetime: error:") and "format version 99" in err
    assert not out.exists()


def test_cli_refuses_a_file_of_an_unknown_kind(sim_files, tmp_path, capsys):
    other = tmp_path / "other.h5"
    shutil.copy(sim_files["moving"], other)
    with h5py.File(other, "r+") as f:
        f.attrs["format"] = "someone-elses-format"
    assert main(["report", str(other), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "format 'someone-elses-format'" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_damaged_group_in_a_convergence_file_is_one_clear_error(conv_file, tmp_path):
    other = tmp_path / "convergence.h5"
    shutil.copy(conv_file, other)
    with h5py.File(other, "r+") as f:
        del f["forward/stage/inside/rk4/error"]
    with pytest.raises(spacetime.RunFileError, match="incomplete or damaged"):
        _plot.load_convergence(other)


@pytest.mark.parametrize("kind", ["conv", "sweep"])
def test_version_stored_as_text_is_shown_as_text(
    conv_file, sweep_folder, sim_files, tmp_path, capsys, kind
):
    # "1" is not the integer 1 the writers store: the message must not read
    # "version 1; this spacetime reads version 1"
    other = tmp_path / "other.h5"
    shutil.copy(_file_of(kind, conv_file, sweep_folder, sim_files), other)
    with h5py.File(other, "r+") as f:
        f.attrs["format_version"] = "1"
    out = tmp_path / "out"
    assert main(["plot", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "format version '1' (stored as str)" in err
    assert "reads version 1 (an integer)" in err
    assert err.count("\n") == 1 and not out.exists()


def test_version_text_keeps_integers_and_quotes_the_rest():
    assert _io.version_text(np.int64(1)) == "1"
    assert _io.version_text(2) == "2"
    assert _io.version_text(b"1") == "'1' (stored as str)"
    assert _io.version_text(np.float64(1.0)) == "1.0 (stored as float)"
    assert _io.version_text(None) == "None (missing)"
    assert _plot._is_version(np.int32(1), 1) and not _plot._is_version("1", 1)
    assert not _plot._is_version(np.float64(1.0), 1)
    assert not _plot._is_version(np.True_, 1)


@pytest.mark.parametrize("command", ["plot", "report"])
def test_cli_names_a_folder_without_index_and_a_missing_file(
    tmp_path, capsys, command
):
    empty = tmp_path / "sweeps" / "empty"
    empty.mkdir(parents=True)
    assert main([command, str(empty)]) == 2
    err = capsys.readouterr().err
    assert "is a folder with no index.h5" in err
    assert "sweep folder" in err and "run, study, convergence-study" in err
    assert "not a run file" not in err and err.count("\n") == 1
    assert list(empty.iterdir()) == []

    assert main([command, str(tmp_path / "nonexist.h5")]) == 2
    err = capsys.readouterr().err
    assert f"file '{tmp_path / 'nonexist.h5'}' does not exist" in err
    assert "run file" not in err
