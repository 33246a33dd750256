"""V:N:M-specific channel permutation (Sec. 3.2), for one matrix and folded into whole models.

V:N:M is sensitive to the order of both axes: columns decide which channels share an M-group (4 of
M survive per row block), rows decide which rows share a V-block (and so its 4 columns). For
W_p = P_o W P_i the paper maximises the importance retained by the V:N:M mask of W_p, alternating
between P_i and P_o, each a linear assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``).

The assignment costs here are linearisations of the retained score, exact where stated:

* column slot step (exact for the column-norm criterion): with the other M-1 members of every
  group fixed, choosing which channel fills slot k of each group is a linear assignment, because the
  kept columns of a row block are the top 4 of the group's column norms N[rb, .] and
  top4(others + x) = top3(others) + max(4th(others), x);
* row step: a row placed in block b keeps its top 2 among b's current 4 columns of every group,
  which is linear in the row (exact while the block's column choice does not change).

Every step is accepted only when the true retained score (of the V:N:M mask recomputed after the
step) increases, so the objective never decreases.

In a model, one channel space is shared by several layers (the residual stream feeds q/k/v and the
MLP input and receives o_proj and the MLP output; the MLP hidden space is the fc1/up/gate output and
the fc2/down input). A permutation of a space is applied to every parameter indexing it
(LayerNorm/RMSNorm weights, embeddings, biases), so the model's function is unchanged before pruning;
:func:`vit_channel_spaces` and :func:`llama_channel_spaces` list them for torchvision's
VisionTransformer and Hugging Face Llama models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from vnm_sparse.config import VNMConfig
from vnm_sparse.functional import KEEP_COLS, _pad_to_blocks, importance, select_columns, vnm_mask
from vnm_sparse.modules import FilterFn, prunable_weights


def _retained(s: Tensor, v: int, m: int) -> float:
    return float((s * vnm_mask(s, v, 2, m, score=s, pad=True)).sum())


def _chosen_cols(s: Tensor, v: int, m: int) -> Tensor:
    """Absolute kept columns of each row block: [RB, G, 4] (may point into the padding)."""
    sp = _pad_to_blocks(s, v, m, value=-1.0)
    rp, cp = sp.shape
    cols = select_columns(sp.reshape(rp // v, v, cp // m, m))
    return cols + (torch.arange(cp // m)[:, None] * m)


def _row_gain(s: Tensor, v: int, m: int, cand: Tensor) -> Tensor:
    """Gain [n_cand, RB] of placing row ``cand[i]`` in row block b (top 2 per group among b's 4 columns)."""
    r, c = s.shape
    cols = _chosen_cols(s, v, m)  # [RB, G, 4]
    sp = torch.nn.functional.pad(s, (0, cols.shape[1] * m - c))  # [R, G*M]
    rows = sp[cand]  # [n, G*M]
    g = rows[:, cols.reshape(-1)].reshape(len(cand), *cols.shape)  # [n, RB, G, 4]
    return g.topk(2, dim=-1).values.sum(-1).sum(-1)  # [n, RB]


def _col_slot_gain(s: Tensor, v: int, m: int, order_pos: Tensor, cand: Tensor, slot: int) -> Tensor:
    """Gain [n_cand, G] of placing column ``cand[i]`` in slot ``slot`` of group g, others fixed.

    ``order_pos[p]`` is the column (of ``s``) at position p.
    """
    r, c = s.shape
    rbn = -(-r // v)
    sr = torch.nn.functional.pad(s, (0, 0, 0, rbn * v - r))
    norms = sr.reshape(rbn, v, c).sum(1)  # [RB, C] column L1 norms per row block
    g = -(-c // m)
    pos = torch.arange(g * m).reshape(g, m)
    others = [k for k in range(m) if k != slot]
    opos = pos[:, others]  # [G, M-1]
    valid = opos < c
    occupant = order_pos[opos.clamp(max=c - 1)]  # [G, M-1]
    on = norms[:, occupant] * valid  # [RB, G, M-1]; missing positions count as 0
    if m - 1 >= KEEP_COLS:
        fourth = on.topk(KEEP_COLS, dim=-1).values[..., -1]  # [RB, G]
    else:
        fourth = torch.zeros(rbn, g)
    x = norms[:, cand]  # [RB, n]
    return torch.maximum(fourth[:, None, :], x[:, :, None]).sum(0)  # [n, G]


@dataclass
class _Role:
    key: str
    axis: int  # 0: the space indexes this score's rows, 1: its columns


@dataclass
class ChannelSpace:
    """A channel axis shared by layers, permuted as one.

    Attributes:
        name: a label ("residual", "layers.3.mlp").
        size: number of channels.
        roles: ``(score key, axis)`` of the pruned weights that index this space (axis 0 rows, 1 columns).
        params: ``(module, parameter name, dim)`` of every tensor to permute when folding.
    """

    name: str
    size: int
    roles: list[tuple[str, int]] = field(default_factory=list)
    params: list[tuple[nn.Module, str, int]] = field(default_factory=list)


def _objective(scores: dict[str, Tensor], roles: list[_Role], v: int, m: int) -> float:
    return sum(_retained(scores[r.key], v, m) for r in roles)


def _permuted(s: Tensor, axis: int, perm: Tensor) -> Tensor:
    return s[perm] if axis == 0 else s[:, perm]


def optimise_space(scores: dict[str, Tensor], roles: list[tuple[str, int]], size: int, v: int, m: int,
                   iters: int = 2) -> tuple[Tensor, float, float]:
    """Find a permutation of one channel space that raises the V:N:M-retained score of its roles.

    Args:
        scores: importance matrices by key (not modified).
        roles: ``(key, axis)``; axis 0 means the space indexes the rows of ``scores[key]``.
        size: channels in the space.
        v, m: the pattern.
        iters: rounds of (row/position step, column slot sweep).

    Returns:
        (perm, retained before, retained after): position p of the permuted space holds channel perm[p].
    """
    rl = [_Role(k, a) for k, a in roles]
    for r in rl:
        if scores[r.key].shape[r.axis] != size:
            raise ValueError(f"role {r.key!r}: expected size {size} on axis {r.axis}, "
                             f"given shape {tuple(scores[r.key].shape)}")
    perm = torch.arange(size)
    cur = {r.key: scores[r.key] for r in rl}
    best = before = _objective(cur, rl, v, m)
    has_cols = any(r.axis == 1 for r in rl)
    has_rows = any(r.axis == 0 for r in rl)

    def try_perm(new_perm: Tensor) -> bool:
        nonlocal perm, cur, best
        cand = {r.key: _permuted(scores[r.key], r.axis, new_perm) for r in rl}
        val = _objective(cand, rl, v, m)
        if val > best * (1 + 1e-9):
            perm, cur, best = new_perm, cand, val
            return True
        return False

    for _ in range(iters):
        # (a) position step: all channels at once, gains linearised around the current order
        if has_rows:
            cost = torch.zeros(size, size)
            blocks = torch.arange(size) // v
            for r in rl:
                if r.axis == 0:
                    gain = _row_gain(cur[r.key], v, m, torch.arange(size))  # [n (position), RB]
                    cost -= gain[:, blocks]
            # rows of cost index the channel's current position; also add column-role gains per slot
            for r in rl:
                if r.axis == 1:
                    s = cur[r.key]
                    ident = torch.arange(size)
                    for k in range(m):
                        gk = _col_slot_gain(s, v, m, ident, ident, k)  # [n, G]
                        pos_k = torch.arange(k, size, m)
                        cost[:, pos_k] -= gk[:, : len(pos_k)]
            rows_i, cols_j = linear_sum_assignment(cost.double().numpy())
            new = torch.empty(size, dtype=torch.long)
            new[torch.as_tensor(cols_j)] = perm[torch.as_tensor(rows_i)]
            try_perm(new)
        # (b) column slot sweep: exact for the column-norm criterion, one slot at a time
        if has_cols:
            for k in range(m):
                pos_k = torch.arange(k, size, m)
                if len(pos_k) < 2:
                    continue
                cost = torch.zeros(len(pos_k), len(pos_k))
                ident = torch.arange(size)
                for r in rl:
                    s = cur[r.key]
                    if r.axis == 1:
                        cost -= _col_slot_gain(s, v, m, ident, pos_k, k)[:, : len(pos_k)]
                    else:
                        gain = _row_gain(s, v, m, pos_k)  # [n, RB]
                        cost -= gain[:, pos_k // v]
                rows_i, cols_j = linear_sum_assignment(cost.double().numpy())
                new = perm.clone()
                new[pos_k[torch.as_tensor(cols_j)]] = perm[pos_k[torch.as_tensor(rows_i)]]
                try_perm(new)
    return perm, before, best


def vnm_permute(weight: Tensor, v: int, m: int, *, score: str | Tensor = "magnitude", act_norm: Tensor | None = None,
                iters: int = 2, alpha: float = 0.5) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Output and input channel permutations of one matrix that raise its V:N:M-retained importance.

    Args:
        weight: [R, C].
        v, m: the pattern (N = 2).
        score: "magnitude", "ria" (with ``act_norm``) or an importance tensor.
        iters: alternations of P_i (columns) and P_o (rows).

    Returns:
        (perm_out [R], perm_in [C], stats): ``weight[perm_out][:, perm_in]`` is the permuted matrix;
        stats has the retained importance before and after.

    Paper: Sec. 3.2 (V:N:M-specific channel permutation, alternating linear assignments).

    Example:
        >>> w = torch.randn(64, 40)
        >>> po, pi, st = vnm_permute(w, 16, 5)
        >>> st["after"] >= st["before"]
        True
    """
    s = importance(weight, score, act_norm, alpha)
    r, c = s.shape
    p_out, p_in = torch.arange(r), torch.arange(c)
    before = _retained(s, v, m)
    for _ in range(iters):
        pi, _, _ = optimise_space({"w": s[p_out][:, p_in]}, [("w", 1)], c, v, m, iters=1)
        p_in = p_in[pi]
        po, _, _ = optimise_space({"w": s[p_out][:, p_in]}, [("w", 0)], r, v, m, iters=1)
        p_out = p_out[po]
    after = _retained(s[p_out][:, p_in], v, m)
    return p_out, p_in, {"before": before, "after": after}


# ----------------------------------------------------------------------------------------------
# whole models
# ----------------------------------------------------------------------------------------------

def vit_channel_spaces(model: nn.Module, weight_keys: set[str]) -> list[ChannelSpace]:
    """Channel spaces of a torchvision ``VisionTransformer``: the residual stream and each MLP hidden space.

    The residual permutation reaches the patch embedding, class token, position embedding, every
    LayerNorm, q/k/v inputs, attention output rows, MLP input columns and output rows, and the head.
    """
    d = model.hidden_dim
    res = ChannelSpace("residual", d)
    res.params += [(model.conv_proj, "weight", 0), (model.conv_proj, "bias", 0), (model, "class_token", 2),
                   (model.encoder, "pos_embedding", 2), (model.encoder.ln, "weight", 0),
                   (model.encoder.ln, "bias", 0)]
    first_head = next(m for m in model.heads.modules() if isinstance(m, nn.Linear))
    res.params.append((first_head, "weight", 1))
    spaces = [res]
    for lname, layer in model.encoder.layers.named_children():
        pre = f"encoder.layers.{lname}"
        attn, fc1, fc2 = layer.self_attention, layer.mlp[0], layer.mlp[3]
        res.params += [(layer.ln_1, "weight", 0), (layer.ln_1, "bias", 0), (layer.ln_2, "weight", 0),
                       (layer.ln_2, "bias", 0), (attn, "in_proj_weight", 1), (attn.out_proj, "weight", 0),
                       (attn.out_proj, "bias", 0), (fc1, "weight", 1), (fc2, "weight", 0), (fc2, "bias", 0)]
        for key, axis in ((f"{pre}.self_attention.in_proj_weight", 1), (f"{pre}.self_attention.out_proj", 0),
                          (f"{pre}.mlp.0", 1), (f"{pre}.mlp.3", 0)):
            if key in weight_keys:
                res.roles.append((key, axis))
        hid = ChannelSpace(f"{pre}.mlp", fc1.out_features,
                           params=[(fc1, "weight", 0), (fc1, "bias", 0), (fc2, "weight", 1)])
        hid.roles = [(k, a) for k, a in ((f"{pre}.mlp.0", 0), (f"{pre}.mlp.3", 1)) if k in weight_keys]
        spaces.append(hid)
    return spaces


def llama_channel_spaces(model: nn.Module, weight_keys: set[str]) -> list[ChannelSpace]:
    """Channel spaces of a Hugging Face Llama-architecture causal LM (e.g. SmolLM2): the residual stream
    (embeddings, RMSNorm weights, q/k/v/gate/up inputs, o/down outputs, tied or untied lm_head) and each
    MLP intermediate space (gate/up outputs, down input). RoPE acts inside heads and is untouched."""
    base = model.model
    prefix = "model"
    d = base.embed_tokens.weight.shape[1]
    res = ChannelSpace("residual", d, params=[(base.embed_tokens, "weight", 1), (base.norm, "weight", 0)])
    if hasattr(model, "lm_head"):
        res.params.append((model.lm_head, "weight", 1))
    spaces = [res]
    for i, layer in enumerate(base.layers):
        pre = f"{prefix}.layers.{i}"
        at, mlp = layer.self_attn, layer.mlp
        res.params += [(layer.input_layernorm, "weight", 0), (layer.post_attention_layernorm, "weight", 0),
                       (at.q_proj, "weight", 1), (at.k_proj, "weight", 1), (at.v_proj, "weight", 1),
                       (at.o_proj, "weight", 0), (mlp.gate_proj, "weight", 1), (mlp.up_proj, "weight", 1),
                       (mlp.down_proj, "weight", 0)]
        if at.o_proj.bias is not None:
            res.params.append((at.o_proj, "bias", 0))
        if mlp.down_proj.bias is not None:
            res.params.append((mlp.down_proj, "bias", 0))
        for name, axis in (("self_attn.q_proj", 1), ("self_attn.k_proj", 1), ("self_attn.v_proj", 1),
                           ("self_attn.o_proj", 0), ("mlp.gate_proj", 1), ("mlp.up_proj", 1), ("mlp.down_proj", 0)):
            if f"{pre}.{name}" in weight_keys:
                res.roles.append((f"{pre}.{name}", axis))
        hid = ChannelSpace(f"{pre}.mlp", mlp.gate_proj.out_features,
                           params=[(mlp.gate_proj, "weight", 0), (mlp.up_proj, "weight", 0), (mlp.down_proj, "weight", 1)])
        for p in (mlp.gate_proj, mlp.up_proj):
            if p.bias is not None:
                hid.params.append((p, "bias", 0))
        hid.roles = [(f"{pre}.{n}", a) for n, a in (("mlp.gate_proj", 0), ("mlp.up_proj", 0), ("mlp.down_proj", 1))
                     if f"{pre}.{n}" in weight_keys]
        spaces.append(hid)
    return spaces


def channel_spaces(model: nn.Module, weight_keys: set[str]) -> list[ChannelSpace]:
    """Dispatch to :func:`vit_channel_spaces` or :func:`llama_channel_spaces` by architecture."""
    try:
        from torchvision.models import VisionTransformer
    except ImportError:  # pragma: no cover
        VisionTransformer = ()  # noqa: N806
    if VisionTransformer and isinstance(model, VisionTransformer):
        return vit_channel_spaces(model, weight_keys)
    if hasattr(model, "model") and hasattr(model.model, "layers") and hasattr(model.model, "embed_tokens"):
        return llama_channel_spaces(model, weight_keys)
    raise ValueError(f"model: expected a torchvision VisionTransformer or a Llama-style causal LM "
                     f"(model.model.layers), given {type(model).__name__}; pass spaces= explicitly")


@torch.no_grad()
def apply_permutation_(space: ChannelSpace, perm: Tensor) -> None:
    """Permute every parameter of a space along its dim (each tensor once, even if tied)."""
    seen = set()
    for mod, pname, dim in space.params:
        p = getattr(mod, pname)
        if p is None or id(p) in seen:
            continue
        seen.add(id(p))
        if p.shape[dim] != space.size:
            raise ValueError(f"{space.name}: {type(mod).__name__}.{pname} has {p.shape[dim]} channels on dim {dim}, "
                             f"expected {space.size}")
        p.data.copy_(p.data.index_select(dim, perm.to(p.device)))


@torch.no_grad()
def permute_model_(model: nn.Module, config: VNMConfig, *, act_norms: dict[str, Tensor] | None = None,
                   filter_fn: FilterFn | None = None, iters: int = 2,
                   spaces: list[ChannelSpace] | None = None,
                   progress: Callable | None = None) -> dict[str, dict[str, float]]:
    """Permute a model's channels in place to raise the V:N:M-retained importance of its pruned layers,
    without changing its function (permutations folded into neighbouring layers).

    Args:
        model: torchvision ``VisionTransformer`` or a Llama-style LM (or give ``spaces``).
        config: the pattern and score (RIA needs ``act_norms`` keyed as :func:`prunable_weights`).
        filter_fn: which layers are pruned.
        iters: optimisation rounds per space.
        spaces: channel spaces (default :func:`channel_spaces`).
        progress: optional wrapper for the space loop (e.g. ``tqdm``).

    Returns:
        ``{space name: {"before": retained, "after": retained}}``. Recompute ``act_norms`` (or masks)
        after this call: input features have moved.

    Paper: Sec. 3.2.
    """
    targets = prunable_weights(model, filter_fn)
    scores = {}
    for key, (mod, pname) in targets.items():
        norm = act_norms.get(key) if (act_norms is not None and config.score == "ria") else None
        if config.score == "ria" and norm is None:
            raise ValueError(f"act_norms: expected norms for {key!r} with score='ria', given none")
        scores[key] = importance(getattr(mod, pname), config.score, norm, config.ria_alpha).cpu()
    spaces = spaces if spaces is not None else channel_spaces(model, set(targets))
    report = {}
    for sp in (progress(spaces) if progress else spaces):
        if not sp.roles:
            continue
        perm, before, after = optimise_space(scores, sp.roles, sp.size, config.v, config.m, iters=iters)
        report[sp.name] = {"before": before, "after": after}
        if after > before:
            apply_permutation_(sp, perm)
            # keep the score matrices in step with the weights (RIA and |W| are permutation-equivariant)
            for key, axis in sp.roles:
                scores[key] = _permuted(scores[key], axis, perm)
    return report
