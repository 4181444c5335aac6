"""Markdown reports of files: settings, headline numbers, provenance, figures.

A report is one Markdown file, ``<stem>.md``, with the figures of
:mod:`spacetime._plot` written next to it as PNG images and embedded by relative
links, so the folder renders as it is on a code host. Run files, study files,
convergence-study files, sweep indexes and simulation files each have their own
text (:func:`markdown_for`).
"""

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from . import _io
from ._plot import (
    RUN_FIGURES,
    _source_path,
    _warn,
    check_dpi,
    check_pixels,
    figure_path,
    file_stem,
    left_out,
    load_file,
    make_figures,
    model_line,
    simulation_control_norms,
    simulation_labels,
    sweep_layout,
    table_for,
    write_all,
)

log = logging.getLogger(__name__)


def _cell(value) -> str:
    """Text for a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _number(value, fmt=".6g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


def _table(rows, header=("quantity", "value")) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    return lines


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def headline(run) -> list[tuple[str, str]]:
    """The headline numbers of a run as (label, formatted value) pairs."""
    r, opt = run.results, run.optimizer
    rows = [
        ("status", f"{run.status} ({opt.get('message', '')})"),
        ("objective", _number(r["objective"])),
        ("training loss", _number(r["risk"])),
        # n/a without a test set, and in files written before it was stored
        ("test loss", _number(r.get("test_risk", math.nan))),
        ("control norm ‖u‖", _number(r["control_norm"])),
        ("gradient norm", _number(r["grad_norm"])),
    ]
    if run.record["problem"]["task"] == "classification":
        rows += [
            ("train accuracy", _number(r["train_accuracy"], ".4f")),
            ("test accuracy", _number(r["test_accuracy"], ".4f")),
        ]
    rows += [
        ("iterations", str(opt["n_iter"])),
        ("gradient evaluations", str(opt["n_fev"])),
        ("wall time", f"{r['wall_time']:.1f} s"),
    ]
    return rows


def report_markdown(run, figures=None, table=None) -> str:
    """The Markdown text of a run's report.

    Parameters
    ----------
    run : Run
    figures : dict, optional
        Figure name to the image's path relative to the Markdown file.
    table : dict of FigureKind, optional
        Where the figures' headings and captions are; default ``RUN_FIGURES``.

    Returns
    -------
    str
    """
    d = run.record["data"]["attrs"]
    pr = run.record["problem"]
    prov = run.provenance
    lines = [
        f"# Run `{run.path.stem}`",
        "",
        f"The network: {model_line(run)}. Trained with the {pr['loss']} loss and "
        f"λ = {pr['lam']:g} on `{d['name']}` ({d['n_train']} training and "
        f"{d['n_test']} test samples, {d['n_features']} features).",
        "",
        "## Results",
        "",
        *_table(headline(run)),
        "",
    ]
    lines += _figure_section(figures, RUN_FIGURES if table is None else table)
    fence = _fence(run.config_text)
    lines += [
        "## Configuration",
        "",
        f"{fence}toml",
        run.config_text.rstrip("\n"),
        fence,
        "",
        "## Provenance",
        "",
        *_provenance(prov, [("threads", prov.get("numba_threads", "?"))], run.path),
        "",
    ]
    return "\n".join(lines)


def _figure_section(figures, table) -> list[str]:
    """``## Figures`` with each image, its heading and its caption."""
    if not figures:
        return []
    lines = ["## Figures", ""]
    for name, link in figures.items():
        kind = table.get(name)
        title = kind.title if kind else name
        lines += [f"### {title}", "", f"![{title}]({link})", ""]
        if kind:
            lines += [kind.caption, ""]
    return lines


def _provenance(prov: dict, extra, path) -> list[str]:
    """The provenance table: versions, revision, date, the file."""
    rows = [
        ("spacetime", prov.get("spacetime", "?")),
        ("git revision", prov.get("git_revision") or "unknown"),
        ("date", prov.get("date", "?")),
        (
            "Python, NumPy, SciPy, Numba",
            ", ".join(
                str(prov.get(k, "?")) for k in ("python", "numpy", "scipy", "numba")
            ),
        ),
        *extra,
        ("file", Path(path).name),
    ]
    return _table(rows)


