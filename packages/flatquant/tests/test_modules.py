import torch
from flatquant import functional as FQ
from flatquant.modules import ActQuantizer, QuantLinear, SVDFactor, Transform, WeightQuantizer

G = torch.Generator().manual_seed(0)


def test_svd_factor_inverse_transpose_identity():
    f = SVDFactor(6, G).double()
    with torch.no_grad():
        f.a_u.normal_(generator=G)
        f.a_v.normal_(generator=G)
        f.sigma.uniform_(0.5, 2.0, generator=G)
    p, pit = f.matrix(), f.inverse_t()
    torch.testing.assert_close(p.T @ pit, torch.eye(6, dtype=torch.float64))  # P^T P^{-T} = I
    torch.testing.assert_close(pit, torch.linalg.inv(p).T)


def test_svd_factor_starts_orthogonal():
    p = SVDFactor(8, G).matrix().double()
    torch.testing.assert_close(p @ p.T, torch.eye(8, dtype=torch.float64), atol=1e-5, rtol=1e-5)


def test_transform_preserves_linear_output():
    t = Transform(48, kind="svd", diag=True, generator=G).double()  # 48 -> (6, 8)
    assert t.sizes == (6, 8)
    with torch.no_grad():
        t.diag.uniform_(0.5, 2.0, generator=G)
        for f in t.factors:
            f.sigma.uniform_(0.5, 2.0, generator=G)
    x = torch.randn(5, 48, dtype=torch.float64, generator=G)
    w = torch.randn(7, 48, dtype=torch.float64, generator=G)
    torch.testing.assert_close(t(x) @ t.transform_weight(w).T, x @ w.T)
    before = t(x)
    t.freeze()
    assert not any(p.requires_grad for p in t.parameters())
    torch.testing.assert_close(t(x), before)


def test_left_single_transform_acts_across_heads():
    t = Transform(3, kind="svd", kron=False, left=True, generator=G).double()
    x = torch.randn(2, 3 * 4, dtype=torch.float64, generator=G)
    p = t.matrices()[0]
    torch.testing.assert_close(t(x), FQ.kronecker_matmul_reference(x, p, None))


def test_transform_error_names_module():
    import pytest

    with pytest.raises(ValueError, match="layers.3.mlp.down_in.*prime"):
        Transform(97, name="layers.3.mlp.down_in")


def test_hadamard_transform_is_orthogonal():
    t = Transform(48, kind="hadamard", generator=G)
    x = torch.randn(3, 48, generator=G)
    torch.testing.assert_close(t(x).norm(dim=-1), x.norm(dim=-1), atol=1e-4, rtol=1e-4)


def test_lac_gradients():
    q = ActQuantizer(4, sym=True, lac=True)
    x = torch.randn(8, 32, generator=G)
    (q(x) - x).pow(2).mean().backward()
    assert q.clip_max.grad is not None and q.clip_max.grad.abs() > 0
    assert ActQuantizer(16, sym=True, lac=True)(x) is x


def test_quant_linear_deploy_matches_fake_quant():
    lin = torch.nn.Linear(32, 16)
    ql = QuantLinear(lin, WeightQuantizer(16, 4, sym=True, lwc=True))
    with torch.no_grad():
        ql.quantizer.clip_max.uniform_(1.0, 3.0, generator=G)
    x = torch.randn(5, 32, generator=G)
    xq, sx = FQ.quantize_sym(x, 4)
    fake = ql(xq.float() * sx)
    ql.deploy()
    assert ql.w_packed.dtype == torch.uint8 and ql.w_packed.shape == (16, 16)
    from flatquant.modules import QAct

    torch.testing.assert_close(ql(QAct(xq, sx)), fake, atol=1e-5, rtol=1e-5)
