"""Tests of the time grids of :mod:`grids`."""

import numpy as np
import pytest

from grids import GridError, TimeGrid, time_grid


def test_uniform_grid_has_exact_endpoints_and_equal_steps():
    tg = time_grid(3.0, 7)
    assert tg.n_steps == 7
    assert len(tg) == 8
    assert tg.nodes[0] == 0.0
    assert tg.nodes[-1] == 3.0  # exact, not merely close
    assert tg.T == 3.0
    np.testing.assert_allclose(tg.steps, 3.0 / 7, rtol=1e-15)
    np.testing.assert_allclose(tg.nodes, 3.0 * np.arange(8) / 7, rtol=1e-15)
    assert tg.is_uniform
    assert tg.nodes.dtype == np.float64


@pytest.mark.parametrize("T", [0.1, 1.0, 2.5, 1e3])
@pytest.mark.parametrize("n_steps", [1, 3, 12, 1000])
def test_uniform_grid_endpoint_is_exactly_T(T, n_steps):
    tg = time_grid(T, n_steps)
    assert tg.nodes[-1] == T
    assert tg.is_uniform
    assert np.all(np.diff(tg.nodes) > 0)


def test_grid_from_nodes():
    tg = time_grid(nodes=[0.0, 0.1, 0.5, 2.0])
    assert tg.T == 2.0
    assert tg.n_steps == 3
    np.testing.assert_array_equal(tg.steps, [0.1, 0.4, 1.5])
    assert not tg.is_uniform
    assert time_grid(nodes=[0.0, 0.5, 1.0]).is_uniform


def test_nodes_are_read_only_copies():
    given = np.array([0.0, 1.0, 2.0])
    tg = TimeGrid(given)
    given[1] = 5.0
    assert tg.nodes[1] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        tg.nodes[1] = 3.0
    with pytest.raises(ValueError, match="read-only"):
        tg.steps[0] = 3.0


def test_rescaled_multiplies_nodes():
    tg = time_grid(nodes=[0.0, 0.25, 1.0]).rescaled(4.0)
    np.testing.assert_array_equal(tg.nodes, [0.0, 1.0, 4.0])
    assert tg.T == 4.0
    assert time_grid(1.0, 10).rescaled(2.0).is_uniform


def test_equality_and_hash():
    assert time_grid(1.0, 4) == time_grid(nodes=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert time_grid(1.0, 4) != time_grid(1.0, 5)
    assert hash(time_grid(2.0, 3)) == hash(time_grid(2.0, 3))


@pytest.mark.parametrize(
    ("kwargs", "keyword"),
    [
        ({"T": 0.0, "n_steps": 4}, "positive"),
        ({"T": -1.0, "n_steps": 4}, "positive"),
        ({"T": float("inf"), "n_steps": 4}, "finite"),
        ({"T": 1.0, "n_steps": 0}, "at least 1"),
        ({"T": 1.0, "n_steps": 2.5}, "integer"),
        ({"T": 1.0}, "needs both"),
        ({"T": 1.0, "n_steps": 2, "nodes": [0.0, 1.0]}, "one form"),
        ({"nodes": [0.1, 0.5, 1.0]}, "start at 0"),
        ({"nodes": [0.0, 0.5, 0.5, 1.0]}, "remove the duplicate"),
        ({"nodes": [0.0, 0.7, 0.5, 1.0]}, "sort"),
        ({"nodes": [0.0]}, "at least 2 nodes"),
        ({"nodes": [0.0, np.nan]}, "finite"),
    ],
)
def test_invalid_time_grids_raise_grid_error(kwargs, keyword):
    with pytest.raises(GridError, match=keyword):
        time_grid(**kwargs)


def test_error_names_the_offending_node():
    with pytest.raises(GridError) as info:
        time_grid(nodes=[0.0, 0.25, 0.5, 0.5])
    message = str(info.value)
    assert "strictly increasing" in message
    assert "node 3 (0.5)" in message
    assert "node 2 (0.5)" in message


def test_grid_error_is_a_value_error():
    assert issubclass(GridError, ValueError)


@pytest.mark.parametrize("factor", [0.0, -2.0, float("nan")])
def test_rescaled_rejects_bad_factor(factor):
    with pytest.raises(GridError, match="positive"):
        time_grid(1.0, 3).rescaled(factor)
