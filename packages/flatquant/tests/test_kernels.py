"""The fused Kronecker + int4 quantization + packing kernel against its torch reference.

Triton runs under TRITON_INTERPRET=1 on the CPU, in a subprocess so the variable is set before triton is
imported. On a GPU the same checks run in ``flatquant.gpu_check``.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from flatquant import functional as FQ
from flatquant import kernels

G = torch.Generator().manual_seed(0)


def test_reference_equals_unfused_path():
    x = torch.randn(6, 48, generator=G)
    p1, p2 = FQ.random_orthogonal(6, G), FQ.random_orthogonal(8, G)
    d = torch.rand(48, generator=G) + 0.5
    packed, scale = kernels.kron_quant_pack_reference(x, p1, p2, d, 0.9, 0.8)
    codes, s2 = FQ.quantize_sym(FQ.kronecker_matmul(x * d, p1, p2), 4, 0.9, 0.8)
    assert torch.equal(FQ.unpack_int4(packed), codes) and torch.equal(scale, s2)


def test_use_triton_never_falls_back_silently():
    x = torch.zeros(2, 4)
    assert not kernels.use_triton("torch", x)
    if os.environ.get("TRITON_INTERPRET") != "1":
        assert not kernels.use_triton("auto", x)  # the interpreter is never picked automatically
        with pytest.raises(RuntimeError, match="triton"):
            kernels.use_triton("triton", x)


SCRIPT = textwrap.dedent("""
    import os
    os.environ["TRITON_INTERPRET"] = "1"
    import torch
    from flatquant import functional as FQ, kernels
    g = torch.Generator().manual_seed(0)
    out = []
    # exact case: +-1 Hadamard factors and small integer inputs, every product and sum is exact in fp32
    for (n1, n2) in [(4, 8), (12, 4)]:
        x = torch.randint(-3, 4, (5, n1 * n2), generator=g).float()
        h1, h2 = FQ.hadamard(n1).float(), FQ.hadamard(n2).float()
        a = kernels.kron_quant_pack(x, h1, h2)
        b = kernels.kron_quant_pack_reference(x, h1, h2)
        out.append(("exact", n1, n2, torch.equal(a[0], b[0]), torch.equal(a[1], b[1])))
    # general case: random orthogonal factors, LAC ratios, per-channel scale, single-factor paths
    for (n1, n2) in [(3, 8), (6, 6)]:
        x = torch.randn(7, n1 * n2, generator=g)
        p1, p2 = FQ.random_orthogonal(n1, g), FQ.random_orthogonal(n2, g)
        d = torch.rand(n1 * n2, generator=g) + 0.5
        for args in [(p1, p2, d, 0.9, 0.8), (None, p2, None, 1.0, 1.0), (p1, None, None, 1.0, 1.0)]:
            a = kernels.kron_quant_pack(x, *args)
            b = kernels.kron_quant_pack_reference(x, *args)
            diff = (FQ.unpack_int4(a[0]).int() - FQ.unpack_int4(b[0]).int()).abs().max().item()
            out.append(("general", n1, n2, diff, float((a[1] - b[1]).abs().max() / b[1].abs().max())))
    # official range: an all-positive token with a small c_max ratio (the range includes 0), an all-zero token
    x = torch.rand(3, 48, generator=g) + 0.5
    x[1] = 0.0
    p1, p2 = FQ.random_orthogonal(6, g), FQ.random_orthogonal(8, g)
    for args in [(None, None, None, 0.3, 0.9), (p1, p2, None, 0.3, 0.9)]:
        a = kernels.kron_quant_pack(x, *args)
        b = kernels.kron_quant_pack_reference(x, *args)
        diff = (FQ.unpack_int4(a[0]).int() - FQ.unpack_int4(b[0]).int()).abs().max().item()
        out.append(("general", 6, 8, diff, float((a[1] - b[1]).abs().max() / b[1].abs().max())))
    print(repr(out))
""")


def test_triton_kernel_matches_reference_interpreted():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = eval(res.stdout.strip().splitlines()[-1])
    for row in rows:
        if row[0] == "exact":
            assert row[3] and row[4], row  # identical codes and scales
        else:
            assert row[3] == 0 and row[4] < 1e-5, row  # identical codes, scales to fp32 rounding
