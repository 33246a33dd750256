import copy
import math

import numpy as np
import pytest
import torch
from polyak_clip import functional as Fn
from polyak_clip.optim import OPTIMIZERS, AdaSPS, ClippedSGD, DecSPS, DoG, InexactPolyak, Polyak
from polyak_clip.reference import ReferenceOptimizer


def quadratic(A=None, b=None, c=0.0):
    A = torch.diag(torch.tensor([1.0, 4.0, 9.0])) if A is None else A
    b = torch.tensor([1.0, -2.0, 0.5]) if b is None else b
    x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0]))

    def f():
        return 0.5 * x @ A @ x - b @ x + c

    return x, f, A, b


def make_closure(opt, f, params=None):
    def closure():
        if opt is not None:
            opt.zero_grad()
        else:
            for p in params:
                p.grad = None
        loss = f()
        loss.backward()
        return loss

    return closure


ALL = [InexactPolyak, Polyak, DecSPS, AdaSPS, DoG, ClippedSGD]


def make(cls, params):
    return cls(params, T=20) if cls is InexactPolyak else cls(params, lr=0.1) if cls is ClippedSGD else cls(params)


def test_one_step_equals_formula():
    x, f, A, b = quadratic(c=10.0)
    x0 = x.detach().clone()
    opt = InexactPolyak([x], T=100, lower_bound=1.0)
    loss = opt.step(make_closure(opt, f))
    g = A @ x0 - b
    gamma = (loss.item() - 1.0) / (10 * g.dot(g).item())
    assert torch.allclose(x.detach(), x0 - gamma * g, atol=1e-6)
    assert opt.last_step_size == pytest.approx(gamma)


def test_recovers_polyak_with_T1_and_exact_bound():
    x1, f1, *_ = quadratic(c=5.0)
    x2, f2, *_ = quadratic(c=5.0)
    A, b = torch.diag(torch.tensor([1.0, 4.0, 9.0])), torch.tensor([1.0, -2.0, 0.5])
    x_star = torch.linalg.solve(A, b)
    f_star = (0.5 * x_star @ A @ x_star - b @ x_star + 5.0).item()
    ip, pk = InexactPolyak([x1], T=1, lower_bound=f_star), Polyak([x2], f_star=f_star)
    for _ in range(5):
        ip.step(make_closure(ip, f1))
        pk.step(make_closure(pk, f2))
    assert torch.allclose(x1, x2)


def test_converges_on_quadratic_and_restores_best():
    x, f, A, b = quadratic()
    x_star = torch.linalg.solve(A, b)
    f_star = (0.5 * x_star @ A @ x_star - b @ x_star).item()
    T = 500
    opt = InexactPolyak([x], T=T, lower_bound=f_star - 1.0)  # an inexact bound: sigma^2 = 1
    for _ in range(T):
        opt.step(make_closure(opt, f))
    best = opt.restore_best()
    assert best - f_star < 1e-2
    assert f().item() == pytest.approx(best)


@pytest.mark.parametrize("cls", [InexactPolyak, Polyak, DecSPS])
def test_invariant_to_loss_scaling(cls):
    # f and ||g||^2 scale by c and c^2, so the step gamma * g is unchanged (lower bound 0).
    kw = {"T": 50} if cls is InexactPolyak else {}
    xs = []
    for scale in (1.0, 37.0):
        x, f, *_ = quadratic(c=3.0)
        opt = cls([x], **kw)
        for _ in range(10):
            opt.step(make_closure(opt, lambda f=f, scale=scale: scale * f()))
        xs.append(x.detach().clone())
    assert torch.allclose(xs[0], xs[1], atol=1e-5)


def test_adasps_first_step_scales_as_inverse_sqrt():
    # gamma_0 = (f - l*) / (c_p ||g||^2 sqrt(f - l*)): scaling f by c scales the move by c^(-1/2).
    moves = []
    for scale in (1.0, 16.0):
        x, f, *_ = quadratic(c=3.0)
        x0 = x.detach().clone()
        opt = AdaSPS([x])
        opt.step(make_closure(opt, lambda f=f, scale=scale: scale * f()))
        moves.append((x.detach() - x0).norm().item())
    assert moves[1] / moves[0] == pytest.approx(0.25, rel=1e-4)


