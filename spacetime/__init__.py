"""Neural ODEs and space-time networks as optimal-control problems."""

__version__ = "0.1.0"
