"""Datasets: the bundled real data, synthetic generators and the user's own files.

:func:`load_dataset` returns a :class:`Dataset` holding float64 inputs, encoded
labels, a train/test split and the standardisation fitted on the training part.
Three kinds of source are accepted:

* the bundled CSV files ``digits`` and ``breast_cancer`` (see ``data/README.md``),
  looked up in :func:`data_dir`;
* the generators :func:`spheres`, :func:`xor` and :func:`rings`, seeded and
  deterministic;
* ``name="file"``: the user's own ``.csv``, ``.npz``, ``.npy`` or ``.h5``/``.hdf5``.

Every mistake in the data raises :class:`~spacetime._errors.DataError` and every
bad argument :class:`~spacetime._errors.ConfigError`, each with a one-sentence
message that says what is wrong and what to do.

Random streams
--------------
The generators draw from ``np.random.default_rng(seed)``. The subset kept by
``max_samples`` and the train/test split draw from two further streams spawned from
the same seed (``SeedSequence(seed, spawn_key=(1,))`` and ``(2,)``), so they do not
depend on how many numbers a generator consumed and a dataset keeps its split when
only ``noise`` changes.
"""

import csv
import difflib
import logging
import math
import numbers
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import ConfigError, DataError

logger = logging.getLogger(__name__)

DATASETS = ("digits", "breast_cancer", "spheres", "xor", "rings", "file")

_BUNDLED = {
    "digits": ("digits.csv", (8, 8)),
    "breast_cancer": ("breast_cancer.csv", None),
}
_TASKS = ("classification", "regression")
_EXTENSIONS = (".csv", ".npz", ".npy", ".h5", ".hdf5")
_MAX_LISTED = 20
# First bytes of a zip archive (.npz) and of an .npy array.
_ZIP_MAGIC = b"PK"
_NPY_MAGIC = b"\x93NUMPY"

# Rings: centre radii and the full radial width of each ring.
_RING_RADII = (0.5, 1.0, 1.5)
_RING_WIDTH = 0.1


# ---------------------------------------------------------------------------
# The dataset container
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset split into a training and a test part.

    Attributes
    ----------
    name : str
        Dataset name; for ``name="file"`` the file name.
    x_train : ndarray, shape (n_train, n_features)
        Training inputs, float64, C-contiguous; standardised unless ``shift`` is
        all zeros and ``scale`` all ones.
    y_train : ndarray, shape (n_train,) or (n_train, n_targets)
        Classification: int64 classes ``0 .. n_classes - 1``, shape (n_train,).
        Regression: float64 targets, shape (n_train, n_targets).
    x_test : ndarray, shape (n_test, n_features)
        Test inputs, standardised with the training statistics; ``n_test`` may be 0.
    y_test : ndarray, shape (n_test,) or (n_test, n_targets)
        Test labels, encoded as ``y_train``.
    task : str
        ``"classification"`` or ``"regression"``.
    n_classes : int
        Number of classes; 0 for regression.
    class_values : tuple
        The original label values: class ``c`` stands for ``class_values[c]``.
        Empty for regression.
    feature_names : tuple of str, length n_features
        Names of the input columns.
    image_shape : tuple of int or None
        ``(height, width)`` when each input row is a flattened image, else None.
    shift : ndarray, shape (n_features,)
        Standardisation offset: ``x_std = (x - shift) / scale``.
    scale : ndarray, shape (n_features,)
        Standardisation scale, positive.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int
    class_values: tuple
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int] | None
    shift: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        if self.task not in _TASKS:
            raise DataError(
                f"Dataset task {self.task!r} is unknown; use one of {_TASKS}"
            )
        x_train, x_test = self.x_train, self.x_test
        if x_train.ndim != 2 or x_test.ndim != 2:
            raise DataError(
                "Dataset inputs must be 2-D arrays of shape (n_samples, n_features); "
                "reshape them before building the Dataset"
            )
        n_features = x_train.shape[1]
        if x_test.shape[1] != n_features:
            raise DataError(
                f"Dataset test inputs have {x_test.shape[1]} features but the "
                f"training inputs have {n_features}; give both the same columns"
            )
        for part, x, y in (
            ("train", x_train, self.y_train),
            ("test", x_test, self.y_test),
        ):
            if y.shape[:1] != x.shape[:1]:
                raise DataError(
                    f"Dataset {part} part has {x.shape[0]} inputs but "
                    f"{y.shape[0] if y.ndim else 0} labels; give one label per input"
                )
        if self.shift.shape != (n_features,) or self.scale.shape != (n_features,):
            raise DataError(
                f"Dataset shift and scale must have shape ({n_features},); "
                "give one value per feature"
            )
        if len(self.feature_names) != n_features:
            raise DataError(
                f"Dataset has {len(self.feature_names)} feature names for "
                f"{n_features} features; give one name per feature"
            )
        if self.task == "classification" and len(self.class_values) != self.n_classes:
            raise DataError(
                f"Dataset has {len(self.class_values)} class values for "
                f"{self.n_classes} classes; give one value per class"
            )

    @property
    def n_features(self):
        """int: Number of input features."""
        return self.x_train.shape[1]

    @property
    def n_train(self):
        """int: Number of training samples."""
        return self.x_train.shape[0]

    @property
    def n_test(self):
        """int: Number of test samples."""
        return self.x_test.shape[0]

    def transform(self, x):
        """Standardise new inputs with the statistics of the training part.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_features) or (n_features,)
            Raw inputs. When ``image_shape`` is set, shape
            (n_samples, height, width) is accepted too.

        Returns
        -------
        ndarray, shape (n_samples, n_features) or (n_features,)
            ``(x - shift) / scale`` as a new C-contiguous float64 array.
        """
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"transform needs numeric inputs, got {type(x).__name__} "
                f"({_reason(exc)}); pass an array of numbers"
            ) from exc
        n = self.n_features
        if (
            self.image_shape is not None
            and x.ndim == 3
            and x.shape[1:] == tuple(self.image_shape)
        ):
            x = x.reshape(x.shape[0], n)
        if not ((x.ndim == 1 and x.shape[0] == n) or (x.ndim == 2 and x.shape[1] == n)):
            raise DataError(
                f"transform expects inputs of shape (n_samples, {n}) or ({n},), "
                f"got shape {x.shape}; pass rows with the dataset's {n} features"
            )
        return np.ascontiguousarray((x - self.shift) / self.scale)

    def __repr__(self):
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, "
            f"n_train={self.n_train}, n_test={self.n_test}, "
            f"n_features={self.n_features}, n_classes={self.n_classes})"
        )


