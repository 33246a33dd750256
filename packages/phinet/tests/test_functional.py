import math

import pytest
import torch
import torch.nn.functional as F
from phinet import functional as PF


def test_negative_cosine_hand_computed():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    # cos = 0 and 1 -> mean 0.5 -> D = -0.5
    assert PF.negative_cosine(p, z).item() == pytest.approx(-0.5)


def test_phinet_loss_hand_computed():
    p1 = torch.tensor([[1.0, 0.0]])
    p2 = torch.tensor([[0.0, 1.0]])
    z1 = torch.tensor([[1.0, 1.0]])
    z2 = torch.tensor([[3.0, 0.0]])
    y1 = torch.tensor([[1.0, 2.0]])
    y2 = torch.tensor([[0.0, 0.0]])
    z0 = torch.tensor([[1.0, 0.0]])
    # Sim-1 = 1/2 D(p1, z2) + 1/2 D(p2, z1) = 1/2 (-1) + 1/2 (-1/sqrt 2)
    sim1 = 0.5 * -1.0 + 0.5 * -(1 / math.sqrt(2))
    # Sim-2 = 1/2 mean((y1 - z0)^2) + 1/2 mean((y2 - z0)^2) = 1/2 * (0 + 4)/2 + 1/2 * (1 + 0)/2
    sim2 = 0.5 * 2.0 + 0.5 * 0.5
    loss, s1, s2 = PF.phinet_loss(p1, p2, z1, z2, y1, y2, z0, sim2_weight=0.7)
    assert s1.item() == pytest.approx(sim1, rel=1e-6)
    assert s2.item() == pytest.approx(sim2, rel=1e-6)
    assert loss.item() == pytest.approx(sim1 + 0.7 * sim2, rel=1e-5)
    # cosine variant: 1/2 D(y1, z0) + 1/2 D(y2, z0) with y2 = 0 -> cos = 0 (normalize clamps)
    _, _, s2c = PF.phinet_loss(p1, p2, z1, z2, y1, y2, z0, kind="cos")
    assert s2c.item() == pytest.approx(0.5 * -(1 / math.sqrt(5)))


def test_losses_stop_gradient_on_targets():
    g = torch.Generator().manual_seed(0)
    t = [torch.randn(4, 3, generator=g, requires_grad=True) for _ in range(7)]
    p1, p2, z1, z2, y1, y2, z0 = t
    loss, _, _ = PF.phinet_loss(p1, p2, z1, z2, y1, y2, z0)
    loss.backward()
    for x in (p1, p2, y1, y2):
        assert x.grad is not None and x.grad.abs().sum() > 0
    for x in (z1, z2, z0):
        assert x.grad is None


def test_byol_loss_equals_normalised_mse():
    g = torch.Generator().manual_seed(1)
    p1, p2, t1, t2 = (torch.randn(5, 4, generator=g) for _ in range(4))
    ref = 0.5 * ((F.normalize(p1, dim=-1) - F.normalize(t2, dim=-1)) ** 2).sum(-1).mean() + \
        0.5 * ((F.normalize(p2, dim=-1) - F.normalize(t1, dim=-1)) ** 2).sum(-1).mean()
    assert PF.byol_loss(p1, p2, t1, t2).item() == pytest.approx(ref.item(), abs=1e-6)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        PF.negative_cosine(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="'mse' or 'cos'"):
        PF.sim2_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), kind="l1")


def test_ema_update_arithmetic_and_fast_matches_reference():
    g = torch.Generator().manual_seed(2)
    tgt = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    onl = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    expected = [0.99 * a + 0.01 * b for a, b in zip(tgt, onl)]
    a = [x.clone() for x in tgt]
    b = [x.clone() for x in tgt]
    PF.ema_update_reference(a, onl, 0.99)
    PF.ema_update_(b, onl, 0.99)
    for e, x, y in zip(expected, a, b):
        torch.testing.assert_close(x, e)
        torch.testing.assert_close(y, e)
    c = [x.clone() for x in tgt]
    PF.ema_update_(c, onl, 1.0)      # beta = 1: target frozen
    torch.testing.assert_close(c[0], tgt[0])
    PF.ema_update_(c, onl, 0.0)      # beta = 0: copy of the online weights
    torch.testing.assert_close(c[0], onl[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PF.ema_update_(c, onl, 1.5)


def test_collapse_std_healthy_and_collapsed():
    g = torch.Generator().manual_seed(3)
    d = 64
    z = torch.randn(4096, d, generator=g)
    assert PF.collapse_std(z).item() == pytest.approx(1 / math.sqrt(d), rel=0.05)
    collapsed = torch.randn(1, d, generator=g).expand(100, d) + 1e-6 * torch.randn(100, d, generator=g)
    assert PF.collapse_std(collapsed).item() < 1e-5
    with pytest.raises(ValueError, match="batch >= 2"):
        PF.collapse_std(torch.zeros(1, d))


def test_knn_fast_matches_reference():
    g = torch.Generator().manual_seed(4)
    bank, q = torch.randn(60, 8, generator=g), torch.randn(13, 8, generator=g)
    lab = torch.randint(0, 4, (60,), generator=g)
    fast = PF.knn_predict(q, bank, lab, 4, k=7, temperature=0.1, chunk=5)
    ref = PF.knn_predict_reference(q, bank, lab, 4, k=7, temperature=0.1)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_knn_accuracy_is_papercommons_and_separates_clusters():
    from papercommon.metrics import knn_accuracy

    assert PF.knn_accuracy is knn_accuracy
    g = torch.Generator().manual_seed(5)
    centers = torch.randn(3, 16, generator=g) * 5
    ytr, yte = torch.arange(90) % 3, torch.arange(30) % 3
    ftr = centers[ytr] + torch.randn(90, 16, generator=g)
    fte = centers[yte] + torch.randn(30, 16, generator=g)
    acc = PF.knn_accuracy(ftr, ytr, fte, yte, k=10, temperature=0.1)
    assert acc > 0.95
    # same vote as the package's knn_predict (cosine top-k, exp(sim / T) weights)
    pred = PF.knn_predict(fte, ftr, ytr, 3, k=10, temperature=0.1).argmax(-1)
    assert acc == pytest.approx((pred == yte).float().mean().item(), abs=1e-6)


def test_warmup_cosine_schedule():
    lr = [PF.warmup_cosine_lr(s, 100, 10, 0.1) for s in range(100)]
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1)
    assert lr[10] == pytest.approx(0.1)
    assert lr[55] == pytest.approx(0.05, abs=1e-3)
    assert lr[-1] < 1e-3
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))
