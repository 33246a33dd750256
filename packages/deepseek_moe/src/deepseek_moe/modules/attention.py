"""Multi-head latent attention (MLA, Sec. 2.1.1) with decoupled, interleaved YaRN RoPE and two cache modes.

* ``naive``: the latent is expanded into per-head keys/values; the cache holds them
  (``n_heads * (qk_head_dim + v_head_dim)`` values per token per layer).
* ``absorb``: W^UK is folded into the query and W^UV into the output, attention runs in the latent
  space, and the cache holds exactly ``kv_lora_rank + qk_rope_head_dim`` values per token per layer.

Without a cache (training, scoring) the expanded form runs through ``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepseek_moe import functional as Fn
from deepseek_moe.config import DeepSeekV3Config


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == self.weight.dtype:  # fused kernel, same math as Fn.rms_norm
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return Fn.rms_norm(x, self.weight, self.eps)


class RotaryEmbedding(nn.Module):
    """Precomputed cos/sin tables of the decoupled RoPE key/query (YaRN when ``cfg.yarn_active``)."""

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        self.cfg = cfg
        inv = Fn.yarn_inv_freq(cfg.qk_rope_head_dim, cfg.rope_theta, factor=cfg.rope_factor,
                               original_seq_len=cfg.original_seq_len, beta_fast=cfg.beta_fast,
                               beta_slow=cfg.beta_slow, yarn=cfg.yarn_active)
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, start: int, length: int, device=None) -> tuple[Tensor, Tensor]:
        if start + length > self.cfg.max_seq_len:
            raise ValueError(f"positions up to {start + length} exceed max_seq_len={self.cfg.max_seq_len}")
        pos = torch.arange(start, start + length, device=device or self.inv_freq.device)
        cos, sin = Fn.rope_cos_sin(pos, self.inv_freq)
        return cos[None], sin[None]  # (1, S, R/2)


class KVCache:
    """Pre-allocated per-layer MLA cache for incremental decoding.

    ``absorb``: ``kv[l]`` [B, L, C] (normalised latent) and ``pe[l]`` [B, L, R] (RoPE'd shared key).
    ``naive``: ``kv[l]`` [B, L, H, dn+R] keys and ``pe[l]`` [B, L, H, dv] values.
    ``length`` is the number of positions already written; set it lower to roll back (speculative decoding).
    """

    def __init__(self, cfg: DeepSeekV3Config, n_layers: int, batch: int, max_len: int, *, impl: str | None = None,
                 dtype: torch.dtype = torch.float32, device=None):
        self.impl = impl or cfg.attn_impl
        if self.impl not in ("naive", "absorb"):
            raise ValueError(f"KVCache impl: expected 'naive' or 'absorb', got {self.impl!r}")
        self.max_len, self.length = max_len, 0
        if self.impl == "absorb":
            a, b = (batch, max_len, cfg.kv_lora_rank), (batch, max_len, cfg.qk_rope_head_dim)
        else:
            a = (batch, max_len, cfg.n_heads, cfg.qk_head_dim)
            b = (batch, max_len, cfg.n_heads, cfg.v_head_dim)
        self.kv = [torch.zeros(a, dtype=dtype, device=device) for _ in range(n_layers)]
        self.pe = [torch.zeros(b, dtype=dtype, device=device) for _ in range(n_layers)]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.kv + self.pe)

    def bytes_per_token(self) -> int:
        return self.nbytes // (self.max_len * self.kv[0].shape[0])


class MLA(nn.Module):
    """Multi-head latent attention. Parameter names follow the HF layout (``q_a_proj``, ``kv_b_proj``, ...).

    Paper: DeepSeek-V3, Sec. 2.1.1, Eqs. (1)-(11).
    """

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        self.cfg = cfg
        H, dq = cfg.n_heads, cfg.qk_head_dim
        if cfg.q_lora_rank is None:
            self.q_proj = nn.Linear(cfg.dim, H * dq, bias=False)
        else:
            self.q_a_proj = nn.Linear(cfg.dim, cfg.q_lora_rank, bias=False)  # W^DQ
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
            self.q_b_proj = nn.Linear(cfg.q_lora_rank, H * dq, bias=False)  # [W^UQ; W^QR]
        self.kv_a_proj_with_mqa = nn.Linear(cfg.dim, cfg.kv_lora_rank + cfg.qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, cfg.rms_norm_eps)
        self.kv_b_proj = nn.Linear(cfg.kv_lora_rank, H * (cfg.qk_nope_head_dim + cfg.v_head_dim), bias=False)
        self.o_proj = nn.Linear(H * cfg.v_head_dim, cfg.dim, bias=False)
        self.scale = cfg.softmax_scale

    def _qkv_latent(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cfg = self.cfg
        B, S, _ = x.shape
        q = self.q_proj(x) if cfg.q_lora_rank is None else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, S, cfg.n_heads, cfg.qk_head_dim)
        q_nope, q_pe = q.split([cfg.qk_nope_head_dim, cfg.qk_rope_head_dim], dim=-1)
        q_pe = Fn.apply_rope_interleaved(q_pe, cos, sin)  # (B, S, H, R)
        kv, k_pe = self.kv_a_proj_with_mqa(x).split([cfg.kv_lora_rank, cfg.qk_rope_head_dim], dim=-1)
        kv = self.kv_a_layernorm(kv)  # (B, S, C): c^KV, normalised
        k_pe = Fn.apply_rope_interleaved(k_pe, cos, sin)  # (B, S, R)
        return q_nope, q_pe, kv, k_pe

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x: [B, S, D]; cos/sin: [1, S, R/2] for the positions of x. With a cache, x continues at ``cache.length``."""
        cfg = self.cfg
        B, S, _ = x.shape
        H, dn, dv = cfg.n_heads, cfg.qk_nope_head_dim, cfg.v_head_dim
        q_nope, q_pe, kv, k_pe = self._qkv_latent(x, cos, sin)
        if cache is None:
            o = self._sdpa_expanded(q_nope, q_pe, kv, k_pe)
        else:
            start, end = cache.length, cache.length + S
            if end > cache.max_len:
                raise ValueError(f"KVCache: writing positions up to {end} into a cache of max_len={cache.max_len}")
            if cache.impl == "absorb":
                cache.kv[layer][:B, start:end] = kv
                cache.pe[layer][:B, start:end] = k_pe
                o = Fn.mla_absorbed_chunked(q_nope, q_pe, cache.kv[layer][:B, :end], cache.pe[layer][:B, :end],
                                            self._kv_b_weight(q_nope.dtype), self.scale, start)
            else:
                mask = Fn.causal_mask(S, end, start, device=x.device) if S > 1 else None
                kvx = self.kv_b_proj(kv).view(B, S, H, dn + dv)
                k = torch.cat([kvx[..., :dn], k_pe[:, :, None].expand(-1, -1, H, -1)], dim=-1)
                cache.kv[layer][:B, start:end] = k
                cache.pe[layer][:B, start:end] = kvx[..., dn:]
                q = torch.cat([q_nope, q_pe], dim=-1)
                scores = torch.einsum("bshd,bthd->bsht", q, cache.kv[layer][:B, :end]).float() * self.scale
                if mask is not None:
                    scores = scores + mask[:, None, :]
                o = torch.einsum("bsht,bthd->bshd", scores.softmax(-1).to(q.dtype), cache.pe[layer][:B, :end])
        return self.o_proj(o.reshape(B, S, H * dv))

    def _kv_b_weight(self, dtype: torch.dtype) -> Tensor:
        """W^UK/W^UV in the activation dtype (dequantized when ``kv_b_proj`` is an FP8 layer)."""
        lin = self.kv_b_proj
        if hasattr(lin, "weight_scale_inv"):
            from deepseek_moe.fp8 import weight_dequant

            return weight_dequant(lin.weight, lin.weight_scale_inv, lin.block, dtype)
        return lin.weight

    def _sdpa_expanded(self, q_nope: Tensor, q_pe: Tensor, kv: Tensor, k_pe: Tensor) -> Tensor:
        """Causal attention over the whole sequence with expanded per-head k/v (fast path, no cache)."""
        cfg = self.cfg
        B, S, H, dn = q_nope.shape
        dv, R = cfg.v_head_dim, cfg.qk_rope_head_dim
        kvx = self.kv_b_proj(kv).view(B, S, H, dn + dv)
        q = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)  # (B, H, S, dn+R)
        k = torch.cat([kvx[..., :dn], k_pe[:, :, None].expand(-1, -1, H, R)], dim=-1).transpose(1, 2)
        v = kvx[..., dn:].transpose(1, 2)  # (B, H, S, dv)
        dq = dn + R
        if dv < dq:  # equal head dims select the fused SDPA kernels (the math fallback is ~3x slower on CPU)
            v = F.pad(v, (0, dq - dv))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return o[..., :dv].transpose(1, 2)  # (B, S, H, dv)

    def reference(self, x: Tensor, cos: Tensor, sin: Tensor, impl: str = "naive") -> Tensor:
        """Full causal attention through :func:`mla_naive` / :func:`mla_absorbed` (for tests)."""
        B, S, _ = x.shape
        q_nope, q_pe, kv, k_pe = self._qkv_latent(x, cos, sin)
        fn = Fn.mla_naive if impl == "naive" else Fn.mla_absorbed
        o = fn(q_nope, q_pe, kv, k_pe, self.kv_b_proj.weight, self.scale, Fn.causal_mask(S, S, 0, device=x.device))
        return self.o_proj(o.reshape(B, S, -1))
