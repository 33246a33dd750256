"""fastattention: exact attention in O(N) memory, tiled for every machine.

An implementation of FastAttention (Lin et al., 2024, arXiv 2410.16663): FlashAttention-2 with
two-level tiling, tiling-mask, tiling-AllReduce and CPU-GPU cooperation.

Example:
    >>> import torch
    >>> from fastattention import attention
    >>> q, k, v = torch.randn(1, 8, 128, 64), torch.randn(1, 2, 128, 64), torch.randn(1, 2, 128, 64)
    >>> attention(q, k, v, causal=True).shape
    torch.Size([1, 8, 128, 64])
"""

from fastattention.api import BACKENDS, attention
from fastattention.config import DEFAULT_TILING, TilingConfig
from fastattention.functional import TileStats, attention_reference, lse_merge
from fastattention.masks import TilingMask

__version__ = "0.1.0"

__all__ = ["BACKENDS", "DEFAULT_TILING", "TileStats", "TilingConfig", "TilingMask", "attention",
           "attention_reference", "lse_merge"]
