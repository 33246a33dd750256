import math

import numpy as np
import pytest
import torch
from polyak_clip import functional as Fn
from polyak_clip.optim import AdaSPS, ClippedSGD, DecSPS, DoG, InexactPolyak, Polyak


def quadratic(A=None, b=None, c=0.0):
    A = torch.diag(torch.tensor([1.0, 4.0, 9.0])) if A is None else A
    b = torch.tensor([1.0, -2.0, 0.5]) if b is None else b
    x = torch.nn.Parameter(torch.tensor([3.0, -1.0, 2.0]))

    def f():
        return 0.5 * x @ A @ x - b @ x + c

    return x, f, A, b


def make_closure(opt, f):
    def closure():
        opt.zero_grad()
        loss = f()
        loss.backward()
        return loss

    return closure


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
    g = opt.state["global"]["grad_norm"]
    assert opt.last_step_size == pytest.approx(1e-6 * (1 + x0_norm) / g, rel=1e-5)


def test_clipped_sgd_clips():
    x, f, A, b = quadratic()
    g0 = (A @ x.detach() - b).norm().item()
    opt = ClippedSGD([x], lr=0.5, clip=1.0)
    opt.step(make_closure(opt, f))
    assert opt.last_step_size == pytest.approx(0.5 / g0)


def test_bad_input():
    x, f, *_ = quadratic()
    with pytest.raises(ValueError, match="T .* must be an integer >= 1, got 0"):
        InexactPolyak([x], T=0)
    opt = InexactPolyak([x], T=10)
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        opt.step(make_closure(opt, lambda: f() * float("nan")))
    before = x.detach().clone()
    with pytest.raises(FloatingPointError, match="gradient norm"):
        opt.step(make_closure(opt, lambda: (x * torch.tensor([float("inf"), 1, 1])).sum().clamp(max=1.0)))
    assert torch.equal(x.detach(), before)  # nothing moved
    with pytest.warns(RuntimeWarning, match="below the lower bound"):
        opt2 = InexactPolyak([x], T=10, lower_bound=1e6)
        opt2.step(make_closure(opt2, f))
    assert torch.equal(x.detach(), before)
    fresh = InexactPolyak([torch.nn.Parameter(torch.ones(2))], T=10)
    with pytest.raises(RuntimeError, match="no parameter has a gradient"):
        fresh.step(lambda: torch.tensor(1.0))


def test_vanishing_gradient_takes_no_step():
    x = torch.nn.Parameter(torch.zeros(3))
    opt = InexactPolyak([x], T=10)
    opt.step(make_closure(opt, lambda: (x**2).sum() + 1.0))
    assert opt.last_step_size == 0.0 and torch.equal(x.detach(), torch.zeros(3))


def test_state_dict_roundtrip():
    x, f, *_ = quadratic()
    opt = AdaSPS([x])
    for _ in range(3):
        opt.step(make_closure(opt, f))
    opt2 = AdaSPS([x])
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state["global"]["gap_sum"] == opt.state["global"]["gap_sum"]


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
