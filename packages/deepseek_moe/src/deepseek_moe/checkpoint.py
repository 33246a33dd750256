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
dequantized on load, or kept in e4m3 with ``fp8=True`` (:class:`~deepseek_moe.fp8.FP8Linear` and
:class:`~deepseek_moe.fp8.FP8Experts`). Loading streams: each tensor is read from its shard with
``safetensors.safe_open`` when its parameter is filled, so no shard and no full-precision copy of the model
is held besides the model itself. transformers v5's fused expert tensors (``mlp.experts.gate_up_proj`` [E, 2I, D],
``mlp.experts.down_proj`` [E, D, I]) are read as well.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from papercommon.records import read_json
from torch import Tensor, nn

from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.fp8 import FP8Experts, FP8Linear, weight_dequant, weight_quant
from deepseek_moe.modules.model import DeepSeekV3

_EXPERT = re.compile(r"^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$")
_FP8_EXPERT = re.compile(r"^(.*\.mlp\.experts)\.(gate_proj|up_proj|down_proj)(_scale_inv)?$")


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
        m8 = _FP8_EXPERT.match(hf) if (t.dtype == torch.float8_e4m3fn or hf.endswith("_scale_inv")) else None
        m = _EXPERT.match(hf)
        if m8:  # FP8Experts: [E, rows, cols] e4m3 + [E, ., .] scales -> per-expert weight + weight_scale_inv
            base, kind, sc = m8.groups()
            for e in range(t.shape[0]):
                out[f"{base}.{e}.{kind}.weight{sc or ''}"] = t[e]
        elif m:
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
    return t.dim() == 2 and name.endswith(("_proj.weight", "_proj_with_mqa.weight")) and "embed" not in name


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
            if k.endswith("_scale_inv") or t.dtype == torch.float8_e4m3fn:
                q[k] = t  # already quantized (a model converted with quantize_model_fp8)
            elif _fp8_eligible(k, t):
                q[k], q[k + "_scale_inv"] = weight_quant(t.detach(), b, cfg.scale_fmt)
            else:
                q[k] = t
        sd = q
    fp8 = fp8 or any(t.dtype == torch.float8_e4m3fn for t in sd.values())
    hf = cfg.replace(dtype="bf16").hf_dict()
    if fp8:  # storage only: ragged 128x128 weight blocks are fine (the 1x128 activation rule is for fp8 GEMMs)
        hf["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                     "weight_block_size": [cfg.fp8_block_size] * 2}
        if cfg.scale_fmt is not None:
            hf["quantization_config"]["scale_fmt"] = cfg.scale_fmt
    dt = model.embed_tokens.weight.dtype
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


class CheckpointReader:
    """Lazy view of an HF checkpoint folder: which shard holds which tensor, and one tensor at a time.

    Only the safetensors headers are read up front; :meth:`get` reads one tensor from its (memory-mapped)
    shard. Every failure names the file: a missing or corrupt ``config.json`` / index, a truncated shard.
    """

    def __init__(self, path):
        from safetensors import safe_open

        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"{self.path}: expected an HF checkpoint folder (config.json + *.safetensors)")
        self.config = read_json(self.path / "config.json", "an HF checkpoint folder's config.json")
        idx = self.path / "model.safetensors.index.json"
        if idx.exists():
            wm = read_json(idx, "a safetensors index").get("weight_map")
            if not isinstance(wm, dict):
                raise ValueError(f"{idx}: expected a 'weight_map' object, got {type(wm).__name__}")
            files = sorted(set(wm.values()))
        else:
            files = sorted(p.name for p in self.path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors file in {self.path}")
        self.where: dict[str, str] = {}
        self._handles = {}
        for f in files:
            fp = self.path / f
            if not fp.exists():
                raise FileNotFoundError(f"{fp}: listed in the index but missing")
            self._check_size(fp)
            try:
                h = safe_open(str(fp), framework="pt")
                keys = list(h.keys())
            except Exception as e:  # SafetensorError: corrupt header / data
                raise ValueError(f"{fp}: not a readable safetensors file ({type(e).__name__}: {e})") from None
            self._handles[f] = h
            self.where.update({k: f for k in keys})

    @staticmethod
    def _check_size(fp: Path) -> None:
        """A truncated shard: the header promises more bytes than the file holds (other damage: safe_open)."""
        import struct

        size = fp.stat().st_size
        try:
            with open(fp, "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                if n > size:
                    raise ValueError
                header = json.loads(fh.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, struct.error, KeyError, TypeError, AttributeError):
            return  # unreadable header: safe_open reports it, naming the file
        if 8 + n + end > size:
            raise ValueError(f"{fp}: truncated safetensors shard ({size} bytes, the header needs {8 + n + end})")

    def keys(self) -> set[str]:
        return set(self.where)

    def get(self, key: str) -> Tensor:
        f = self.where[key]
        try:
            return self._handles[f].get_tensor(key)
        except Exception as e:
            raise ValueError(f"{self.path / f}: cannot read tensor {key!r} ({type(e).__name__}: {e})") from None

    def weight(self, key: str, dtype: torch.dtype, block: int) -> Tensor:
        """Tensor ``key`` in ``dtype``; an e4m3 weight is dequantized with its ``_scale_inv``."""
        t = self.get(key)
        if t.dtype == torch.float8_e4m3fn:
            if key + "_scale_inv" not in self.where:
                raise ValueError(f"checkpoint: FP8 tensor {key!r} has no {key + '_scale_inv'!r}")
            return weight_dequant(t, self.get(key + "_scale_inv"), block, dtype)
        return t.to(dtype)

    def fp8_weight(self, key: str, block: int, scale_fmt: str | None) -> tuple[Tensor, Tensor]:
        """Tensor ``key`` as e4m3 + block scales (read as stored, or quantized now from high precision)."""
        t = self.get(key)
        if t.dtype == torch.float8_e4m3fn:
            return t, self.get(key + "_scale_inv").float()
        return weight_quant(t.float(), block, scale_fmt)


def read_safetensors(path) -> dict[str, Tensor]:
    """All tensors of a checkpoint folder (single file or sharded with an index), read eagerly (tests, tools)."""
    r = CheckpointReader(path)
    return {k: r.get(k) for k in sorted(r.where)}


def _fp8_skeleton(model: DeepSeekV3, block: int, scale_fmt: str | None) -> None:
    """Swap linear layers and routed experts for empty FP8 modules (on the model's device, usually meta)."""
    from deepseek_moe.modules.moe import Experts

    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            full = f"{name}.{cname}" if name else cname
            if isinstance(child, nn.Linear) and full != "lm_head":
                dev = child.weight.device
                setattr(mod, cname, FP8Linear(child.in_features, child.out_features, block=block,
                                              scale_fmt=scale_fmt, gemm_impl="bf16", device=dev))
            elif isinstance(child, Experts):
                E, two_i, D = child.gate_up_proj.shape
                setattr(mod, cname, FP8Experts(E, D, two_i // 2, block=block, scale_fmt=scale_fmt,
                                               device=child.gate_up_proj.device))


def _fp8_expert_match(hf: str, like: Tensor):
    """Match an :class:`FP8Experts` tensor name (its weights are e4m3, its scales end in ``_scale_inv``)."""
    return _FP8_EXPERT.match(hf) if (like.dtype == torch.float8_e4m3fn or hf.endswith("_scale_inv")) else None


def _sources(cfg: DeepSeekV3Config, ours: str, like: Tensor, keys: set[str]) -> list[str]:
    """HF tensor names that make up our tensor ``ours`` (weights only; scales are implied)."""
    hf = _hf_prefix(cfg, ours)
    shape = like.shape
    m8, m = _fp8_expert_match(hf, like), _EXPERT.match(hf)
    if m8:
        base, kind, sc = m8.groups()
        return [] if sc else [f"{base}.{e}.{kind}.weight" for e in range(shape[0])]
    if m:
        base, kind = m.groups()
        if hf in keys:  # transformers v5 fused layout
            return [hf]
        parts = ("gate_proj", "up_proj") if kind == "gate_up_proj" else ("down_proj",)
        return [f"{base}.{e}.{p}.weight" for e in range(shape[0]) for p in parts]
    if hf.endswith(".weight_scale_inv"):
        return []
    return [hf]


def _fill(cfg: DeepSeekV3Config, reader: CheckpointReader, ours: str, like: Tensor, dtype: torch.dtype,
          device) -> Tensor:
    """Build our tensor ``ours`` from its HF tensors, one source tensor in memory at a time."""
    b, fmt = cfg.fp8_block_size, cfg.scale_fmt
    hf = _hf_prefix(cfg, ours)
    keep32 = ours.endswith(("gate.weight", "e_score_correction_bias"))
    m8, m = _fp8_expert_match(hf, like), _EXPERT.match(hf)
    if m8:
        base, kind, sc = m8.groups()
        out = torch.empty(like.shape, dtype=like.dtype, device=device)
        for e in range(like.shape[0]):
            q, s = reader.fp8_weight(f"{base}.{e}.{kind}.weight", b, fmt)
            out[e] = s if sc else q
        return out
    if hf.endswith(".weight_scale_inv"):  # FP8Linear scale: written together with its weight below
        return reader.fp8_weight(hf[: -len("_scale_inv")], b, fmt)[1].to(device)
    if like.dtype == torch.float8_e4m3fn:
        return reader.fp8_weight(hf, b, fmt)[0].to(device)
    dt = torch.float32 if keep32 else dtype
    if m and hf not in reader.where:
        base, kind = m.groups()
        out = torch.empty(like.shape, dtype=dt, device=device)
        inter = cfg.moe_inter_dim
        for e in range(like.shape[0]):
            if kind == "gate_up_proj":
                out[e, :inter] = reader.weight(f"{base}.{e}.gate_proj.weight", dt, b)
                out[e, inter:] = reader.weight(f"{base}.{e}.up_proj.weight", dt, b)
            else:
                out[e] = reader.weight(f"{base}.{e}.down_proj.weight", dt, b)
        return out
    t = reader.weight(hf, dt, b)
    if tuple(t.shape) != tuple(like.shape):
        raise ValueError(f"checkpoint: {hf} has shape {tuple(t.shape)}, expected {tuple(like.shape)}")
    return t.to(device)


def load_pretrained(path, *, dtype: torch.dtype = torch.float32, device="cpu", load_mtp: bool | None = None,
                    fp8: bool = False) -> DeepSeekV3:
    """Build a :class:`DeepSeekV3` from an HF-layout folder (``config.json`` + safetensors), streaming.

    Args:
        dtype: dtype of the weights (FP8 checkpoints are dequantized into it, tensor by tensor); the gate
            stays fp32.
        load_mtp: None loads the MTP modules when the checkpoint has them (and warns when the config announces
            them but the tensors are absent, as in checkpoints written by transformers); True requires them;
            False skips them.
        fp8: keep linear layers and routed experts in e4m3 (:class:`FP8Linear` with ``gemm_impl="bf16"``,
            :class:`FP8Experts`): an FP8 checkpoint is loaded without ever holding its weights in ``dtype``.
    """
    reader = CheckpointReader(path)
    path = reader.path
    try:
        cfg = DeepSeekV3Config.from_hf(reader.config, dtype="bf16")  # FP8 storage is read per tensor
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path / 'config.json'}: not a DeepSeek-V3 config ({type(e).__name__}: {e})") from None
    keys = reader.keys()
    L = cfg.n_layers
    has_mtp = any(k.startswith(f"model.layers.{L}.") for k in keys)
    if load_mtp is None:
        load_mtp = cfg.n_mtp > 0 and has_mtp
        if cfg.n_mtp > 0 and not has_mtp:
            warnings.warn(f"{path}: config announces {cfg.n_mtp} MTP module(s) but the checkpoint has no "
                          f"model.layers.{L}.* tensors; loading without MTP (n_mtp=0)", stacklevel=2)
    elif load_mtp and not has_mtp:
        raise ValueError(f"load_mtp=True but {path} has no model.layers.{L}.* (MTP) tensors")
    cfg = cfg.replace(n_mtp=cfg.n_mtp if load_mtp else 0, dtype="bf16")
    with torch.device("meta"):
        model = DeepSeekV3(cfg)
    if fp8:
        _fp8_skeleton(model, cfg.fp8_block_size, cfg.scale_fmt)
    meta_sd = model.state_dict()
    # Plan: which HF tensors are needed; check before reading any tensor data.
    needed = {k: _sources(cfg, k, t, keys) for k, t in meta_sd.items()}
    want = {s for v in needed.values() for s in v}
    ignorable = {f"model.layers.{L + k}.{n}" for k in range(cfg.n_mtp) for n in ("embed_tokens.weight",
                                                                                 "shared_head.head.weight")}
    if not load_mtp:
        ignorable |= {k for k in keys if (mm := re.match(r"^model\.layers\.(\d+)\.", k)) and int(mm.group(1)) >= L}
    if cfg.tie_word_embeddings:
        ignorable.add("lm_head.weight")
    present = {k for k in keys if not k.endswith("_scale_inv")}
    missing = sorted(want - present)
    unexpected = sorted(present - want - ignorable)
    orphan = sorted(k for k in keys if k.endswith("_scale_inv") and k[: -len("_scale_inv")] not in keys)
    if missing or unexpected or orphan:
        raise ValueError(f"checkpoint {path} does not match the config: missing {len(missing)} tensor(s) "
                         f"{missing[:8]}{'...' if len(missing) > 8 else ''}; unexpected {len(unexpected)} tensor(s) "
                         f"{unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
                         + (f"; scales without weight {orphan[:4]}" if orphan else ""))
    for k in range(cfg.n_mtp):  # the MTP copies of the shared embedding/head must match the main ones
        for copy, main in ((f"model.layers.{L + k}.embed_tokens.weight", "model.embed_tokens.weight"),
                           (f"model.layers.{L + k}.shared_head.head.weight", "lm_head.weight")):
            if copy in keys and main in keys:
                a, b = reader._handles[reader.where[copy]].get_slice(copy), reader._handles[reader.where[main]].get_slice(main)
                if a.get_shape() != b.get_shape():
                    raise ValueError(f"checkpoint: {copy} has shape {a.get_shape()}, expected {b.get_shape()}")
    # Stream: one parameter at a time, assigned into the meta model.
    for name, like in meta_sd.items():
        if cfg.tie_word_embeddings and name == "lm_head.weight":
            continue
        t = _fill(cfg, reader, name, like, dtype, device)
        mod_name, _, attr = name.rpartition(".")
        mod = model.get_submodule(mod_name)
        if attr in mod._parameters:
            mod._parameters[attr] = nn.Parameter(t, requires_grad=t.dtype != torch.float8_e4m3fn)
        else:
            mod._buffers[attr] = t
    model.materialise_buffers(device)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return model.eval()

