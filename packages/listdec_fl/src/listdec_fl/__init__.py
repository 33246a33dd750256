"""listdec_fl."""

__version__ = "0.1.0"
