"""Pure math of LiD-FL: votes, the pruning rule, Byzantine updates and local SGD with momentum.

Notation: n clients, b of them malicious (``byz`` mask), m = k + 1 candidate models during a vote,
d parameters. ``losses (n, m)`` holds every client's validation loss of every candidate.

Paper: Liu et al., "LiD-FL: Towards List-Decodable Federated Learning", AAAI 2025, Algorithm 1;
official code ``Algorithms/ListDec/globalListDec.py`` (``vote_phase``, ``byzantine_vote``) and
``localListDec.py`` (``train``, ``grad_attack``, ``gen_corp_update``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

# -- voting --------------------------------------------------------------------------------------------


def cast_votes(losses: Tensor, byzantine: Tensor, mode: str = "worst",
               generator: torch.Generator | None = None) -> Tensor:
    """Each client's vote: honest -> argmin of its loss, malicious -> argmax (``"worst"``) or a uniform
    choice among all models except its argmin (``"random"``).

    Args:
        losses: (n, m) validation losses.
        byzantine: (n,) bool mask of malicious clients.
        mode: ``"worst"`` or ``"random"`` (official ``--vote_at``).
        generator: RNG for ``"random"``.

    Returns:
        (n,) long: the index each client votes for.
    """
    if losses.ndim != 2 or losses.shape[1] < 1:
        raise ValueError(f"losses: expected shape (n_clients, n_models>=1), given {tuple(losses.shape)}")
    if byzantine.shape != losses.shape[:1]:
        raise ValueError(f"byzantine: expected shape ({losses.shape[0]},), given {tuple(byzantine.shape)}")
    losses = torch.nan_to_num(losses, nan=9999.0, posinf=9999.0)  # official MAX_LOSS for inf/nan
    best = losses.argmin(1)
    if mode == "worst":
        bad = losses.argmax(1)
    elif mode == "random":
        m = losses.shape[1]
        if m < 2:
            bad = best
        else:  # uniform over the m - 1 models other than the client's best
            r = torch.randint(0, m - 1, (losses.shape[0],), generator=generator, device=losses.device)
            bad = r + (r >= best).long()
    else:
        raise ValueError(f"byzantine vote mode: expected 'worst' or 'random', given {mode!r}")
    return torch.where(byzantine.to(losses.device), bad, best)


def tally(votes: Tensor, n_models: int) -> Tensor:
    """Votes per model, (n_models,) long."""
    if votes.numel() and (int(votes.min()) < 0 or int(votes.max()) >= n_models):
        raise ValueError(f"votes: expected indices in [0, {n_models}), given range "
                         f"[{int(votes.min())}, {int(votes.max())}]")
    return torch.bincount(votes.long().cpu(), minlength=n_models)


def removal_index(counts: Sequence[int], selections: Sequence[int]) -> int:
    """The model LiD-FL removes: the least-voted one; among tied models the one broadcast most often
    (largest ``paras_t``), and among those the first (lowest index), exactly as the official
    ``keys_with_min_vote[np.argmax(temp)]``.

    Args:
        counts: votes per model (length m).
        selections: how often each model was chosen for training (length m; the newest model has 0).
    """
    counts, selections = list(map(int, counts)), list(map(int, selections))
    if len(counts) != len(selections) or not counts:
        raise ValueError(f"counts and selections: expected equal non-zero lengths, given {len(counts)} and "
                         f"{len(selections)}")
    low = min(counts)
    tied = [i for i, c in enumerate(counts) if c == low]
    best_sel = max(selections[i] for i in tied)
    return next(i for i in tied if selections[i] == best_sel)


def survival_margin(n_clients: int, n_byzantine: int, list_size: int) -> int:
    """h*k - b: positive iff the model every honest client prefers can never be removed.

    Removing it needs each of the other k candidates to get at least its h = n - b votes, i.e.
    n >= (k + 1) h, i.e. b >= k h. Paper: Sec. 4, why k = floor(1/(1-alpha)) suffices.
    """
    h = n_clients - n_byzantine
    return h * list_size - n_byzantine


# -- Byzantine updates (update-level attacks) ---------------------------------------------------------


def alie_z(n: int, m: int) -> float:
    """Baruch et al.'s z for ALIE: s = floor(n/2 + 1) - m, p = (n - m - s) / (n - m), z = Phi^-1(p).

    Raises when undefined (p outside (0, 1), which happens under a malicious majority).
    """
    s = int(n / 2 + 1) - m
    p = (n - m - s) / (n - m)
    if not 0.0 < p < 1.0:
        raise ValueError(f"ALIE z: Baruch et al.'s formula needs 0 < p < 1, given n={n}, m={m} -> p={p:.3f}; "
                         "set AttackConfig(alie_z=...) explicitly (official default 20)")
    return math.sqrt(2.0) * torch.erfinv(torch.tensor(2 * p - 1, dtype=torch.float64)).item()


def byzantine_update(attack: str, honest: Tensor, n_byzantine: int, n_clients: int, *,
                     ipm_epsilon: float = 1.1, alie_z: float = 20.0, single_model: bool = False,
                     mask: Tensor | None = None) -> Tensor:
    """The update a malicious client sends under an update-level attack, from the honest updates.

    Args:
        attack: ``"ipm"`` (official "empire"): -eps * mean * n_h / n_b; ``"alie"`` (official "little"):
            mean - z * std (population std); ``"omniscient"``: -mean for LiD-FL, or
            -mean * (n + n_h) / n_b for single-model aggregation so that the plain mean is -mean.
        honest: (..., n_h, d) honest updates, or (..., n, d) with ``mask`` marking the honest rows.
        n_byzantine, n_clients: b and n (the n_h used in the scales is n - b).
        single_model: the SigMdl scaling of ``omniscient``.
        mask: optional (..., n) bool mask of honest rows (batched runs with different honest sets).

    Returns:
        (..., d) the malicious update.
    """
    if n_byzantine < 1:
        raise ValueError(f"byzantine_update: expected n_byzantine >= 1, given {n_byzantine}")
    n_h = n_clients - n_byzantine
    if mask is None:
        mean = honest.mean(-2)
        std = honest.std(-2, correction=0)
    else:
        w = mask.to(honest.dtype).unsqueeze(-1)  # (..., n, 1)
        cnt = w.sum(-2).clamp_min(1)
        mean = (honest * w).sum(-2) / cnt
        std = (((honest - mean.unsqueeze(-2)) ** 2 * w).sum(-2) / cnt).sqrt()
    if attack == "ipm":
        return mean * (-ipm_epsilon) * (n_h / n_byzantine)
    if attack == "alie":
        return mean - alie_z * std
    if attack == "omniscient":
        return -mean * ((n_clients + n_h) / n_byzantine) if single_model else -mean
    raise ValueError(f"update-level attack: expected 'ipm', 'alie' or 'omniscient', given {attack!r}")


def gauss_gradient(grad: Tensor, segments: Sequence[tuple[int, int]], generator: torch.Generator | None) -> Tensor:
    """Gauss attack: each parameter tensor's gradient replaced by N(0, std(grad_tensor)^2) noise.

    grad: (R, d) -> (R, d). Official ``grad_attack``: ``randn(*shape) * p.grad.std()`` (unbiased std).
    """
    noise = torch.randn(grad.shape, generator=generator, device=grad.device, dtype=grad.dtype)
    out = torch.empty_like(grad)
    for a, b in segments:
        g = grad[:, a:b]
        std = g.std(1, keepdim=True) if b - a > 1 else torch.zeros_like(g)
        out[:, a:b] = noise[:, a:b] * std
    return out


# -- local training --------------------------------------------------------------------------------------


def sample_batches(counts: Tensor, steps: int, batch_size: int, generator: torch.Generator | None) -> Tensor:
    """Minibatch indices for every client and step, uniform with replacement within each client's data.

    counts: (R,) samples per client -> (steps, R, B) long.
    """
    if int(counts.min()) < 1:
        raise ValueError(f"every client needs >= 1 training sample, given counts {counts.tolist()}")
    u = torch.rand(steps, counts.shape[0], batch_size, generator=generator)
    return (u * counts.to(u.dtype).unsqueeze(-1)).long().clamp_max(counts.unsqueeze(-1) - 1)


def local_sgd(
    loss_and_grad: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
    params: Tensor, velocity: Tensor, batches: Iterable[tuple[Tensor, Tensor]], *, lr: float, momentum: float,
    grad_hook: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Heavy-ball SGD on R models at once (official ``CustomSGD``: v <- mu v + g; theta <- theta - lr v).

    Args:
        loss_and_grad: batched ``(params (R, d), x (R, B, ...), y (R, B)) -> (loss (R,), grad (R, d))``.
        params, velocity: (R, d) starting points and momentum buffers (not modified).
        batches: per step, ``(x (R, B, ...), y (R, B))`` (any iterable, e.g. a generator).
        lr, momentum: step size and momentum.
        grad_hook: optional ``grad -> grad`` (gradient-level attacks; applied to all R rows).

    Returns:
        (new params (R, d), new velocity (R, d), mean train loss (R,)).
    """
    theta, v = params.clone(), velocity.clone()
    total = torch.zeros(params.shape[0], dtype=params.dtype, device=params.device)
    steps = 0
    for x, y in batches:
        loss, g = loss_and_grad(theta, x, y)
        if grad_hook is not None:
            g = grad_hook(g)
        v.mul_(momentum).add_(g)
        theta.add_(v, alpha=-lr)
        total += loss.detach()
        steps += 1
    return theta, v, total / max(steps, 1)


def local_sgd_reference(module: torch.nn.Module, velocity: list[Tensor], batches: Sequence[tuple[Tensor, Tensor]],
                        *, lr: float, momentum: float) -> tuple[list[Tensor], float]:
    """One client, one ``nn.Module``, autograd: the slow reference for :func:`local_sgd`.

    Trains ``module`` in place; ``velocity`` is a list of per-parameter buffers, updated in place.
    Returns (velocity, mean train loss).
    """
    total = 0.0
    for x, y in batches:
        module.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(x), y)
        loss.backward()
        with torch.no_grad():
            for p, buf in zip(module.parameters(), velocity):
                buf.mul_(momentum).add_(p.grad)
                p.add_(buf, alpha=-lr)
        total += float(loss.detach())
    return velocity, total / max(len(batches), 1)
