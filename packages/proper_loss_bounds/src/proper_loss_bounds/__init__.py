"""proper_loss_bounds."""

__version__ = "0.1.0"
