import copy

import pytest
import torch
from phinet import functional as PF
from phinet.config import MODELS, ModelConfig
from phinet.models import BYOL, PhiNet, SimSiam, XPhiNet, build_model, ema_update_module_


def small(model, **kw):
    return ModelConfig.small(model, image_size=8, cnn_width=8, proj_dim=16, proj_hidden=32, pred_hidden=8, **kw)


def views(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(b, 1, 8, 8, generator=g) for _ in range(3))


@pytest.mark.parametrize("name", MODELS)
def test_every_model_runs_and_backprops(name):
    torch.manual_seed(0)
    m = build_model(small(name))
    out = m(*views())
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.z1.shape == (6, 16) and not out.z1.requires_grad
    out.loss.backward()
    assert m.backbone.features[0][0].weight.grad is not None
    m.update_target()


def test_build_model_types():
    assert type(build_model(small("simsiam"))) is SimSiam
    assert type(build_model(small("phinet"))) is PhiNet
    assert type(build_model(small("xphinet"))) is XPhiNet
    assert type(build_model(small("byol"))) is BYOL
    assert build_model(small("phinet_cos")).sim2_kind == "cos"


@pytest.mark.parametrize("name,slow", [("phinet", False), ("xphinet", True)])
def test_loss_equals_the_official_formula(name, slow):
    """The official PhiNet / PhiNetMom forward, written out here with torch.nn primitives only (not with
    phinet.functional): L = D(p1, z2)/2 + D(p2, z1)/2 + lambda (MSE(y1, z_ori)/2 + MSE(y2, z_ori)/2), with
    D(p, z) = -cosine_similarity(p, z.detach()).mean() and nn.MSELoss on unnormalised vectors."""
    torch.manual_seed(0)
    m = build_model(small(name, sim2_weight=0.5))
    x1, x2, x0 = views()
    with torch.no_grad():
        z1, z2 = m.encoder(x1), m.encoder(x2)        # train-mode BN: batch statistics, deterministic
        p1, p2 = m.h(z1), m.h(z2)
        y1, y2 = m.g(p1), m.g(p2)
        z_ori = (m.encoder_ema if slow else m.encoder)(x0)
        cos = torch.nn.functional.cosine_similarity
        mse = torch.nn.MSELoss()
        sim1 = -cos(p1, z2, dim=-1).mean() / 2 - cos(p2, z1, dim=-1).mean() / 2
        sim2 = mse(y1, z_ori) / 2 + mse(y2, z_ori) / 2
    out = m(x1, x2, x0)
    torch.testing.assert_close(out.sim1, sim1)
    torch.testing.assert_close(out.sim2, sim2)
    torch.testing.assert_close(out.loss.detach(), sim1 + 0.5 * sim2)


def test_ema_step_equals_the_official_update():
    """Official ``ema_model``: theta_slow <- m * theta_slow + (1 - m) * theta, parameter by parameter."""
    torch.manual_seed(0)
    m = build_model(small("xphinet", beta=0.9))
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(*views()).loss.backward()
    opt.step()
    expect = [0.9 * ps.detach().clone() + 0.1 * p.detach().clone()
              for ps, p in zip(m.encoder_ema.parameters(), m.encoder.parameters(), strict=True)]
    m.update_target()
    for got, want in zip(m.encoder_ema.parameters(), expect, strict=True):
        torch.testing.assert_close(got, want)


def test_no_gradient_reaches_the_stop_gradient_branches():
    """The original-view target must carry no gradient: with Sim-1 switched off, PhiNet's gradient on the
    encoder must equal the gradient of Sim-2 computed against a frozen copy of the target."""
    torch.manual_seed(0)
    m = build_model(small("phinet"))
    x1, x2, x0 = views()
    z0 = m.target_original(x0)
    assert not z0.requires_grad
    # X-PhiNet / BYOL: the EMA encoder gets no gradient at all
    for name in ("xphinet", "byol"):
        mm = build_model(small(name))
        mm(*views()).loss.backward()
        assert all(p.grad is None for p in mm.encoder_ema.parameters())
        assert all(not p.requires_grad for p in mm.encoder_ema.parameters())
    # Sim-1: gradient through z2 must be blocked -> d loss / d z2 only via p2 = h(z2)
    z1 = m.encoder(x1).detach().requires_grad_(True)
    z2 = m.encoder(x2).detach().requires_grad_(True)
    PF.simsiam_loss(z1 * 0 + z1, z2 * 0 + z2, z1, z2)  # identity "predictor": p = z
    loss = PF.negative_cosine(z1, z2.detach())
    loss.backward()
    assert z2.grad is None and z1.grad is not None


def test_xphinet_target_is_the_ema_encoder_and_update_is_ema():
    torch.manual_seed(0)
    m = build_model(small("xphinet", beta=0.9))
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(*views()).loss.backward()
    opt.step()
    before = copy.deepcopy(m.encoder_ema.state_dict())     # after the forward (BN statistics moved)
    online = m.encoder.state_dict()
    m.update_target()
    after = m.encoder_ema.state_dict()
    for k, v in after.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * online[k])
        else:
            assert torch.equal(v, online[k])
    assert any(not torch.equal(before[k], after[k]) for k in after)


def test_ema_module_beta_one_freezes():
    a, b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    w = a.weight.clone()
    ema_update_module_(a, b, 1.0)
    torch.testing.assert_close(a.weight, w)


def test_missing_or_bad_views_raise():
    m = build_model(small("phinet"))
    x1, x2, x0 = views()
    with pytest.raises(ValueError, match="original view"):
        m(x1, x2)
    with pytest.raises(ValueError, match="same shape"):
        m(x1, x2[:3], x0)
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 8, 8\)"):
        m(torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match="BatchNorm cannot train on a batch of 1"):
        m(x1[:1], x2[:1], x0[:1])


def test_determinism_under_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = build_model(small("xphinet"))
        outs.append(m(*views(seed=7)).loss.item())
    assert outs[0] == outs[1]