# ---------------------------------------------------------------------------
# Argument checks (ConfigError)
# ---------------------------------------------------------------------------


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_count(name, value, minimum):
    if not _is_int(value) or value < minimum:
        raise ConfigError(
            f"{name} must be an integer of at least {minimum}, got {value!r}; "
            f"pass a larger whole number"
        )
    return int(value)


def _check_seed(seed):
    if not _is_int(seed) or seed < 0:
        raise ConfigError(
            f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0"
        )
    return int(seed)


def _check_noise(noise):
    if (
        isinstance(noise, bool)
        or not isinstance(noise, numbers.Real)
        or not math.isfinite(noise)
        or noise < 0
    ):
        raise ConfigError(
            f"noise must be a finite number >= 0 (a standard deviation), got "
            f"{noise!r}; pass e.g. noise=0.1"
        )
    return float(noise)


def _check_fraction(test_fraction):
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0.0 <= test_fraction < 1.0
    ):
        raise ConfigError(
            f"test_fraction must be a number in [0, 1), got {test_fraction!r}; "
            "pass e.g. test_fraction=0.2, or 0 for no test part"
        )
    return float(test_fraction)


def _check_choice(what, value, choices):
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        if key in choices:
            return key
    close = difflib.get_close_matches(str(value).lower(), choices, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"unknown {what} {value!r}; {hint}choose one of {', '.join(choices)}"
    )


def _check_name(name):
    if isinstance(name, str | os.PathLike) and Path(name).suffix.lower() in (
        _EXTENSIONS
    ):
        raise ConfigError(
            f"dataset name {str(name)!r} looks like a file; load it with "
            f"load_dataset('file', path={str(name)!r})"
        )
    return _check_choice("dataset name", name, DATASETS)


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------


def _add_noise(rng, x, noise):
    if noise > 0:
        x = x + noise * rng.standard_normal(x.shape)
    return x


def spheres(n_samples=200, *, seed=0, noise=0.0, dim=2):
    """Sample a ball inside a spherical shell: two classes that no line separates.

    Half the points (``n_samples // 2``) lie in the ball ``|x| <= 0.5`` with label
    -1, the other half in the shell ``1 <= |x| <= 1.5`` with label +1. Each part is
    sampled uniformly in volume (area for ``dim=2``): a direction uniform on the
    sphere and a radius with density proportional to ``r**(dim - 1)``. The samples
    are then shuffled and, if ``noise > 0``, moved by Gaussian noise; the labels
    keep the class of the noiseless point.

    Parameters
    ----------
    n_samples : int, default 200
        Number of points, at least 2.
    seed : int, default 0
        Seed of ``np.random.default_rng``.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to every coordinate.
    dim : int, default 2
        Dimension of the space, at least 1.

    Returns
    -------
    x : ndarray, shape (n_samples, dim)
        Points, float64.
    y : ndarray, shape (n_samples,)
        Labels -1 (ball) and +1 (shell), int64.
    """
    n = _check_count("n_samples", n_samples, 2)
    dim = _check_count("dim", dim, 1)
    rng = np.random.default_rng(_check_seed(seed))
    noise = _check_noise(noise)
    n_inner = n // 2
    direction = rng.standard_normal((n, dim))
    norm = np.linalg.norm(direction, axis=1)
    # A zero Gaussian vector has probability zero; map it to a fixed direction.
    direction[norm == 0, 0] = 1.0
    norm[norm == 0] = 1.0
    direction /= norm[:, None]
    u = rng.random(n)
    radius = np.empty(n)
    # Inverse of the radial distribution function r**dim, rescaled to each part.
    radius[:n_inner] = 0.5 * u[:n_inner] ** (1.0 / dim)
    radius[n_inner:] = (1.0 + u[n_inner:] * (1.5**dim - 1.0)) ** (1.0 / dim)
    x = direction * radius[:, None]
    y = np.where(np.arange(n) < n_inner, -1, 1).astype(np.int64)
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return np.ascontiguousarray(_add_noise(rng, x, noise)), y


