"""Modules of the DeepSeek-V3 model: attention (MLA), moe (DeepSeekMoE) and model (blocks, MTP, LM)."""

from deepseek_moe.modules.attention import MLA, KVCache, RMSNorm, RotaryEmbedding
from deepseek_moe.modules.model import Block, DeepSeekV3, DeepSeekV3Output, MTPModule
from deepseek_moe.modules.moe import MLP, Experts, Gate, MoE

__all__ = ["MLA", "KVCache", "RMSNorm", "RotaryEmbedding", "Block", "DeepSeekV3", "DeepSeekV3Output", "MTPModule",
           "MLP", "Experts", "Gate", "MoE"]
