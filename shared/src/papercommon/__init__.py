"""papercommon: shared kernels, data, metrics, benchmarking and the reproduce CLI."""

__version__ = "0.1.0"
