"""Markdown reports of run files: settings, headline numbers, provenance, figures.

A report is one Markdown file, ``<stem>.md``, with the figures of
:mod:`spacetime._plot` written next to it as PNG images and embedded by relative
links, so the folder renders as it is on a code host.
"""

import logging
import math
from pathlib import Path

from . import _io
from ._plot import (
    RUN_FIGURES,
    check_dpi,
    figure_path,
    load_file,
    make_figures,
    model_line,
    save_figure,
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
    if figures:
        lines += ["## Figures", ""]
        table = RUN_FIGURES if table is None else table
        for name, link in figures.items():
            kind = table.get(name)
            title = kind.title if kind else name
            lines += [f"### {title}", "", f"![{title}]({link})", ""]
            if kind:
                lines += [kind.caption, ""]
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
        *_table(
            [
                ("spacetime", prov.get("spacetime", "?")),
                ("git revision", prov.get("git_revision") or "unknown"),
                ("date", prov.get("date", "?")),
                (
                    "Python, NumPy, SciPy, Numba",
                    ", ".join(
                        str(prov.get(k, "?"))
                        for k in ("python", "numpy", "scipy", "numba")
                    ),
                ),
                ("threads", prov.get("numba_threads", "?")),
                ("run file", run.path.name),
            ]
        ),
        "",
    ]
    return "\n".join(lines)


def write_report(file, out=None, *, layers=None, dpi: int = 90) -> Path:
    """Write ``<stem>.md`` and its PNG figures for a run file.

    Parameters
    ----------
    file : path-like
        A run file.
    out : path-like, optional
        Folder of the report and its images; default the run file's folder.
    layers : sequence of int, optional
        Levels of the decision regions.
    dpi : int
        Resolution of the images.

    Returns
    -------
    Path
        The Markdown file.

    Raises
    ------
    RunFileError
        When the file cannot be read or the report cannot be written; a file that
        cannot be read leaves nothing written.
    """
    check_dpi(dpi)
    run, table = load_file(file)
    out = Path(file).parent if out is None else Path(out)
    stem = Path(file).stem
    md_path = out / f"{stem}.md"
    figures = make_figures(run, layers=layers, table=table)
    paths = {name: figure_path(out, stem, name, "png") for name in figures}
    for p in [md_path, *paths.values()]:
        _io.check_output_path(p, overwrite=True)

    for name, fig in figures.items():
        save_figure(fig, paths[name], dpi=dpi)
    links = {name: p.name for name, p in paths.items()}
    text = report_markdown(run, links, table)
    with _io.atomic_path(md_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s", md_path)
    return md_path


__all__ = ["headline", "report_markdown", "write_report"]
