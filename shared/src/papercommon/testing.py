"""Test helpers shared by the packages: poisoned output buffers and kernel-vs-reference reports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Default tolerances (atol, rtol) for a kernel compared with its fp32 reference, per input dtype.
TOLERANCES = {torch.float32: (1e-4, 1e-4), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}


def _poison(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point() and t.element_size() >= 2:
        return t.fill_(float("nan"))
    if t.dtype == torch.bool:
        return t.fill_(True)
    if t.is_floating_point():  # fp8: a large finite value is the most visible sentinel
        return t.view(torch.uint8).fill_(0x7E).view(t.dtype)
    return t.fill_(torch.iinfo(t.dtype).max)


@contextlib.contextmanager
def poison_outputs() -> Iterator[None]:
    """Within the block, ``torch.empty`` / ``torch.empty_like`` return buffers filled with a sentinel
    (NaN for floats, the largest value for integers), so a kernel that leaves an output element unwritten
    is caught when its result is compared with the reference."""
    empty, empty_like = torch.empty, torch.empty_like
    torch.empty = lambda *a, **k: _poison(empty(*a, **k))
    torch.empty_like = lambda *a, **k: _poison(empty_like(*a, **k))
    try:
        yield
    finally:
        torch.empty, torch.empty_like = empty, empty_like


def compare(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype | None = None,
            atol: float | None = None, rtol: float | None = None) -> dict[str, float | bool]:
    """``max_err``, the tolerance used and ``ok`` for a kernel output against its reference.

    NaNs (for instance from unwritten poisoned elements) make ``ok`` false.
    """
    d_atol, d_rtol = TOLERANCES.get(dtype or out.dtype, (0.0, 0.0))
    atol, rtol = d_atol if atol is None else atol, d_rtol if rtol is None else rtol
    o, r = out.float(), ref.float()
    err = (o - r).abs()
    finite = bool(torch.isfinite(o).all() or torch.equal(torch.isfinite(o), torch.isfinite(r)))
    ok = finite and bool((err <= atol + rtol * r.abs()).all())
    return {"max_err": float(err.nan_to_num(float("inf")).max()) if err.numel() else 0.0, "atol": atol,
            "rtol": rtol, "ok": ok}
