import math

import pytest
import torch
from flatquant import functional as FQ

G = torch.Generator().manual_seed(0)


@pytest.mark.parametrize("n, dims", [(576, (24, 24)), (1536, (32, 48)), (4096, (64, 64)), (11008, (86, 128)),
                                     (14336, (112, 128)), (384, (16, 24)), (64, (8, 8))])
def test_decompose_dim_matches_official(n, dims):
    assert FQ.get_decompose_dim(n) == dims


@pytest.mark.parametrize("n, msg", [(6, "2 \\(mod 4\\)"), (97, "prime"), (2, ">= 4"), (13, "1 x 13")])
def test_decompose_dim_errors(n, msg):
    with pytest.raises(ValueError, match=msg):
        FQ.get_decompose_dim(n)


@pytest.mark.parametrize("n1, n2", [(3, 5), (8, 8), (4, 6)])
def test_kronecker_matmul_equals_dense_kron(n1, n2):
    x = torch.randn(2, 7, n1 * n2, dtype=torch.float64, generator=G)
    p1, p2 = torch.randn(n1, n1, dtype=torch.float64, generator=G), torch.randn(n2, n2, dtype=torch.float64, generator=G)
    torch.testing.assert_close(FQ.kronecker_matmul(x, p1, p2), FQ.kronecker_matmul_reference(x, p1, p2))
    torch.testing.assert_close(FQ.kronecker_matmul(x, None, p2), FQ.kronecker_matmul_reference(x, None, p2))
    torch.testing.assert_close(FQ.kronecker_matmul(x, p1, None), FQ.kronecker_matmul_reference(x, p1, None))


def test_cayley_is_orthogonal():
    a = torch.randn(6, 6, dtype=torch.float64, generator=G)
    q = FQ.cayley(a)
    torch.testing.assert_close(q @ q.T, torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(FQ.cayley(torch.zeros(4, 4)), torch.eye(4))


@pytest.mark.parametrize("n", [2, 4, 8, 12, 20, 24, 48, 64, 72])
def test_hadamard(n):
    h = FQ.hadamard(n)
    assert h is not None and set(h.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(h @ h.T, n * torch.eye(n, dtype=torch.float64))
    r = FQ.random_hadamard(n, G, torch.float64)
    torch.testing.assert_close(r @ r.T, torch.eye(n, dtype=torch.float64))


def test_no_hadamard_of_order_9_falls_back_to_orthogonal():
    assert FQ.hadamard(9) is None
    r = FQ.random_hadamard(9, G, torch.float64)
    torch.testing.assert_close(r @ r.T, torch.eye(9, dtype=torch.float64))


def test_sym_quantization_by_hand():
    x = torch.tensor([[-1.0, 0.5, 0.25, 7.0]])
    q, s = FQ.quantize_sym(x, 4)
    assert s.item() == 1.0 and q.tolist() == [[-1, 0, 0, 7]]  # 0.5 rounds half to even
    torch.testing.assert_close(FQ.fake_quantize_sym(x, 4), q.float() * s)
    q, s = FQ.quantize_sym(x, 4, clip_max=0.5)  # LAC: max 7 -> 3.5, scale 0.5
    assert s.item() == 0.5 and q.tolist() == [[-2, 1, 0, 7]]


def test_asym_quantization():
    x = torch.randn(5, 32, generator=G)
    q, s, z = FQ.quantize_asym(x, 4)
    assert q.min() >= 0 and q.max() <= 15
    torch.testing.assert_close(FQ.fake_quantize_asym(x, 4), (q.float() - z) * s)
    assert (FQ.fake_quantize_asym(x, 8) - x).abs().max() < 0.02


def test_fake_quant_straight_through_gradient_reaches_clip():
    x = torch.randn(4, 16, generator=G, requires_grad=True)
    c = torch.tensor([0.9], requires_grad=True)
    FQ.fake_quantize_sym(x, 4, c, c).pow(2).sum().backward()
    assert x.grad is not None and c.grad is not None and c.grad.abs().item() > 0


def test_pack_unpack_roundtrip():
    q = torch.randint(-8, 8, (3, 10), generator=G).to(torch.int8)
    p = FQ.pack_int4(q)
    assert p.dtype == torch.uint8 and p.shape == (3, 5)
    assert torch.equal(FQ.unpack_int4(p), q)
    assert p[0, 0].item() == ((int(q[0, 0]) & 0xF) | ((int(q[0, 1]) & 0xF) << 4))
    with pytest.raises(ValueError, match="even"):
        FQ.pack_int4(q[:, :3])


def test_int_matmul_exact():
    a = torch.randint(-8, 8, (5, 64), generator=G).to(torch.int8)
    b = torch.randint(-8, 8, (7, 64), generator=G).to(torch.int8)
    assert torch.equal(FQ.int_matmul(a, b), (a.long() @ b.long().T).int())


def test_smooth_scales_direction():
    s = FQ.smooth_scales(torch.tensor([100.0, 1.0]), torch.tensor([1.0, 1.0]), 0.5)
    assert s[0] < s[1]  # big activation channel is shrunk
    torch.testing.assert_close(s, torch.tensor([0.1, 1.0]))


def test_gptq_beats_rtn_on_correlated_inputs():
    x = torch.randn(512, 32, generator=G) @ torch.randn(32, 32, generator=G)  # correlated features
    w = torch.randn(16, 32, generator=G)
    h = 2 * x.T.double() @ x.double() / len(x)
    q, scale, _ = FQ.gptq_quantize(w, h, 3)
    rtn = FQ.fake_quantize_sym(w, 3)
    err_gptq = ((x @ q.float().T - x @ w.T) ** 2).mean()
    err_rtn = ((x @ rtn.T - x @ w.T) ** 2).mean()
    assert err_gptq < err_rtn
    codes = q / scale
    torch.testing.assert_close(codes, codes.round())  # on its grid


def test_flatness():
    g = torch.randn(4096, 64, generator=G, dtype=torch.float64)
    assert abs(FQ.kurtosis(g) - 3) < 0.3
    spiky = g.clone()
    spiky[:, 0] *= 50
    f = FQ.flatness(spiky)
    assert f["kurtosis"] > 10 and f["top1_over_median"] > 20
    assert math.isclose(FQ.flatness(torch.ones(3, 8))["top1_over_median"], 1.0)
