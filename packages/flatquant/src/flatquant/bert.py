"""FlatQuant for BERT encoder layers (all-MiniLM-L6-v2 is one).

BERT is post-norm: the LayerNorm output feeding Q/K/V and the FFN is also the residual, so the per-channel
scales cannot be merged into it. They stay online, inside the transform (``x -> (x s) P``), which the fused
kernel applies at no extra memory traffic. Transform placement otherwise follows the Llama one:

    x -> [qkv_in: (x s_a) P_a, quant] -> query, key, value ; K <- K P_k, Q <- Q P_k^{-T} ; V <- V P_v (folded)
    attention output -> [o_in: P_o across heads, quant] -> attention.output.dense (W (P_o (x) P_v)^{-T})
    h -> [fc1_in: (h s_1) P_1, quant] -> intermediate.dense -> GELU -> [fc2_in: (. s_2) P_2, quant] -> output.dense

The self-attention and intermediate wrappers return already transformed and quantized tensors, so the
unchanged ``BertSelfOutput`` / ``BertOutput`` modules (dropout, residual, LayerNorm) consume them through
their replaced ``dense`` layers.
"""

from __future__ import annotations

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

MODEL_TYPES = ("bert",)


class FlatQuantBertSelfAttention(nn.Module):
    """Drop-in replacement of ``BertSelfAttention`` (self-attention only; cross-attention is not supported)."""

    def __init__(self, attn: nn.Module, cfg, generator: torch.Generator, name: str = ""):
        super().__init__()
        c = attn.config
        self.config, self.layer_idx, self.name = c, attn.layer_idx, name
        self.head_dim = attn.attention_head_size
        self.num_heads = attn.num_attention_heads
        self.num_key_value_groups = 1
        self.scaling, self.is_causal = attn.scaling, attn.is_causal
        self.dropout = attn.dropout
        hidden = attn.query.in_features
        self.qkv_in = InputQuantizer(make_transform(cfg, hidden, "qkv", generator, f"{name}.qkv_in"),
                                     make_input_quantizers(cfg, 3))
        self.query = make_linear(cfg, attn.query, f"{name}.query")
        self.key = make_linear(cfg, attn.key, f"{name}.key")
        self.value = make_linear(cfg, attn.value, f"{name}.value")
        self.k_trans = make_transform(cfg, self.head_dim, "k", generator, f"{name}.k_trans")
        self.v_trans = make_transform(cfg, self.head_dim, "v", generator, f"{name}.v_trans")
        self.o_in = InputQuantizer(make_transform(cfg, self.num_heads, "o", generator, f"{name}.o_in"),
                                   make_input_quantizers(cfg, 1))
        self.k_quant = make_act_quantizer(cfg, "k")
        self.v_quant = make_act_quantizer(cfg, "v")
        t = self.qkv_in.transform
        for lin in (self.query, self.key, self.value):
            lin.w_in = [t] if t is not None else []
        if self.v_trans is not None:
            self.value.w_out = [OutHeadTransform(self.v_trans)]
        self.to(attn.query.weight.device)

    def o_weight_transform(self) -> HeadTransform | None:
        if self.o_in.transform is None and self.v_trans is None:
            return None
        return HeadTransform(self.o_in.transform, self.v_trans, self.num_heads)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, cache=None,
                past_key_values=None, **kwargs):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        from transformers.models.bert.modeling_bert import eager_attention_forward

        if kwargs.pop("encoder_hidden_states", None) is not None:
            raise NotImplementedError(f"{self.name}: cross-attention is not supported; expected a BERT encoder")
        if (cache if cache is not None else past_key_values) is not None:
            raise NotImplementedError(f"{self.name}: a KV cache is not supported for BERT encoders")
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        xq, xk, xv = self.qkv_in.outputs(hidden_states, 3)
        q = self.query(xq).view(hidden_shape).transpose(1, 2)  # (B, H, T, d)
        k = self.key(xk).view(hidden_shape).transpose(1, 2)
        v = self.value(xv).view(hidden_shape).transpose(1, 2)  # already times P_v
        if self.k_trans is not None:
            k = k @ self.k_trans.matrices()[1].to(k.dtype)
            q = q @ self.k_trans.inverse_t_matrices()[1].to(q.dtype)
        k, v = self.k_quant(k), self.v_quant(v)
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, weights = interface(self, q, k, v, attention_mask, dropout=0.0 if not self.training else self.dropout.p,
                                 scaling=self.scaling, **kwargs)
        out = out.reshape(*input_shape, -1).contiguous()  # (B, T, H * d)
        return self.o_in(out), weights


