"""The DeepSeek-V3 model: MLA + DeepSeekMoE blocks, the MTP modules, losses, generation with the latent cache
and self-speculative decoding with the MTP head.

Parameter tree (mapped 1:1 onto the HF checkpoint names by :mod:`deepseek_moe.checkpoint`)::

    embed_tokens, layers[i].{input_layernorm, self_attn, post_attention_layernorm, mlp}, norm, lm_head,
    mtp[k].{enorm, hnorm, eh_proj, block, norm}          (HF: model.layers.{n_layers + k}.*)
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepseek_moe import functional as Fn
from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.modules.attention import MLA, KVCache, RMSNorm, RotaryEmbedding
from deepseek_moe.modules.moe import MLP, Experts, Gate, MoE


@contextlib.contextmanager
def _skip_default_init():
    """Skip torch's per-module default initialisation while building (``reset_parameters`` does it once; on the
    meta device this also avoids the slow first use of meta random ops)."""
    names = ("kaiming_uniform_", "uniform_", "normal_")
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, lambda t, *a, **k: t)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def _masked_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over the targets != -100; 0 (with a gradient path) when there are none."""
    lse = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=-100, reduction="sum")
    return lse / (target != -100).sum().clamp_min(1)


def _lm_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy (fp32), -100 ignored; :meth:`DeepSeekV3.compile_blocks` compiles it."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


@dataclass
class DeepSeekV3Output:
    """What :meth:`DeepSeekV3.forward` returns.

    ``logits`` [B, S, V] for every position; with ``labels``: ``loss = lm_loss + mtp_lambda * mtp_loss +
    aux_loss`` where ``mtp_loss`` is the mean over the D depths (Eq. 25) and ``aux_loss`` the balance losses.
    ``hidden_states`` [B, S, D] is the final-normed representation fed to the first MTP module.
    """

    logits: Tensor
    loss: Tensor | None = None
    lm_loss: Tensor | None = None
    mtp_loss: Tensor | None = None
    aux_loss: Tensor | None = None
    mtp_losses: list[Tensor] = field(default_factory=list)
    hidden_states: Tensor | None = None


class Block(nn.Module):
    """Pre-norm Transformer block: MLA, then a dense SwiGLU FFN (first ``n_dense_layers``) or DeepSeekMoE."""

    def __init__(self, cfg: DeepSeekV3Config, layer_id: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.mlp = MLP(cfg.dim, cfg.inter_dim) if layer_id < cfg.n_dense_layers else MoE(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None = None, layer: int = 0
                ) -> tuple[Tensor, Tensor | None]:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        h = self.post_attention_layernorm(x)
        if isinstance(self.mlp, MoE):
            y, aux = self.mlp(h)
            return x + y, aux
        return x + self.mlp(h), None


class MTPModule(nn.Module):
    """Multi-token prediction module k (Sec. 2.2, Eqs. 21-23).

    ``h'_i = eh_proj([enorm(Emb(t_{i+k})); hnorm(h^{k-1}_i)])`` (embedding first, as in the released
    weights), ``h^k = Block(h')``, logits ``= head(norm(h^k))`` with the embedding and head shared with the
    main model.
    """

    def __init__(self, cfg: DeepSeekV3Config, layer_id: int):
        super().__init__()
        self.enorm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.hnorm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * cfg.dim, cfg.dim, bias=False)
        self.block = Block(cfg, layer_id)
        self.norm = RMSNorm(cfg.dim, cfg.rms_norm_eps)  # HF: shared_head.norm

    def forward(self, h_prev: Tensor, emb: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None = None
                ) -> tuple[Tensor, Tensor | None]:
        h = self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(h_prev)], dim=-1))  # Eq. (21)
        return self.block(h, cos, sin, cache, 0)  # Eq. (22)


