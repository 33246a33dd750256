"""Hugging Face checkpoint layout of DeepSeek-V3: save, load, FP8 dequantization, name mapping.

Layout (as published in ``deepseek-ai/DeepSeek-V3`` and written by transformers' ``DeepseekV3ForCausalLM``)::

    model.embed_tokens.weight, model.norm.weight, lm_head.weight
    model.layers.{i}.{input_layernorm, post_attention_layernorm}.weight
    model.layers.{i}.self_attn.{q_a_proj, q_a_layernorm, q_b_proj | q_proj, kv_a_proj_with_mqa,
                                kv_a_layernorm, kv_b_proj, o_proj}.weight
    model.layers.{i}.mlp.{gate_proj, up_proj, down_proj}.weight                     (dense layers)
    model.layers.{i}.mlp.experts.{e}.{gate_proj, up_proj, down_proj}.weight         (routed experts)
    model.layers.{i}.mlp.shared_experts.{gate_proj, up_proj, down_proj}.weight
    model.layers.{i}.mlp.gate.weight, model.layers.{i}.mlp.gate.e_score_correction_bias
    model.layers.{L+k}.{enorm, hnorm, eh_proj, shared_head.norm, shared_head.head, embed_tokens} + block  (MTP)

FP8 checkpoints store e4m3 ``*.weight`` with fp32 ``*.weight_scale_inv`` per 128x128 block; they are
dequantized on load. transformers v5's fused expert tensors (``mlp.experts.gate_up_proj`` [E, 2I, D],
``mlp.experts.down_proj`` [E, D, I]) are read as well.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from torch import Tensor

from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.fp8 import weight_dequant, weight_quant
from deepseek_moe.modules.model import DeepSeekV3

_EXPERT = re.compile(r"^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$")


def _hf_prefix(cfg: DeepSeekV3Config, ours: str) -> str:
    """Map one of our parameter names (without expert expansion) to its HF name."""
    if ours == "lm_head.weight":
        return ours
    m = re.match(r"^mtp\.(\d+)\.(.*)$", ours)
    if m:
        k, rest = int(m.group(1)), m.group(2)
        layer = cfg.n_layers + k
        if rest.startswith("block."):
            rest = rest[len("block."):]
        elif rest == "norm.weight":
            rest = "shared_head.norm.weight"
        return f"model.layers.{layer}.{rest}"
    return f"model.{ours}"


def to_hf_state_dict(model: DeepSeekV3) -> dict[str, Tensor]:
    """Our state dict under HF names, experts split into per-expert ``gate_proj/up_proj/down_proj``."""
    cfg = model.cfg
    out: dict[str, Tensor] = {}
    inter = cfg.moe_inter_dim
    for name, t in model.state_dict().items():
        hf = _hf_prefix(cfg, name)
        m = _EXPERT.match(hf)
        if m:
            base, kind = m.groups()
            for e in range(t.shape[0]):
                if kind == "gate_up_proj":
                    out[f"{base}.{e}.gate_proj.weight"] = t[e, :inter]
                    out[f"{base}.{e}.up_proj.weight"] = t[e, inter:]
                else:
                    out[f"{base}.{e}.down_proj.weight"] = t[e]
        else:
            out[hf] = t
    for k in range(cfg.n_mtp):  # the published layout repeats the shared embedding and head in the MTP layer
        layer = cfg.n_layers + k
        out[f"model.layers.{layer}.embed_tokens.weight"] = model.embed_tokens.weight
        out[f"model.layers.{layer}.shared_head.head.weight"] = model.lm_head.weight
    if cfg.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def _fp8_eligible(name: str, t: Tensor) -> bool:
    return t.dim() == 2 and name.endswith("_proj.weight") and "embed" not in name


def save_pretrained(model: DeepSeekV3, path, *, max_shard_bytes: int = 5 * 2**30, fp8: bool = False) -> None:
    """Write ``config.json`` and ``model*.safetensors`` (+ index when sharded) in the HF layout.

    Args:
        fp8: store linear weights as e4m3 with ``weight_scale_inv`` 128x128 block scales (the released format).
    """
    from safetensors.torch import save_file

    cfg = model.cfg
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sd = to_hf_state_dict(model)
    if fp8:
        b = cfg.fp8_block_size
        q: dict[str, Tensor] = {}
        for k, t in sd.items():
            if _fp8_eligible(k, t):
                q[k], q[k + "_scale_inv"] = weight_quant(t.detach(), b, cfg.scale_fmt)
            else:
                q[k] = t
        sd = q
    hf = cfg.replace(dtype="fp8" if fp8 else "bf16").hf_dict()
    dt = next(model.parameters()).dtype
    hf["torch_dtype"] = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dt,
                                                                                                            "float32")
    (path / "config.json").write_text(json.dumps(hf, indent=2))
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    seen: dict[int, str] = {}
    for k in sorted(sd):
        t = sd[k].detach().contiguous()
        if t.data_ptr() in seen or any(t.data_ptr() == v.data_ptr() for v in shards[-1].values()):
            t = t.clone()  # safetensors refuses shared storage (MTP copies of embedding/head)
        seen[t.data_ptr()] = k
        nb = t.numel() * t.element_size()
        if shards[-1] and size + nb > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = t
        size += nb
    if len(shards) == 1:
        save_file(shards[0], str(path / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, sh in enumerate(shards, start=1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(sh, str(path / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in sh})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map},
                                                                  indent=2))


def read_safetensors(path) -> dict[str, Tensor]:
    """All tensors of a checkpoint folder (single file or sharded with an index)."""
    from safetensors.torch import load_file

    path = Path(path)
    idx = path / "model.safetensors.index.json"
    if idx.exists():
        files = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
    else:
        files = sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {path}")
    sd: dict[str, Tensor] = {}
    for f in files:
        sd.update(load_file(str(path / f)))
    return sd


def dequantize_fp8_state_dict(sd: dict[str, Tensor], block: int = 128, dtype: torch.dtype = torch.float32
                              ) -> dict[str, Tensor]:
    """Replace every e4m3 ``X.weight`` and its ``X.weight_scale_inv`` by the dequantized weight."""
    out: dict[str, Tensor] = {}
    for k, t in sd.items():
        if k.endswith("_scale_inv"):
            if k[: -len("_scale_inv")] not in sd:
                raise ValueError(f"checkpoint: scale {k!r} has no weight {k[:-len('_scale_inv')]!r}")
            continue
        if t.dtype == torch.float8_e4m3fn:
            s = sd.get(k + "_scale_inv")
            if s is None:
                raise ValueError(f"checkpoint: FP8 tensor {k!r} has no {k + '_scale_inv'!r}")
            out[k] = weight_dequant(t, s, block, dtype)
        else:
            out[k] = t
    return out


def from_hf_state_dict(cfg: DeepSeekV3Config, sd: dict[str, Tensor], *, load_mtp: bool) -> dict[str, Tensor]:
    """HF-named tensors -> our state dict; raises on missing or unexpected tensors (naming them)."""
    L = cfg.n_layers
    sd = dict(sd)
    # Drop the MTP's copies of the shared embedding/head (checked against the main ones when present).
    for k in range(cfg.n_mtp if load_mtp else 0):
        for copy, main in ((f"model.layers.{L + k}.embed_tokens.weight", "model.embed_tokens.weight"),
                           (f"model.layers.{L + k}.shared_head.head.weight", "lm_head.weight")):
            t = sd.pop(copy, None)
            if t is not None and main in sd and t.shape != sd[main].shape:
                raise ValueError(f"checkpoint: {copy} has shape {tuple(t.shape)}, expected {tuple(sd[main].shape)}")
    if not load_mtp:
        for k in [k for k in sd if (m := re.match(r"^model\.layers\.(\d+)\.", k)) and int(m.group(1)) >= L]:
            sd.pop(k)
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    # Fuse per-expert tensors into the stacked [E, 2I, D] / [E, D, I] layout.
    per_expert = re.compile(r"^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
    groups: dict[str, dict[tuple[str, int], Tensor]] = {}
    for k in list(sd):
        m = per_expert.match(k)
        if m:
            groups.setdefault(m.group(1), {})[(m.group(3), int(m.group(2)))] = sd.pop(k)
    for base, parts in groups.items():
        E = cfg.n_routed_experts
        missing = [f"{base}.{e}.{p}.weight" for e in range(E) for p in ("gate_proj", "up_proj", "down_proj")
                   if (p, e) not in parts]
        extra = [f"{base}.{e}.{p}.weight" for (p, e) in parts if e >= E]
        if missing or extra:
            raise ValueError(f"checkpoint: expert tensors of {base} do not match n_routed_experts={E}: "
                             f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, unexpected {extra[:6]}")
        sd[f"{base}.gate_up_proj"] = torch.stack([torch.cat([parts[("gate_proj", e)], parts[("up_proj", e)]])
                                                  for e in range(E)])
        sd[f"{base}.down_proj"] = torch.stack([parts[("down_proj", e)] for e in range(E)])
    # Rename to our names.
    expected = expected_keys(cfg.replace(n_mtp=cfg.n_mtp if load_mtp else 0))
    hf_to_ours = {_hf_prefix(cfg, k): k for k in expected}
    missing = sorted(set(hf_to_ours) - set(sd))
    unexpected = sorted(set(sd) - set(hf_to_ours))
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the config: missing {len(missing)} tensor(s) "
                         f"{missing[:8]}{'...' if len(missing) > 8 else ''}; unexpected {len(unexpected)} tensor(s) "
                         f"{unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    return {hf_to_ours[k]: v for k, v in sd.items()}


def expected_keys(cfg: DeepSeekV3Config) -> list[str]:
    """Our state-dict names for ``cfg`` (built on the meta device, so free for any size)."""
    with torch.device("meta"):
        m = DeepSeekV3(cfg)
    return list(m.state_dict())


def load_pretrained(path, *, dtype: torch.dtype = torch.float32, device="cpu", load_mtp: bool | None = None
                    ) -> DeepSeekV3:
    """Build a :class:`DeepSeekV3` from an HF-layout folder (``config.json`` + safetensors).

    Args:
        dtype: dtype of the weights (FP8 checkpoints are dequantized into it); the gate stays fp32.
        load_mtp: None loads the MTP modules when the checkpoint has them (and warns when the config announces
            them but the tensors are absent, as in checkpoints written by transformers); True requires them;
            False skips them.
    """
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{cfg_file} not found: expected an HF checkpoint folder")
    cfg = DeepSeekV3Config.from_hf(json.loads(cfg_file.read_text()))
    sd = read_safetensors(path)
    if cfg.dtype == "fp8" or any(k.endswith("_scale_inv") for k in sd):
        sd = dequantize_fp8_state_dict(sd, cfg.fp8_block_size, dtype)
        cfg = cfg.replace(dtype="bf16")
    has_mtp = any(k.startswith(f"model.layers.{cfg.n_layers}.") for k in sd)
    if load_mtp is None:
        load_mtp = cfg.n_mtp > 0 and has_mtp
        if cfg.n_mtp > 0 and not has_mtp:
            warnings.warn(f"{path}: config announces {cfg.n_mtp} MTP module(s) but the checkpoint has no "
                          f"model.layers.{cfg.n_layers}.* tensors; loading without MTP (n_mtp=0)", stacklevel=2)
    elif load_mtp and not has_mtp:
        raise ValueError(f"load_mtp=True but {path} has no model.layers.{cfg.n_layers}.* (MTP) tensors")
    ours = from_hf_state_dict(cfg, sd, load_mtp=load_mtp)
    cfg = cfg.replace(n_mtp=cfg.n_mtp if load_mtp else 0)
    with torch.device("meta"):
        model = DeepSeekV3(cfg)
    fp32_keep = ("gate.weight", "e_score_correction_bias")
    ours = {k: (v.float() if k.endswith(fp32_keep) else v.to(dtype)).to(device) for k, v in ours.items()}
    model.load_state_dict(ours, strict=True, assign=True)
    _materialise_buffers(model, device)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return model.eval()


def _materialise_buffers(model: DeepSeekV3, device) -> None:
    """Re-create the non-persistent buffers that stayed on the meta device."""
    from deepseek_moe.modules.attention import RotaryEmbedding

    model.rotary = RotaryEmbedding(model.cfg).to(device)
    for g in model.gates():
        g.load_accum = torch.zeros(model.cfg.n_routed_experts, device=device)
        if g.e_score_correction_bias.is_meta:
            g.e_score_correction_bias = torch.zeros(model.cfg.n_routed_experts, device=device)