def test_global_norm_over_groups():
    a, b = torch.nn.Parameter(torch.tensor([3.0])), torch.nn.Parameter(torch.tensor([4.0]))
    opt = InexactPolyak([{"params": [a]}, {"params": [b]}], T=4)
    loss = opt.step(make_closure(opt, lambda: 0.5 * (a**2 + b**2).sum()))
    gamma = loss.item() / (2 * 25.0)  # ||g||^2 = 9 + 16 over both groups
    assert opt.last_step_size == pytest.approx(gamma)
    assert a.item() == pytest.approx(3 - gamma * 3)


def test_functional_formulas():
    assert Fn.decsps_step(2.0, 0.0, 1.0, c_t=2.0, c_prev=1.0, gamma_prev=10.0) == pytest.approx(1.0)
    assert Fn.decsps_step(2.0, 0.0, 1.0, c_t=2.0, c_prev=1.0, gamma_prev=0.5) == pytest.approx(0.25)
    assert Fn.adasps_step(4.0, 0.0, 2.0, loss_gap_sum=16.0, gamma_prev=math.inf) == pytest.approx(0.5)
    assert Fn.dog_step(2.0, 16.0) == pytest.approx(0.5)
    assert Fn.clipped_step(0.1, 50.0, 5.0) == pytest.approx(0.01)
    # Proposition 3's function: derivative matches autograd
    x = torch.tensor(1.7, requires_grad=True)
    Fn.synthetic_f(x, 1.0, 10.0).backward()
    assert x.grad.item() == pytest.approx(Fn.synthetic_grad(1.7, 1.0, 10.0))


def test_dog_first_step_is_reps():
    x, f, *_ = quadratic()
    x0_norm = x.detach().norm().item()
    opt = DoG([x])
    opt.step(make_closure(opt, f))
    g = opt.diagnostics()["grad_sq"] ** 0.5
    assert opt.last_step_size == pytest.approx(1e-6 * (1 + x0_norm) / g, rel=1e-5)


def test_clipped_sgd_clips():
    x, f, A, b = quadratic()
    g0 = (A @ x.detach() - b).norm().item()
    opt = ClippedSGD([x], lr=0.5, clip=1.0)
    opt.step(make_closure(opt, f))
    assert opt.last_step_size == pytest.approx(0.5 / g0)


def test_bad_input():
    x, f, *_ = quadratic()
    with pytest.raises(ValueError, match="T: expected an int >= 1, got 0"):
        InexactPolyak([x], T=0)
    opt = InexactPolyak([x], T=10)
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    fresh = InexactPolyak([torch.nn.Parameter(torch.ones(2))], T=10)
    with pytest.raises(RuntimeError, match="no parameter has a gradient"):
        fresh.step(lambda: torch.tensor(1.0))


@pytest.mark.parametrize("cls", ALL)
def test_nonfinite_loss_or_gradient_moves_nothing(cls):
    x, f, *_ = quadratic()
    opt = make(cls, [x])
    before = x.detach().clone()
    opt.step(make_closure(opt, lambda: f() * float("nan")))
    opt.step(make_closure(opt, lambda: (x * torch.tensor([float("inf"), 1, 1])).sum().clamp(max=1.0)))
    assert torch.equal(x.detach(), before)  # nothing moved
    assert opt.diagnostics()["nonfinite_steps"] == 2
    opt.step(make_closure(opt, f))  # and the rule still works afterwards
    assert torch.isfinite(x).all() and not torch.equal(x.detach(), before)


def test_loss_below_bound_takes_no_step_and_is_counted():
    x, f, *_ = quadratic()
    before = x.detach().clone()
    opt = InexactPolyak([x], T=10, lower_bound=1e6)
    opt.step(make_closure(opt, f))
    assert torch.equal(x.detach(), before) and opt.diagnostics()["below_bound_steps"] == 1


