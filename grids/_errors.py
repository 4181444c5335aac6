"""The exception raised by the :mod:`grids` package on invalid input.

Every message is one sentence that states what is wrong and what to do about it.
"""

import difflib
import math
import operator
from collections.abc import Iterable

import numpy as np


class GridError(ValueError):
    """A grid, rule, schedule or transfer was asked for with invalid input."""


def unknown_name_error(what: str, name: object, known: Iterable[str]) -> GridError:
    """Build the error for a name that is not in a registry.

    Parameters
    ----------
    what : str
        What the name designates, e.g. ``"quadrature rule"``.
    name : object
        The name that was given.
    known : iterable of str
        The names the registry holds.

    Returns
    -------
    GridError
        An error whose message lists the known names and, when one is close to
        ``name``, suggests it.
    """
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else "use one of them"
    return GridError(f"unknown {what} {name!r} (known: {', '.join(known)}): {hint}")


def describe(value: object) -> str:
    """Format a value for an error message (NumPy scalars as plain Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def as_count(value: object, what: str, hint: str) -> int:
    """Convert ``value`` to an integer ``>= 1`` or raise :class:`GridError`.

    Parameters
    ----------
    value : object
        An integer, or a float with an integral value (``4.0``); not a bool.
    what : str
        What the count is, for the message, e.g. ``"the grid width"``.
    hint : str
        What to do instead, for the message.

    Returns
    -------
    int
        The count.
    """
    count = None
    if not isinstance(value, bool | np.bool_):
        try:
            count = operator.index(value)
        except TypeError:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if math.isfinite(number) and number.is_integer():
                count = int(number)
    if count is None:
        raise GridError(f"{what} must be an integer, got {describe(value)}: {hint}")
    if count < 1:
        raise GridError(f"{what} must be at least 1, got {count}: {hint}")
    return count