def xor(n_samples=200, *, seed=0, noise=0.0, margin=0.0):
    """Sample the XOR problem in the square ``[-1, 1]**2``.

    The label is +1 where ``x1 * x2 > 0`` (first and third quadrant) and -1
    elsewhere. The classes are balanced: ``n_samples - n_samples // 2`` points get
    +1 and ``n_samples // 2`` get -1, each uniform on its two quadrants. By default
    the classes touch along the axes; ``margin > 0`` leaves the strips
    ``|x1| < margin`` and ``|x2| < margin`` empty. Noise is added after labelling.

    Parameters
    ----------
    n_samples : int, default 200
        Number of points, at least 2.
    seed : int, default 0
        Seed of ``np.random.default_rng``.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to every coordinate.
    margin : float, default 0.0
        Half width of the empty strips around the axes, in ``[0, 1)``.

    Returns
    -------
    x : ndarray, shape (n_samples, 2)
        Points, float64.
    y : ndarray, shape (n_samples,)
        Labels +1 and -1, int64.
    """
    n = _check_count("n_samples", n_samples, 2)
    rng = np.random.default_rng(_check_seed(seed))
    noise = _check_noise(noise)
    if (
        isinstance(margin, bool)
        or not isinstance(margin, numbers.Real)
        or not 0.0 <= margin < 1.0
    ):
        raise ConfigError(
            f"margin must be a number in [0, 1), got {margin!r}; pass e.g. 0.1"
        )
    n_neg = n // 2
    y = np.where(np.arange(n) < n_neg, -1, 1).astype(np.int64)
    # 1 - random() lies in (0, 1], so no point falls on an axis and the label
    # always equals sign(x1 * x2).
    magnitude = margin + (1.0 - margin) * (1.0 - rng.random((n, 2)))
    sign1 = rng.choice(np.array([-1.0, 1.0]), size=n)
    x = magnitude * np.column_stack([sign1, sign1 * y])
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return np.ascontiguousarray(_add_noise(rng, x, noise)), y


def rings(n_samples=300, *, seed=0, noise=0.0):
    """Sample three concentric rings in the plane, classes 0, 1 and 2.

    Ring ``c`` is the annulus of radii ``R_c - 0.05 <= r <= R_c + 0.05`` with
    ``R = (0.5, 1.0, 1.5)``, sampled uniformly in area. The samples are split as
    evenly as possible, the first rings taking the remainder, then shuffled; noise
    is added after labelling.

    Parameters
    ----------
    n_samples : int, default 300
        Number of points, at least 3.
    seed : int, default 0
        Seed of ``np.random.default_rng``.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to every coordinate.

    Returns
    -------
    x : ndarray, shape (n_samples, 2)
        Points, float64.
    y : ndarray, shape (n_samples,)
        Ring index 0 (inner), 1 or 2 (outer), int64.
    """
    n = _check_count("n_samples", n_samples, 3)
    rng = np.random.default_rng(_check_seed(seed))
    noise = _check_noise(noise)
    k = len(_RING_RADII)
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    centre = np.asarray(_RING_RADII)[y]
    r_in, r_out = centre - _RING_WIDTH / 2, centre + _RING_WIDTH / 2
    # Uniform in area: r**2 uniform between the squared radii.
    radius = np.sqrt(r_in**2 + rng.random(n) * (r_out**2 - r_in**2))
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return np.ascontiguousarray(_add_noise(rng, x, noise)), y


_GENERATORS = {"spheres": spheres, "xor": xor, "rings": rings}


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------