def test_vanishing_gradient_takes_no_step_but_tracks_best():
    x = torch.nn.Parameter(torch.zeros(3))
    opt = InexactPolyak([x], T=10)
    opt.step(make_closure(opt, lambda: (x**2).sum() + 1.0))
    assert opt.last_step_size == 0.0 and torch.equal(x.detach(), torch.zeros(3))
    assert opt.restore_best() == 1.0  # the old code raised here: the best was only tracked on moving steps


@pytest.mark.parametrize("host_flags", [True, False], ids=["cpu-path", "device-path"])
def test_best_iterate_is_the_argmin_of_the_losses_seen(host_flags):
    x, f, *_ = quadratic()
    opt = InexactPolyak([x], T=1, lower_bound=-20.0)  # a bound far too low: the loss jumps up and down
    opt._host_flags = host_flags
    seen = []
    for _ in range(12):
        seen.append((f().item(), x.detach().clone()))
        opt.step(make_closure(opt, f))
    best_f, best_x = min(seen, key=lambda t: t[0])
    assert opt.restore_best() == pytest.approx(best_f)
    assert torch.equal(x.detach(), best_x)


def test_state_dict_roundtrip():
    x, f, *_ = quadratic()
    opt = AdaSPS([x])
    for _ in range(3):
        opt.step(make_closure(opt, f))
    opt2 = AdaSPS([x])
    opt2.load_state_dict(opt.state_dict())
    assert opt2.diagnostics() == opt.diagnostics()
    opt2.step(make_closure(opt2, f))  # the loaded state is a copy: stepping opt2 leaves opt alone
    assert opt2.diagnostics()["step"] == 4 and opt.diagnostics()["step"] == 3


def test_loading_another_optimizers_state_is_a_clear_error():
    x, f, *_ = quadratic()
    sgd = torch.optim.SGD([x], lr=0.1)
    ips = InexactPolyak([x], T=10)
    with pytest.raises(ValueError, match="expected a state_dict saved by InexactPolyak, got one saved by another"):
        ips.load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="saved by InexactPolyak, got one saved by DecSPS"):
        ips.load_state_dict(DecSPS([x]).state_dict())
    ips.step(make_closure(ips, f))  # still usable (the old code: KeyError 'track_best' here)


def test_lr_scheduler_scales_the_step():
    x1, f1, *_ = quadratic()
    x2, f2, *_ = quadratic()
    opt1 = InexactPolyak([x1], T=10)
    sched = torch.optim.lr_scheduler.StepLR(opt1, step_size=1, gamma=0.5)  # the old code: KeyError 'lr'
    ref = ReferenceOptimizer("inexact_polyak", [([x2], 1.0)], T=10)
    for _ in range(4):
        opt1.step(make_closure(opt1, f1))
        ref.step(make_closure(None, f2, [x2]))
        sched.step()
        ref.groups = [([x2], ref.groups[0][1] * 0.5)]
    torch.testing.assert_close(x1.detach(), x2.detach())


def test_per_group_hyperparameters_rejected_unless_lr():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="T must be the same in every parameter group.*got 10 in group 0 and 5"):
        InexactPolyak([{"params": [a]}, {"params": [b], "T": 5}], T=10)
    with pytest.raises(ValueError, match="clip must be the same"):
        ClippedSGD([{"params": [a]}, {"params": [b], "clip": 1.0}], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        InexactPolyak([{"params": [a]}, {"params": [b], "lr": float("nan")}], T=10)
    opt = ClippedSGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    opt.step(make_closure(opt, lambda: (a + b).sum()))
    assert a.detach().tolist() == pytest.approx([0.9, 0.9]) and b.detach().tolist() == pytest.approx([0.99, 0.99])


@pytest.mark.parametrize("bad", [1e39, 1e-50])
def test_values_a_float32_cannot_hold_are_rejected(bad):
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"^eps: expected 0 or a value a torch.float32 can hold"):
        DoG([a], eps=bad)
    with pytest.raises(ValueError, match=r"^param_groups\[1\]\['lr'\]: expected"):
        ClippedSGD([{"params": [a]}, {"params": [b], "lr": bad}], lr=0.1)
    opt = ClippedSGD([a], lr=0.1)
    with pytest.raises(ValueError, match=r"^param_groups\[1\]\['lr'\]: expected"):
        opt.add_param_group({"params": [b], "lr": bad})
    assert len(opt.param_groups) == 1  # all-or-nothing
    DoG([torch.nn.Parameter(torch.ones(2, dtype=torch.float64))], eps=1e-50)  # a float64 holds it


