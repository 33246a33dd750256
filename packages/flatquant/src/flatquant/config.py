"""FlatQuant configuration: the paper's defaults (Sec. 3-4, Appendix; the released run scripts)."""

from __future__ import annotations

from dataclasses import dataclass

from papercommon.checks import check_choice, check_finite, check_int, check_positive, check_range
from papercommon.config import Config

METHODS = ("flatquant", "rtn", "smoothquant", "quarot")
WEIGHT_QUANTIZERS = ("rtn", "gptq")
LAC_SCOPES = ("linear", "input")
SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 16)  # 16 means "not quantized"


@dataclass(frozen=True, kw_only=True)
class FlatQuantConfig(Config):
    """How to quantize a model.

    The defaults are the paper's W4A4KV4 recipe (Sec. 4.1 "Implementation details" and the released
    ``scripts/*.sh``): per-channel symmetric int4 weights, per-token symmetric int4 activations, 4-bit
    asymmetric KV cache per token and head, 15 epochs of layer-wise calibration on 128 samples with
    AdamW (lr 5e-3, 10x for clipping), cosine schedule, SmoothQuant-style diag init with alpha 0.3.

    Args:
        method: ``"flatquant"`` (learnable Kronecker transforms, the paper), or a baseline in the same
            framework: ``"rtn"`` (no transform), ``"smoothquant"`` (per-channel scaling, alpha 0.5, Xiao et
            al. 2023), ``"quarot"`` (random Hadamard rotations, Ashkboos et al. 2024).
        w_bits: weight bits (16 disables weight quantization). Paper: 4.
        a_bits: activation bits of every linear input (16 disables). Paper: 4.
        k_bits: key-cache bits (16 disables). Paper: 4.
        v_bits: value-cache bits (16 disables). Paper: 4.
        w_sym: symmetric weights (paper: True, per output channel).
        a_sym: symmetric activations (released scripts: True; ``--a_asym`` is off).
        k_sym: symmetric keys (paper: False, ``--k_asym``).
        v_sym: symmetric values (paper: False, ``--v_asym``).
        weight_quantizer: ``"rtn"`` (FlatQuant-RTN, the headline) or ``"gptq"`` (FlatQuant-GPTQ, Table 1).
        epochs: calibration epochs per layer (paper: 15).
        nsamples: calibration sequences (paper: 128 x 2048 tokens of WikiText-2).
        seqlen: tokens per calibration sequence (paper: 2048).
        batch_size: calibration batch (paper: 4).
        lr: AdamW learning rate of transforms and diag scales (scripts: 5e-3).
        clip_lr_mult: learning-rate multiplier of the clipping factors (paper: 10x).
        weight_decay: AdamW weight decay (torch default, as the official code).
        min_lr_ratio: cosine schedule floor as a fraction of lr (official: 1e-3).
        add_diag: learnable per-channel scaling (Sec. 3.2, ``--add_diag``).
        diag_alpha: migration strength of the diag init (paper: 0.3).
        smooth_alpha: SmoothQuant migration strength (SmoothQuant paper: 0.5).
        lwc: learnable weight clipping (``--lwc``).
        lac: learnable activation clipping (``--lac``).
        lac_scope: where the LAC clipping pairs live. ``"linear"`` (official ``FlatQuantizedLinear``: every
            quantized linear has its own activation quantizer, so q/k/v, and gate/up, quantize their shared
            transformed input each with its own clip pair); ``"input"``: one pair per online transform, shared by
            the linears it feeds (one quantization of the input, as a single fused kernel call at deployment).
        cali_trans: learn the Kronecker transforms (``--cali_trans``); False keeps the random orthogonal init.
        clip_init: initial logit of every clipping factor (official: 4.0, sigmoid 0.982).
        gptq_percdamp: GPTQ dampening as a fraction of the mean Hessian diagonal.
        seed: seed of the random transform init and of calibration shuffling.
    """

    method: str = "flatquant"  # Sec. 4.1; baselines of Table 1 in the same framework
    w_bits: int = 4  # Table 1: W4
    a_bits: int = 4  # Table 1: A4
    k_bits: int = 4  # Table 1: KV4
    v_bits: int = 4  # Table 1: KV4
    w_sym: bool = True  # Sec. 4.1: symmetric per-channel weights
    a_sym: bool = True  # scripts: --a_asym off
    k_sym: bool = False  # scripts: --k_asym
    v_sym: bool = False  # scripts: --v_asym
    weight_quantizer: str = "rtn"  # Table 1: FlatQuant-RTN (headline) / -GPTQ
    epochs: int = 15  # Sec. 4.1: 15 epochs
    nsamples: int = 128  # Sec. 4.1: 128 samples of WikiText-2
    seqlen: int = 2048  # Sec. 4.1: 2048 tokens per sample
    batch_size: int = 4  # scripts: --cali_bsz 4
    lr: float = 5e-3  # scripts: --flat_lr 5e-3
    clip_lr_mult: float = 10.0  # train_utils: 10x lr for the clipping factors
    weight_decay: float = 0.01  # train_utils: AdamW, torch default
    min_lr_ratio: float = 1e-3  # train_utils: cosine to lr * 1e-3
    add_diag: bool = True  # Sec. 3.2: per-channel scaling (--add_diag)
    diag_alpha: float = 0.3  # Sec. 3.2: diag init alpha (scripts: 0.3)
    smooth_alpha: float = 0.5  # SmoothQuant baseline migration strength
    lwc: bool = True  # Sec. 3.3: learnable weight clipping
    lac: bool = True  # Sec. 3.3: learnable activation clipping
    lac_scope: str = "linear"  # official: one ActivationQuantizer (LAC pair) per FlatQuantizedLinear
    cali_trans: bool = True  # Sec. 3.1: learn the Kronecker transforms
    clip_init: float = 4.0  # official init of the clipping logits (sigmoid 0.982)
    gptq_percdamp: float = 0.01  # GPTQ dampening
    seed: int = 0  # transform init

    def validate(self) -> None:
        check_choice("FlatQuantConfig.method", self.method, METHODS)
        check_choice("FlatQuantConfig.weight_quantizer", self.weight_quantizer, WEIGHT_QUANTIZERS)
        check_choice("FlatQuantConfig.lac_scope", self.lac_scope, LAC_SCOPES)
        for name in ("w_bits", "a_bits", "k_bits", "v_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v not in SUPPORTED_BITS:
                raise ValueError(f"FlatQuantConfig.{name}: expected one of {SUPPORTED_BITS} (16 = not quantized), "
                                 f"got {v!r}")
        for name in ("w_sym", "a_sym", "k_sym", "v_sym", "add_diag", "lwc", "lac", "cali_trans"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"FlatQuantConfig.{name}: expected a bool, got {getattr(self, name)!r}")
        check_int("FlatQuantConfig.epochs", self.epochs, min_value=0)
        for name in ("nsamples", "seqlen", "batch_size"):
            check_int(f"FlatQuantConfig.{name}", getattr(self, name), min_value=1)
        check_int("FlatQuantConfig.seed", self.seed, min_value=0)
        for name in ("lr", "clip_lr_mult"):
            check_positive(f"FlatQuantConfig.{name}", getattr(self, name))
        check_positive("FlatQuantConfig.weight_decay", self.weight_decay, allow_zero=True)
        check_range("FlatQuantConfig.min_lr_ratio", self.min_lr_ratio, 0, 1, inclusive=(False, True))
        for name in ("diag_alpha", "smooth_alpha"):
            check_range(f"FlatQuantConfig.{name}", getattr(self, name), 0, 1)
        check_finite("FlatQuantConfig.clip_init", self.clip_init)
        check_range("FlatQuantConfig.gptq_percdamp", self.gptq_percdamp, 0, 1, inclusive=(False, False))
        if self.weight_quantizer == "gptq" and self.w_bits == 16:
            raise ValueError("FlatQuantConfig.weight_quantizer='gptq' needs quantized weights: expected w_bits < 16, "
                             "got 16")
        if self.batch_size > self.nsamples:
            raise ValueError(f"FlatQuantConfig.batch_size: expected <= nsamples={self.nsamples}, got {self.batch_size}")

    @property
    def learnable(self) -> bool:
        """Whether calibration trains anything (FlatQuant with at least one learnable part)."""
        return self.method == "flatquant" and (self.cali_trans or self.add_diag or self.lwc or self.lac)
