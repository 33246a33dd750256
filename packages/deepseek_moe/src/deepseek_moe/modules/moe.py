"""DeepSeekMoE (Sec. 2.1.2): shared experts + fine-grained routed experts, the V3 gate and load balancing.

Token dispatch is vectorised: the N*K (token, expert) pairs are sorted by expert once, gathered into one
contiguous buffer, pushed through each expert's weights as one matmul per expert segment (``torch._grouped_mm``
on CUDA), gathered back into (token, slot) order and combined with one batched matmul against the gating
weights. There is no loop over tokens.

Balancing state lives in the gate: ``e_score_correction_bias`` (the selection bias b_i, a buffer, no
gradient) and ``load_accum`` (tokens per expert gathered in forward passes since the last
:meth:`Gate.update_bias`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepseek_moe import functional as Fn
from deepseek_moe.config import DeepSeekV3Config


class MLP(nn.Module):
    """SwiGLU feed-forward ``down(silu(gate(x)) * up(x))`` (dense layers and shared experts)."""

    def __init__(self, dim: int, inter_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inter_dim, bias=False)
        self.up_proj = nn.Linear(dim, inter_dim, bias=False)
        self.down_proj = nn.Linear(inter_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """The DeepSeek-V3 router: sigmoid (or softmax) affinities, bias-adjusted node-limited top-k (Eqs. 12-16)."""

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        self.cfg = cfg
        E = cfg.n_routed_experts
        self.weight = nn.Parameter(torch.empty(E, cfg.dim, dtype=torch.float32))
        # Selection bias b_i (HF name): fp32, updated by the sign rule, never by gradients.
        self.register_buffer("e_score_correction_bias", torch.zeros(E, dtype=torch.float32),
                             persistent=cfg.use_expert_bias)
        self.register_buffer("load_accum", torch.zeros(E, dtype=torch.float32), persistent=False)
        self.last_counts: Tensor | None = None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [N, D] -> weights [N, K], indices [N, K], scores [N, E]."""
        cfg = self.cfg
        logits = F.linear(x.float(), self.weight.float())
        bias = self.e_score_correction_bias if cfg.use_expert_bias else None
        w, idx, scores = Fn.route(logits, bias, topk=cfg.n_activated_experts, n_groups=cfg.n_expert_groups,
                                  topk_groups=cfg.n_limited_groups, score_func=cfg.score_func,
                                  norm_topk_prob=cfg.norm_topk_prob, route_scale=cfg.route_scale)
        with torch.no_grad():
            counts = Fn.expert_counts(idx, cfg.n_routed_experts).float()
            self.last_counts = counts
            if self.training:
                self.load_accum += counts
        return w, idx, scores

    @torch.no_grad()
    def update_bias(self, rate: float | None = None, counts: Tensor | None = None) -> Tensor:
        """Apply ``b_i += rate * sign(mean - load_i)`` from the accumulated counts, reset them, return the load."""
        counts = self.load_accum.clone() if counts is None else counts
        rate = self.cfg.bias_update_rate if rate is None else rate
        if self.cfg.use_expert_bias and rate > 0 and counts.sum() > 0:
            Fn.bias_update(self.e_score_correction_bias, counts, rate)
        self.load_accum.zero_()
        return counts