def data_dir():
    """Folder of the bundled data files.

    Returns
    -------
    pathlib.Path
        The folder named by the environment variable ``SPACETIME_DATA`` if it is
        set and not empty, else the repository's top-level ``data/`` folder.
    """
    env = os.environ.get("SPACETIME_DATA", "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def _reason(exc):
    """The first sentence of an exception's message, one line, no final period."""
    text = " ".join(str(exc).split())
    text = text.split(". ", 1)[0].rstrip(".")
    return text or type(exc).__name__


def _count(k, noun):
    return f"{k} {noun}" if k == 1 else f"{k} {noun}s"


def _listing(names):
    names = [str(n) for n in names]
    if not names:
        return "none"
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += f", ... ({len(names)} in all)"
    return shown


class _Raw:
    """Arrays read from a source, before validation.

    ``where(i)`` names row ``i`` in messages: a file line for CSV, an index else.
    """

    def __init__(self, x, y, feature_names=None, image_shape=None, where=None):
        self.x = x
        self.y = y
        self.feature_names = feature_names
        self.image_shape = image_shape
        self.where = where if where is not None else (lambda i: f"row {i}")


def _open_check(path, label="data file"):
    """Fail early and clearly when ``path`` is not an existing regular file."""
    if not path.exists():
        raise DataError(f"{label} '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"{label} '{path}' is a directory, not a file; pass a file")


def _parse_floats(cells):
    """Cells of one CSV column as float64 (empty cells become NaN), or None."""
    cells = [c if c.strip() else "nan" for c in cells]
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        return None


def _first_non_number(cells):
    for i, cell in enumerate(cells):
        if cell.strip():
            try:
                float(cell)
            except ValueError:
                return i
    return 0


def _resolve_column(spec, header, role, path):
    """Index of the column that ``spec`` (a name or an integer index) names."""
    ncol = len(header)
    if _is_int(spec):
        if not -ncol <= spec < ncol:
            raise DataError(
                f"{role} {int(spec)} is out of range: '{path}' has {ncol} columns "
                f"(indices 0 to {ncol - 1}); pick one of them"
            )
        return int(spec) % ncol
    if isinstance(spec, str):
        hits = [j for j, h in enumerate(header) if h == spec.strip()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DataError(
                f"{role} {spec!r} names {len(hits)} columns of '{path}' (indices "
                f"{hits}); rename them or pick one by integer index"
            )
        close = difflib.get_close_matches(spec, header, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(
            f"{role} {spec!r} is not a column of '{path}'; {hint}available "
            f"columns: {_listing(header)}"
        )
    raise ConfigError(
        f"{role} must be a column name or an integer index, got {spec!r}; "
        "pass e.g. 'label' or -1"
    )


def _as_list(spec):
    if spec is None:
        return None
    if isinstance(spec, str) or _is_int(spec):
        return [spec]
    try:
        return list(spec)
    except TypeError:
        return [spec]


def _read_csv(path, input_columns, label_column, task):
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file '{path}' is not UTF-8 text ({_reason(exc)}); save it as a "
            "UTF-8 CSV file"
        ) from exc
    except csv.Error as exc:
        raise DataError(
            f"data file '{path}' is not valid CSV ({_reason(exc)}); save it as "
            "comma-separated text"
        ) from exc
    except OSError as exc:
        raise DataError(
            f"data file '{path}' cannot be read ({_reason(exc)}); check that it "
            "exists and is readable"
        ) from exc

    if header is None:
        raise DataError(
            f"data file '{path}' is empty; it needs a header row and data rows"
        )
    header = [h.strip() for h in header]
    ncol = len(header)
    if ncol < 2:
        sep = next((s for s in (";", "\t", "|") if s in header[0]), None)
        hint = (
            f" and looks separated by {sep!r}; save it with commas"
            if sep
            else "; it needs input columns and a label column"
        )
        raise DataError(f"data file '{path}' has a single column{hint}")
    if _parse_floats(header) is not None:
        raise DataError(
            f"data file '{path}' starts with a row of numbers instead of column "
            "names; add a header row naming the columns"
        )
    for row, line in zip(rows, lines, strict=True):
        if len(row) != ncol:
            raise DataError(
                f"data file '{path}' has {len(row)} fields on line {line} but "
                f"{ncol} columns in the header; give every row {ncol} fields"
            )

    labels = _as_list(label_column)
    if labels is None:
        labels = [-1]
    if not labels:
        raise ConfigError("label_column is empty; name the column of the labels")
    if len(labels) > 1 and task != "regression":
        raise ConfigError(
            f"label_column lists {len(labels)} columns but classification needs "
            "one; pass a single column or use task='regression'"
        )
    label_idx = [_resolve_column(s, header, "label_column", path) for s in labels]
    inputs = _as_list(input_columns)
    if inputs is None:
        input_idx = [j for j in range(ncol) if j not in label_idx]
    else:
        if not inputs:
            raise ConfigError(
                "input_columns is empty; list at least one column, or pass None "
                "to use every column but the label"
            )
        input_idx = [_resolve_column(s, header, "input_columns", path) for s in inputs]
    if len(set(input_idx)) != len(input_idx):
        raise ConfigError("input_columns names a column twice; list each column once")
    both = sorted(set(input_idx) & set(label_idx))
    if both:
        raise ConfigError(
            f"column {header[both[0]]!r} is both an input and the label; remove it "
            "from input_columns"
        )

    columns = list(zip(*rows, strict=True)) if rows else [()] * ncol
    n = len(rows)

    def where(i):
        return f"line {lines[i]}"

    x = np.empty((n, len(input_idx)))
    for k, j in enumerate(input_idx):
        values = _parse_floats(columns[j])
        if values is None:
            i = _first_non_number(columns[j])
            raise DataError(
                f"input column {header[j]!r} of '{path}' is not numeric (line "
                f"{lines[i]} holds {columns[j][i]!r}); encode it as numbers or "
                "leave it out with input_columns"
            )
        x[:, k] = values

    if len(label_idx) > 1:
        y = np.empty((n, len(label_idx)))
    for k, j in enumerate(label_idx):
        values = _parse_floats(columns[j])
        if values is None:
            if task == "regression":
                i = _first_non_number(columns[j])
                raise DataError(
                    f"label column {header[j]!r} of '{path}' is not numeric (line "
                    f"{lines[i]} holds {columns[j][i]!r}); regression needs numbers, "
                    "use task='classification' for class names"
                )
            values = np.array([c.strip() for c in columns[j]], dtype=str)
            empty = np.flatnonzero(values == "")
            if empty.size:
                raise DataError(
                    f"data file '{path}' has empty labels in "
                    f"{_count(empty.size, 'row')} (first at line {lines[empty[0]]}); "
                    "fill them in or remove those rows"
                )
        if len(label_idx) > 1:
            y[:, k] = values
        else:
            y = values
    return _Raw(x, y, tuple(header[j] for j in input_idx), None, where)


def _decode_bytes(arr):
    if arr.dtype.kind == "S":
        try:
            return np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:
            return arr
    return arr


def _np_load(path, what):
    """``np.load`` without pickles, every failure turned into a DataError."""
    _open_check(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise DataError(
            f"data file '{path}' cannot be read ({_reason(exc)}); check that it "
            "exists and is readable"
        ) from exc
    if not magic.startswith((_ZIP_MAGIC, _NPY_MAGIC)):
        raise DataError(
            f"data file '{path}' is not a readable {what}: it does not start with "
            "the signature of an .npy or .npz file; save it with numpy.save or "
            "numpy.savez"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        RuntimeError,
    ) as exc:
        raise DataError(
            f"data file '{path}' is not a readable {what} ({_reason(exc)}); check "
            "that it was written completely with numpy"
        ) from exc


def _read_npz(path, inputs_key, labels_key):
    archive = _np_load(path, ".npz archive")
    if isinstance(archive, np.ndarray):
        raise DataError(
            f"data file '{path}' holds a single array, not an .npz archive; name "
            "it .npy and pass the labels with labels_path"
        )
    with archive:
        keys = list(archive.files)
        arrays = []
        for role, key in (("inputs_key", inputs_key), ("labels_key", labels_key)):
            if key not in keys:
                raise DataError(
                    f"{role} {key!r} is not in '{path}'; available arrays: "
                    f"{_listing(keys)}"
                )
            try:
                arrays.append(archive[key])
            except (
                OSError,
                ValueError,
                EOFError,
                zipfile.BadZipFile,
                zlib.error,
                RuntimeError,
            ) as exc:
                raise DataError(
                    f"array {key!r} of '{path}' cannot be read ({_reason(exc)}); "
                    "re-save the archive with numpy.savez of numeric or string "
                    "arrays"
                ) from exc
    return _Raw(arrays[0], _decode_bytes(arrays[1]))


def _read_npy(path, labels_path):
    if labels_path is None:
        raise ConfigError(
            f"inputs '{path}' are a .npy file, so labels_path is needed; pass "
            "labels_path='labels.npy'"
        )
    arrays = []
    for p in (path, Path(labels_path)):
        arr = _np_load(p, ".npy array")
        if not isinstance(arr, np.ndarray):
            arr.close()
            raise DataError(
                f"data file '{p}' is an .npz archive, not a single array; load it "
                "with a .npz name and inputs_key/labels_key"
            )
        arrays.append(arr)
    return _Raw(arrays[0], _decode_bytes(arrays[1]))


def _read_hdf5(path, inputs_key, labels_key):
    import h5py

    _open_check(path)

    def get(fh, role, key):
        obj = fh.get(key) if isinstance(key, str) and key else None
        if not isinstance(obj, h5py.Dataset):
            found = []
            fh.visititems(
                lambda name, item: (
                    found.append(name) if isinstance(item, h5py.Dataset) else None
                )
            )
            kind = "is a group, not a dataset," if obj is not None else "is not"
            raise DataError(
                f"{role} {key!r} {kind} in '{path}'; available datasets: "
                f"{_listing(found)}"
            )
        if h5py.check_string_dtype(obj.dtype) is not None:
            return np.array(obj.asstr()[()], dtype=str)
        return obj[()]

    try:
        with h5py.File(path, "r") as fh:
            x = get(fh, "inputs_key", inputs_key)
            y = get(fh, "labels_key", labels_key)
    except DataError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"data file '{path}' is not a readable HDF5 file ({_reason(exc)}); check "
            "that it was written completely"
        ) from exc
    return _Raw(np.asarray(x), np.asarray(y))


def _read_file(
    path, labels_path, input_columns, label_column, inputs_key, labels_key, task
):
    suffix = path.suffix.lower()
    if suffix not in _EXTENSIONS:
        raise DataError(
            f"data file '{path}' has extension {path.suffix or '(none)'!r}, which "
            f"is not supported; use one of {', '.join(_EXTENSIONS)}"
        )
    if suffix != ".csv" and (input_columns is not None or label_column is not None):
        raise ConfigError(
            "input_columns and label_column apply to .csv files only; for "
            f"{suffix} files use inputs_key and labels_key"
        )
    if suffix != ".npy" and labels_path is not None:
        raise ConfigError(
            f"labels_path applies to .npy inputs only; a {suffix} file holds its "
            "own labels"
        )
    if suffix == ".csv":
        _open_check(path)
        return _read_csv(path, input_columns, label_column, task)
    if suffix == ".npz":
        return _read_npz(path, inputs_key, labels_key)
    if suffix == ".npy":
        return _read_npy(path, labels_path)
    return _read_hdf5(path, inputs_key, labels_key)


# ---------------------------------------------------------------------------
# Validation and encoding (DataError)
# ---------------------------------------------------------------------------


def _check_finite(values, what, source, where, fix):
    bad = ~np.isfinite(values)
    if bad.ndim > 1:
        bad = bad.reshape(bad.shape[0], -1).any(axis=1)
    rows = np.flatnonzero(bad)
    if rows.size:
        raise DataError(
            f"{source} has missing, NaN or inf values in the {what} in "
            f"{_count(rows.size, 'row')} (first at {where(int(rows[0]))}); {fix}"
        )


def _prepare_inputs(x, source, image_shape):
    x = np.asarray(x)
    if x.dtype.kind == "b":
        x = x.astype(np.float64)
    if x.dtype.kind not in "iuf":
        raise DataError(
            f"{source} has non-numeric inputs (dtype {x.dtype}); store the inputs "
            "as numbers"
        )
    if x.ndim == 0:
        raise DataError(
            f"{source} has a single number as inputs; store one row per sample"
        )
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim == 3:
        image_shape = (int(x.shape[1]), int(x.shape[2]))
        x = x.reshape(x.shape[0], -1)
    elif x.ndim > 3:
        raise DataError(
            f"{source} has inputs of shape {x.shape}; store them as "
            "(n_samples, n_features) or (n_samples, height, width)"
        )
    if x.shape[1] == 0:
        raise DataError(f"{source} has inputs with no features; store at least one")
    return np.ascontiguousarray(x, dtype=np.float64), image_shape


def _encode_classes(y, source, where):
    """Map labels to classes ``0 .. K - 1`` in sorted order of the values."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{source} has labels of shape {y.shape}, but classification needs one "
            "label per sample; store class labels as a 1-D array or use "
            "task='regression'"
        )
    kind = y.dtype.kind
    if kind == "b":
        y = y.astype(np.int64)
    elif kind == "f":
        _check_finite(y, "labels", source, where, "fix or remove those rows")
        fractional = np.flatnonzero(y != np.round(y))
        if fractional.size:
            i = int(fractional[0])
            raise DataError(
                f"{source} has labels that are not whole numbers ({y[i].item()!r} at "
                f"{where(i)}), so they are not classes; use task='regression' for "
                "continuous targets"
            )
        if np.abs(y).max() < 2.0**53:
            y = y.astype(np.int64)
    elif kind not in "iuU":
        raise DataError(
            f"{source} has labels of dtype {y.dtype}, which cannot be classes; "
            "store them as integers or strings"
        )
    values, codes = np.unique(y, return_inverse=True)
    if values.size < 2:
        raise DataError(
            f"{source} has a single class ({values[0].item()!r}) in its labels; "
            "classification needs at least two classes"
        )
    class_values = tuple(v.item() for v in values)
    return codes.astype(np.int64).reshape(-1), class_values


def _prepare_targets(y, source, where):
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{source} has non-numeric labels (dtype {y.dtype}); regression needs "
            "numbers, use task='classification' for class names"
        )
    if y.ndim == 1:
        y = y[:, None]
    elif y.ndim != 2:
        raise DataError(
            f"{source} has labels of shape {y.shape}; store regression targets as "
            "(n_samples,) or (n_samples, n_targets)"
        )
    y = np.ascontiguousarray(y, dtype=np.float64)
    _check_finite(y, "labels", source, where, "fix or remove those rows")
    return y


# ---------------------------------------------------------------------------
# Subsets, splits and standardisation
# ---------------------------------------------------------------------------


def _allocate(counts, total, low, high):
    """Share ``total`` among classes in proportion to ``counts``.

    Each class gets the floor or the ceiling of its quota ``total * n_c / n``
    where the bounds allow, the ceilings going to the largest remainders (ties to
    the lower class index), and always ``low[c] <= take[c] <= high[c]``.

    Parameters
    ----------
    counts : ndarray, shape (n_classes,)
        Samples per class.
    total : int
        Number to share; clipped to ``[low.sum(), high.sum()]``.
    low, high : ndarray, shape (n_classes,)
        Bounds per class.

    Returns
    -------
    ndarray, shape (n_classes,)
        Samples taken per class, summing to the clipped ``total``.
    """
    quota = total * counts / counts.sum()
    take = np.clip(np.floor(quota).astype(np.int64), low, high)
    total = int(np.clip(total, low.sum(), high.sum()))
    while take.sum() < total:
        gap = np.where(take < high, quota - take, -np.inf)
        take[np.argmax(gap)] += 1
    while take.sum() > total:
        gap = np.where(take > low, quota - take, np.inf)
        take[np.argmin(gap)] -= 1
    return take


def _stratified_pick(rng, codes, take):
    """Indices of ``take[c]`` random samples of each class ``c``, sorted."""
    picked = []
    for c, k in enumerate(take):
        members = np.flatnonzero(codes == c)
        picked.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(picked))


def _rng(seed, stream):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _subset(codes, n, max_samples, n_classes, seed):
    """Sorted indices of a seeded random subset of ``max_samples`` samples."""
    rng = _rng(seed, 1)
    if codes is None:
        return np.sort(rng.choice(n, size=max_samples, replace=False))
    if max_samples < n_classes:
        raise ConfigError(
            f"max_samples={max_samples} is fewer than the {n_classes} classes; "
            f"keep at least {n_classes} samples"
        )
    counts = np.bincount(codes, minlength=n_classes)
    take = _allocate(counts, max_samples, np.minimum(counts, 1), counts)
    return _stratified_pick(rng, codes, take)


def _split(codes, n, test_fraction, seed, n_classes):
    """Seeded train/test indices, stratified when ``codes`` is given."""
    n_test = math.floor(test_fraction * n + 0.5)
    if n_test == 0:
        return np.arange(n), np.arange(0)
    rng = _rng(seed, 2)
    if codes is None:
        n_test = min(n_test, n - 1)
        test = np.sort(rng.permutation(n)[:n_test])
    else:
        counts = np.bincount(codes, minlength=n_classes)
        # Every class keeps at least one training sample.
        take = _allocate(counts, n_test, np.zeros_like(counts), counts - 1)
        test = _stratified_pick(rng, codes, take)
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test


def _fit_standardisation(x):
    """Mean and standard deviation per column; constant columns get scale 1.

    A constant column gets its value as shift, so it standardises to exactly 0.
    """
    shift = x.mean(axis=0)
    scale = x.std(axis=0)
    constant = np.all(x == x[:1], axis=0)
    shift[constant] = x[0, constant]
    scale[constant] = 1.0
    # A column that is not constant but has a standard deviation that underflows.
    scale[scale == 0] = 1.0
    return shift, scale


# ---------------------------------------------------------------------------
# Public loader
# ---------------------------------------------------------------------------


def load_dataset(
    name="digits",
    *,
    path=None,
    labels_path=None,
    input_columns=None,
    label_column=None,
    inputs_key="x",
    labels_key="y",
    task="classification",
    n_samples=None,
    noise=0.0,
    test_fraction=0.0,
    standardize=None,
    seed=0,
    max_samples=None,
):
    """Load a bundled dataset, generate a synthetic one or read the user's file.

    Parameters
    ----------
    name : str, default "digits"
        One of :data:`DATASETS`: ``"digits"`` (8 x 8 handwritten digits, 1,797
        samples, 10 classes), ``"breast_cancer"`` (569 samples, 30 features,
        0 = malignant, 1 = benign), the generators ``"spheres"``, ``"xor"``,
        ``"rings"``, or ``"file"`` for the file at ``path``.
    path : str or os.PathLike, optional
        With ``name="file"``: a ``.csv``, ``.npz``, ``.npy``, ``.h5`` or ``.hdf5``
        file. A CSV file needs a header row.
    labels_path : str or os.PathLike, optional
        With a ``.npy`` ``path``: the ``.npy`` file of the labels (required).
    input_columns : list of str or int, optional
        CSV only: the input columns by name or index; default every column but
        the labels.
    label_column : str or int, optional
        CSV only: the label column by name or index; default the last column.
        With ``task="regression"`` a list of columns gives several targets.
    inputs_key, labels_key : str, default "x" and "y"
        ``.npz``: array names; HDF5: dataset paths inside the file, e.g.
        ``"train/x"``.
    task : {"classification", "regression"}, default "classification"
        Classification maps the sorted distinct labels to classes 0..K-1;
        regression keeps float targets of shape (n_samples, n_targets).
    n_samples : int, optional
        Generators only: number of points (default that of the generator).
    noise : float, default 0.0
        Generators only: standard deviation of the Gaussian noise on the inputs.
    test_fraction : float, default 0.0
        Fraction in ``[0, 1)`` of the samples put in the test part: stratified by
        class for classification (every class keeps at least one training sample),
        uniformly random for regression.
    standardize : bool, optional
        Standardise the inputs with the mean and standard deviation of the
        training part. Default True for the real datasets and files, False for
        the generators.
    seed : int, default 0
        Seed of the generators, the subset and the split.
    max_samples : int, optional
        Keep a seeded random subset of this many samples (stratified by class for
        classification) before splitting.

    Returns
    -------
    Dataset
        The split, encoded and possibly standardised data.

    Raises
    ------
    ConfigError
        An argument is unknown, of the wrong type or out of range.
    DataError
        The data cannot be read or holds values that cannot be used.
    """
    key = _check_name(name)
    task = _check_choice("task", task, _TASKS)
    test_fraction = _check_fraction(test_fraction)
    seed = _check_seed(seed)
    noise = _check_noise(noise)
    if max_samples is not None:
        max_samples = _check_count("max_samples", max_samples, 2)
    if standardize is not None and not isinstance(standardize, bool | np.bool_):
        raise ConfigError(
            f"standardize must be True, False or None, got {standardize!r}; pass "
            "a bool, or None for the dataset's default"
        )
    if key != "file":
        given = [
            arg
            for arg, value in (
                ("path", path),
                ("labels_path", labels_path),
                ("input_columns", input_columns),
                ("label_column", label_column),
            )
            if value is not None
        ]
        if given:
            raise ConfigError(
                f"{given[0]} is only read with name='file', not {key!r}; call "
                f"load_dataset('file', path=...) to load your own data"
            )
        if task != "classification":
            raise ConfigError(
                f"dataset {key!r} is a classification dataset; task='regression' "
                "applies to name='file' only"
            )
    if key in _GENERATORS:
        generator = _GENERATORS[key]
        kwargs = {"seed": seed, "noise": noise}
        if n_samples is not None:
            kwargs["n_samples"] = n_samples
        x, y = generator(**kwargs)
        raw = _Raw(x, y, tuple(f"x{j + 1}" for j in range(x.shape[1])))
        source = f"generated dataset {key!r}"
        display_name = key
        default_standardize = False
    else:
        if n_samples is not None:
            raise ConfigError(
                f"n_samples applies to the generators only, not to {key!r}; use "
                "max_samples to keep a random subset"
            )
        if noise != 0.0:
            raise ConfigError(
                f"noise applies to the generators only, not to {key!r}; pass noise=0"
            )
        default_standardize = True
        if key == "file":
            if path is None:
                raise ConfigError(
                    "name='file' needs path=, the .csv, .npz, .npy or .h5 file to load"
                )
            if not isinstance(path, str | os.PathLike):
                raise ConfigError(
                    f"path must be a string or a path, got {type(path).__name__}"
                )
            file_path = Path(path).expanduser()
            raw = _read_file(
                file_path,
                labels_path,
                input_columns,
                label_column,
                inputs_key,
                labels_key,
                task,
            )
            source = f"data file '{file_path}'"
            display_name = file_path.name
        else:
            file_name, image_shape = _BUNDLED[key]
            folder = data_dir()
            file_path = folder / file_name
            if not file_path.is_file():
                origin = (
                    "SPACETIME_DATA"
                    if os.environ.get("SPACETIME_DATA", "").strip()
                    else "the repository's data folder"
                )
                raise DataError(
                    f"bundled data file {file_name!r} was not found in '{folder}' "
                    f"({origin}); set SPACETIME_DATA to a folder holding "
                    f"{file_name}"
                )
            raw = _read_csv(file_path, None, "label", "classification")
            raw.image_shape = image_shape
            source = f"data file '{file_path}'"
            display_name = key
    do_standardize = default_standardize if standardize is None else standardize
    return _build(
        display_name,
        raw,
        source,
        task,
        test_fraction,
        seed,
        max_samples,
        do_standardize,
    )


def _build(name, raw, source, task, test_fraction, seed, max_samples, standardize):
    x, image_shape = _prepare_inputs(raw.x, source, raw.image_shape)
    y = np.asarray(raw.y)
    if y.ndim == 0:
        raise DataError(
            f"{source} has a single number as labels; store one label per sample"
        )
    if y.shape[0] != x.shape[0]:
        raise DataError(
            f"{source} has {x.shape[0]} input rows but {y.shape[0]} labels; give "
            "one label per input row"
        )
    n = x.shape[0]
    if n < 2:
        raise DataError(
            f"{source} has {_count(n, 'sample')}, fewer than the 2 needed; add "
            "more samples"
        )
    _check_finite(x, "inputs", source, raw.where, "remove or impute them")
    if task == "classification":
        codes, class_values = _encode_classes(y, source, raw.where)
        n_classes = len(class_values)
        if 2 * np.count_nonzero(np.bincount(codes) == 1) > n:
            logger.warning(
                "%s: most samples are alone in their class (%d classes for %d "
                "samples); task='regression' may be meant",
                source,
                n_classes,
                n,
            )
        targets = codes
    else:
        targets = _prepare_targets(y, source, raw.where)
        n_classes, class_values, codes = 0, (), None

    feature_names = raw.feature_names
    if feature_names is None:
        if image_shape is not None:
            h, w = image_shape
            feature_names = tuple(f"pixel_{i}_{j}" for i in range(h) for j in range(w))
        else:
            feature_names = tuple(f"x{j + 1}" for j in range(x.shape[1]))

    if max_samples is not None and max_samples < n:
        keep = _subset(codes, n, max_samples, n_classes, seed)
        x, targets = x[keep], targets[keep]
        codes = None if codes is None else targets
        n = max_samples

    train, test = _split(codes, n, test_fraction, seed, n_classes)
    x_train, x_test = x[train], x[test]
    if standardize:
        shift, scale = _fit_standardisation(x_train)
        x_train = (x_train - shift) / scale
        x_test = (x_test - shift) / scale
    else:
        shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
    if test_fraction > 0 and test.size == 0:
        logger.warning(
            "%s: test_fraction=%g of %d samples leaves an empty test part",
            source,
            test_fraction,
            n,
        )
    dataset = Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=np.float64),
        y_train=np.ascontiguousarray(targets[train]),
        x_test=np.ascontiguousarray(x_test, dtype=np.float64),
        y_test=np.ascontiguousarray(targets[test]),
        task=task,
        n_classes=n_classes,
        class_values=class_values,
        feature_names=tuple(str(f) for f in feature_names),
        image_shape=image_shape,
        shift=shift,
        scale=scale,
    )
    logger.info(
        "loaded %s: %d training and %d test samples, %d features, %s",
        name,
        dataset.n_train,
        dataset.n_test,
        dataset.n_features,
        f"{n_classes} classes" if task == "classification" else "regression",
    )
    return dataset
