"""Our quantizers against the official FlatQuant code's semantics (ruikangliu/FlatQuant, ``flat_linear.py``
``apply_wclip`` / ``_train_forward`` / ``reparameterize`` and ``quant_utils.py`` ``WeightQuantizer.find_params``,
``ActivationQuantizer.get_scale_zero``), recomputed here independently: plain Python floats, one row at a
time, written from the official order of operations, not with the package's functions.

Official weight path: ``W <- W P^{-T}``; LWC clamps each row to ``[sigmoid(c_min) rowmin, sigmoid(c_max) rowmax]``;
then (v_proj only) the output-side ``P_v``; then the grid ``scale = max(|min(w, 0)|, max(w, 0)).clamp(1e-5) / 7``
of the *clipped* weight; codes ``clamp(round(w / scale), -8, 7)``.
"""

from __future__ import annotations

import math

import torch
from flatquant import FlatQuantConfig
from flatquant import functional as FQ
from flatquant.modules import OutHeadTransform, Transform, WeightQuantizer, make_linear


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _round_half_even(v: float) -> float:
    return float(round(v))  # Python's round() is half-to-even, as torch.round


def official_row(row: list[float], c_max: float, c_min: float, bits: int = 4) -> tuple[list[float], float, list[int]]:
    """One weight row through the official apply_wclip + find_params (sym, per channel) + sym_quant."""
    hi, lo = max(row) * _sigmoid(c_max), min(row) * _sigmoid(c_min)
    clipped = [min(max(v, lo), hi) for v in row]
    maxq = 2 ** (bits - 1) - 1
    xmax = max(max(clipped), 0.0)
    xmin = min(min(clipped), 0.0)
    scale = max(max(abs(xmin), xmax), 1e-5) / maxq
    codes = [int(min(max(_round_half_even(v / scale), -(maxq + 1)), maxq)) for v in clipped]
    return clipped, scale, codes


