import pytest
import torch
from torch import nn
from vnm_sparse.config import VNMConfig
from vnm_sparse.functional import check_vnm
from vnm_sparse.modules import (
    VNMLinear,
    attach_sr_ste_,
    collect_act_norms,
    compute_masks,
    finalize_,
    model_storage,
    pattern_storage_table,
    prunable_weights,
    prune_,
    refresh_masks_,
    sparsify_,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(40, 64)
        self.fc2 = nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def test_prunable_excludes_head():
    assert list(prunable_weights(Tiny())) == ["fc1", "fc2"]


def test_prune_and_sparsify_agree():
    torch.manual_seed(0)
    m = Tiny()
    cfg = VNMConfig(v=16, m=8)
    x = torch.randn(5, 40)
    ref = Tiny()
    ref.load_state_dict(m.state_dict())
    masks = prune_(ref, cfg)
    for mask in masks.values():
        check_vnm(mask, 16, 2, 8, exact_n=True)
    sparsify_(m, cfg)
    assert isinstance(m.fc1, VNMLinear) and isinstance(m.head, nn.Linear)
    torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.fc1.weight, ref.fc1.weight)
    st = model_storage(m)
    assert st["layers"] == 2 and st["stored"] < st["dense"] / 2


def test_vnmlinear_state_dict_round_trip():
    lin = nn.Linear(40, 32)
    a = VNMLinear.from_linear(lin, VNMConfig(v=16, m=5))
    b = VNMLinear.from_linear(nn.Linear(40, 32), VNMConfig(v=16, m=5))
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 40)
    assert torch.equal(a(x), b(x))
    assert "pattern=16:2:5" in repr(a)


def test_ria_needs_act_norms_and_collects_them():
    torch.manual_seed(0)
    m = Tiny()
    cfg = VNMConfig(v=16, m=8, score="ria")
    with pytest.raises(ValueError, match="act_norms"):
        compute_masks(m, cfg)
    x = torch.randn(20, 40)
    norms = collect_act_norms(m, [x[:10], x[10:]])
    torch.testing.assert_close(norms["fc1"], x.norm(dim=0))
    masks = compute_masks(m, cfg, norms)
    assert set(masks) == {"fc1", "fc2"}


def test_sr_ste_gradient_and_finalize():
    torch.manual_seed(0)
    m = Tiny()
    cfg = VNMConfig(v=16, m=8)
    masks = attach_sr_ste_(m, cfg, lam=0.5)
    x = torch.randn(4, 40)
    m(x).sum().backward()
    w = m.fc1.parametrizations.weight.original
    g = w.grad
    # pruned entries receive lam * W on top of the straight-through gradient
    m2 = Tiny()
    m2.load_state_dict({k.replace("parametrizations.", "").replace(".original", ""): v for k, v in m.state_dict().items()
                        if "mask" not in k})
    w2 = m2.fc1.weight
    with torch.no_grad():
        w2.mul_(masks["fc1"])
        m2.fc2.weight.mul_(masks["fc2"])
    m2(x).sum().backward()
    torch.testing.assert_close(g, w2.grad + 0.5 * (~masks["fc1"]) * w.detach())
    changed = refresh_masks_(m, cfg)
    assert 0.0 <= changed <= 1.0
    final = finalize_(m)
    assert isinstance(m.fc1.weight, nn.Parameter)
    check_vnm(m.fc1.weight != 0, 16, 2, 8)
    assert set(final) == {"fc1", "fc2"}


def test_mha_in_proj_is_prunable():
    mha = nn.MultiheadAttention(32, 4, batch_first=True)
    model = nn.Sequential()
    model.add_module("attn", mha)
    keys = list(prunable_weights(model))
    assert keys == ["attn.in_proj_weight", "attn.out_proj"]
    masks = prune_(model, VNMConfig(v=16, m=8))
    check_vnm(mha.in_proj_weight != 0, 16, 2, 8)
    assert masks["attn.in_proj_weight"].shape == (96, 32)


def test_storage_table():
    rows = pattern_storage_table((4096, 4096), [(64, 4), (64, 5), (64, 8)])
    ratios = [r["packed_ratio"] for r in rows]
    assert ratios[0] > ratios[1] > ratios[2]
    assert rows[2]["stored_ratio"] < 0.35


def _snapshot(model):
    return [(n, type(m).__name__) for n, m in model.named_modules()], {k: v.clone() for k, v in model.state_dict().items()}


def test_sparsify_all_or_nothing_bad_mask():
    """A bad mask for the second layer: the first layer must not stay converted (issue 20)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    mods, state = _snapshot(m)
    bad = {"2": torch.ones(64, 64, dtype=torch.bool)}  # dense: not V:N:M
    with pytest.raises(ValueError):
        sparsify_(m, VNMConfig(v=16, m=8), filter_fn=lambda n, mod: True, masks=bad)
    after_mods, after_state = _snapshot(m)
    assert after_mods == mods
    assert all(torch.equal(state[k], after_state[k]) for k in state)


def test_sparsify_all_or_nothing_injected_failure(monkeypatch):
    """A failure injected while swapping the second layer puts the first one back."""
    import vnm_sparse.modules as mods_mod

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    mods, state = _snapshot(m)
    first = m[0]
    real, calls = mods_mod._set_module, []

    def flaky(model, name, new):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        real(model, name, new)

    monkeypatch.setattr(mods_mod, "_set_module", flaky)
    with pytest.raises(RuntimeError, match="injected"):
        sparsify_(m, VNMConfig(v=16, m=8), filter_fn=lambda n, mod: True)
    assert m[0] is first
    assert _snapshot(m)[0] == mods
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
