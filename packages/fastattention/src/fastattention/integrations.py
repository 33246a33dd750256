"""transformers integration: ``attn_implementation="fastattention"``.

Example:
    >>> from fastattention.integrations import register_transformers
    >>> register_transformers()  # once per process
    'fastattention'
    >>> # AutoModelForCausalLM.from_pretrained(path, attn_implementation="fastattention")

The attention function receives un-repeated K/V (GQA is native, no ``repeat_kv``), and the masks that
transformers builds for SDPA: ``None`` when the pattern is plain causal (we then use the bottom-right
causal mask, which also covers decoding with a KV cache), or a boolean [b, 1, Lq, Lk] mask (padding,
packed sequences) that the torch backend reads tile by tile.
"""

from __future__ import annotations

import torch

from fastattention.api import attention
from fastattention.config import TilingConfig

_SETTINGS: dict[str, object] = {}


def fastattention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                          is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: [b, h, Lq, d] in, [b, Lq, h, d] out."""
    if dropout and module.training:
        raise NotImplementedError(f"fastattention: attention dropout is not implemented (got dropout={dropout})")
    if kwargs.get("softcap") is not None:
        raise NotImplementedError("fastattention: logit softcapping is not implemented")
    if kwargs.get("output_attentions"):
        raise NotImplementedError("fastattention never materialises attention weights; use attn_implementation='eager'")
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    window = kwargs.get("sliding_window")
    mask = None
    if attention_mask is not None:
        mask = attention_mask[..., : key.shape[2]]
        causal, window = False, None  # the mask already holds the causal / window pattern
    else:
        causal = bool(is_causal)
    out = attention(query, key, value, causal=causal, scale=scaling, mask=mask, window=window,
                    backend=_SETTINGS.get("backend", "auto"), tiling=_SETTINGS.get("tiling"))
    return out.transpose(1, 2).contiguous(), None


def register_transformers(name: str = "fastattention", backend: str = "auto",
                          tiling: TilingConfig | None = None) -> str:
    """Register :func:`fastattention_forward` (and SDPA's mask builder) under ``name`` in transformers.

    Args:
        name: the ``attn_implementation`` string.
        backend, tiling: passed to :func:`fastattention.attention` for every layer.

    Returns:
        ``name``.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    _SETTINGS.update(backend=backend, tiling=tiling)
    AttentionInterface.register(name, fastattention_forward)
    AttentionMaskInterface.register(name, sdpa_mask)
    return name
