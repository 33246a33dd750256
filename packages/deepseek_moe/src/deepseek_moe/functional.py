"""Pure reference math of DeepSeek-V3: RMSNorm, YaRN RoPE, MLA, the DeepSeekMoE gate, load balancing and MTP.

Shape legend: B batch, S query length, T key length, H heads, D model dim, C kv_lora_rank, R rope dim,
N tokens (B*S), E routed experts, K experts per token, G expert groups.

Paper: DeepSeek-V3 Technical Report (arXiv 2412.19437). Equation numbers refer to the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ---------------------------------------------------------------------------------------------------
# Normalisation and rotary embeddings
# ---------------------------------------------------------------------------------------------------


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """RMSNorm in fp32, cast back to the input dtype before the gain (as HF and the official code)."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * y.to(x.dtype)


def yarn_inv_freq(rope_dim: int, theta: float, *, factor: float = 1.0, original_seq_len: int = 4096,
                  beta_fast: float = 32, beta_slow: float = 1, yarn: bool = False) -> Tensor:
    """RoPE inverse frequencies [R/2], with YaRN's NTK-by-parts interpolation when ``yarn`` (Sec. 4.3).

    Dimensions that rotate more than ``beta_fast`` times over the original context keep their frequency,
    those that rotate fewer than ``beta_slow`` times are divided by ``factor``; a linear ramp in between.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, rope_dim, 2, dtype=torch.float32, device="cpu") / rope_dim))
    if not yarn:
        return freqs

    def correction_dim(num_rot: float) -> float:
        return rope_dim * math.log(original_seq_len / (num_rot * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), rope_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(rope_dim // 2, dtype=torch.float32, device="cpu") - low) / (high - low)).clamp(0, 1)
    smooth = 1 - ramp  # 1: keep (high frequency), 0: interpolate (low frequency)
    return freqs / factor * (1 - smooth) + freqs * smooth


def rope_cos_sin(positions: Tensor, inv_freq: Tensor) -> tuple[Tensor, Tensor]:
    """cos/sin of ``positions[..., None] * inv_freq``: [..., R/2] each, fp32."""
    ang = positions.float()[..., None] * inv_freq.to(positions.device)
    return ang.cos(), ang.sin()


def apply_rope_interleaved(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent pairs ``(x[2i], x[2i+1])`` by angle ``i`` (official ``view_as_complex`` convention).

    Args:
        x: [B, S, ..., R]; cos, sin: [B or 1, S, R/2], broadcast over the middle (head) dims.
    """
    shape = x.shape
    xf = x.float().reshape(*shape[:-1], shape[-1] // 2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    extra = x.dim() - cos.dim()  # head dims between S and R
    cos = cos.reshape(*cos.shape[:2], *([1] * extra), cos.shape[-1])
    sin = sin.reshape(*sin.shape[:2], *([1] * extra), sin.shape[-1])
    out = torch.stack((x0 * cos - x1 * sin, x1 * cos + x0 * sin), dim=-1)
    return out.reshape(shape).to(x.dtype)


def apply_rope_complex_reference(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The official formulation (``torch.view_as_complex`` times ``e^{i angle}``); for tests."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    extra = x.dim() - cos.dim()
    fc = torch.polar(torch.ones_like(cos), torch.atan2(sin, cos))
    fc = fc.reshape(*fc.shape[:2], *([1] * extra), fc.shape[-1])
    return torch.view_as_real(xc * fc).flatten(-2).to(x.dtype)


# ---------------------------------------------------------------------------------------------------
# Multi-head latent attention (Sec. 2.1.1)
# ---------------------------------------------------------------------------------------------------


def mla_naive(q_nope: Tensor, q_pe: Tensor, kv_latent: Tensor, k_pe: Tensor, wkv_b: Tensor, scale: float,
              mask: Tensor | None) -> Tensor:
    """MLA by expanding the latent into per-head keys and values (Eqs. 1-11).

    Args:
        q_nope: [B, S, H, dn]; q_pe: [B, S, H, R] (RoPE applied); kv_latent: [B, T, C] (normalised c^KV);
        k_pe: [B, T, R] (RoPE applied, shared by the heads); wkv_b: [H*(dn+dv), C]; mask: additive [S, T].

    Returns:
        [B, S, H, dv]
    """
    B, S, H, dn = q_nope.shape
    kv = (kv_latent @ wkv_b.t()).view(B, -1, H, wkv_b.shape[0] // H)  # (B, T, H, dn+dv)
    k_nope, v = kv[..., :dn], kv[..., dn:]
    k = torch.cat([k_nope, k_pe[:, :, None].expand(-1, -1, H, -1)], dim=-1)  # (B, T, H, dn+R)
    q = torch.cat([q_nope, q_pe], dim=-1)  # (B, S, H, dn+R)
    scores = torch.einsum("bshd,bthd->bsht", q, k).float() * scale
    if mask is not None:
        scores = scores + mask[:, None, :]
    p = scores.softmax(-1).to(q.dtype)
    return torch.einsum("bsht,bthd->bshd", p, v)


def mla_absorbed(q_nope: Tensor, q_pe: Tensor, kv_latent: Tensor, k_pe: Tensor, wkv_b: Tensor, scale: float,
                 mask: Tensor | None) -> Tensor:
    """MLA with W^UK absorbed into the query and W^UV into the output (official ``attn_impl="absorb"``).

    Attention runs in the C-dimensional latent space; only ``kv_latent`` and ``k_pe`` are cached.
    Same arguments and result as :func:`mla_naive`.
    """
    B, S, H, dn = q_nope.shape
    w = wkv_b.view(H, -1, wkv_b.shape[-1])  # (H, dn+dv, C)
    q_lat = torch.einsum("bshd,hdc->bshc", q_nope, w[:, :dn])  # (B, S, H, C)
    scores = (torch.einsum("bshc,btc->bsht", q_lat, kv_latent)
              + torch.einsum("bshr,btr->bsht", q_pe, k_pe)).float() * scale
    if mask is not None:
        scores = scores + mask[:, None, :]
    p = scores.softmax(-1).to(q_nope.dtype)
    o_lat = torch.einsum("bsht,btc->bshc", p, kv_latent)  # (B, S, H, C)
    return torch.einsum("bshc,hdc->bshd", o_lat, w[:, dn:])


def mla_absorbed_chunked(q_nope: Tensor, q_pe: Tensor, kv_latent: Tensor, k_pe: Tensor, wkv_b: Tensor,
                         scale: float, start: int, *, max_score_elems: int = 2**24) -> Tensor:
    """:func:`mla_absorbed` for queries at positions ``start, start+1, ...`` (causal), without [B, S, H, T] scores.

    In the absorbed form every head attends over the same keys ``[c^KV; k^R]`` (multi-query attention in the
    latent space), so the heads are folded into the query axis and one ``F.scaled_dot_product_attention``
    call runs per query chunk, with the keys doubling as values (the first C output channels are the latent
    output). The chunk holds at most ``max_score_elems`` scores (B x chunk x H x visible keys), so prefill
    memory stays bounded at any context length.

    Args:
        q_nope: [B, S, H, dn]; q_pe: [B, S, H, R] (RoPE applied); kv_latent: [B, T, C]; k_pe: [B, T, R] with
        T = start + S; wkv_b: [H * (dn + dv), C]; start: absolute position of the first query.
    """
    B, S, H, dn = q_nope.shape
    T, C = kv_latent.shape[1], kv_latent.shape[-1]
    if T != start + S:
        raise ValueError(f"mla_absorbed_chunked: expected T = start + S = {start + S} keys, got {T}")
    w = wkv_b.view(H, -1, C)  # (H, dn+dv, C)
    dv = w.shape[1] - dn
    k = torch.cat([kv_latent, k_pe], dim=-1)[:, None]  # (B, 1, T, C+R): shared by every head
    out = q_nope.new_empty(B, S, H, dv)
    chunk = max(1, max_score_elems // (B * H * T))
    keys = torch.arange(T, device=q_nope.device)
    for s0 in range(0, S, chunk):
        s1 = min(S, s0 + chunk)
        te = start + s1  # keys visible to the last query of the chunk
        q_lat = torch.einsum("bshd,hdc->bshc", q_nope[:, s0:s1], w[:, :dn])
        q = torch.cat([q_lat, q_pe[:, s0:s1]], dim=-1).reshape(B, 1, (s1 - s0) * H, -1)
        mask = None
        if s1 - s0 > 1:
            pos = start + torch.arange(s0, s1, device=q.device)
            mask = (keys[None, :te] <= pos[:, None]).repeat_interleave(H, dim=0)  # (chunk*H, te)
        kk = k[:, :, :te]
        o = F.scaled_dot_product_attention(q, kk, kk, attn_mask=mask, scale=scale)  # (B, 1, chunk*H, C+R)
        o_lat = o[..., :C].reshape(B, s1 - s0, H, C)
        out[:, s0:s1] = torch.einsum("bshc,hdc->bshd", o_lat, w[:, dn:])
    return out


def causal_mask(s: int, t: int, start: int, device=None, dtype=torch.float32) -> Tensor:
    """Additive [S, T] mask: query i (absolute position start+i) sees keys at positions <= start+i."""
    q = torch.arange(start, start + s, device=device)[:, None]
    k = torch.arange(t, device=device)[None, :]
    return torch.zeros(s, t, device=device, dtype=dtype).masked_fill(k > q, float("-inf"))


# ---------------------------------------------------------------------------------------------------
# DeepSeekMoE routing (Sec. 2.1.2)
# ---------------------------------------------------------------------------------------------------


def route(logits: Tensor, bias: Tensor | None, *, topk: int, n_groups: int = 1, topk_groups: int = 1,
          score_func: str = "sigmoid", norm_topk_prob: bool = True, route_scale: float = 1.0
          ) -> tuple[Tensor, Tensor, Tensor]:
    """DeepSeek-V3 gate: affinities, bias-adjusted group-limited top-k selection, gating weights.

    Args:
        logits: [N, E] router logits ``u_t . e_i`` (fp32).
        bias: [E] selection bias b_i (Eq. 16) or None; it changes *which* experts are chosen, never their weight.

    Returns:
        weights [N, K] (g_{i,t} times route_scale), indices [N, K], scores [N, E] (s_{i,t}, Eq. 15).
    """
    if logits.dim() != 2:
        raise ValueError(f"route: logits expected shape [N, E], got {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"route: expected finite router logits, got {int((~torch.isfinite(logits)).sum())} "
                         f"non-finite value(s) in {tuple(logits.shape)} (NaN/inf hidden states upstream?)")
    if not 1 <= topk <= logits.shape[1]:
        raise ValueError(f"route: topk expected in [1, {logits.shape[1]}], got {topk}")
    if score_func == "sigmoid":
        scores = logits.sigmoid()  # Eq. (15)
    elif score_func == "softmax":
        scores = logits.softmax(-1, dtype=torch.float32)
    else:
        raise ValueError(f"score_func: expected 'sigmoid' or 'softmax', got {score_func!r}")
    sel = scores if bias is None else scores + bias  # Eq. (16): bias only for selection
    N, E = sel.shape
    if n_groups > 1:
        grouped = sel.view(N, n_groups, E // n_groups)
        # Node-limited routing: score a group by the sum of its top-2 (bias) or its max (no bias).
        gscore = grouped.amax(-1) if bias is None else grouped.topk(2, dim=-1)[0].sum(-1)  # (N, G)
        gidx = gscore.topk(topk_groups, dim=-1)[1]
        keep = torch.zeros_like(gscore, dtype=torch.bool).scatter_(1, gidx, True)
        sel = sel.masked_fill(~keep[:, :, None].expand_as(grouped).reshape(N, E), float("-inf"))
    idx = sel.topk(topk, dim=-1)[1]  # (N, K)
    w = scores.gather(1, idx)  # original affinities, no bias
    if norm_topk_prob:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)  # Eq. (13)
    return w * route_scale, idx, scores


def expert_counts(idx: Tensor, n_experts: int) -> Tensor:
    """Tokens routed to each expert: [E] (int64)."""
    return torch.bincount(idx.flatten(), minlength=n_experts)


def max_violation(load: Tensor) -> Tensor:
    """MaxVio = (max_i load_i - mean load) / mean load (Loss-Free Balancing, Wang et al. 2024)."""
    load = load.float()
    if load.numel() == 0 or not bool(torch.isfinite(load).all()) or bool((load < 0).any()):
        raise ValueError(f"max_violation: expected a non-empty vector of finite counts >= 0, got "
                         f"{load.tolist() if load.numel() <= 16 else tuple(load.shape)}")
    mean = load.mean()
    return (load.max() - mean) / mean.clamp_min(1e-12)


def bias_update(bias: Tensor, counts: Tensor, rate: float) -> Tensor:
    """Aux-loss-free balancing: ``b_i += gamma * sign(mean load - load_i)`` (Sec. 2.1.2). In place; returns bias."""
    c = counts.float()
    bias.add_(rate * torch.sign(c.mean() - c))
    return bias


def sequence_balance_loss(scores: Tensor, idx: Tensor, batch: int, alpha: float) -> Tensor:
    """Complementary sequence-wise balance loss (Eqs. 17-20), averaged over the sequences.

    Args:
        scores: [B*S, E] affinities s_{i,t}; idx: [B*S, K] selected experts; batch: B.
    """
    N, E = scores.shape
    K = idx.shape[1]
    S = N // batch
    s = scores.view(batch, S, E)
    p = (s / s.sum(-1, keepdim=True)).mean(1)  # (B, E): P_i, Eqs. (19)-(20)
    hits = torch.zeros(batch, S * K, E, device=scores.device, dtype=scores.dtype)
    hits.scatter_(2, idx.view(batch, S * K, 1), 1.0)
    f = hits.sum(1) * (E / (K * S))  # (B, E): f_i, Eq. (18); no gradient (indicator)
    return alpha * (f * p).sum(-1).mean()  # Eq. (17)


def batch_balance_loss(scores: Tensor, idx: Tensor, alpha: float) -> Tensor:
    """Classic auxiliary balance loss over the whole batch (the baseline V3 replaces): alpha * sum_i f_i P_i."""
    N, E = scores.shape
    K = idx.shape[1]
    p = (scores / scores.sum(-1, keepdim=True)).mean(0)
    f = expert_counts(idx, E).to(scores.dtype) * (E / (K * N))
    return alpha * (f * p).sum()


# ---------------------------------------------------------------------------------------------------
# Expert computation: reference (loop over experts with masks) and vectorised (sort by expert)
# ---------------------------------------------------------------------------------------------------


def swiglu_experts_reference(x: Tensor, weights: Tensor, idx: Tensor, gate_up: Tensor, down: Tensor) -> Tensor:
    """Sum_k w_k * Expert_{idx_k}(x), one masked pass per expert (readable reference).

    Args:
        x: [N, D]; weights/idx: [N, K]; gate_up: [E, 2I, D] (gate first); down: [E, D, I].
    """
    y = torch.zeros_like(x)
    for e in range(gate_up.shape[0]):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0:
            continue
        g, u = (x[tok] @ gate_up[e].t()).chunk(2, dim=-1)
        out = (F.silu(g) * u) @ down[e].t()
        y.index_add_(0, tok, out * weights[tok, slot, None].to(out.dtype))
    return y


def mtp_targets(labels: Tensor, depth: int) -> tuple[Tensor, Tensor]:
    """Inputs and targets of MTP module ``depth`` (1-based): embeds t_{i+k}, predicts t_{i+k+1}.

    With ``labels[:, i] = t_{i+1}`` of length T: embedded tokens ``labels[:, k-1:T-1]`` and targets
    ``labels[:, k:]`` (both of length T-k). Eq. (21)-(24).
    """
    return labels[:, depth - 1:-1], labels[:, depth:]
