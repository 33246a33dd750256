"""zipf_whitening."""

__version__ = "0.1.0"