BAD = [
    (Polyak, {"f_star": float("nan")}, "f_star"), (Polyak, {"f_star": -math.inf}, "f_star"),
    (Polyak, {"max_step": float("nan")}, "max_step"),
    (DecSPS, {"lower_bound": float("nan")}, "lower_bound"), (DecSPS, {"c0": float("nan")}, "c0"),
    (DecSPS, {"gamma_b": math.inf}, "gamma_b"), (AdaSPS, {"lower_bound": float("nan")}, "lower_bound"),
    (AdaSPS, {"c_p": float("nan")}, "c_p"), (DoG, {"reps_rel": float("nan")}, "reps_rel"),
    (ClippedSGD, {"lr": float("nan")}, "lr"), (ClippedSGD, {"lr": math.inf}, "lr"),
    (ClippedSGD, {"lr": 0.1, "clip": float("nan")}, "clip"), (InexactPolyak, {"T": 10, "lower_bound": math.inf}, "lower_bound"),
    (InexactPolyak, {"T": 10.0}, "T"), (InexactPolyak, {"T": 10, "eps": float("nan")}, "eps"),
    (InexactPolyak, {"T": 10, "lr": -1.0}, "lr"),
]


@pytest.mark.parametrize("cls,kw,name", BAD, ids=[f"{c.__name__}-{n}-{list(k.values())[-1]}" for c, k, n in BAD])
def test_nonfinite_hyperparameters_are_rejected(cls, kw, name):
    x = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        cls([x], **kw)


CONFIGS = [("inexact_polyak", {"T": 50}), ("inexact_polyak", {"T": 4, "lower_bound": -0.5, "track_best": False}),
           ("polyak", {}), ("polyak", {"f_star": 0.2, "max_step": 0.05}), ("decsps", {"c0": 2.0}), ("adasps", {"c_p": 0.7}),
           ("dog", {}), ("clipped_sgd", {"clip": 0.5}), ("clipped_sgd", {})]


@pytest.mark.parametrize("host_flags", [True, False], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("method,hp", CONFIGS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CONFIGS)])
def test_fast_path_matches_reference(method, hp, host_flags):
    torch.manual_seed(0)
    # float64, so that 25 steps of a chaotic trajectory compare the logic, not the rounding
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    ref_net = copy.deepcopy(net)
    x, y = torch.randn(32, 5, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    lr0, lr1 = (0.1, 0.03) if method == "clipped_sgd" else (1.0, 0.5)
    groups = lambda m: [list(m[0].parameters()), list(m[2].parameters())]  # noqa: E731
    g = groups(net)
    opt = OPTIMIZERS[method]([{"params": g[0], "lr": lr0}, {"params": g[1], "lr": lr1}], **hp, lr=lr0)
    opt._host_flags = host_flags
    ref = ReferenceOptimizer(method, list(zip(groups(ref_net), (lr0, lr1))), **hp)
    loss = lambda m: torch.nn.functional.mse_loss(m(x), y)  # noqa: E731
    for _ in range(25):
        f_fast = opt.step(make_closure(opt, lambda: loss(net))).item()
        f_ref = ref.step(make_closure(None, lambda: loss(ref_net), ref.params()))
        assert f_fast == pytest.approx(f_ref, rel=1e-7)
        assert opt.last_step_size == pytest.approx(lr0 * ref.gamma, rel=1e-7, abs=1e-15)
    for p, q in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9)
    if method == "inexact_polyak" and hp.get("track_best", True):
        assert opt.restore_best() == pytest.approx(ref.best_loss, rel=1e-12)
        for p, q in zip(net.parameters(), ref.best):
            torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method,hp", CONFIGS[:1] + CONFIGS[2:], ids=[m for m, _ in CONFIGS[:1] + CONFIGS[2:]])
