"""FlatQuant for Llama-family decoder layers (grouped-query attention included; SmolLM2 is one).

Where the transforms go (official ``model_tools/llama_utils.py``; the notes' table):

    x -> RMSNorm -> [qkv_in: (x s_a) P_a, quant] -> q_proj, k_proj, v_proj (weights (W / s_a) P_a^{-T})
         v_proj rows also get P_v per head (folded);  after RoPE: K <- K P_k, Q <- Q P_k^{-T}; K, V -> KV4
         attention output [.., H, d] -> [o_in: across heads by P_o, quant] -> o_proj (W (P_o (x) P_v)^{-T})
    h -> RMSNorm -> [upgate_in: (h s_ug) P_ug, quant] -> gate_proj, up_proj
         silu(gate) * up -> [down_in: (. s_d) P_d, quant] -> down_proj

At deployment (:func:`reparameterize_layer`) ``s_a`` and ``s_ug`` merge into the RMSNorm weights and ``s_d``
into the rows of ``up_proj``; the online work left per layer is ``P_a``, ``P_ug``, ``P_d``, ``P_o``, ``P_k``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from flatquant.modules import (
    HeadTransform,
    InputQuantizer,
    OutHeadTransform,
    QuantLinear,
    make_act_quantizer,
    make_input_quantizers,
    make_linear,
    make_transform,
)

MODEL_TYPES = ("llama",)


def _attention_interface(config) -> Callable:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import eager_attention_forward

    return ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)


class FlatQuantLlamaAttention(nn.Module):
    """Drop-in replacement of ``LlamaAttention`` with the FlatQuant transforms and quantizers."""

    def __init__(self, attn: nn.Module, cfg, generator: torch.Generator, name: str = ""):
        super().__init__()
        c = attn.config
        self.config, self.layer_idx, self.name = c, attn.layer_idx, name
        self.head_dim = attn.head_dim
        self.num_heads = c.num_attention_heads
        self.num_key_value_groups = attn.num_key_value_groups
        self.scaling, self.is_causal = attn.scaling, attn.is_causal
        self.attention_dropout = attn.attention_dropout
        hidden = attn.q_proj.in_features
        # one activation quantizer per q / k / v with lac_scope="linear" (official), else one shared
        self.qkv_in = InputQuantizer(make_transform(cfg, hidden, "qkv", generator, f"{name}.qkv_in"),
                                     make_input_quantizers(cfg, 3))
        self.q_proj = make_linear(cfg, attn.q_proj, f"{name}.q_proj")
        self.k_proj = make_linear(cfg, attn.k_proj, f"{name}.k_proj")
        self.v_proj = make_linear(cfg, attn.v_proj, f"{name}.v_proj")
        self.o_proj = make_linear(cfg, attn.o_proj, f"{name}.o_proj")
        self.k_trans = make_transform(cfg, self.head_dim, "k", generator, f"{name}.k_trans")
        self.v_trans = make_transform(cfg, self.head_dim, "v", generator, f"{name}.v_trans")
        self.o_in = InputQuantizer(make_transform(cfg, self.num_heads, "o", generator, f"{name}.o_in"),
                                   make_input_quantizers(cfg, 1))
        self.k_quant = make_act_quantizer(cfg, "k")
        self.v_quant = make_act_quantizer(cfg, "v")
        t = self.qkv_in.transform
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            lin.w_in = [t] if t is not None else []
        if self.v_trans is not None:
            self.v_proj.w_out = [OutHeadTransform(self.v_trans)]
        if self.o_in.transform is not None or self.v_trans is not None:
            self.o_proj.w_in = [HeadTransform(self.o_in.transform, self.v_trans, self.num_heads)]
        self.to(attn.q_proj.weight.device)

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                attention_mask: torch.Tensor | None = None, cache=None, past_key_values=None, **kwargs):
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        cache = cache if cache is not None else past_key_values
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        xq, xk, xv = self.qkv_in.outputs(hidden_states, 3)
        q = self.q_proj(xq).view(hidden_shape).transpose(1, 2)  # (B, H, T, d)
        k = self.k_proj(xk).view(hidden_shape).transpose(1, 2)  # (B, KVH, T, d)
        v = self.v_proj(xv).view(hidden_shape).transpose(1, 2)  # (B, KVH, T, d), already times P_v
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if self.k_trans is not None:  # Q K^T = (Q P_k^{-T})(K P_k)^T
            k = k @ self.k_trans.matrices()[1].to(k.dtype)
            q = q @ self.k_trans.inverse_t_matrices()[1].to(q.dtype)
        k = self.k_quant(k)  # per token and head (last dim = head_dim)
        v = self.v_quant(v)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        out, weights = _attention_interface(self.config)(
            self, q, k, v, attention_mask, dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling, **kwargs)
        out = out.reshape(*input_shape, -1).contiguous()  # (B, T, H * d)
        return self.o_proj(self.o_in(out)), weights


class FlatQuantLlamaMLP(nn.Module):
    """Drop-in replacement of ``LlamaMLP``."""

    def __init__(self, mlp: nn.Module, cfg, generator: torch.Generator, name: str = ""):
        super().__init__()
        hidden, inter = mlp.gate_proj.in_features, mlp.gate_proj.out_features
        # one activation quantizer per gate / up with lac_scope="linear" (official), else one shared
        self.upgate_in = InputQuantizer(make_transform(cfg, hidden, "upgate", generator, f"{name}.upgate_in"),
                                        make_input_quantizers(cfg, 2))
        self.gate_proj = make_linear(cfg, mlp.gate_proj, f"{name}.gate_proj")
        self.up_proj = make_linear(cfg, mlp.up_proj, f"{name}.up_proj")
        self.down_in = InputQuantizer(make_transform(cfg, inter, "down", generator, f"{name}.down_in"),
                                      make_input_quantizers(cfg, 1))
        self.down_proj = make_linear(cfg, mlp.down_proj, f"{name}.down_proj")
        self.act_fn = mlp.act_fn
        if self.upgate_in.transform is not None:
            self.gate_proj.w_in = self.up_proj.w_in = [self.upgate_in.transform]
        if self.down_in.transform is not None:
            self.down_proj.w_in = [self.down_in.transform]
        self.to(mlp.gate_proj.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xg, xu = self.upgate_in.outputs(x, 2)
        h = self.act_fn(self.gate_proj(xg)) * self.up_proj(xu)  # (B, T, inter)
        return self.down_proj(self.down_in(h))


# ----------------------------------------------------------------------------- adapter


def layers(model: nn.Module) -> nn.ModuleList:
    base = model.model if hasattr(model, "model") and hasattr(model.model, "layers") else model
    return base.layers


def stat_slots(layer: nn.Module) -> dict[str, list[nn.Linear]]:
    """Original linear layers grouped by the online transform that feeds them (for diag init statistics)."""
    a, m = layer.self_attn, layer.mlp
    return {"qkv": [a.q_proj, a.k_proj, a.v_proj], "upgate": [m.gate_proj, m.up_proj], "down": [m.down_proj]}


def wrap_layer(layer: nn.Module, cfg, generator: torch.Generator, name: str) -> dict[str, object]:
    """Replace attention and MLP in place; return the diag-carrying transforms by slot."""
    layer.self_attn = FlatQuantLlamaAttention(layer.self_attn, cfg, generator, f"{name}.self_attn")
    layer.mlp = FlatQuantLlamaMLP(layer.mlp, cfg, generator, f"{name}.mlp")
    return {"qkv": layer.self_attn.qkv_in.transform, "upgate": layer.mlp.upgate_in.transform,
            "down": layer.mlp.down_in.transform}


def quant_linears(layer: nn.Module) -> list[QuantLinear]:
    return [m for m in layer.modules() if isinstance(m, QuantLinear)]


def input_quantizers(layer: nn.Module) -> dict[str, InputQuantizer]:
    a, m = layer.self_attn, layer.mlp
    return {"qkv": a.qkv_in, "o": a.o_in, "upgate": m.upgate_in, "down": m.down_in}


@torch.no_grad()
def reparameterize_layer(layer: nn.Module) -> None:
    """Fold the transforms into the weights (float64), quantize and pack them, merge the per-channel scales
    into the RMSNorms (``reparameterize_ln``) and into ``up_proj``'s rows."""
    a, m = layer.self_attn, layer.mlp
    for lin in quant_linears(layer):
        lin.deploy(dtype=layer.input_layernorm.weight.dtype)
    for iq, norm in ((a.qkv_in, layer.input_layernorm), (m.upgate_in, layer.post_attention_layernorm)):
        if iq.transform is not None and iq.transform.diag is not None:
            norm.weight.mul_(iq.transform.drop_diag().to(norm.weight.dtype))
    if m.down_in.transform is not None and m.down_in.transform.diag is not None:
        m.up_proj.scale_rows_(m.down_in.transform.drop_diag())
    for t in (a.k_trans, a.v_trans):
        if t is not None:
            t.freeze()
    for iq in input_quantizers(layer).values():
        iq.deploy()
