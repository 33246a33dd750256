"""Which backend runs a kernel: pure torch, or Triton on a GPU (or interpreted on the CPU)."""

from __future__ import annotations

import functools
import importlib.util
import os
from types import ModuleType

import torch

BACKENDS = ("auto", "torch", "triton")


def triton_interpret() -> bool:
    """Whether Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def import_triton() -> tuple[ModuleType, ModuleType] | tuple[None, None]:
    """The one Triton guard: ``(triton, triton.language)``, or ``(None, None)`` when Triton is not installed.

    Kernel modules write ``triton, tl = import_triton()`` and define their ``@triton.jit`` kernels under
    ``if triton is not None:``; dispatch then goes through :func:`resolve_backend`.
    """
    if not _triton_importable():
        return None, None
    try:
        import triton
        import triton.language as tl
    except ImportError:  # installed but broken (e.g. a mismatched build)
        return None, None
    return triton, tl


def has_triton(device: torch.device | str | None = None) -> bool:
    """Whether a Triton kernel can run on ``device``: Triton is installed and either the device is a
    CUDA GPU, or ``TRITON_INTERPRET=1`` and the device is the CPU. Without ``device``: any of those."""
    if not _triton_importable():
        return False
    if device is None:
        return torch.cuda.is_available() or triton_interpret()
    kind = torch.device(device).type
    return (kind == "cuda" and torch.cuda.is_available()) or (kind == "cpu" and triton_interpret())


def resolve_backend(backend: str, *tensors: torch.Tensor) -> str:
    """Resolve ``"auto"`` / ``"torch"`` / ``"triton"`` to ``"torch"`` or ``"triton"`` for these tensors.

    ``"auto"`` picks Triton only for CUDA tensors (the interpreter is for tests, never chosen silently);
    ``"triton"`` raises a clear error when Triton cannot run on the tensors' device.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    device = tensors[0].device if tensors else torch.device("cpu")
    if backend == "auto":
        return "triton" if device.type == "cuda" and has_triton(device) else "torch"
    if backend == "triton" and not has_triton(device):
        why = ("Triton is not installed" if not _triton_importable() else
               f"tensors are on {device.type}: Triton needs a CUDA device, or TRITON_INTERPRET=1 for the CPU")
        raise RuntimeError(f"backend='triton' cannot run: {why}")
    return backend