class _SegmentLinear(torch.autograd.Function):
    """``y[seg_e] = x[seg_e] @ w[e].T`` for contiguous per-expert segments, written in place (no cat/split, and
    the weight gradient is one buffer filled segment by segment instead of one zero-filled copy per expert)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, counts: list[int]) -> Tensor:
        y = x.new_empty(x.shape[0], w.shape[1])
        start = 0
        for e, n in enumerate(counts):
            if n:
                torch.mm(x[start:start + n], w[e].t(), out=y[start:start + n])
                start += n
        ctx.save_for_backward(x, w)
        ctx.counts = counts
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):
        x, w = ctx.saved_tensors
        gy = gy.contiguous()
        gx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        gw = torch.empty_like(w) if ctx.needs_input_grad[1] else None
        start = 0
        for e, n in enumerate(ctx.counts):
            seg = slice(start, start + n)
            if gx is not None and n:
                torch.mm(gy[seg], w[e], out=gx[seg])
            if gw is not None:
                if n:
                    torch.mm(gy[seg].t(), x[seg], out=gw[e])
                else:
                    gw[e].zero_()
            start += n
        return gx, gw, None


def grouped_linear(x: Tensor, w: Tensor, counts: list[int], offs: Tensor | None = None) -> Tensor:
    """``x`` sorted by expert ([sum(counts), in]) times ``w[e].T`` ([E, out, in]) per segment -> [N, out]."""
    if x.is_cuda and offs is not None and x.dtype == torch.bfloat16 and hasattr(torch, "_grouped_mm"):
        return torch._grouped_mm(x, w.transpose(-2, -1), offs=offs)
    return _SegmentLinear.apply(x.contiguous(), w, counts)


class Experts(nn.Module):
    """All routed experts as stacked weights (HF v5 layout): ``gate_up_proj`` [E, 2I, D], ``down_proj`` [E, D, I]."""

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        E, D, inter = cfg.n_routed_experts, cfg.dim, cfg.moe_inter_dim
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * inter, D))
        self.down_proj = nn.Parameter(torch.empty(E, D, inter))
        self.impl = "sorted"

    def forward(self, x: Tensor, weights: Tensor, idx: Tensor) -> Tensor:
        if self.impl == "reference":
            return Fn.swiglu_experts_reference(x, weights, idx, self.gate_up_proj, self.down_proj)
        if self.impl != "sorted":
            raise ValueError(f"Experts.impl: expected 'sorted' or 'reference', got {self.impl!r}")
        return self.forward_sorted(x, weights, idx)

    def forward_sorted(self, x: Tensor, weights: Tensor, idx: Tensor) -> Tensor:
        N, K = idx.shape
        E = self.gate_up_proj.shape[0]
        flat = idx.reshape(-1)
        order = flat.argsort(stable=True)  # (N*K,) pairs grouped by expert
        tok = order // K
        counts_t = torch.bincount(flat, minlength=E)
        counts = counts_t.tolist()  # one host sync per layer
        offs = counts_t.cumsum(0).to(torch.int32) if x.is_cuda else None
        xs = x[tok]  # (N*K, D) gathered
        g, u = grouped_linear(xs, self.gate_up_proj, counts, offs).chunk(2, dim=-1)
        h = grouped_linear(F.silu(g) * u, self.down_proj, counts, offs)  # (N*K, D), sorted by expert
        h = h[order.argsort()].view(N, K, -1)  # back to (token, slot) order: a gather, no scatter-add
        return torch.bmm(weights.to(h.dtype)[:, None, :], h).squeeze(1)  # sum_k g_k * expert_k(x)


class MoE(nn.Module):
    """DeepSeekMoE layer: ``h + sum_i Shared_i(h) + sum_i g_i Routed_i(h)`` (Eq. 12), with the balance losses.

    After a training forward, ``self.aux_loss`` holds the sequence-wise (``seq_aux_alpha``) plus classic
    batch-wise (``aux_loss_alpha``) balance losses of this layer (a scalar tensor, 0 if both are off).
    """

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        self.cfg = cfg
        self.gate = Gate(cfg)
        self.experts = Experts(cfg)
        self.shared_experts = MLP(cfg.dim, cfg.n_shared_experts * cfg.moe_inter_dim) if cfg.n_shared_experts else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        B, S, D = x.shape
        flat = x.reshape(-1, D)
        w, idx, scores = self.gate(flat)
        y = self.experts(flat, w, idx)
        if self.shared_experts is not None:
            y = y + self.shared_experts(flat)
        aux = flat.new_zeros((), dtype=torch.float32)
        if self.training and cfg.seq_aux_alpha > 0:
            aux = aux + Fn.sequence_balance_loss(scores, idx, B, cfg.seq_aux_alpha)
        if self.training and cfg.aux_loss_alpha > 0:
            aux = aux + Fn.batch_balance_loss(scores, idx, cfg.aux_loss_alpha)
        return y.view(B, S, D), aux
