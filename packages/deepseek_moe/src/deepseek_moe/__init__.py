"""deepseek_moe: the DeepSeek-V3 architecture (MLA, DeepSeekMoE with auxiliary-loss-free balancing, multi-token
prediction, FP8 block quantization), trainable and compatible with the Hugging Face checkpoint layout.

Example:
    >>> import torch
    >>> from deepseek_moe import DeepSeekV3, DeepSeekV3Config
    >>> model = DeepSeekV3(DeepSeekV3Config.preset("tiny"))
    >>> model(torch.randint(0, 128, (1, 8))).logits.shape
    torch.Size([1, 8, 128])
"""

from deepseek_moe.checkpoint import load_pretrained, save_pretrained
from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.fp8 import FP8Experts, FP8Linear, quantize_model_fp8
from deepseek_moe.modules import (
    MLA,
    MLP,
    Block,
    DeepSeekV3,
    DeepSeekV3Output,
    Experts,
    Gate,
    KVCache,
    MoE,
    MTPModule,
    RMSNorm,
)

__version__ = "0.1.0"
__all__ = ["load_pretrained", "save_pretrained", "quantize_model_fp8", "FP8Linear", "FP8Experts", "DeepSeekV3Config", "DeepSeekV3", "DeepSeekV3Output", "MLA", "MLP", "Block", "Experts", "Gate", "KVCache",
           "MoE", "MTPModule", "RMSNorm"]
