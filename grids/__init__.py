"""Grids, quadrature rules and transfer operators for time-dependent discretisations.

The package is pure NumPy/SciPy and knows nothing about networks. It provides

- time grids t_0 = 0 < ... < t_L = T (:func:`time_grid`),
- quadrature grids on a box Ω ⊂ R^s (:func:`grid`, :func:`tensor_grid`,
  :func:`custom_grid`), built from the rules in :data:`RULES`,
- moving grids, one spatial grid per time level, with width schedules and node
  mappings (:func:`moving_grid`),
- transfer operators between grids, sparse matrices whose transpose is the exact
  adjoint (:func:`transfer`, :func:`transfers`, :data:`TRANSFERS`),
- the error raised on invalid input (:class:`GridError`).
"""

from ._errors import GridError
from ._moving import MovingGrid, moving_grid
from ._quadrature import RULES, Grid, custom_grid, grid, tensor_grid
from ._time import TimeGrid, time_grid
from ._transfer import TRANSFERS, transfer, transfers

__all__ = [
    "RULES",
    "TRANSFERS",
    "Grid",
    "GridError",
    "MovingGrid",
    "TimeGrid",
    "custom_grid",
    "grid",
    "moving_grid",
    "tensor_grid",
    "time_grid",
    "transfer",
    "transfers",
]
