"""The package version, in one place (read by `asynclog.__version__` and the OTLP user agent)."""

__version__ = "0.1.0"
