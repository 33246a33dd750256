"""Backend selection and the quantization kernels several packages share.

Every op ``<op>`` dispatches between ``<op>_reference`` (pure torch, the specification) and a Triton
kernel ``_<op>_kernel`` (in :mod:`papercommon.kernels.triton_quant`), which runs on a CUDA GPU or, for
tests, on the CPU under ``TRITON_INTERPRET=1``. Importing this module never needs Triton or a GPU.
"""

from papercommon.kernels.backend import BACKENDS, has_triton, import_triton, resolve_backend, triton_interpret
from papercommon.kernels.quant import (
    FP8_E4M3_MAX,
    dequantize_asymmetric,
    dequantize_symmetric,
    fake_quantize_symmetric,
    fp8_dequantize_blockwise,
    fp8_quantize_blockwise,
    fp8_quantize_blockwise_reference,
    pack_int4,
    pack_int4_reference,
    quantize_asymmetric,
    quantize_asymmetric_reference,
    quantize_symmetric,
    quantize_symmetric_reference,
    unpack_int4,
)

__all__ = [
    "BACKENDS", "FP8_E4M3_MAX", "dequantize_asymmetric", "dequantize_symmetric", "fake_quantize_symmetric",
    "fp8_dequantize_blockwise", "fp8_quantize_blockwise", "fp8_quantize_blockwise_reference", "has_triton",
    "import_triton", "pack_int4", "pack_int4_reference", "quantize_asymmetric", "quantize_asymmetric_reference",
    "quantize_symmetric", "quantize_symmetric_reference", "resolve_backend", "triton_interpret", "unpack_int4",
]