class FlatQuantBertIntermediate(nn.Module):
    """Drop-in replacement of ``BertIntermediate`` that also applies the input path of ``output.dense``."""

    def __init__(self, inter: nn.Module, cfg, generator: torch.Generator, name: str = ""):
        super().__init__()
        hidden, size = inter.dense.in_features, inter.dense.out_features
        self.fc1_in = InputQuantizer(make_transform(cfg, hidden, "upgate", generator, f"{name}.fc1_in"),
                                     make_input_quantizers(cfg, 1))
        self.dense = make_linear(cfg, inter.dense, f"{name}.dense")
        self.intermediate_act_fn = inter.intermediate_act_fn
        self.fc2_in = InputQuantizer(make_transform(cfg, size, "down", generator, f"{name}.fc2_in"),
                                     make_input_quantizers(cfg, 1))
        if self.fc1_in.transform is not None:
            self.dense.w_in = [self.fc1_in.transform]
        self.to(inter.dense.weight.device)

    def forward(self, x: torch.Tensor):
        return self.fc2_in(self.intermediate_act_fn(self.dense(self.fc1_in(x))))


# ----------------------------------------------------------------------------- adapter


def layers(model: nn.Module) -> nn.ModuleList:
    base = model.bert if hasattr(model, "bert") else model
    return base.encoder.layer


def stat_slots(layer: nn.Module) -> dict[str, list[nn.Linear]]:
    s = layer.attention.self
    return {"qkv": [s.query, s.key, s.value], "upgate": [layer.intermediate.dense], "down": [layer.output.dense]}


def wrap_layer(layer: nn.Module, cfg, generator: torch.Generator, name: str) -> dict[str, object]:
    if getattr(layer, "add_cross_attention", False):
        raise NotImplementedError(f"{name}: BERT layers with cross-attention are not supported; expected an encoder")
    attn = FlatQuantBertSelfAttention(layer.attention.self, cfg, generator, f"{name}.attention.self")
    layer.attention.self = attn
    o = make_linear(cfg, layer.attention.output.dense, f"{name}.attention.output.dense")
    ht = attn.o_weight_transform()
    o.w_in = [ht] if ht is not None else []
    layer.attention.output.dense = o
    inter = FlatQuantBertIntermediate(layer.intermediate, cfg, generator, f"{name}.intermediate")
    layer.intermediate = inter
    fc2 = make_linear(cfg, layer.output.dense, f"{name}.output.dense")
    fc2.w_in = [inter.fc2_in.transform] if inter.fc2_in.transform is not None else []
    layer.output.dense = fc2
    return {"qkv": attn.qkv_in.transform, "upgate": inter.fc1_in.transform, "down": inter.fc2_in.transform}


def quant_linears(layer: nn.Module) -> list[QuantLinear]:
    return [m for m in layer.modules() if isinstance(m, QuantLinear)]


def input_quantizers(layer: nn.Module) -> dict[str, InputQuantizer]:
    a, i = layer.attention.self, layer.intermediate
    return {"qkv": a.qkv_in, "o": a.o_in, "upgate": i.fc1_in, "down": i.fc2_in}


@torch.no_grad()
def reparameterize_layer(layer: nn.Module) -> None:
    """Fold the transforms into the weights and quantize them; per-channel scales stay online (post-norm)."""
    for lin in quant_linears(layer):
        lin.deploy(dtype=layer.output.LayerNorm.weight.dtype)
    a = layer.attention.self
    for t in (a.k_trans, a.v_trans):
        if t is not None:
            t.freeze()
    for iq in input_quantizers(layer).values():
        iq.deploy()
