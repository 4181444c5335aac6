"""Exceptions raised on bad input.

Every error a user can cause by a wrong config, bad data or a damaged file is a
:class:`SpacetimeError`. Its message is one sentence that says what is wrong and what
to do; the command-line interface prints it without a traceback and exits non-zero.
"""


class SpacetimeError(Exception):
    """Base class of the errors caused by input: config, data, files."""


class ConfigError(SpacetimeError, ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class DataError(SpacetimeError, ValueError):
    """A dataset cannot be read or holds values the model cannot use."""


class RunFileError(SpacetimeError, OSError):
    """A run file cannot be written, or cannot be read back."""


class TrainingDiverged(SpacetimeError, FloatingPointError):
    """The objective became infinite or NaN during optimisation."""