class DeepSeekV3(nn.Module):
    """DeepSeek-V3 causal language model.

    Args:
        cfg: the configuration (``DeepSeekV3Config.preset("671b")`` for the paper's model; build that one on
            ``torch.device("meta")``).

    Paper: DeepSeek-V3 Technical Report, Sec. 2.

    Example:
        >>> cfg = DeepSeekV3Config.preset("tiny")
        >>> model = DeepSeekV3(cfg)
        >>> out = model(torch.randint(0, cfg.vocab_size, (2, 16)))
        >>> out.logits.shape
        torch.Size([2, 16, 128])
    """

    def __init__(self, cfg: DeepSeekV3Config):
        super().__init__()
        self.cfg = cfg
        with _skip_default_init():
            self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
            self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
            self.norm = RMSNorm(cfg.dim, cfg.rms_norm_eps)
            self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
            self.mtp = nn.ModuleList(MTPModule(cfg, cfg.n_layers + k) for k in range(cfg.n_mtp))
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.rotary = RotaryEmbedding(cfg)
        self._lm_ce = _lm_ce  # replaced by its compiled form in compile_blocks
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    # --- initialisation and bookkeeping -------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, init_std) for every matrix (Sec. 4.2), ones for norms, zero selection bias."""
        std = self.cfg.init_std
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                m.weight.normal_(0.0, std)
            elif isinstance(m, RMSNorm):
                m.weight.fill_(1.0)
            elif isinstance(m, Experts):
                m.gate_up_proj.normal_(0.0, std)
                m.down_proj.normal_(0.0, std)
            elif isinstance(m, Gate):
                m.weight.normal_(0.0, std)
                m.e_score_correction_bias.zero_()
                m.load_accum.zero_()

    def compile_blocks(self, **kwargs) -> DeepSeekV3:
        """``torch.compile`` the shape-static parts in place (a measured option; ``deepseek_moe.bench``).

        Compiled: each block's attention (MLA with its RoPE, norms and SDPA), its two RMSNorms, the dense
        SwiGLU FFNs and shared experts, the final norm and the LM cross-entropy. Not compiled: the router and
        the sorted expert dispatch, whose segment sizes change every step (one host sync per layer). The first
        call per input shape compiles (about 50 s for the ``small`` preset here); ``kwargs`` go to
        ``torch.compile``. Returns ``self``.
        """
        mods = [self.norm]
        for blk in [*self.layers, *(m.block for m in self.mtp)]:
            mods += [blk.self_attn, blk.input_layernorm, blk.post_attention_layernorm]
            mods.append(blk.mlp.shared_experts if isinstance(blk.mlp, MoE) else blk.mlp)
        for m in mods:
            if m is not None:
                m.compile(**kwargs)
        self._lm_ce = torch.compile(_lm_ce, **kwargs)
        return self

    def gates(self) -> list[Gate]:
        return [m for m in self.modules() if isinstance(m, Gate)]

    def num_parameters(self, *, activated: bool = False, include_mtp: bool = False) -> int:
        """Parameter count; ``activated`` counts only the K_r routed experts a token uses."""
        cfg = self.cfg
        total = 0
        for name, p in self.named_parameters():
            if not include_mtp and name.startswith("mtp."):
                continue
            n = p.numel()
            if activated and (name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj")):
                n = n // cfg.n_routed_experts * cfg.n_activated_experts
            total += n
        return total

    @torch.no_grad()
    def update_expert_bias(self, rate: float | None = None) -> list[Tensor]:
        """Aux-loss-free balancing step (Sec. 2.1.2): sum the per-expert counts gathered since the last call
        (all-reduced over the process group when ``torch.distributed`` is initialised), apply
        ``b_i += rate * sign(mean - load_i)`` in every MoE layer, and return the loads (one [E] per layer).
        """
        gates = self.gates()
        if not gates:
            return []
        counts = torch.stack([g.load_accum for g in gates])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        return [g.update_bias(rate, c) for g, c in zip(gates, counts, strict=True)]

    # --- forward ------------------------------------------------------------------------------------
    def _check_ids(self, ids: Tensor, name: str = "input_ids") -> None:
        if ids.dtype not in (torch.int64, torch.int32) or ids.dim() != 2:
            raise ValueError(f"{name}: expected an integer tensor [batch, seq], got dtype={ids.dtype} "
                             f"shape={tuple(ids.shape)}")
        if ids.numel() == 0:
            raise ValueError(f"{name}: expected a non-empty [batch, seq] tensor, got shape {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.cfg.vocab_size):
            raise ValueError(f"{name}: token ids must lie in [0, vocab_size={self.cfg.vocab_size}), got range "
                             f"[{int(ids.min())}, {int(ids.max())}]")

    def forward(self, input_ids: Tensor, labels: Tensor | None = None, *, cache: KVCache | None = None,
                compute_mtp: bool | None = None) -> DeepSeekV3Output:
        """Logits for every position; with ``labels`` ([B, S], ``labels[:, i] = t_{i+1}``, -100 ignored) the
        LM, MTP and balance losses.

        Args:
            input_ids: [B, S] token ids.
            labels: next-token targets, same shape; enables the losses.
            cache: a :class:`KVCache`; ``input_ids`` continue at ``cache.length`` and the cache advances.
            compute_mtp: run the MTP modules (default: when labels are given, D > 0 and mtp_lambda > 0).
        """
        cfg = self.cfg
        self._check_ids(input_ids)
        B, S = input_ids.shape
        start = cache.length if cache is not None else 0
        cos, sin = self.rotary(start, S, input_ids.device)
        h = self.embed_tokens(input_ids)
        aux = h.new_zeros((), dtype=torch.float32)
        for i, layer in enumerate(self.layers):
            h, a = layer(h, cos, sin, cache, i)
            if a is not None:
                aux = aux + a
        if cache is not None:
            cache.length = start + S
        hn = self.norm(h)
        logits = self.lm_head(hn)
        out = DeepSeekV3Output(logits=logits, hidden_states=hn)
        if labels is None:
            return out
        self._check_labels(labels, input_ids)
        out.lm_loss = self._lm_ce(logits, labels)
        loss = out.lm_loss
        if compute_mtp is None:
            compute_mtp = cfg.n_mtp > 0 and cfg.mtp_lambda > 0
        if compute_mtp and S > cfg.n_mtp:
            h_prev = hn
            for k, mod in enumerate(self.mtp, start=1):
                emb_ids, tgt = Fn.mtp_targets(labels, k)  # embeds t_{i+k}, predicts t_{i+k+1}
                L = S - k
                h_prev, a = mod(h_prev[:, :L], self.embed_tokens(emb_ids.clamp_min(0)), cos[:, :L], sin[:, :L])
                if a is not None:
                    aux = aux + a
                mlog = self.lm_head(mod.norm(h_prev))
                out.mtp_losses.append(_masked_ce(mlog, tgt))  # a depth with no valid target contributes 0
            out.mtp_loss = torch.stack(out.mtp_losses).mean()  # (1/D) sum_k L^k, Eq. (25)
            loss = loss + cfg.mtp_lambda * out.mtp_loss
        out.aux_loss = aux
        out.loss = loss + aux
        return out

    def _check_labels(self, labels: Tensor, input_ids: Tensor) -> None:
        if labels.shape != input_ids.shape:
            raise ValueError(f"labels: expected shape {tuple(input_ids.shape)} (same as input_ids), got "
                             f"{tuple(labels.shape)}")
        valid = labels[labels != -100]
        if valid.numel() == 0:
            raise ValueError(f"labels: every label is -100 (ignored), so the loss is undefined; expected at least "
                             f"one target id in [0, {self.cfg.vocab_size}) in the {tuple(labels.shape)} labels")
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.cfg.vocab_size):
            raise ValueError(f"labels: expected ids in [0, {self.cfg.vocab_size}) or -100, got range "
                             f"[{int(valid.min())}, {int(valid.max())}]")

    def _check_generate_args(self, input_ids: Tensor, max_new_tokens: int, temperature: float) -> None:
        self._check_ids(input_ids)
        if input_ids.shape[1] == 0 or input_ids.shape[0] == 0:
            raise ValueError(f"input_ids: expected a non-empty prompt [batch >= 1, seq >= 1], got shape "
                             f"{tuple(input_ids.shape)}")
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: expected an int >= 0, got {max_new_tokens!r}")
        if not isinstance(temperature, int | float) or not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature: expected a finite number >= 0 (0 = greedy), got {temperature!r}")
        if input_ids.shape[1] + max_new_tokens > self.cfg.max_seq_len:
            raise ValueError(f"max_new_tokens: prompt length {input_ids.shape[1]} + {max_new_tokens} new tokens "
                             f"exceeds max_seq_len={self.cfg.max_seq_len}")

    # --- generation ---------------------------------------------------------------------------------
    def new_cache(self, batch: int, max_len: int, impl: str | None = None, *, mtp: bool = False) -> KVCache:
        p = next(self.parameters())
        n = self.cfg.n_mtp if mtp else self.cfg.n_layers
        return KVCache(self.cfg, n, batch, max_len, impl=impl, dtype=p.dtype, device=p.device)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, max_new_tokens: int, *, impl: str | None = None,
                 temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Autoregressive decoding with the MLA cache (``impl``: "absorb" (default) or "naive").

        Greedy when ``temperature < 1e-5`` (0 included). Returns [B, S + max_new_tokens]. ``max_new_tokens=0`` returns the
        prompt; a negative count, a negative or non-finite temperature, or an empty prompt raise ``ValueError``.
        """
        self._check_generate_args(input_ids, max_new_tokens, temperature)
        B, S = input_ids.shape
        if max_new_tokens == 0:
            return input_ids.clone()
        cache = self.new_cache(B, S + max_new_tokens, impl)
        logits = self(input_ids, cache=cache).logits[:, -1]
        out = [input_ids]
        for step in range(max_new_tokens):
            if temperature >= 1e-5:  # below: the sampling limit, greedy (avoids 0/0 in fp32)
                z = logits.float()
                z = (z - z.amax(-1, keepdim=True)) / temperature  # <= 0: no overflow at tiny temperatures
                nxt = torch.multinomial(z.softmax(-1), 1, generator=generator)
            else:
                nxt = logits.argmax(-1, keepdim=True)
            out.append(nxt)
            if step + 1 < max_new_tokens:
                logits = self(nxt, cache=cache).logits[:, -1]
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def generate_speculative(self, input_ids: Tensor, max_new_tokens: int, *, impl: str | None = None
                             ) -> tuple[Tensor, dict[str, float]]:
        """Greedy self-speculative decoding: MTP module 1 drafts t_{n+2}, the main model verifies it.

        Each main-model call processes the last accepted token and the draft; the output equals plain greedy
        decoding exactly. Returns the tokens [1, S + max_new_tokens] and ``{"acceptance_rate", "drafted",
        "accepted", "main_forwards", "tokens_per_forward"}``.
        """
        if not self.mtp:
            raise ValueError("generate_speculative: the model has no MTP module (cfg.n_mtp == 0)")
        self._check_generate_args(input_ids, max_new_tokens, 0.0)
        if max_new_tokens == 0:
            return input_ids.clone(), {"acceptance_rate": 0.0, "drafted": 0, "accepted": 0, "main_forwards": 0,
                                       "tokens_per_forward": 0.0}
        if input_ids.shape[0] != 1:
            raise ValueError(f"generate_speculative: expected batch size 1, got {input_ids.shape[0]}")
        n = input_ids.shape[1]
        total = n + max_new_tokens + 2
        cache, mcache = self.new_cache(1, total, impl), self.new_cache(1, total, impl, mtp=True)
        mod = self.mtp[0]

        def mtp_step(h: Tensor, nxt_ids: Tensor) -> Tensor:  # feed positions [mcache.length, +len) -> draft id
            start, L = mcache.length, h.shape[1]
            cos, sin = self.rotary(start, L, h.device)
            hk, _ = mod(h, self.embed_tokens(nxt_ids), cos, sin, mcache)
            mcache.length = start + L
            return self.lm_head(mod.norm(hk[:, -1])).argmax(-1)

        out = self(input_ids, cache=cache)
        a = out.logits[:, -1].argmax(-1)  # t_n
        draft = mtp_step(out.hidden_states, torch.cat([input_ids[:, 1:], a[:, None]], dim=1))
        toks, drafted, accepted, forwards = [a], 0, 0, 1
        while len(toks) < max_new_tokens:
            pos = cache.length  # position of a
            out = self(torch.stack([a, draft], dim=1), cache=cache)
            forwards += 1
            drafted += 1
            v = out.logits[:, 0].argmax(-1)
            if bool(v == draft):
                accepted += 1
                b = out.logits[:, 1].argmax(-1)
                toks += [draft, b]
                draft = mtp_step(out.hidden_states, torch.stack([draft, b], dim=1))
                a = b
            else:
                cache.length = pos + 1  # drop the rejected draft's cache entry
                toks.append(v)
                draft = mtp_step(out.hidden_states[:, :1], v[:, None])
                a = v
        gen = torch.stack(toks[:max_new_tokens], dim=1)
        stats = {"acceptance_rate": accepted / max(drafted, 1), "drafted": drafted, "accepted": accepted,
                 "main_forwards": forwards, "tokens_per_forward": max_new_tokens / forwards}
        return torch.cat([input_ids, gen], dim=1), stats

    @torch.no_grad()
    def materialise_buffers(self, device=None) -> None:
        """Re-create the non-persistent buffers (RoPE tables, load counters) after loading onto a meta model."""
        device = device or self.embed_tokens.weight.device
        self.rotary = RotaryEmbedding(self.cfg).to(device)
        for g in self.gates():
            g.load_accum = torch.zeros(self.cfg.n_routed_experts, device=device)
            if g.e_score_correction_bias.is_meta:
                g.e_score_correction_bias = torch.zeros(self.cfg.n_routed_experts, device=device)
