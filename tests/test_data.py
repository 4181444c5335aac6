"""Tests of the dataset loaders, generators, splits and error messages."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from spacetime._data import (
    DATASETS,
    Dataset,
    data_dir,
    load_dataset,
    rings,
    spheres,
    xor,
)
from spacetime._errors import ConfigError, DataError

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def small_csv(tmp_path, name="d.csv"):
    """Six samples, two numeric inputs, string labels of three classes."""
    return write_csv(
        tmp_path / name,
        "a,b,animal\n1.0,2,dog\n3.5,4,cat\n5,6,dog\n7,8,bird\n9,10,cat\n11,12,dog\n",
    )


def id_dataset(tmp_path, n=100, n_classes=4):
    """An .npz file whose single feature is the sample index."""
    x = np.arange(n, dtype=np.float64)
    y = np.arange(n) % n_classes
    path = tmp_path / "ids.npz"
    np.savez(path, x=x, y=y)
    return path, x, y


# ---------------------------------------------------------------------------
# Bundled datasets
# ---------------------------------------------------------------------------


def test_digits_shape_classes_and_raw_values():
    d = load_dataset("digits", standardize=False)
    assert (d.n_train, d.n_test, d.n_features) == (1797, 0, 64)
    assert d.n_classes == 10
    assert d.class_values == tuple(range(10))
    assert d.image_shape == (8, 8)
    assert d.feature_names[0] == "pixel_0_0" and d.feature_names[-1] == "pixel_7_7"
    assert d.x_train.dtype == np.float64 and d.x_train.flags["C_CONTIGUOUS"]
    assert d.y_train.dtype == np.int64
    assert set(np.unique(d.x_train)) == set(range(17))
    assert np.array_equal(np.unique(d.y_train), np.arange(10))
    assert np.array_equal(d.shift, np.zeros(64)) and np.array_equal(
        d.scale, np.ones(64)
    )


def test_digits_csv_stores_pixels_as_integers():
    with open(data_dir() / "digits.csv", encoding="utf-8") as fh:
        fh.readline()
        first = fh.readline().strip().split(",")
    assert len(first) == 65
    assert all(cell.isdigit() for cell in first)


def test_breast_cancer_counts():
    d = load_dataset("breast_cancer", standardize=False)
    assert (d.n_train, d.n_features, d.n_classes) == (569, 30, 2)
    assert d.class_values == (0, 1)
    # 0 = malignant, 1 = benign.
    assert np.bincount(d.y_train).tolist() == [212, 357]
    assert d.feature_names[0] == "mean_radius"
    assert d.feature_names[-1] == "worst_fractal_dimension"
    assert d.x_train[0, 0] == 17.99


def test_missing_bundled_file_points_at_spacetime_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACETIME_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    with pytest.raises(DataError, match="SPACETIME_DATA") as info:
        load_dataset("digits")
    assert str(tmp_path) in str(info.value)


def test_spacetime_data_folder_is_used(tmp_path, monkeypatch):
    write_csv(tmp_path / "digits.csv", "p,label\n0,3\n1,5\n2,3\n")
    monkeypatch.setenv("SPACETIME_DATA", str(tmp_path))
    d = load_dataset("digits", standardize=False)
    assert d.n_train == 3 and d.class_values == (3, 5)


# ---------------------------------------------------------------------------
# Split, subset and standardisation
# ---------------------------------------------------------------------------


def test_stratified_split_keeps_class_proportions():
    full = load_dataset("digits", standardize=False)
    counts = np.bincount(full.y_train)
    d = load_dataset("digits", test_fraction=0.25, standardize=False)
    assert d.n_test == 449  # round(0.25 * 1797)
    assert d.n_train + d.n_test == 1797
    test_counts = np.bincount(d.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 0.25 * counts) < 1)
    assert np.array_equal(np.bincount(d.y_train, minlength=10) + test_counts, counts)


def test_split_is_a_partition(tmp_path):
    path, x, _ = id_dataset(tmp_path)
    d = load_dataset("file", path=path, test_fraction=0.3, standardize=False)
    ids = np.concatenate([d.x_train[:, 0], d.x_test[:, 0]])
    assert d.n_test == 30
    assert np.array_equal(np.sort(ids), x)
    # Labels travel with their inputs.
    assert np.array_equal(d.y_train, d.x_train[:, 0].astype(int) % 4)
    assert np.array_equal(d.y_test, d.x_test[:, 0].astype(int) % 4)


def test_split_reproducible_with_seed_and_differs_with_another(tmp_path):
    path, _, _ = id_dataset(tmp_path)
    a = load_dataset("file", path=path, test_fraction=0.3, seed=7)
    b = load_dataset("file", path=path, test_fraction=0.3, seed=7)
    c = load_dataset("file", path=path, test_fraction=0.3, seed=8)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_test, b.x_test)
    assert np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_every_class_keeps_a_training_sample(tmp_path):
    # Class 2 has a single sample, class 1 two samples.
    path = tmp_path / "few.npz"
    np.savez(path, x=np.arange(10.0), y=np.array([0] * 7 + [1, 1, 2]))
    d = load_dataset("file", path=path, test_fraction=0.9, standardize=False)
    assert set(d.y_train.tolist()) == {0, 1, 2}
    assert d.n_train == 3 and d.n_test == 7


def test_regression_split_and_targets(tmp_path):
    path = tmp_path / "reg.csv"
    rows = "\n".join(f"{i},{0.5 * i},{i * i / 3}" for i in range(20))
    write_csv(path, "u,v,target\n" + rows + "\n")
    d = load_dataset(
        "file", path=path, task="regression", test_fraction=0.25, standardize=False
    )
    assert d.task == "regression" and d.n_classes == 0 and d.class_values == ()
    assert d.y_train.shape == (15, 1) and d.y_test.shape == (5, 1)
    assert d.y_train.dtype == np.float64
    np.testing.assert_array_equal(d.y_train[:, 0], d.x_train[:, 0] ** 2 / 3)
    two = load_dataset(
        "file", path=path, task="regression", label_column=["v", "target"]
    )
    assert two.y_train.shape == (20, 2) and two.n_features == 1


def test_standardised_columns_have_zero_mean_unit_std():
    d = load_dataset("digits", test_fraction=0.2)
    raw = load_dataset("digits", test_fraction=0.2, standardize=False)
    constant = np.all(raw.x_train == raw.x_train[:1], axis=0)
    assert constant.any()  # the always-blank border pixels
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.x_train[:, ~constant].std(axis=0), 1.0, rtol=1e-12)
    assert np.all(d.x_train[:, constant] == 0.0)
    assert np.all(d.scale[constant] == 1.0)
    # The test part uses the training statistics, not its own.
    np.testing.assert_allclose(d.x_test, d.transform(raw.x_test), rtol=0, atol=0)
    np.testing.assert_allclose(d.shift, raw.x_train.mean(axis=0), rtol=1e-14)
    assert abs(d.x_test.mean()) > 1e-6


def test_transform_accepts_single_rows_and_images():
    d = load_dataset("digits", max_samples=100)
    row = np.arange(64.0)
    np.testing.assert_array_equal(d.transform(row), (row - d.shift) / d.scale)
    images = np.arange(128.0).reshape(2, 8, 8)
    assert d.transform(images).shape == (2, 64)
    with pytest.raises(DataError, match="64"):
        d.transform(np.zeros((3, 5)))


def test_generators_are_not_standardised_by_default():
    d = load_dataset("spheres")
    x, _ = spheres()
    np.testing.assert_array_equal(d.x_train, x)
    s = load_dataset("spheres", standardize=True)
    np.testing.assert_allclose(s.x_train.std(axis=0), 1.0, rtol=1e-12)


def test_max_samples_keeps_a_stratified_reproducible_subset():
    a = load_dataset("digits", max_samples=200, test_fraction=0.5)
    b = load_dataset("digits", max_samples=200, test_fraction=0.5)
    assert a.n_train + a.n_test == 200
    assert a.n_classes == 10
    assert set(a.y_train.tolist()) == set(range(10))
    assert np.array_equal(a.x_train, b.x_train)
    with pytest.raises(ConfigError, match="classes"):
        load_dataset("digits", max_samples=5)


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------


def test_spheres_radii_and_balance():
    x, y = spheres(301, seed=3)
    r = np.linalg.norm(x, axis=1)
    assert x.shape == (301, 2)
    assert np.count_nonzero(y == -1) == 150 and np.count_nonzero(y == 1) == 151
    assert np.all(r[y == -1] <= 0.5 + 1e-12)
    assert np.all((r[y == 1] >= 1 - 1e-12) & (r[y == 1] <= 1.5 + 1e-12))
    # Uniform in area: a quarter of the inner disc's points within radius 0.25.
    assert 0.15 < np.mean(r[y == -1] <= 0.25) < 0.35
    x3, y3 = spheres(100, seed=1, dim=3)
    r3 = np.linalg.norm(x3, axis=1)
    assert x3.shape == (100, 3) and np.all(r3[y3 == -1] <= 0.5 + 1e-12)
    assert np.all(r3[y3 == 1] >= 1 - 1e-12)
    d = load_dataset("spheres", n_samples=50)
    assert d.class_values == (-1, 1) and d.n_train == 50


def test_xor_labels_match_sign_of_product():
    x, y = xor(400, seed=5)
    assert np.all((-1 <= x) & (x <= 1))
    assert np.array_equal(y, np.where(x[:, 0] * x[:, 1] > 0, 1, -1))
    assert np.count_nonzero(y == 1) == 200
    xm, _ = xor(200, seed=5, margin=0.2)
    assert np.all(np.abs(xm) >= 0.2)


def test_rings_radii_and_classes():
    x, y = rings(300, seed=2)
    r = np.linalg.norm(x, axis=1)
    assert np.bincount(y).tolist() == [100, 100, 100]
    for c, centre in enumerate((0.5, 1.0, 1.5)):
        assert np.all(np.abs(r[y == c] - centre) <= 0.05 + 1e-12)


def test_generators_deterministic_and_noise_adds_to_clean_points():
    for gen in (spheres, xor, rings):
        a, ya = gen(60, seed=4)
        b, yb = gen(60, seed=4)
        c, _ = gen(60, seed=5)
        assert np.array_equal(a, b) and np.array_equal(ya, yb)
        assert not np.array_equal(a, c)
        noisy, yn = gen(60, seed=4, noise=0.1)
        assert np.array_equal(yn, ya)
        assert 0.05 < np.std(noisy - a) < 0.15


# ---------------------------------------------------------------------------
# The user's files
# ---------------------------------------------------------------------------


def test_csv_with_string_labels(tmp_path):
    path = small_csv(tmp_path)
    d = load_dataset("file", path=path, standardize=False)
    assert d.name == "d.csv"
    assert d.class_values == ("bird", "cat", "dog")
    assert d.y_train.tolist() == [2, 1, 2, 0, 1, 2]
    assert d.feature_names == ("a", "b")
    assert d.x_train[1].tolist() == [3.5, 4.0]


def test_csv_columns_by_name_and_index(tmp_path):
    path = small_csv(tmp_path)
    d = load_dataset(
        "file", path=path, input_columns=["b"], label_column=2, standardize=False
    )
    assert d.feature_names == ("b",)
    assert d.x_train[:, 0].tolist() == [2, 4, 6, 8, 10, 12]
    e = load_dataset("file", path=path, input_columns=[1, "a"], label_column="animal")
    assert e.feature_names == ("b", "a")


def test_npz_inputs(tmp_path):
    path = tmp_path / "d.npz"
    x = np.arange(12.0).reshape(6, 2)
    np.savez(path, inputs=x, labels=np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0]))
    d = load_dataset(
        "file", path=path, inputs_key="inputs", labels_key="labels", standardize=False
    )
    assert d.class_values == (-1, 1)
    assert d.y_train.tolist() == [1, 0, 1, 1, 0, 0]
    np.testing.assert_array_equal(d.x_train, x)
    assert d.feature_names == ("x1", "x2")


def test_npy_pair_with_one_dimensional_inputs(tmp_path):
    np.save(tmp_path / "x.npy", np.array([0.5, 1.5, 2.5, 3.5]))
    np.save(tmp_path / "y.npy", np.array(["no", "yes", "no", "yes"]))
    d = load_dataset(
        "file",
        path=tmp_path / "x.npy",
        labels_path=tmp_path / "y.npy",
        standardize=False,
    )
    assert d.x_train.shape == (4, 1)
    assert d.class_values == ("no", "yes") and d.y_train.tolist() == [0, 1, 0, 1]


def test_hdf5_inputs_in_a_group(tmp_path):
    path = tmp_path / "d.hdf5"
    x = np.arange(24, dtype=np.int32).reshape(6, 2, 2)
    with h5py.File(path, "w") as fh:
        fh["train/images"] = x
        fh["train/kind"] = np.array([b"b", b"a", b"b", b"a", b"a", b"b"])
    d = load_dataset(
        "file",
        path=path,
        inputs_key="train/images",
        labels_key="train/kind",
        standardize=False,
    )
    assert d.image_shape == (2, 2) and d.n_features == 4
    assert d.class_values == ("a", "b") and d.y_train.tolist() == [1, 0, 1, 0, 0, 1]
    np.testing.assert_array_equal(d.x_train, x.reshape(6, 4))


# ---------------------------------------------------------------------------
# Bad data: DataError with a message naming the problem
# ---------------------------------------------------------------------------


def _h5(path, **arrays):
    with h5py.File(path, "w") as fh:
        for key, value in arrays.items():
            fh[key] = value
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _truncated(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


X6 = np.arange(12.0).reshape(6, 2)
Y6 = np.array([0, 1, 0, 1, 0, 1])


def _bad_files(tmp_path):
    """(path, extra kwargs, keyword expected in the message) for each bad file."""
    nan_x = X6.copy()
    nan_x[3, 1] = np.nan
    inf_y = Y6.astype(float)
    inf_y[4] = np.inf
    h5_ok = _h5(tmp_path / "ok.h5", x=X6, y=Y6)
    npz_ok = _npz(tmp_path / "ok.npz", x=X6, y=Y6)
    (tmp_path / "folder.csv").mkdir()
    return {
        "missing": (tmp_path / "nope.csv", {}, "does not exist"),
        "directory": (tmp_path / "folder.csv", {}, "directory"),
        "extension": (write_csv(tmp_path / "d.txt", "a,b\n1,2\n"), {}, "extension"),
        "npz key": (npz_ok, {"inputs_key": "inputs"}, "available arrays: 'x', 'y'"),
        "h5 key": (h5_ok, {"labels_key": "labels"}, "available datasets: 'x', 'y'"),
        "csv column": (
            small_csv(tmp_path),
            {"label_column": "animals"},
            "did you mean 'animal'",
        ),
        "csv index": (small_csv(tmp_path, "i.csv"), {"label_column": 5}, "range"),
        "nan inputs csv": (
            write_csv(tmp_path / "n.csv", "a,y\n1,0\n2,1\nnan,0\n4,1\n"),
            {},
            "NaN or inf values in the inputs in 1 row (first at line 4)",
        ),
        "empty cell csv": (
            write_csv(tmp_path / "e.csv", "a,b,y\n1,2,0\n2,,1\n3,4,0\n"),
            {},
            "missing",
        ),
        "nan inputs npz": (
            _npz(tmp_path / "n.npz", x=nan_x, y=Y6),
            {},
            "inputs in 1 row (first at row 3)",
        ),
        "inf labels": (
            _npz(tmp_path / "i.npz", x=X6, y=inf_y),
            {},
            "inf values in the labels",
        ),
        "inf regression": (
            _npz(tmp_path / "r.npz", x=X6, y=inf_y),
            {"task": "regression"},
            "labels in 1 row (first at row 4)",
        ),
        "length": (_npz(tmp_path / "l.npz", x=X6, y=Y6[:5]), {}, "6 input rows but 5"),
        "one sample": (
            write_csv(tmp_path / "one.csv", "a,y\n1,0\n"),
            {},
            "fewer than the 2",
        ),
        "header only": (write_csv(tmp_path / "h.csv", "a,y\n"), {}, "0 samples"),
        "one class": (
            _npz(tmp_path / "c.npz", x=X6, y=np.ones(6)),
            {},
            "single class",
        ),
        "fractional labels": (
            _npz(tmp_path / "f.npz", x=X6, y=np.linspace(0, 1, 6)),
            {},
            "task='regression'",
        ),
        "string inputs csv": (
            write_csv(tmp_path / "s.csv", "a,colour,y\n1,red,0\n2,blue,1\n"),
            {},
            "input column 'colour' of",
        ),
        "string regression": (
            small_csv(tmp_path, "sr.csv"),
            {"task": "regression"},
            "not numeric",
        ),
        "empty csv": (write_csv(tmp_path / "z.csv", ""), {}, "empty"),
        "no header": (
            write_csv(tmp_path / "nh.csv", "1,2,0\n3,4,1\n"),
            {},
            "header row",
        ),
        "ragged csv": (
            write_csv(tmp_path / "rg.csv", "a,b,y\n1,2,0\n3,1\n"),
            {},
            "2 fields on line 3",
        ),
        "semicolons": (
            write_csv(tmp_path / "sc.csv", "a;b;y\n1;2;0\n"),
            {},
            "separated by ';'",
        ),
        "not utf8": (tmp_path / "b.csv", {}, "UTF-8"),
        "corrupt h5": (
            write_csv(tmp_path / "g.h5", "not an hdf5 file at all"),
            {},
            "not a readable HDF5 file",
        ),
        "truncated h5": (
            _truncated(_h5(tmp_path / "t.h5", x=X6, y=Y6), 0.6),
            {},
            "not a readable HDF5 file",
        ),
        "corrupt npz": (
            write_csv(tmp_path / "g.npz", "garbage"),
            {},
            "signature of an .npy or .npz file",
        ),
        "truncated npz": (
            _truncated(_npz(tmp_path / "t.npz", x=X6, y=Y6), 0.7),
            {},
            "not a readable .npz archive",
        ),
        "npy in npz name": (
            _npy(tmp_path / "single.npz", X6),
            {},
            "single array",
        ),
        "truncated npy": (
            _truncated(_npy(tmp_path / "tx.npy", X6), 0.9),
            {"labels_path": _npy(tmp_path / "ty.npy", Y6)},
            "not a readable .npy array",
        ),
        "missing npy labels": (
            _npy(tmp_path / "x2.npy", X6),
            {"labels_path": tmp_path / "absent.npy"},
            "absent.npy' does not exist",
        ),
        "string inputs npz": (
            _npz(tmp_path / "si.npz", x=np.array(["a", "b"]), y=np.array([0, 1])),
            {},
            "non-numeric inputs",
        ),
        "h5 group": (
            _h5(tmp_path / "grp.h5", **{"x/a": X6, "y": Y6}),
            {},
            "is a group",
        ),
    }


def _npy(path, array):
    np.save(path, array)
    if path.suffix != ".npy":
        # np.save appends .npy; give the file the name asked for.
        path.with_name(path.name + ".npy").rename(path)
    return path


BAD_CASES = [
    "missing",
    "directory",
    "extension",
    "npz key",
    "h5 key",
    "csv column",
    "csv index",
    "nan inputs csv",
    "empty cell csv",
    "nan inputs npz",
    "inf labels",
    "inf regression",
    "length",
    "one sample",
    "header only",
    "one class",
    "fractional labels",
    "string inputs csv",
    "string regression",
    "empty csv",
    "no header",
    "ragged csv",
    "semicolons",
    "not utf8",
    "corrupt h5",
    "truncated h5",
    "corrupt npz",
    "truncated npz",
    "npy in npz name",
    "truncated npy",
    "missing npy labels",
    "string inputs npz",
    "h5 group",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_file_raises_data_error(tmp_path, case):
    (tmp_path / "b.csv").write_bytes(b"a,y\n\xff\xfe,1\n")
    path, kwargs, keyword = _bad_files(tmp_path)[case]
    if path.suffix == ".npy" and "labels_path" not in kwargs:
        kwargs["labels_path"] = _npy(tmp_path / "labels.npy", Y6)
    with pytest.raises(DataError) as info:
        load_dataset("file", path=path, **kwargs)
    message = str(info.value)
    assert keyword in message
    assert "\n" not in message


def test_bad_case_list_is_complete(tmp_path):
    assert sorted(BAD_CASES) == sorted(_bad_files(tmp_path))


# ---------------------------------------------------------------------------
# Bad arguments: ConfigError
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "keyword"),
    [
        ({"name": "digit"}, "did you mean 'digits'"),
        ({"name": "mnist"}, "digits, breast_cancer, spheres, xor, rings, file"),
        ({"name": "my.csv"}, "load_dataset('file'"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"name": "spheres", "n_samples": 1}, "n_samples"),
        ({"name": "xor", "noise": -1.0}, "noise"),
        ({"seed": -3}, "seed"),
        ({"max_samples": 1}, "max_samples"),
        ({"task": "regresion"}, "did you mean 'regression'"),
        ({"standardize": "yes"}, "standardize"),
        ({"standardize": 1}, "standardize"),
        ({"name": "file"}, "needs path"),
        ({"path": "x.csv"}, "name='file'"),
        ({"n_samples": 100}, "max_samples"),
        ({"name": "spheres", "task": "regression"}, "regression"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, keyword):
    with pytest.raises(ConfigError) as info:
        load_dataset(**kwargs)
    assert keyword in str(info.value)


def test_npy_inputs_need_labels_path(tmp_path):
    path = _npy(tmp_path / "x.npy", X6)
    with pytest.raises(ConfigError, match="labels_path"):
        load_dataset("file", path=path)


def test_generator_arguments_are_checked():
    with pytest.raises(ConfigError, match="dim"):
        spheres(10, dim=0)
    with pytest.raises(ConfigError, match="n_samples"):
        rings(2)
    with pytest.raises(ConfigError, match="margin"):
        xor(10, margin=1.0)


def test_datasets_tuple_and_dataset_type():
    assert DATASETS == ("digits", "breast_cancer", "spheres", "xor", "rings", "file")
    assert isinstance(load_dataset("xor", n_samples=10), Dataset)


def test_data_module_does_not_import_sklearn():
    code = "import sys, spacetime._data; print('sklearn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
