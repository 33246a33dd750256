"""Public API: ``quantize_`` (calibrate in place), ``reparameterize`` (fold and pack), save / load.

Example:
    >>> import flatquant
    >>> from papercommon.data import load_smollm2
    >>> model, tok = load_smollm2()
    >>> ids = tok(text, return_tensors="pt").input_ids[:, :4096].reshape(16, 256)  # doctest: +SKIP
    >>> report = flatquant.quantize_(model, flatquant.FlatQuantConfig(epochs=2, nsamples=16), ids)  # doctest: +SKIP
    >>> flatquant.reparameterize(model)       # int4 weights, online Kronecker transforms  # doctest: +SKIP
    >>> flatquant.save_quantized(model, "smollm2-w4a4.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from flatquant import bert, llama
from flatquant.calibrate import CalibrationReport, calibrate, check_calibration_data
from flatquant.config import FlatQuantConfig

ADAPTERS: dict[str, ModuleType] = {t: llama for t in llama.MODEL_TYPES} | {t: bert for t in bert.MODEL_TYPES}
_STATE = "_flatquant_state"


def get_adapter(model: nn.Module) -> ModuleType:
    """The architecture adapter of ``model`` (by ``config.model_type``), or a clear error."""
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    if model_type not in ADAPTERS:
        raise ValueError(f"flatquant: unsupported architecture {model_type!r} ({type(model).__name__}); expected a "
                         f"transformers model with config.model_type in {sorted(ADAPTERS)}")
    return ADAPTERS[model_type]


def quantize_(model: nn.Module, config: FlatQuantConfig, calibration_data: torch.Tensor, *,
              progress: bool = True) -> CalibrationReport:
    """Quantize ``model`` in place with FlatQuant (or a baseline of ``config.method``).

    Every block gets its online transforms and fake quantizers and is calibrated layer by layer on
    ``calibration_data``. The model stays a float model that simulates W/A/KV quantization exactly; call
    :func:`reparameterize` to fold the transforms and store the weights as packed int4.

    Args:
        model: a transformers Llama-family causal LM / model, or a BERT encoder.
        config: the method and its hyper-parameters (defaults: the paper's W4A4KV4 recipe).
        calibration_data: token ids ``[N, T]`` with ``N >= config.nsamples`` (the first ``nsamples`` rows are
            used), ``T == config.seqlen`` and ids in ``[0, vocab_size)``.
        progress: show a progress bar (tqdm) over the blocks.

    Returns:
        A :class:`CalibrationReport` with each block's output MSE and time.

    Raises:
        ValueError: bad calibration data (rows, length, ids) or an unsupported architecture.
        RuntimeError: the model is already quantized.
        On any error during calibration the model is left exactly as it was (all-or-nothing).

    Paper: FlatQuant, Sec. 3.4 (calibration) and Sec. 4.1 (setup).
    """
    if not isinstance(config, FlatQuantConfig):
        raise TypeError(f"quantize_: expected a FlatQuantConfig, got {type(config).__name__}")
    adapter = get_adapter(model)
    if getattr(model, _STATE, None) is not None or _has_flatquant_modules(model):
        raise RuntimeError("quantize_: expected a full-precision model, got one that is already quantized by "
                           "flatquant (load a fresh model)")
    vocab = getattr(model.config, "vocab_size", None)
    data = check_calibration_data(calibration_data, config, vocab_size=vocab)
    snapshot = _Snapshot(model)
    try:
        report = calibrate(model, adapter, config, data, progress=progress)
    except BaseException:
        snapshot.restore()  # all-or-nothing: the model is left exactly as it was
        raise
    setattr(model, _STATE, {"config": config.to_dict(), "deployed": False})
    return report


def _has_flatquant_modules(model: nn.Module) -> bool:
    from flatquant.modules import InputQuantizer, QuantLinear

    return any(isinstance(m, QuantLinear | InputQuantizer) for m in model.modules())


class _Snapshot:
    """What calibration changes in place: the submodule tree (blocks get replaced by wrappers), the
    ``requires_grad`` flags, train/eval modes and ``config.use_cache``. Calibration never writes into the
    original parameters (the wrappers hold clones), so restoring these leaves the model exactly as it was."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.children = [(m, dict(m._modules)) for m in model.modules()]
        self.modes = [(m, m.training) for m in model.modules()]
        self.grads = [(p, p.requires_grad) for p in model.parameters()]
        self.use_cache = getattr(getattr(model, "config", None), "use_cache", None)

    def restore(self) -> None:
        for m, children in self.children:
            m._modules.clear()
            m._modules.update(children)
        for m, mode in self.modes:
            m.training = mode
        for p, flag in self.grads:
            p.requires_grad_(flag)
        if self.use_cache is not None:
            self.model.config.use_cache = self.use_cache


def reparameterize(model: nn.Module) -> nn.Module:
    """Deploy a quantized model in place: fold the transforms into the weights (float64), merge the
    per-channel scales into the preceding norms, quantize the weights to integer codes (packed int4) and
    switch the online paths to integer activations (fused Triton kernel on a GPU)."""
    state = getattr(model, _STATE, None)
    if state is None:
        raise RuntimeError("reparameterize: expected a model quantized by flatquant.quantize_, got a plain model")
    if state["deployed"]:
        return model
    cfg = FlatQuantConfig.from_dict(state["config"])
    if cfg.a_bits < 16 and not cfg.a_sym:
        raise NotImplementedError("reparameterize: integer deployment needs symmetric activations (a_sym=True)")
    if cfg.w_bits < 16 and not cfg.w_sym:
        raise NotImplementedError("reparameterize: integer deployment needs symmetric weights (w_sym=True)")
    adapter = get_adapter(model)
    for layer in adapter.layers(model):
        adapter.reparameterize_layer(layer)
    state["deployed"] = True
    return model


def quantized_config(model: nn.Module) -> FlatQuantConfig | None:
    """The config a model was quantized with (None for a plain model)."""
    state = getattr(model, _STATE, None)
    return None if state is None else FlatQuantConfig.from_dict(state["config"])


def save_quantized(model: nn.Module, path: str | Path) -> Path:
    """Save the deployed blocks (packed int4 weights, scales, transforms, clip factors) with safetensors.

    Only the quantized blocks are stored; embeddings, final norm and head stay those of the base model.
    The config travels in the file's metadata.
    """
    from safetensors.torch import save_file

    state = getattr(model, _STATE, None)
    if state is None or not state["deployed"]:
        raise RuntimeError("save_quantized: expected a model after quantize_ and reparameterize")
    adapter = get_adapter(model)
    tensors = {}
    for i, layer in enumerate(adapter.layers(model)):
        for k, v in layer.state_dict().items():
            tensors[f"layers.{i}.{k}"] = v.detach().contiguous().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"flatquant_config": json.dumps(state["config"]),
                                            "model_type": model.config.model_type})
    return path


@torch.no_grad()
def load_quantized(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a file of :func:`save_quantized` into a full-precision ``model`` of the same architecture (in place)."""
    from safetensors import safe_open

    adapter = get_adapter(model)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if "flatquant_config" not in meta:
            raise ValueError(f"load_quantized: {path} has no flatquant_config metadata; expected a save_quantized file")
        if meta.get("model_type") != model.config.model_type:
            raise ValueError(f"load_quantized: file is for model_type {meta.get('model_type')!r}, "
                             f"got a {model.config.model_type!r} model")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = FlatQuantConfig.from_dict(json.loads(meta["flatquant_config"]))
    gen = torch.Generator().manual_seed(cfg.seed)
    for i, layer in enumerate(adapter.layers(model)):
        adapter.wrap_layer(layer, cfg, gen, f"layers.{i}")
        for m in layer.modules():  # the GPTQ grid is part of the saved scales
            if hasattr(m, "fixed_weight"):
                m.fixed_weight = None
        adapter.reparameterize_layer(layer)
        prefix = f"layers.{i}."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        layer.load_state_dict(sd, strict=True)
    setattr(model, _STATE, {"config": cfg.to_dict(), "deployed": True})
    return model
