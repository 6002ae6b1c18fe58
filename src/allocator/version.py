"""The package's version, in one place every stage may read."""

__version__ = "0.1.0"