W = [[-4.0, -1.0, 0.5, 2.0, 3.0, -0.25],
     [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # all positive: the range still includes 0
     [-3.0, 2.5, -0.7, 0.0, 1.2, -2.2],
     [-0.5, -0.2, -0.1, -0.05, -0.3, -0.4]]  # all negative
C_MAX = [0.0, 4.0, -1.0, 2.0]  # logits: sigmoid 0.5, 0.982, 0.269, 0.881
C_MIN = [0.0, 1.0, 3.0, -0.5]


def _quantizer() -> WeightQuantizer:
    q = WeightQuantizer(len(W), 4, sym=True, lwc=True)
    with torch.no_grad():
        q.clip_max.copy_(torch.tensor(C_MAX, dtype=torch.float64).reshape(-1, 1))
        q.clip_min.copy_(torch.tensor(C_MIN, dtype=torch.float64).reshape(-1, 1))
    return q.double()


def test_hand_computed_row():
    # row 0, sigmoid(0) = 0.5 both sides: clamp to [-2, 1.5] before the scale, scale = 2 / 7
    clipped, scale, codes = official_row(W[0], 0.0, 0.0)
    assert clipped == [-2.0, -1.0, 0.5, 1.5, 1.5, -0.25]
    assert math.isclose(scale, 2 / 7) and codes == [-7, -4, 2, 5, 5, -1]  # -3.5 -> -4 (half to even)


def test_lwc_clips_before_the_scale_like_the_official_code():
    w = torch.tensor(W, dtype=torch.float64)
    q = _quantizer()
    clipped = q.clip(w)
    codes, scale = FQ.quantize_weight_sym(clipped, 4)
    fake = q(clipped).detach()
    clipped, scale = clipped.detach(), scale.detach()
    for i, row in enumerate(W):
        c_ref, s_ref, q_ref = official_row(row, C_MAX[i], C_MIN[i])
        assert clipped[i].tolist() == c_ref
        assert math.isclose(float(scale[i]), s_ref, rel_tol=1e-12)
        assert codes[i].tolist() == q_ref
        torch.testing.assert_close(fake[i], torch.tensor(q_ref, dtype=torch.float64) * s_ref)


def test_deployed_codes_and_scales_match_the_official_reparameterize():
    lin = torch.nn.Linear(6, 4, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(W, dtype=torch.float64))
    ql = make_linear(FlatQuantConfig(), lin, "t").double()
    with torch.no_grad():
        ql.quantizer.clip_max.copy_(torch.tensor(C_MAX).reshape(-1, 1))
        ql.quantizer.clip_min.copy_(torch.tensor(C_MIN).reshape(-1, 1))
    ql.deploy(dtype=torch.float64)
    for i, row in enumerate(W):
        _, s_ref, q_ref = official_row(row, C_MAX[i], C_MIN[i])
        assert ql.weight_codes()[i].tolist() == q_ref
        assert math.isclose(float(ql.w_scale[i]), s_ref, rel_tol=1e-12)


def test_v_proj_clips_before_the_output_side_transform():
    """v_proj: ``W P_a^{-T}`` -> LWC -> ``P_v^T W_h`` per head -> grid (official ``_train_forward`` order)."""
    g = torch.Generator().manual_seed(3)
    d, heads, n_in = 4, 2, 6
    lin = torch.nn.Linear(n_in, heads * d, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(heads * d, n_in, generator=g, dtype=torch.float64))
    cfg = FlatQuantConfig()
    ql = make_linear(cfg, lin, "v").double()
    cmax = torch.randn(heads * d, generator=g).tolist()
    cmin = torch.randn(heads * d, generator=g).tolist()
    with torch.no_grad():
        ql.quantizer.clip_max.copy_(torch.tensor(cmax).reshape(-1, 1))
        ql.quantizer.clip_min.copy_(torch.tensor(cmin).reshape(-1, 1))
    vt = Transform(d, kind="svd", kron=False, generator=g).double()
    with torch.no_grad():
        vt.factors[0].sigma.copy_(torch.rand(d, generator=g, dtype=torch.float64) + 0.5)
    ql.w_out = [OutHeadTransform(vt)]
    # independent: clip every row in plain Python, then mix rows within each head by P_v^T
    clipped = [official_row(lin.weight[i].tolist(), cmax[i], cmin[i])[0] for i in range(heads * d)]
    p = vt.matrices()[1].detach().tolist()
    mixed = []
    for h in range(heads):
        for j in range(d):  # row j of P_v^T W_h = sum_k P_v[k, j] W_h[k]
            mixed.append([sum(p[k][j] * clipped[h * d + k][c] for k in range(d)) for c in range(n_in)])
    w_eff, _ = ql.effective_weight()
    torch.testing.assert_close(w_eff.detach(), torch.tensor(mixed, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    # the grid is that of the mixed (output-transformed) rows
    ql.deploy(dtype=torch.float64)
    for i, row in enumerate(mixed):
        _, s_ref, q_ref = official_row(row, 50.0, 50.0)  # sigmoid(50) = 1: no further clipping
        assert math.isclose(float(ql.w_scale[i]), s_ref, rel_tol=1e-9)
        assert ql.weight_codes()[i].tolist() == q_ref


def official_asym(row: list[float], bits: int = 4, c_max: float = 1.0, c_min: float = 1.0):
    """Official ActivationQuantizer.get_scale_zero (asym) + asym_quant_dequant for one token."""
    xmax, xmin = max(max(row), 0.0) * c_max, min(min(row), 0.0) * c_min
    if xmax == 0 and xmin == 0:
        xmin, xmax = -1.0, 1.0
    maxq = 2**bits - 1
    scale = (xmax - xmin) / maxq
    zero = _round_half_even(-xmin / scale)
    return scale, zero, [(min(max(_round_half_even(v / scale) + zero, 0), maxq) - zero) * scale for v in row]


def test_kv_asym_scale_zero_point_and_values():
    rows = [[-1.3, 0.2, 2.9, 0.05], [0.0, 0.0, 0.0, 0.0], [0.4, 0.9, 0.1, 0.3], [-2.0, -0.1, -0.7, -1.1]]
    x = torch.tensor(rows, dtype=torch.float64)
    scale, zero = FQ.asym_params(x, 4)
    fq = FQ.fake_quantize_asym(x, 4)
    for i, row in enumerate(rows):
        s_ref, z_ref, v_ref = official_asym(row)
        assert math.isclose(float(scale[i]), s_ref, rel_tol=1e-12) and float(zero[i]) == z_ref
        torch.testing.assert_close(fq[i], torch.tensor(v_ref, dtype=torch.float64))


def test_kv_zero_point_is_plain_rounding_no_gradient():
    """Official: ``zero = torch.round(-xmin / scale)``: no gradient flows through the zero point, so the gradient
    reaching x through a clamped code comes from the scale only."""
    x = torch.tensor([[-1.3, 0.2, 2.9, 0.05]], dtype=torch.float64, requires_grad=True)
    _, zero = FQ.asym_params(x, 4)
    assert not zero.requires_grad
    # independent autograd graph with the official operations
    x2 = x.detach().clone().requires_grad_(True)
    xmax, xmin = x2.amax(-1, keepdim=True).clamp_min(0), x2.amin(-1, keepdim=True).clamp_max(0)
    s = (xmax - xmin) / 15
    z = torch.round(-xmin / s)  # torch.round has a zero gradient
    q = torch.clamp((torch.round(x2 / s) - x2 / s).detach() + x2 / s + z, 0, 15)
    ((q - z) * s).pow(2).sum().backward()
    FQ.fake_quantize_asym(x, 4).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_lwc_gradient_reaches_the_clip_factors():
    w = torch.tensor(W, dtype=torch.float64)
    q = _quantizer()
    q(q.clip(w)).pow(2).sum().backward()
    assert q.clip_max.grad is not None and q.clip_max.grad.abs().sum() > 0
    assert q.clip_min.grad.abs().sum() > 0


def test_svd_factor_is_torchs_cayley_parametrisation_without_trivialization():
    """The official ``SVDSingleTransMatrix`` puts ``nn.utils.parametrizations.orthogonal(orthogonal_map="cayley",
    use_trivialization=False)`` on a linear whose weight starts at a random orthogonal matrix: the free matrix is
    that weight, and ``U`` is the Cayley map of the skew matrix from its strict lower triangle. Same free matrix
    and the same gradient step must give the same ``U`` and the same gradient."""
    from flatquant.modules import SVDFactor

    f = SVDFactor(6, torch.Generator().manual_seed(1)).double()
    lin = torch.nn.Linear(6, 6, bias=False).double()
    lin.weight.data = f.a_u.detach().clone()
    lin = torch.nn.utils.parametrizations.orthogonal(lin, orthogonal_map="cayley", use_trivialization=False)
    u_torch = lin.weight
    u_ours = FQ.cayley(f.a_u)
    torch.testing.assert_close(u_ours, u_torch)
    assert not torch.allclose(u_ours, f.a_u.detach(), atol=1e-3)  # U is not the init matrix itself
    g = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    (u_ours * g).sum().backward()
    (u_torch * g).sum().backward()
    torch.testing.assert_close(f.a_u.grad, lin.parametrizations.weight.original.grad)
