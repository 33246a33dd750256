"""FlatQuant: learnable Kronecker-factored affine transforms that flatten weights and activations for W4A4
quantization of transformers models (Sun et al., ICML 2025, arXiv 2410.09426).

    >>> import flatquant
    >>> report = flatquant.quantize_(model, flatquant.FlatQuantConfig(), calibration_ids)  # doctest: +SKIP
    >>> flatquant.reparameterize(model)  # doctest: +SKIP
"""

from flatquant.api import (
    get_adapter,
    load_quantized,
    quantize_,
    quantized_config,
    reparameterize,
    save_quantized,
)
from flatquant.calibrate import CalibrationReport
from flatquant.config import FlatQuantConfig
from flatquant.functional import get_decompose_dim, kronecker_matmul
from flatquant.modules import ActQuantizer, InputQuantizer, QAct, QuantLinear, Transform, WeightQuantizer

__version__ = "0.1.0"

__all__ = [
    "ActQuantizer", "CalibrationReport", "FlatQuantConfig", "InputQuantizer", "QAct", "QuantLinear", "Transform",
    "WeightQuantizer", "get_adapter", "get_decompose_dim", "kronecker_matmul", "load_quantized", "quantize_",
    "quantized_config", "reparameterize", "save_quantized",
]