def _config_block(text: str, lang: str = "toml") -> list[str]:
    if not text:
        return []
    fence = _fence(text)
    return ["## Configuration", "", f"{fence}{lang}", text.rstrip("\n"), fence, ""]


def _grid(header, rows) -> list[str]:
    """A Markdown table of any number of columns."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _file_attrs(path) -> dict:
    """The root attributes of an HDF5 file, strings decoded ({} if unreadable)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {
                k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()
            }
    except (OSError, RuntimeError, ValueError):
        return {}


# ---------------------------------------------------------------------------
# Study files


def study_markdown(study, figures=None, table=None) -> str:
    """The report of a large-time study file (``spacetime study ...``)."""
    attrs = _file_attrs(study.path)
    prov = json.loads(attrs.get("provenance", "{}") or "{}")
    lines = [
        f"# Study `{study.kind}`: `{Path(study.path).stem}`",
        "",
        f"{study.n_rows} rows; every case complete: "
        f"{'yes' if study.complete else 'no'}.",
        "",
        "## Results",
        "",
        study.table().rstrip("\n"),
        "",
        *_figure_section(figures, table or {}),
        *_config_block(str(study.settings.get("config", ""))),
        "## Provenance",
        "",
        *_provenance(prov, [], study.path),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Convergence studies


def convergence_markdown(study, figures=None, table=None) -> str:
    """The report of a convergence-study file: the observed orders as tables."""
    path = _source_path(study)
    settings = study.settings
    fw = settings.get("forward", {})
    lines = [
        f"# Convergence study `{path.stem}`",
        "",
        f"Forward problem: width {fw.get('width', '?')}, "
        f"{fw.get('n_samples', '?')} samples, {fw.get('activation', '?')}, "
        f"T = {fw.get('T', '?')}, controls {fw.get('controls', '?')}; reference "
        f"{fw.get('reference', '?')}; steps L = "
        f"{', '.join(str(n) for n in fw.get('n_steps', []))}. The order is the "
        "least-squares slope of log error against log dt over the errors above "
        f"{fw.get('error_floor', '?')}."
        + (" Fast mode: the rates are pre-asymptotic." if settings.get("fast") else ""),
        "",
    ]
    if study.forward:
        modes = list(dict.fromkeys(r.mode for r in study.forward))
        fields = list(dict.fromkeys(r.field for r in study.forward))
        schemes = list(dict.fromkeys(r.scheme for r in study.forward))
        found = {(r.mode, r.field, r.scheme): r for r in study.forward}
        rows = []
        for m in modes:
            for f in fields:
                cells = []
                for s in schemes:
                    r = found.get((m, f, s))
                    cells.append(
                        f"{_number(r.order, '.2f')} ({r.expected})" if r else ""
                    )
                rows.append([m, f, *cells])
        lines += [
            "## Observed orders, forward (expected in brackets)",
            "",
            *_grid(["mode", "field", *schemes], rows),
            "",
        ]
    if study.adjoint:
        lines += [
            "## Discrete gradient against the continuous adjoint",
            "",
            *_grid(
                ["field", "scheme", "observed order", "points", "gap at finest dt"],
                [
                    [
                        a.field,
                        a.scheme,
                        _number(a.order, ".2f"),
                        a.n_fit,
                        _number(float(a.gaps[-1]), ".2e"),
                    ]
                    for a in study.adjoint
                ],
            ),
            "",
        ]
    if study.trained:
        rows = []
        for t in study.trained:
            for j, n in enumerate(t.n_steps):
                rows.append(
                    [
                        t.scheme,
                        int(n),
                        _number(float(t.objective[j]), ".8f"),
                        _number(float(t.objective_diff[j]), ".3e")
                        if j < t.objective_diff.size
                        else "",
                        _number(float(t.objective_rate[j - 1]), ".2f")
                        if 0 < j <= t.objective_rate.size
                        else "",
                        _number(float(t.control_diff[j]), ".3e")
                        if j < t.control_diff.size
                        else "",
                        _number(float(t.control_rate[j - 1]), ".2f")
                        if 0 < j <= t.control_rate.size
                        else "",
                    ]
                )
        lines += [
            "## Trained: optimal values and controls",
            "",
            *_grid(
                [
                    "scheme",
                    "layers L",
                    "J_L",
                    "abs(J_L - J_2L)",
                    "rate of J",
                    "L2 norm of R u_L - u_2L",
                    "rate of u",
                ],
                rows,
            ),
            "",
        ]
    lines += _figure_section(figures, table or {})
    lines += [
        "## Provenance",
        "",
        *_provenance(settings.get("provenance", {}), [], path),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Sweeps


def sweep_markdown(result, figures=None, table=None, out=None, max_rows=200) -> str:
    """The report of a sweep index: counts, a table of the cases, the figures.

    Parameters
    ----------
    out : path-like, optional
        The report's folder, for the relative links to the case files; default
        the sweep folder.
    max_rows : int
        At most this many cases are listed.
    """
    path = _source_path(result)
    attrs = _file_attrs(path)
    out = Path(path).parent if out is None else Path(out)
    counts = result.counts()
    x_key, _, _, _ = sweep_layout(result)
    lines = [
        f"# Sweep `{result.out.name}`",
        "",
        f"{len(result)} cases over "
        + (", ".join(f"`{k}`" for k in result.keys) or "no swept key")
        + (f", chained along `{result.chain}`" if result.chain else "")
        + ": "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + (". The last run was interrupted." if result.interrupted else ".")
        + (f" The figures put `{x_key}` on the x axis." if x_key else ""),
        "",
        "## Cases",
        "",
    ]
    header = [
        "case",
        *result.keys,
        "status",
        "objective",
        "training loss",
        "test loss",
        "test accuracy",
        "iterations",
        "time (s)",
    ]
    rows = []
    for c in list(result)[:max_rows]:
        name = c.name
        case_file = Path(result.out) / c.file
        if case_file.is_file():
            link = Path(os.path.relpath(case_file, out)).as_posix()
            name = f"[{c.name}]({link})"
        rows.append(
            [
                name,
                *(c.values[k] for k in result.keys),
                c.status,
                _number(c.objective),
                _number(c.risk),
                _number(c.test_risk),
                _number(c.test_accuracy, ".4f"),
                c.n_iter if c.n_iter >= 0 else "",
                _number(c.wall_time, ".1f"),
            ]
        )
    lines += _grid(header, rows)
    if len(result) > max_rows:
        lines += ["", f"({len(result) - max_rows} more cases in `summary.csv`)"]
    lines.append("")
    failed = [c for c in result if c.error]
    if failed:
        lines += ["Errors:", ""]
        lines += [f"- `{c.name}`: {_cell(c.error)}" for c in failed]
        lines.append("")
    lines += _figure_section(figures, table or {})
    config = str(attrs.get("sweep_config", ""))
    # a sweep started from a dict keeps its config as JSON
    lines += _config_block(
        config, "json" if config.lstrip().startswith("{") else "toml"
    )
    lines += [
        "## Index",
        "",
        *_table(
            [
                ("created", attrs.get("created", "?")),
                ("updated", attrs.get("updated", "?")),
                ("index file", Path(path).name),
            ]
        ),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Simulations


def simulation_markdown(sim, figures=None, table=None) -> str:
    """The report of a simulation file: grids, controls, norms per sample."""
    from ._plot import _simulation_attrs, _simulation_line

    path = _source_path(sim)
    info = _simulation_attrs(sim)
    names, _ = simulation_labels(sim)
    norms = sim.norms()
    controls = info["controls"]
    lines = [
        f"# Simulation `{path.stem}`",
        "",
        f"The network: {_simulation_line(sim).replace(chr(10), ' ')}.",
        "",
        "## Controls",
        "",
        *_table(
            [(f"`{k}`", f"`{controls[k]}`") for k in ("w", "b", "a") if controls.get(k)]
            + [
                ("evaluated at", controls.get("at", "?")),
                (
                    "largest layer norm",
                    _number(float(np.max(simulation_control_norms(sim))), ".4g"),
                ),
            ]
        ),
        "",
        "## States",
        "",
        *_grid(
            [
                "sample",
                "initial state",
                f"L2 norm at t = {sim.times[0]:g}",
                f"L2 norm at t = {sim.times[-1]:g}",
            ],
            [
                [i, names[i], _number(float(norms[0, i])), _number(float(norms[-1, i]))]
                for i in range(sim.n_samples)
            ],
        ),
        "",
        *_figure_section(figures, table or {}),
        *_config_block(info["config"]),
        "## Provenance",
        "",
        *_provenance(info["provenance"], [], path),
        "",
    ]
    return "\n".join(lines)


def markdown_for(obj, figures=None, table=None, out=None) -> str:
    """The report text of any loaded file (run, study, convergence, sweep,
    simulation)."""
    from ._convergence import ConvergenceStudy
    from ._simulate import Simulation
    from ._studies import Study
    from ._sweep import SweepResult

    table = table_for(obj) if table is None else table
    if isinstance(obj, Study):
        return study_markdown(obj, figures, table)
    if isinstance(obj, ConvergenceStudy):
        return convergence_markdown(obj, figures, table)
    if isinstance(obj, SweepResult):
        return sweep_markdown(obj, figures, table, out)
    if isinstance(obj, Simulation):
        return simulation_markdown(obj, figures, table)
    return report_markdown(obj, figures, table)


def report_name(obj, stem: str) -> str:
    """``<stem>.md``, or ``<stem>-report.md`` for a study or convergence-study file,
    whose command writes its own table as ``<stem>.md`` next to it."""
    from ._convergence import ConvergenceStudy
    from ._studies import Study

    if isinstance(obj, Study | ConvergenceStudy):
        return f"{stem}-report.md"
    return f"{stem}.md"


def write_report(
    file, out=None, *, layers=None, dpi: int = 90, on_note=None
) -> Path:
    """Write ``<stem>.md`` (see :func:`report_name`) and its PNG figures for a file.

    Parameters
    ----------
    file : path-like
        A run, study, convergence-study, sweep-index (or sweep folder) or
        simulation file.
    out : path-like, optional
        Folder of the report and its images; default the run file's folder.
    layers : sequence of int, optional
        Levels of the decision regions.
    dpi : int
        Resolution of the images.
    on_note : callable, optional
        Called with one line for each figure left out for a reason a reader
        would not expect (a sweep whose every case failed has no ``cases``
        figure); default a logged warning.

    Returns
    -------
    Path
        The Markdown file.

    Raises
    ------
    RunFileError
        When the file cannot be read or the report cannot be written; a file that
        cannot be read leaves nothing written.
    ConfigError
        When a figure would have more than ``MAX_PIXELS`` pixels at ``dpi``.

    Notes
    -----
    The report and its images are written all or none: an error or Ctrl-C part
    of the way leaves none of them.
    """
    check_dpi(dpi)
    run, table = load_file(file)
    source = _source_path(run)
    out = source.parent if out is None else Path(out)
    stem = file_stem(run)
    md_path = out / report_name(run, stem)
    figures = make_figures(run, layers=layers, table=table)
    for note in left_out(run, table):
        (on_note or _warn)(note)
    paths = {name: figure_path(out, stem, name, "png") for name in figures}
    for p in [md_path, *paths.values()]:
        _io.check_output_path(p, overwrite=True)

    check_pixels(figures, dpi)
    links = {name: p.name for name, p in paths.items()}
    text = markdown_for(run, links, table, out)
    write_all(figures, paths, dpi, {md_path: text})
    return md_path


__all__ = [
    "convergence_markdown",
    "headline",
    "markdown_for",
    "report_markdown",
    "simulation_markdown",
    "study_markdown",
    "sweep_markdown",
    "write_report",
]
