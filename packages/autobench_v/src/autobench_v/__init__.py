"""autobench_v."""

__version__ = "0.1.0"
