"""polyak_clip."""

__version__ = "0.1.0"
