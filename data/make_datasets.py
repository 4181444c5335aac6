"""Write the bundled CSV datasets from the copies shipped with scikit-learn.

Run once by hand from the repository root::

    python data/make_datasets.py

It writes ``data/digits.csv`` and ``data/breast_cancer.csv`` next to this script.
scikit-learn is needed only here; the ``spacetime`` package reads the CSV files
with the standard library and numpy.

File layout
-----------
Both files have a header row, one sample per line, the input columns first and the
class in the last column, ``label``.

* ``digits.csv``: 64 columns ``pixel_<row>_<col>`` (row-major order of the 8 x 8
  image, both indices from 0 to 7) holding integer grey levels 0..16, then
  ``label`` in 0..9.
* ``breast_cancer.csv``: the 30 feature names of scikit-learn with spaces replaced
  by underscores, then ``label`` with 0 = malignant and 1 = benign. Floats are
  written with ``repr``, the shortest text that reads back to the same double.
"""

import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits

HERE = Path(__file__).resolve().parent


def _write_csv(path, header, x, y, as_int):
    """Write a header row and one line per sample.

    Parameters
    ----------
    path : Path
        Output file.
    header : list of str, length n_features + 1
        Column names, the label last.
    x : ndarray, shape (n_samples, n_features)
        Inputs.
    y : ndarray, shape (n_samples,)
        Integer class labels.
    as_int : bool
        Write the inputs as integers; this requires them to be whole numbers.
    """
    if as_int:
        if not np.array_equal(x, np.round(x)):
            raise ValueError(f"{path.name}: inputs are not whole numbers")
        cells = x.astype(np.int64).tolist()
    else:
        cells = [[repr(float(v)) for v in row] for row in x]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row, label in zip(cells, y.tolist(), strict=True):
            writer.writerow([*row, int(label)])


def make_digits(path):
    """Write the 1,797 8 x 8 handwritten digits to ``path``.

    Parameters
    ----------
    path : Path
        Output CSV file.
    """
    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    header = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)] + ["label"]
    assert x.shape == (1797, 64) and len(header) == 65
    _write_csv(path, header, x, y, as_int=True)


def make_breast_cancer(path):
    """Write the 569 Wisconsin diagnostic breast cancer samples to ``path``.

    Parameters
    ----------
    path : Path
        Output CSV file.
    """
    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    assert list(bunch.target_names) == ["malignant", "benign"]
    header = [str(name).replace(" ", "_") for name in bunch.feature_names]
    header.append("label")
    assert x.shape == (569, 30) and len(header) == 31
    _write_csv(path, header, x, y, as_int=False)


def main():
    make_digits(HERE / "digits.csv")
    make_breast_cancer(HERE / "breast_cancer.csv")


if __name__ == "__main__":
    main()