def test_fast_path_matches_reference_in_float32(method, hp):
    torch.manual_seed(1)
    w = torch.nn.Parameter(torch.randn(64, 16))
    w_ref = torch.nn.Parameter(w.detach().clone())
    x = torch.randn(128, 64)
    opt = OPTIMIZERS[method]([w], lr=0.1, **hp) if method == "clipped_sgd" else OPTIMIZERS[method]([w], **hp)
    ref = ReferenceOptimizer(method, [([w_ref], 0.1 if method == "clipped_sgd" else 1.0)], **hp)
    for _ in range(3):
        opt.step(make_closure(opt, lambda: (x @ w).square().mean()))
        ref.step(make_closure(None, lambda: (x @ w_ref).square().mean(), [w_ref]))
    torch.testing.assert_close(w.detach(), w_ref.detach())  # fp32 tolerances


@pytest.mark.parametrize("host_flags", [True, False], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("cls", ALL)
def test_step_never_syncs_with_the_host(cls, host_flags, monkeypatch):
    x, f, *_ = quadratic()
    opt = make(cls, [x])
    opt.step(make_closure(opt, f))  # first step (lazy state) included below too

    def sync(*a, **k):
        raise AssertionError("host sync in step")

    opt2 = make(cls, [quadratic()[0]])
    opt._host_flags = opt2._host_flags = host_flags  # False: the accelerator path, run on the CPU
    reads = []
    real_bool = torch.Tensor.__bool__
    for name in ("item", "__float__", "__int__", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: reads.append(t.device.type) or real_bool(t))
    for o in (opt, opt2):
        p = o.param_groups[0]["params"][0]
        o.step(make_closure(o, lambda p=p: (p**2).sum() + 1.0))
    # only the finiteness flag (and IPS's "loss improved" flag), and only because they live on the host
    assert reads == (["cpu", "cpu"] * (2 if cls is InexactPolyak else 1) if host_flags else [])


@pytest.mark.parametrize("method", ["inexact_polyak", "decsps", "adasps"])
def test_optimizer_matches_vectorised_synthetic_run(method):
    # the torch optimizers and the numpy grid runner of synthetic.py implement the same rules independently
    from polyak_clip.synthetic import SyntheticConfig, run_method

    cfg = SyntheticConfig(iters_adaptive=60)
    ref = run_method(method, 10.0, cfg)["gaps"][:, 0]
    x = torch.nn.Parameter(torch.tensor(cfg.x0, dtype=torch.float64))
    cls = {"inexact_polyak": lambda p: InexactPolyak(p, T=60), "decsps": DecSPS, "adasps": AdaSPS}[method]
    opt = cls([x])
    f = lambda: Fn.synthetic_f(x, cfg.L0, 10.0, cfg.f_star)  # noqa: E731
    gaps = [opt.step(make_closure(opt, f)).item() - cfg.f_star for _ in range(60)]
    np.testing.assert_allclose(gaps, ref[:60], rtol=1e-9, atol=1e-12)


def test_dog_distance_is_running_max():
    x, f, *_ = quadratic()
    x0 = x.detach().clone()
    opt = DoG([x])
    dists = []
    for _ in range(5):
        opt.step(make_closure(opt, f))
        dists.append((x.detach() - x0).norm().item())
    assert opt.state["global"]["max_dist"] == pytest.approx(max(dists + [1e-6 * (1 + x0.norm().item())]))
