"""Grids, quadrature rules and transfer operators for time-dependent discretisations.

The package is pure NumPy/SciPy and knows nothing about networks. It provides

- time grids (:func:`time_grid`),
- errors raised on invalid input (:class:`GridError`).
"""

from ._errors import GridError
from ._time import TimeGrid, time_grid

__all__ = ["GridError", "TimeGrid", "time_grid"]
