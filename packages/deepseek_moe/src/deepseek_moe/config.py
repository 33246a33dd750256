"""`DeepSeekV3Config`: every field of the official ``ModelArgs`` plus the training-time knobs of the paper.

Field names follow the official inference code (``deepseek-ai/DeepSeek-V3/inference/model.py``), so a
``config_671B.json`` from that repository loads with ``DeepSeekV3Config.from_dict``. ``to_hf`` / ``from_hf``
convert to and from transformers' ``DeepseekV3Config`` (both the v4 ``rope_scaling`` and the v5
``rope_parameters`` spellings are read).

Paper: DeepSeek-V3 Technical Report (arXiv 2412.19437), Sec. 2 (architecture), Sec. 3.3 (FP8), Sec. 4.2
(hyper-parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from papercommon.config import Config

SCORE_FUNCS = ("softmax", "sigmoid")
DTYPES = ("bf16", "fp8")
SCALE_FMTS = (None, "ue8m0")
ATTN_IMPLS = ("naive", "absorb")


@dataclass(frozen=True, kw_only=True)
class DeepSeekV3Config(Config):
    """Configuration of a DeepSeek-V3-style model (MLA + DeepSeekMoE + MTP).

    The defaults are the paper's 671B model (Sec. 4.2, "Model Hyper-Parameters"); use :meth:`preset` for
    smaller ones. Official ``ModelArgs`` names are kept; the HF names are in ``to_hf``.

    Example:
        >>> cfg = DeepSeekV3Config.preset("tiny")
        >>> cfg.n_routed_experts, cfg.n_activated_experts
        (8, 2)
    """

    # --- official ModelArgs -------------------------------------------------------------------------
    max_batch_size: int = 8  # official inference cache allocation; unused by our dynamic cache
    max_seq_len: int = 163840  # context length; YaRN is active when > original_seq_len (Sec. 4.3)
    dtype: str = "bf16"  # "fp8": linear weights are stored as e4m3 with 128x128 scales (Sec. 3.3)
    scale_fmt: str | None = None  # None: fp32 scales; "ue8m0": power-of-two scales (V3.1 config)
    vocab_size: int = 129280  # Sec. 4.1: byte-level BPE with 128K tokens
    dim: int = 7168  # hidden size d (Sec. 4.2)
    inter_dim: int = 18432  # FFN width of the dense layers
    moe_inter_dim: int = 2048  # width of each routed/shared expert (Sec. 4.2)
    n_layers: int = 61  # Transformer layers (Sec. 4.2)
    n_dense_layers: int = 3  # the first 3 layers use a dense FFN (Sec. 4.2)
    n_heads: int = 128  # attention heads n_h (Sec. 4.2)
    n_routed_experts: int = 256  # N_r (Sec. 4.2)
    n_shared_experts: int = 1  # N_s (Sec. 4.2)
    n_activated_experts: int = 8  # K_r (Sec. 4.2)
    n_expert_groups: int = 8  # node groups M for node-limited routing (Sec. 2.1.2 / 4.2)
    n_limited_groups: int = 4  # each token goes to at most 4 nodes (Sec. 4.2)
    score_func: str = "sigmoid"  # V3 uses sigmoid affinities (Eq. 15); V2 used softmax
    route_scale: float = 2.5  # routed scaling factor (official config_671B.json)
    q_lora_rank: int | None = 1536  # d'_c (Sec. 4.2); None or 0 means a plain query projection
    kv_lora_rank: int = 512  # d_c (Sec. 4.2)
    qk_nope_head_dim: int = 128  # d_h (Sec. 4.2)
    qk_rope_head_dim: int = 64  # d^R_h (Sec. 4.2)
    v_head_dim: int = 128  # d_h for values
    original_seq_len: int = 4096  # pre-training context before YaRN (Sec. 4.3)
    rope_theta: float = 10000.0
    rope_factor: float = 40.0  # YaRN scale s = 40 (Sec. 4.3)
    beta_fast: int = 32  # YaRN alpha/beta (Sec. 4.3: beta = 32, alpha = 1)
    beta_slow: int = 1
    mscale: float = 1.0  # YaRN attention temperature: sqrt(t) = 0.1 ln s + 1 (Sec. 4.3)

    # --- beyond ModelArgs (HF fields and training) --------------------------------------------------
    rms_norm_eps: float = 1e-6
    norm_topk_prob: bool = True  # Eq. (13): normalise the selected sigmoid affinities
    use_expert_bias: bool = True  # Eq. (16): selection bias b_i (aux-loss-free balancing)
    bias_update_rate: float = 0.001  # gamma (Sec. 4.2: 0.001, then 0 for the last 500B tokens)
    seq_aux_alpha: float = 0.0001  # alpha of the complementary sequence-wise loss (Sec. 4.2)
    aux_loss_alpha: float = 0.0  # classic (batch-wise, GShard-style) auxiliary loss: a baseline, off in V3
    n_mtp: int = 1  # MTP depth D (Sec. 4.2: D = 1); HF num_nextn_predict_layers
    mtp_lambda: float = 0.3  # MTP loss weight (Sec. 4.2: 0.3 for the first 10T tokens, then 0.1)
    tie_word_embeddings: bool = False
    init_std: float = 0.006  # Sec. 4.2: parameters initialised with std 0.006
    fp8_block_size: int = 128  # 128x128 weight blocks, 1x128 activation tiles (Sec. 3.3.2)
    attn_impl: str = "absorb"  # decoding cache: "absorb" (latent) or "naive" (full per-head k/v)

    def __post_init__(self) -> None:
        if self.q_lora_rank == 0:
            object.__setattr__(self, "q_lora_rank", None)
        super().__post_init__()

    def validate(self) -> None:
        positive = ["max_batch_size", "max_seq_len", "vocab_size", "dim", "inter_dim", "moe_inter_dim",
                    "n_layers", "n_heads", "n_routed_experts", "n_activated_experts", "n_expert_groups",
                    "n_limited_groups", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                    "original_seq_len", "fp8_block_size"]
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"DeepSeekV3Config.{name}: expected a positive int, got {v!r}")
        for name in ["n_dense_layers", "n_shared_experts", "n_mtp"]:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"DeepSeekV3Config.{name}: expected an int >= 0, got {v!r}")
        if self.q_lora_rank is not None and (not isinstance(self.q_lora_rank, int) or self.q_lora_rank < 0):
            raise ValueError(f"DeepSeekV3Config.q_lora_rank: expected None, 0 or a positive int, got {self.q_lora_rank!r}")
        for name in ["bias_update_rate", "seq_aux_alpha", "aux_loss_alpha", "mtp_lambda", "init_std",
                     "rms_norm_eps", "route_scale", "mscale", "rope_theta"]:
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise ValueError(f"DeepSeekV3Config.{name}: expected a finite number >= 0, got {v!r}")
        if not isinstance(self.rope_factor, int | float) or not math.isfinite(self.rope_factor) \
                or self.rope_factor < 1:
            raise ValueError(f"DeepSeekV3Config.rope_factor: expected >= 1, got {self.rope_factor}")
        if self.score_func not in SCORE_FUNCS:
            raise ValueError(f"DeepSeekV3Config.score_func: expected one of {SCORE_FUNCS}, got {self.score_func!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"DeepSeekV3Config.dtype: expected one of {DTYPES}, got {self.dtype!r}")
        if self.scale_fmt not in SCALE_FMTS:
            raise ValueError(f"DeepSeekV3Config.scale_fmt: expected one of {SCALE_FMTS}, got {self.scale_fmt!r}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"DeepSeekV3Config.attn_impl: expected one of {ATTN_IMPLS}, got {self.attn_impl!r}")
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"DeepSeekV3Config.qk_rope_head_dim: expected an even number (RoPE rotates pairs), "
                             f"got {self.qk_rope_head_dim}")
        if self.n_dense_layers > self.n_layers:
            raise ValueError(f"DeepSeekV3Config.n_dense_layers: expected <= n_layers={self.n_layers}, "
                             f"got {self.n_dense_layers}")
        # Routing consistency (Sec. 2.1.2, node-limited routing).
        if self.n_routed_experts % self.n_expert_groups:
            raise ValueError(f"DeepSeekV3Config.n_routed_experts: expected a multiple of n_expert_groups="
                             f"{self.n_expert_groups}, got {self.n_routed_experts}")
        if self.n_limited_groups > self.n_expert_groups:
            raise ValueError(f"DeepSeekV3Config.n_limited_groups (topk_group): expected <= n_expert_groups="
                             f"{self.n_expert_groups}, got {self.n_limited_groups}")
        per_group = self.n_routed_experts // self.n_expert_groups
        if self.n_activated_experts > self.n_limited_groups * per_group:
            raise ValueError(
                f"DeepSeekV3Config.n_activated_experts: the {self.n_limited_groups} allowed group(s) of {per_group} "
                f"experts hold {self.n_limited_groups * per_group} experts, fewer than n_activated_experts="
                f"{self.n_activated_experts}")
        if self.n_expert_groups > 1 and self.use_expert_bias and per_group < 2:
            raise ValueError(f"DeepSeekV3Config: group scores sum the top-2 experts of each group, so each group "
                             f"needs >= 2 experts; got n_routed_experts={self.n_routed_experts} / n_expert_groups="
                             f"{self.n_expert_groups} = {per_group}")
        if self.dtype == "fp8":
            b = self.fp8_block_size
            for name, v in self.fp8_input_dims().items():
                if v % b:
                    raise ValueError(f"DeepSeekV3Config.{name}={v}: dtype='fp8' quantises activations in 1x{b} "
                                     f"tiles, so every linear input dimension must be a multiple of "
                                     f"fp8_block_size={b}")

    # --- derived ------------------------------------------------------------------------------------
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers

    @property
    def yarn_active(self) -> bool:
        """YaRN is used exactly when the context exceeds the pre-training one (official ``precompute_freqs_cis``)."""
        return self.max_seq_len > self.original_seq_len and self.rope_factor > 1

    @property
    def softmax_scale(self) -> float:
        """``(d_h + d^R_h)^-1/2``, times ``mscale^2`` under YaRN (official ``MLA.__init__``)."""
        import math

        scale = self.qk_head_dim ** -0.5
        if self.yarn_active:
            m = 0.1 * self.mscale * math.log(self.rope_factor) + 1.0
            scale = scale * m * m
        return scale

    def fp8_input_dims(self) -> dict[str, int]:
        """Input (K) dimension of every linear layer, by the config field that sets it."""
        dims = {"dim": self.dim, "inter_dim": self.inter_dim, "moe_inter_dim": self.moe_inter_dim,
                "kv_lora_rank": self.kv_lora_rank, "n_heads*v_head_dim": self.n_heads * self.v_head_dim}
        if self.q_lora_rank is not None:
            dims["q_lora_rank"] = self.q_lora_rank
        return dims

    def kv_cache_elements_per_token(self, impl: str | None = None) -> int:
        """Values cached per token per layer: ``kv_lora_rank + qk_rope_head_dim`` in absorb mode (Sec. 2.1.1)."""
        impl = impl or self.attn_impl
        if impl == "absorb":
            return self.kv_lora_rank + self.qk_rope_head_dim
        if impl == "naive":
            return self.n_heads * (self.qk_head_dim + self.v_head_dim)
        raise ValueError(f"impl: expected one of {ATTN_IMPLS}, got {impl!r}")

    # --- presets ------------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DeepSeekV3Config:
        """Named configurations.

        * ``"671b"``: DeepSeek-V3 (paper Sec. 4.2, official ``config_671B.json``); build it on the meta device.
        * ``"236b"``: DeepSeek-V2 (official ``config_236B.json``), softmax routing.
        * ``"16b"``: DeepSeek-V2-Lite (official ``config_16B.json``), softmax routing, no query compression.
        * ``"small"``: the CPU benchmark model (vocab 4096, d 256, 4 layers, 16+1 experts, top-2).
        * ``"tiny"``: the unit-test model (vocab 128, d 64, 2 layers, 8+1 experts, top-2).
        """
        if name not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **overrides})

    # --- transformers -------------------------------------------------------------------------------
    def to_hf(self):
        """The equivalent ``transformers.DeepseekV3Config`` (v5 ``rope_parameters`` spelling)."""
        from transformers import DeepseekV3Config as HFConfig

        if self.score_func != "sigmoid":
            raise ValueError("to_hf: transformers' DeepseekV3 supports score_func='sigmoid' only, got "
                             f"{self.score_func!r}")
        if not self.use_expert_bias and self.n_expert_groups > 1:
            raise ValueError("to_hf: transformers scores groups by the top-2 sum (bias variant); expected "
                             "use_expert_bias=True when n_expert_groups > 1")
        return HFConfig(**self.hf_dict())

    def hf_dict(self) -> dict[str, Any]:
        """The ``config.json`` dict of the HF checkpoint layout (model_type ``deepseek_v3``)."""
        if self.yarn_active:
            rope = {"rope_type": "yarn", "rope_theta": float(self.rope_theta), "factor": float(self.rope_factor),
                    "original_max_position_embeddings": self.original_seq_len, "beta_fast": float(self.beta_fast),
                    "beta_slow": float(self.beta_slow), "mscale": float(self.mscale),
                    "mscale_all_dim": float(self.mscale)}
        else:
            rope = {"rope_type": "default", "rope_theta": float(self.rope_theta)}
        d = {
            "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"],
            "vocab_size": self.vocab_size, "hidden_size": self.dim, "intermediate_size": self.inter_dim,
            "moe_intermediate_size": self.moe_inter_dim, "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads, "num_key_value_heads": self.n_heads,
            "n_shared_experts": self.n_shared_experts, "n_routed_experts": self.n_routed_experts,
            "routed_scaling_factor": float(self.route_scale), "kv_lora_rank": self.kv_lora_rank,
            "q_lora_rank": self.q_lora_rank, "qk_rope_head_dim": self.qk_rope_head_dim,
            "v_head_dim": self.v_head_dim, "qk_nope_head_dim": self.qk_nope_head_dim,
            "n_group": self.n_expert_groups, "topk_group": self.n_limited_groups,
            "num_experts_per_tok": self.n_activated_experts, "first_k_dense_replace": self.n_dense_layers,
            "norm_topk_prob": self.norm_topk_prob, "hidden_act": "silu",
            "max_position_embeddings": self.max_seq_len, "rms_norm_eps": self.rms_norm_eps,
            "rope_interleave": True, "attention_bias": False, "tie_word_embeddings": self.tie_word_embeddings,
            "num_nextn_predict_layers": self.n_mtp, "initializer_range": self.init_std,
            "rope_parameters": rope, "scoring_func": self.score_func, "topk_method": "noaux_tc",
        }
        if self.dtype == "fp8":
            b = self.fp8_block_size
            d["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                        "weight_block_size": [b, b]}
            if self.scale_fmt is not None:
                d["quantization_config"]["scale_fmt"] = self.scale_fmt
        return d

    @classmethod
    def from_hf(cls, hf: Any, **overrides: Any) -> DeepSeekV3Config:
        """From a ``transformers.DeepseekV3Config`` or a checkpoint's ``config.json`` dict.

        Reads v5 ``rope_parameters``, v4 ``rope_scaling``/``rope_theta``, the original DeepSeek keys
        (``scoring_func``, ``topk_method``, ``num_nextn_predict_layers``) and an FP8 ``quantization_config``.
        """
        d = hf if isinstance(hf, dict) else hf.to_dict()
        mt = d.get("model_type", "deepseek_v3")
        if mt not in ("deepseek_v3", "deepseek_v2"):
            raise ValueError(f"from_hf: expected model_type 'deepseek_v3' (or 'deepseek_v2'), got {mt!r}")
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"from_hf: expected hidden_act='silu', got {d['hidden_act']!r}")
        if d.get("attention_bias", False):
            raise ValueError("from_hf: attention_bias=True is not part of DeepSeek-V3; expected False")
        if d.get("rope_interleave", True) is False:
            raise ValueError("from_hf: expected rope_interleave=True (DeepSeek's adjacent-pair RoPE), got False")
        nkv = d.get("num_key_value_heads") or d["num_attention_heads"]
        if nkv != d["num_attention_heads"]:
            raise ValueError(f"from_hf: MLA has num_key_value_heads == num_attention_heads; got {nkv} vs "
                             f"{d['num_attention_heads']}")
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        theta = rope.get("rope_theta", d.get("rope_theta", 10000.0))
        rtype = rope.get("rope_type", rope.get("type", "default"))
        max_pos = d.get("max_position_embeddings", 4096)
        kw: dict[str, Any] = {}
        if rtype == "yarn":
            ms, ms_all = rope.get("mscale", 1.0), rope.get("mscale_all_dim", rope.get("mscale", 1.0))
            if ms != ms_all:
                raise ValueError(f"from_hf: expected YaRN mscale == mscale_all_dim (DeepSeek's convention), got "
                                 f"{ms} and {ms_all}")
            kw.update(rope_factor=float(rope["factor"]),
                      original_seq_len=int(rope.get("original_max_position_embeddings", 4096)),
                      beta_fast=int(rope.get("beta_fast", 32)), beta_slow=int(rope.get("beta_slow", 1)),
                      mscale=float(ms_all))
            if max_pos <= kw["original_seq_len"]:
                raise ValueError(f"from_hf: YaRN needs max_position_embeddings > original_max_position_embeddings; "
                                 f"got {max_pos} <= {kw['original_seq_len']}")
        elif rtype == "default":
            # YaRN off: keep original_seq_len >= max_seq_len so that yarn_active is False.
            kw.update(original_seq_len=max(4096, max_pos))
        else:
            raise ValueError(f"from_hf: expected rope_type 'default' or 'yarn', got {rtype!r}")
        q = d.get("quantization_config")
        if q is not None:
            if q.get("quant_method") != "fp8" or q.get("fmt", "e4m3") != "e4m3":
                raise ValueError(f"from_hf: only fp8 e4m3 quantization_config is supported, got {q}")
            bs = q.get("weight_block_size", [128, 128])
            if bs[0] != bs[1]:
                raise ValueError(f"from_hf: expected square weight_block_size, got {bs}")
            kw.update(dtype="fp8", fp8_block_size=int(bs[0]), scale_fmt=q.get("scale_fmt"))
        kw.update(
            vocab_size=d["vocab_size"], dim=d["hidden_size"], inter_dim=d["intermediate_size"],
            moe_inter_dim=d["moe_intermediate_size"], n_layers=d["num_hidden_layers"],
            n_dense_layers=d.get("first_k_dense_replace", 0), n_heads=d["num_attention_heads"],
            n_routed_experts=d["n_routed_experts"], n_shared_experts=d.get("n_shared_experts") or 0,
            n_activated_experts=d["num_experts_per_tok"], n_expert_groups=d.get("n_group") or 1,
            n_limited_groups=d.get("topk_group") or 1, score_func=d.get("scoring_func", "sigmoid"),
            route_scale=float(d.get("routed_scaling_factor", 1.0)), q_lora_rank=d.get("q_lora_rank"),
            kv_lora_rank=d["kv_lora_rank"], qk_nope_head_dim=d["qk_nope_head_dim"],
            qk_rope_head_dim=d["qk_rope_head_dim"], v_head_dim=d["v_head_dim"], rope_theta=float(theta),
            max_seq_len=max_pos, rms_norm_eps=d.get("rms_norm_eps", 1e-6),
            norm_topk_prob=d.get("norm_topk_prob", True),
            use_expert_bias=d.get("topk_method", "noaux_tc") == "noaux_tc",
            n_mtp=d.get("num_nextn_predict_layers", d.get("num_mtp_layers", 0)) or 0,
            tie_word_embeddings=d.get("tie_word_embeddings", False),
            init_std=d.get("initializer_range", 0.006),
        )
        kw.update(overrides)
        return cls(**kw)


PRESETS: dict[str, dict[str, Any]] = {
    "671b": {"dtype": "fp8"},
    "236b": dict(max_seq_len=163840, vocab_size=102400, dim=5120, inter_dim=12288, moe_inter_dim=1536, n_layers=60,
                 n_dense_layers=1, n_heads=128, n_routed_experts=160, n_shared_experts=2, n_activated_experts=6,
                 n_expert_groups=8, n_limited_groups=3, score_func="softmax", route_scale=16.0, q_lora_rank=1536,
                 kv_lora_rank=512, mscale=0.707, norm_topk_prob=False, use_expert_bias=False, n_mtp=0),
    "16b": dict(max_seq_len=163840, vocab_size=102400, dim=2048, inter_dim=10944, moe_inter_dim=1408, n_layers=27,
                n_dense_layers=1, n_heads=16, n_routed_experts=64, n_shared_experts=2, n_activated_experts=6,
                n_expert_groups=1, n_limited_groups=1, score_func="softmax", route_scale=1.0, q_lora_rank=None,
                kv_lora_rank=512, mscale=0.707, norm_topk_prob=False, use_expert_bias=False, n_mtp=0),
    "small": dict(max_seq_len=4096, vocab_size=4096, dim=256, inter_dim=768, moe_inter_dim=128, n_layers=4,
                  n_dense_layers=1, n_heads=8, n_routed_experts=16, n_shared_experts=1, n_activated_experts=2,
                  n_expert_groups=4, n_limited_groups=2, q_lora_rank=128, kv_lora_rank=64, qk_nope_head_dim=32,
                  qk_rope_head_dim=16, v_head_dim=32, n_mtp=1, init_std=0.02),
    "tiny": dict(max_seq_len=256, vocab_size=128, dim=64, inter_dim=128, moe_inter_dim=32, n_layers=2,
                 n_dense_layers=1, n_heads=4, n_routed_experts=8, n_shared_experts=1, n_activated_experts=2,
                 n_expert_groups=2, n_limited_groups=1, q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
                 qk_rope_head_dim=8, v_head_dim=16, n_mtp=1, init_std=0.02),
}
