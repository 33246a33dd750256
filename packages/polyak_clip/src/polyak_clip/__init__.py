"""polyak_clip: the Inexact Polyak stepsize (Takezawa et al., NeurIPS 2024) and its rivals as torch optimizers.

Example:
    >>> import torch
    >>> from polyak_clip import InexactPolyak
    >>> model = torch.nn.Linear(4, 1)
    >>> opt = InexactPolyak(model.parameters(), T=100)
"""

from polyak_clip.optim import OPTIMIZERS, AdaSPS, ClippedSGD, DecSPS, DoG, InexactPolyak, Polyak

__version__ = "0.1.0"
__all__ = ["OPTIMIZERS", "AdaSPS", "ClippedSGD", "DecSPS", "DoG", "InexactPolyak", "Polyak"]
