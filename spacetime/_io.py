"""Run files: one HDF5 file per training run, written atomically.

The layout is documented in ``docs/file-format.md``. Fixed-shape fields carry HDF5
dimension scales, so netCDF readers (xarray with the h5netcdf engine) see named
dimensions. A file is written under a temporary name in the target folder and renamed
when complete: a crash leaves no half-written file under the final name.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from ._errors import RunFileError

FORMAT = "spacetime-run"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# Paths


def version_text(found) -> str:
    """A stored version as a message shows it: an integer as it is, anything else
    (text, a float, a missing attribute) by its repr, so that ``'1'`` is not
    shown as ``1``."""
    if isinstance(found, int | np.integer) and not isinstance(found, bool | np.bool_):
        return str(int(found))
    if isinstance(found, bytes | np.bytes_):
        found = bytes(found).decode(errors="replace")
    if isinstance(found, np.generic):
        found = found.item()
    kind = "missing" if found is None else f"stored as {type(found).__name__}"
    return f"{found!r} ({kind})"


def check_output_path(
    path, overwrite=False, how="--overwrite (save.overwrite = true)"
) -> Path:
    """Refuse, before any work is done, an output path that cannot be written.

    Parameters
    ----------
    how : str
        The option, or config key, that allows replacing a file, as the message to
        the user names it (the run's by default).

    Raises
    ------
    RunFileError
        When a parent of ``path`` is a regular file, a folder cannot be created or
        written, ``path`` is a folder, or a file exists there and ``overwrite`` is off.
    """
    path = Path(path)
    if path.is_dir():
        raise RunFileError(f"output path '{path}' is a folder: give a file name")
    if path.exists() and not overwrite:
        raise RunFileError(
            f"output file '{path}' exists already: choose another path, or pass "
            f"{how} to replace it"
        )
    parent = path.parent
    ancestor = parent
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise RunFileError(
            f"cannot write '{path}': '{ancestor}' is a file, not a folder; "
            "choose an output path in a folder"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK) or not _can_create_in(ancestor):
        raise RunFileError(
            f"cannot write '{path}': folder '{ancestor}' is not writable; "
            "choose another output path"
        )
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (root passes os.access
    even where the file system refuses, as on /sys or /proc)."""
    try:
        before = os.stat(folder)
        fd, name = tempfile.mkstemp(prefix=".spacetime-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    # leave the folder as it was, times included
    try:
        os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    except OSError:
        pass
    return True


class atomic_path:
    """Context manager giving a temporary path that replaces ``path`` on success."""

    def __init__(self, path):
        self.path = Path(path)
        self.tmp = None

    def __enter__(self) -> Path:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFileError(
                f"cannot create folder '{self.path.parent}': {err.strerror}; "
                "choose another output path"
            ) from None
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass
        return False


class atomic_paths:
    """Context manager for several files written together: all or none.

    Gives a dict of temporary paths, one per key of ``paths``; on success every
    temporary file replaces its target, on an error every temporary file is removed,
    and so is every folder the context created that is still empty, so that a failure
    leaves the output folder as it was.
    """

    def __init__(self, paths: dict):
        self.paths = {k: Path(v) for k, v in paths.items()}
        self.tmps = {}
        self.created = []

    def __enter__(self) -> dict:
        for path in self.paths.values():
            missing = []
            folder = path.parent
            while not folder.exists() and folder.parent != folder:
                missing.append(folder)
                folder = folder.parent
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                self._clean()
                raise RunFileError(
                    f"cannot create folder '{path.parent}': {err.strerror}; "
                    "choose another output path"
                ) from None
            self.created.extend(missing)
        self.tmps = {
            k: p.with_name(f".{p.name}.tmp-{os.getpid()}")
            for k, p in self.paths.items()
        }
        return dict(self.tmps)

    def _clean(self):
        for tmp in self.tmps.values():
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        for folder in self.created:  # deepest first, as they were found
            try:
                folder.rmdir()
            except OSError:
                pass

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            for key, tmp in self.tmps.items():
                os.replace(tmp, self.paths[key])
        else:
            self._clean()
        return False


# ---------------------------------------------------------------------------
# Provenance


def _git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    rev = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return rev + ("-dirty" if dirty else "")


def provenance(seed) -> dict:
    """Versions, revision, date, machine and command of this process."""
    import numba
    import scipy

    from . import __version__

    return {
        "spacetime": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "git_revision": _git_revision(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
        "seed": int(seed),
        "numba_threads": int(numba.get_num_threads()),
    }


# ---------------------------------------------------------------------------
# Writing


def _attrs(obj, values: dict):
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            v = np.int8(v)
        obj.attrs[k] = v


def put(group, name, data, dims=(), coords=None):
    """Write ``data`` as ``group[name]`` with dimension scales named ``dims``.

    A scale that does not exist yet in the group is created from ``coords[dim]`` or
    as ``0, 1, ...``.
    """
    data = np.asarray(data)
    ds = group.create_dataset(name, data=data)
    coords = coords or {}
    for axis, dim in enumerate(dims):
        if dim not in group:
            values = coords.get(dim, np.arange(data.shape[axis], dtype=np.int64))
            scale = group.create_dataset(dim, data=np.asarray(values))
            scale.make_scale(dim)
        ds.dims[axis].attach_scale(group[dim])
    return ds


def write_run(path, run: dict) -> None:
    """Write a run file atomically.

    Parameters
    ----------
    path : path-like
    run : dict
        The sections of the file, as built by ``spacetime._run``; see
        ``docs/file-format.md``.
    """
    with atomic_path(path) as tmp:
        try:
            with h5py.File(tmp, "w") as f:
                _write(f, run)
        except OSError as err:
            raise RunFileError(f"cannot write run file '{path}': {err}") from None


def _write(f, run):
    _attrs(
        f,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "status": run["status"],
            "created": run["provenance"]["date"],
        },
    )
    g = f.create_group("config")
    g.attrs["toml"] = run["config_text"]
    g.attrs["json"] = json.dumps(run["config"], sort_keys=True)
    _attrs(f.create_group("provenance"), run["provenance"])
    _attrs(f.create_group("model"), run["model"])
    _attrs(f.create_group("problem"), run["problem"])

    g = f.create_group("time")
    put(g, "t", run["time"], ("level",))
    put(g, "dt", np.diff(run["time"]), ("layer",))

    g = f.create_group("controls")
    if isinstance(run["controls"], list):
        # variable widths: one group per layer, kernels of shape (n_k, n_k)
        for k, layer in enumerate(run["controls"]):
            lg = g.create_group(layer_name(k))
            for name, arr in layer.items():
                dims = ("node", "node_in") if arr.ndim == 2 else ("node",)
                put(lg, name, arr, dims)
        grid = f.create_group("grids")
        for k, (nodes, weights) in enumerate(run["grids"]):
            lg = grid.create_group(level_name(k))
            put(lg, "nodes", nodes, ("node", "axis"))
            put(lg, "weights", weights, ("node",))
        put(grid, "width", np.array([len(w) for _, w in run["grids"]]), ("level",))
    else:
        field = run["model"].get("field")
        for name, arr in run["controls"].items():
            dims = ("layer", "row", "col") if arr.ndim == 3 else ("layer", "row")
            if field == "bottleneck":
                dims = {
                    "w": ("layer", "row", "hidden"),
                    "a": ("layer", "hidden", "col"),
                    "b": ("layer", "hidden"),
                }[name]
            put(g, name, arr, dims)

    g = f.create_group("output_map")
    put(g, "p", run["p"], ("output", "component"))
    put(g, "p0", run["p0"], ("output",))
    g.attrs["trained"] = np.int8(run["problem"]["train_output"])

    g = f.create_group("optimizer")
    _attrs(g, run["optimizer"])
    h = g.create_group("history")
    for name, arr in run["history"].items():
        if name != "iteration":
            put(
                h, name, arr, ("iteration",), {"iteration": run["history"]["iteration"]}
            )

    _attrs(f.create_group("results"), run["results"])

    g = f.create_group("data")
    _attrs(g, run["data"]["attrs"])
    for name in ("shift", "scale"):
        put(g, name, run["data"][name], ("feature",))
    g.attrs["class_values"] = json.dumps(list(run["data"]["class_values"]))
    for part in ("train", "test"):
        put(g, f"y_{part}", run["data"][f"y_{part}"], (f"{part}_sample",))

    g = f.create_group("predictions")
    for part in ("train", "test"):
        put(g, part, run["predictions"][part], (f"{part}_sample", "output"))

    traj = run.get("trajectories")
    if isinstance(traj, list):
        g = f.create_group("trajectories")
        for k, level in enumerate(traj):
            put(g.create_group(level_name(k)), "train", level, ("train_sample", "node"))
    elif traj is not None:
        g = f.create_group("trajectories")
        put(
            g,
            "train",
            traj,
            ("level", "train_sample", "component"),
            {"level": run["time"]},
        )


def layer_name(k: int) -> str:
    return f"layer_{k:05d}"


def level_name(k: int) -> str:
    return f"level_{k:05d}"


# ---------------------------------------------------------------------------
# Reading


def _read_attrs(obj) -> dict:
    out = {}
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _read_controls(g):
    if "layer_00000" in g:
        return [
            {
                k: g[layer_name(i)][k][()]
                for k in ("w", "a", "b")
                if k in g[layer_name(i)]
            }
            for i in range(sum(1 for name in g if name.startswith("layer_")))
        ]
    return {k: g[k][()] for k in ("w", "a", "b") if k in g}


def _read_grids(f):
    if "grids" not in f:
        return None
    g = f["grids"]
    n = sum(1 for name in g if name.startswith("level_"))
    return [
        (g[level_name(k)]["nodes"][()], g[level_name(k)]["weights"][()])
        for k in range(n)
    ]


def _read_trajectories(f):
    if "trajectories" not in f:
        return None
    g = f["trajectories"]
    if "train" in g and isinstance(g["train"], h5py.Dataset):
        return g["train"][()]
    n = sum(1 for name in g if name.startswith("level_"))
    return [g[level_name(k)]["train"][()] for k in range(n)]


def read_run(path) -> dict:
    """Read a run file into plain Python and NumPy values.

    Raises
    ------
    RunFileError
        When the file is missing, truncated or corrupt, not a run file, or written by
        an unknown format version.
    """
    path = Path(path)
    if path.is_dir():
        raise RunFileError(
            f"'{path}' is a folder, not a run file: give the path of an .h5 run file"
        )
    if not path.is_file():
        raise RunFileError(f"run file '{path}' does not exist: check the path")
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError):
        raise RunFileError(
            f"'{path}' is not a readable HDF5 file (truncated or corrupt): "
            "use another copy, or run the case again"
        ) from None
    try:
        with f:
            top = _read_attrs(f)
            if top.get("format") != FORMAT:
                raise RunFileError(
                    f"'{path}' is an HDF5 file but not a spacetime run file: give "
                    "a file written by 'spacetime run'"
                )
            version = top.get("format_version")
            if version != FORMAT_VERSION:
                raise RunFileError(
                    f"'{path}' has run-file format version "
                    f"{version_text(version)}; this spacetime reads version "
                    f"{FORMAT_VERSION}: use the spacetime version that wrote it"
                )
            run = {
                "status": top["status"],
                "config_text": _read_attrs(f["config"])["toml"],
                "config": json.loads(_read_attrs(f["config"])["json"]),
                "provenance": _read_attrs(f["provenance"]),
                "model": _read_attrs(f["model"]),
                "problem": _read_attrs(f["problem"]),
                "time": f["time/t"][()],
                "controls": _read_controls(f["controls"]),
                "grids": _read_grids(f),
                "p": f["output_map/p"][()],
                "p0": f["output_map/p0"][()],
                "optimizer": _read_attrs(f["optimizer"]),
                "history": {
                    "iteration": f["optimizer/history/iteration"][()],
                    **{
                        k: f["optimizer/history"][k][()]
                        for k in ("objective", "risk", "grad_norm", "time")
                    },
                },
                "results": _read_attrs(f["results"]),
                "data": {
                    "attrs": _read_attrs(f["data"]),
                    "shift": f["data/shift"][()],
                    "scale": f["data/scale"][()],
                    "class_values": json.loads(f["data"].attrs["class_values"]),
                    "y_train": f["data/y_train"][()],
                    "y_test": f["data/y_test"][()],
                },
                "predictions": {
                    "train": f["predictions/train"][()],
                    "test": f["predictions/test"][()],
                },
                "trajectories": _read_trajectories(f),
            }
            lengths = {k: np.shape(v) for k, v in run["history"].items()}
            if len({shape for shape in lengths.values()}) != 1 or any(
                len(shape) != 1 for shape in lengths.values()
            ):
                shown = ", ".join(f"{k} {v}" for k, v in lengths.items())
                raise RunFileError(
                    f"run file '{path}' is damaged: its optimiser history arrays "
                    f"should be vectors of one length, found {shown}; use another "
                    "copy, or run the case again"
                )
    except RunFileError:
        raise
    except (KeyError, OSError, ValueError, RuntimeError, TypeError) as err:
        # damaged HDF5 metadata surfaces as any of these from h5py
        raise RunFileError(
            f"run file '{path}' is incomplete or damaged ({err}): use another copy, "
            "or run the case again"
        ) from None
    return run
