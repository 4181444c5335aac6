"""The exception raised by the :mod:`grids` package on invalid input.

Every message is one sentence that states what is wrong and what to do about it.
"""

import difflib
from collections.abc import Iterable


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
