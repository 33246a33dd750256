"""FlatQuant configuration: the paper's defaults (Sec. 3-4, Appendix; the released run scripts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

METHODS = ("flatquant", "rtn", "smoothquant", "quarot")
WEIGHT_QUANTIZERS = ("rtn", "gptq")
SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 16)  # 16 means "not quantized"


@dataclass(frozen=True, kw_only=True)
class FlatQuantConfig:
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
        cali_trans: learn the Kronecker transforms (``--cali_trans``); False keeps the random orthogonal init.
        clip_init: initial logit of every clipping factor (official: 4.0, sigmoid 0.982).
        gptq_percdamp: GPTQ dampening as a fraction of the mean Hessian diagonal.
        seed: seed of the random transform init and of calibration shuffling.
    """

    method: str = "flatquant"
    w_bits: int = 4
    a_bits: int = 4
    k_bits: int = 4
    v_bits: int = 4
    w_sym: bool = True
    a_sym: bool = True
    k_sym: bool = False
    v_sym: bool = False
    weight_quantizer: str = "rtn"
    epochs: int = 15
    nsamples: int = 128
    seqlen: int = 2048
    batch_size: int = 4
    lr: float = 5e-3
    clip_lr_mult: float = 10.0
    weight_decay: float = 0.01
    min_lr_ratio: float = 1e-3
    add_diag: bool = True
    diag_alpha: float = 0.3
    smooth_alpha: float = 0.5
    lwc: bool = True
    lac: bool = True
    cali_trans: bool = True
    clip_init: float = 4.0
    gptq_percdamp: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"FlatQuantConfig.method: expected one of {METHODS}, got {self.method!r}")
        if self.weight_quantizer not in WEIGHT_QUANTIZERS:
            raise ValueError(f"FlatQuantConfig.weight_quantizer: expected one of {WEIGHT_QUANTIZERS}, "
                             f"got {self.weight_quantizer!r}")
        for name in ("w_bits", "a_bits", "k_bits", "v_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v not in SUPPORTED_BITS:
                raise ValueError(f"FlatQuantConfig.{name}: expected one of {SUPPORTED_BITS} (16 = not quantized), "
                                 f"got {v!r}")
        for name in ("epochs", "nsamples", "seqlen", "batch_size"):
            v = getattr(self, name)
            lo = 0 if name == "epochs" else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"FlatQuantConfig.{name}: expected an int >= {lo}, got {v!r}")
        for name in ("lr", "clip_lr_mult"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FlatQuantConfig.{name}: expected > 0, got {getattr(self, name)!r}")
        if not 0 <= self.weight_decay:
            raise ValueError(f"FlatQuantConfig.weight_decay: expected >= 0, got {self.weight_decay!r}")
        if not 0 < self.min_lr_ratio <= 1:
            raise ValueError(f"FlatQuantConfig.min_lr_ratio: expected in (0, 1], got {self.min_lr_ratio!r}")
        for name in ("diag_alpha", "smooth_alpha"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"FlatQuantConfig.{name}: expected in [0, 1], got {getattr(self, name)!r}")
        if not 0 < self.gptq_percdamp < 1:
            raise ValueError(f"FlatQuantConfig.gptq_percdamp: expected in (0, 1), got {self.gptq_percdamp!r}")
        if self.weight_quantizer == "gptq" and self.w_bits == 16:
            raise ValueError("FlatQuantConfig.weight_quantizer='gptq' needs quantized weights: expected w_bits < 16, "
                             "got 16")

    @property
    def learnable(self) -> bool:
        """Whether calibration trains anything (FlatQuant with at least one learnable part)."""
        return self.method == "flatquant" and (self.cali_trans or self.add_diag or self.lwc or self.lac)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlatQuantConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"FlatQuantConfig.from_dict: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**d)
