"""Time grids: the time levels t_0 = 0 < t_1 < ... < t_L = T of a discretisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._errors import GridError, as_count

__all__ = ["TimeGrid", "time_grid"]


def _as_positive_float(value: object, what: str, hint: str) -> float:
    """Convert ``value`` to a finite positive float or raise :class:`GridError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GridError(f"{what} must be a number, got {value!r}: {hint}") from None
    if not (math.isfinite(number) and number > 0.0):
        raise GridError(f"{what} must be positive and finite, got {number!r}: {hint}")
    return number


def _check_time_nodes(nodes: np.ndarray) -> None:
    """Raise :class:`GridError` unless ``nodes`` is a valid sequence of time levels."""
    if nodes.ndim != 1:
        raise GridError(
            f"time nodes must be a 1-D sequence, got an array of shape "
            f"{nodes.shape}: pass a flat list of times"
        )
    if nodes.size < 2:
        raise GridError(
            f"a time grid needs at least 2 nodes (one step), got {nodes.size}: "
            "pass t_0 = 0 and at least one later time"
        )
    bad = np.flatnonzero(~np.isfinite(nodes))
    if bad.size:
        k = int(bad[0])
        raise GridError(
            f"time nodes must be finite; node {k} is {float(nodes[k])!r}: "
            "replace it by a finite time"
        )
    if nodes[0] != 0.0:
        raise GridError(
            f"time nodes must start at 0, got t_0 = {float(nodes[0])!r}: "
            "shift the nodes or prepend 0"
        )
    steps = np.diff(nodes)
    bad = np.flatnonzero(steps <= 0.0)
    if bad.size:
        k = int(bad[0]) + 1
        fix = "remove the duplicate" if steps[k - 1] == 0.0 else "sort the nodes"
        raise GridError(
            f"time nodes must be strictly increasing; node {k} "
            f"({float(nodes[k])!r}) does not exceed node {k - 1} "
            f"({float(nodes[k - 1])!r}): {fix}"
        )


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """The time levels of a discretisation of [0, T].

    Parameters
    ----------
    nodes : ndarray, shape (n_steps + 1,)
        The levels ``t_0 = 0 < t_1 < ... < t_L = T``. They are stored as a
        read-only float64 copy.

    Raises
    ------
    GridError
        If there are fewer than two nodes, a node is not finite, ``t_0 != 0``, or
        the nodes are not strictly increasing.

    Notes
    -----
    Two time grids compare equal when their nodes are identical, bit for bit.
    """

    nodes: np.ndarray

    def __post_init__(self) -> None:
        nodes = np.array(self.nodes, dtype=np.float64, copy=True)
        _check_time_nodes(nodes)
        nodes.flags.writeable = False
        object.__setattr__(self, "nodes", nodes)

    @property
    def T(self) -> float:
        """float: The final time ``t_L``."""
        return float(self.nodes[-1])

    @property
    def n_steps(self) -> int:
        """int: The number of steps ``L`` (one fewer than the number of nodes)."""
        return self.nodes.size - 1

    @property
    def steps(self) -> np.ndarray:
        """ndarray, shape (n_steps,): The step sizes ``t_{k+1} - t_k``."""
        steps = np.diff(self.nodes)
        steps.flags.writeable = False
        return steps

    @property
    def is_uniform(self) -> bool:
        """bool: Whether every step equals ``T / n_steps`` up to rounding.

        The tolerance is ``8 eps T`` in absolute terms, which bounds the rounding
        of nodes computed as ``T k / L``.
        """
        tolerance = 8.0 * np.finfo(np.float64).eps * self.T
        return bool(np.all(np.abs(self.steps - self.T / self.n_steps) <= tolerance))

    def rescaled(self, factor: float) -> TimeGrid:
        """Return the time grid with every node multiplied by ``factor``.

        Parameters
        ----------
        factor : float
            A positive, finite scale; the new final time is ``factor * T``.

        Returns
        -------
        TimeGrid
            The grid with nodes ``factor * t_k``.

        Raises
        ------
        GridError
            If ``factor`` is not positive and finite.
        """
        factor = _as_positive_float(
            factor, "the scale factor", "pass a positive number"
        )
        return TimeGrid(self.nodes * factor)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeGrid):
            return NotImplemented
        return self is other or bool(np.array_equal(self.nodes, other.nodes))

    def __hash__(self) -> int:
        return hash(self.nodes.tobytes())

    def __len__(self) -> int:
        return self.nodes.size

    def __repr__(self) -> str:
        kind = "uniform" if self.is_uniform else "non-uniform"
        return f"TimeGrid(T={self.T!r}, n_steps={self.n_steps}, {kind})"


def time_grid(
    T: float | None = None,
    n_steps: int | None = None,
    *,
    nodes: object = None,
) -> TimeGrid:
    """Build a time grid, uniform from ``(T, n_steps)`` or from explicit nodes.

    Parameters
    ----------
    T : float, optional
        The final time; must be positive. Give it together with ``n_steps``.
    n_steps : int, optional
        The number of steps ``L >= 1``. Give it together with ``T``.
    nodes : array_like, shape (n_steps + 1,), optional
        Explicit levels ``0 = t_0 < ... < t_L``; give it instead of
        ``T`` and ``n_steps``.

    Returns
    -------
    TimeGrid
        The time grid.

    Raises
    ------
    GridError
        If both or neither of the two forms are given, ``T <= 0``, ``n_steps < 1``,
        or the explicit nodes are invalid (see :class:`TimeGrid`).

    Notes
    -----
    The uniform grid has nodes ``t_k = T (k / L)`` for ``k = 0, ..., L``, so that
    ``t_0 = 0`` and ``t_L = T`` exactly; the interior nodes carry one rounding.
    """
    if nodes is not None:
        if T is not None or n_steps is not None:
            raise GridError(
                "time_grid got both explicit nodes and T/n_steps: pass one form only"
            )
        return TimeGrid(np.asarray(nodes, dtype=np.float64))
    if T is None or n_steps is None:
        raise GridError(
            "time_grid needs both T and n_steps (or explicit nodes): "
            "pass the missing argument"
        )
    final = _as_positive_float(T, "the final time T", "pass T > 0")
    count = as_count(n_steps, "the number of time steps", "pass n_steps >= 1")
    levels = final * (np.arange(count + 1, dtype=np.float64) / count)
    levels[-1] = final
    return TimeGrid(levels)
