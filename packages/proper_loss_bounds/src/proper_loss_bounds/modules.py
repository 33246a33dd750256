"""Proper losses as training objectives: ``torch.nn.Module`` s on scores through an inverse link.

A proper composite loss is ``ℓ(ψ⁻¹(z), y)`` with ``ψ⁻¹`` the inverse link (softmax by default). Its
gradient has a closed form: differentiating the Savage representation gives
``∂ℓ/∂q = ∇²Φ(q)(q - e_y)``, and through the softmax Jacobian ``J = diag(q) - q qᵀ``

    ``∂ℓ/∂z = a - q Σ_i a_i``,  ``a = q ⊙ ∇²Φ(q)(q - e_y)``

(``= q - e_y`` for the log loss, the canonical link). The fused path computes this in one pass
without building an autograd graph; ``fused=False`` differentiates the closed-form loss with autograd
(the reference the tests compare against).

Example:
    >>> import torch
    >>> from proper_loss_bounds import ProperLossModule
    >>> crit = ProperLossModule("spherical")
    >>> z = torch.randn(8, 5, requires_grad=True)
    >>> crit(z, torch.randint(0, 5, (8,))).backward()
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from proper_loss_bounds.functional import check_labels, check_simplex
from proper_loss_bounds.losses import (
    BrierLoss,
    LogLoss,
    ProperLoss,
    PseudoSphericalLoss,
    SphericalLoss,
    TsallisLoss,
    get_loss,
)

__all__ = ["ProperLossModule", "composite_loss"]

_LINKS = ("softmax", "sigmoid", "identity")


class _FusedSoftmaxProperLoss(torch.autograd.Function):
    """Per-example ``ℓ(softmax(z), y)`` with the closed-form gradient above."""

    @staticmethod
    def forward(ctx, z: Tensor, y: Tensor, loss: ProperLoss) -> Tensor:
        zd = z.detach()
        lsm = torch.log_softmax(zd, -1)  # (..., K)
        q = lsm.exp()
        vals = loss._losses_from_log_softmax(lsm, q).gather(-1, y.unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(q, y)
        ctx.loss = loss
        return vals

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        q, y = ctx.saved_tensors
        d = q.clone().scatter_add_(-1, y.unsqueeze(-1), torch.full_like(q[..., :1], -1.0))  # q - e_y
        a = ctx.loss._scaled_hvp(q, d)  # q ⊙ ∇²Φ(q)(q - e_y)
        gz = a.sub_(q * a.sum(-1, keepdim=True)) if a is not d else d.sub_(q * d.sum(-1, keepdim=True))
        return gz.mul_(grad_out.unsqueeze(-1)), None, None


def _closed_form_kind(loss: ProperLoss) -> str | None:
    """Which closed-form softmax path :class:`_ClosedFormSoftmaxLoss` has for ``loss`` (exact types only)."""
    t = type(loss)
    if t is BrierLoss:
        return "brier"
    if t in (PseudoSphericalLoss, SphericalLoss):
        return "spherical"
    if t is TsallisLoss and loss.alpha > 1:  # alpha < 1: q^(alpha-1) is infinite where q underflows
        return "tsallis"
    return None


def _pow(q: Tensor, a: float) -> Tensor:
    """``q ** a``; ``a = 1.5`` as ``q * sqrt(q)`` (two cheap passes beat one general ``pow``)."""
    return torch.sqrt(q).mul_(q) if a == 1.5 else q.pow(a)


class _ClosedFormSoftmaxLoss(torch.autograd.Function):
    """``ℓ(softmax(z), y)`` and its gradient in closed form, a few fused passes over ``(..., K)``.

    With ``q = softmax(z)``, ``v = q - e_y``, ``a = q ⊙ ∇²Φ(q) v`` and ``∂ℓ/∂z = a - q Σa``:

    * Brier (``S = Σ q²``): ``ℓ = S - 2 q_y + 1``, ``∂ℓ/∂z = 2 q ⊙ (q - (S - q_y)) - 2 q_y e_y``;
    * Tsallis-α (``T = Σ q^α``): ``ℓ = [1 + (α-1) T - α q_y^{α-1}]/(α-1)``,
      ``∂ℓ/∂z = α q^α - α (T - q_y^{α-1}) q - α q_y^{α-1} e_y``;
    * pseudo-spherical-α (``N = Σ q^α = ‖q‖_α^α``, ``u = q_y^{α-1}/‖q‖_α^{α-1} = -ℓ``): ``Σa = 0`` and
      ``∂ℓ/∂z = (α-1) u (q^α / N - e_y)``.

    The forward runs softmax, one power and one row sum; the backward one or two passes over the
    saved ``(..., K)`` tensors plus an O(B) scatter. Tested against autograd of the closed-form loss.
    """

    @staticmethod
    def forward(ctx, z: Tensor, y: Tensor, loss: ProperLoss, kind: str) -> Tensor:
        q = torch.softmax(z.detach(), -1)
        yi = y.unsqueeze(-1)
        qy = q.gather(-1, yi)
        ctx.kind, ctx.alpha = kind, getattr(loss, "alpha", 2.0)
        if kind == "brier":
            s = torch.linalg.vector_norm(q, dim=-1, keepdim=True).square_()
            vals = s - 2 * qy + 1
            ctx.save_for_backward(q, yi, s - qy, qy)
        elif kind == "tsallis":
            a = ctx.alpha
            p = _pow(q, a)
            t = p.sum(-1, keepdim=True)
            qya = qy.pow(a - 1)
            vals = (1 + (a - 1) * t - a * qya) / (a - 1)
            ctx.save_for_backward(p, q, yi, t - qya, qya)
        else:
            a = ctx.alpha
            p = _pow(q, a)
            n = p.sum(-1, keepdim=True)
            u = (qy / n.pow(1 / a)).pow(a - 1)
            vals = -u
            ctx.save_for_backward(p, yi, u, n)
        return vals.squeeze(-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        g = grad_out.unsqueeze(-1)
        a = ctx.alpha
        if ctx.kind == "brier":
            q, yi, c, qy = ctx.saved_tensors
            w = 2 * g
            gz = torch.addcmul(-c * w, q, w).mul_(q)  # 2 q (q - c) g
            yval = -qy * w
        elif ctx.kind == "tsallis":
            p, q, yi, c, qya = ctx.saved_tensors
            w = a * g
            gz = torch.mul(p, w).addcmul_(q, -c * w)  # α g (q^α - c q)
            yval = -qya * w
        else:
            p, yi, u, n = ctx.saved_tensors
            w = (a - 1) * u * g
            gz = torch.mul(p, w / n)  # not in place: a retained graph may run backward again
            yval = -w
        return gz.scatter_add_(-1, yi, yval), None, None, None


def composite_loss(scores: Tensor, y: Tensor, loss: ProperLoss | str, *, link: str | Callable = "softmax",
                   fused: bool = True) -> Tensor:
    """Per-example proper composite loss ``ℓ(link⁻¹(scores), y)``.

    Args:
        scores: ``(..., K)`` logits for ``"softmax"``; ``(...)`` real scores for ``"sigmoid"`` (``K = 2``,
            ``q = (1 - σ(f), σ(f))``); ``(..., K)`` probabilities for ``"identity"``; or any callable
            mapping scores to probabilities ``(..., K)`` (differentiated by autograd).
        y: integer labels ``(...)``.
        loss: a :class:`ProperLoss` or a name for :func:`get_loss`.
        link: the inverse link.
        fused: closed-form gradient (``True``) or autograd through the closed-form loss.

    Returns:
        ``(...)`` per-example losses.
    """
    loss = get_loss(loss)
    if not loss.differentiable:
        raise ValueError(f"{loss.name} loss has zero gradient almost everywhere and cannot be trained with "
                         "gradients; use it for evaluation (loss.loss / loss.regret)")
    if not torch.is_floating_point(scores):
        raise ValueError(f"scores must be floating point, got dtype {scores.dtype}")
    if not isinstance(y, Tensor):
        y = torch.as_tensor(y)
    if callable(link):
        q = link(scores)
        check_simplex(q.detach(), "link(scores)", loss.num_classes)
        return _per_example(loss, q, y)
    if link not in _LINKS:
        raise ValueError(f"link must be one of {_LINKS} or a callable, got {link!r}")
    if link == "sigmoid":
        if loss.num_classes not in (None, 2):
            raise ValueError(f"sigmoid link gives K=2 classes, but {loss.name} is defined for K={loss.num_classes}")
        if scores.shape[-1:] == (1,) and y.shape == scores.shape[:-1]:
            scores = scores.squeeze(-1)
        scores = torch.stack([torch.zeros_like(scores), scores], -1)  # softmax([0, f]) = (1 - σ(f), σ(f))
        link = "softmax"
    if scores.ndim == 0 or scores.shape[-1] < 2:
        raise ValueError(f"scores must have a class axis with K >= 2 (shape (..., K)), got {tuple(scores.shape)}")
    k = scores.shape[-1]
    if loss.num_classes is not None and k != loss.num_classes:
        raise ValueError(f"{loss.name} loss is defined for K={loss.num_classes} classes, got scores with K={k}")
    y = check_labels(y, scores.shape[:-1], k)
    if link == "identity":
        check_simplex(scores.detach(), "scores (probabilities for link='identity')", loss.num_classes)
        return _per_example(loss, scores, y)
    if fused and type(loss) is LogLoss:
        # the log loss through softmax is the cross-entropy: torch's fused log-softmax + NLL kernel, whose
        # gradient softmax(z) - e_y is the closed form above (tested against fused=False). NaN or +inf
        # scores make their example's loss non-finite, so checking the B losses replaces a pass over B x K.
        vals = torch.nn.functional.cross_entropy(scores.reshape(-1, k), y.reshape(-1), reduction="none")
        if not bool(torch.isfinite(vals.detach()).all()):
            raise ValueError("scores must be finite")
        return vals.reshape(y.shape)
    kind = _closed_form_kind(loss) if fused else None
    if kind is not None:
        # q = softmax(z) is in [0, 1], so these losses are finite unless a row of z holds NaN or +inf
        # (softmax gives NaN there): checking the B losses replaces a pass over B x K. A -inf score is a
        # class with probability 0, as in F.cross_entropy (the log-loss path above).
        vals = _ClosedFormSoftmaxLoss.apply(scores, y, loss, kind)
        if not bool(torch.isfinite(vals.detach()).all()):
            raise ValueError("scores must be finite (got NaN or +inf)")
        return vals
    # a finite sum means every entry is finite (one reduction, far cheaper than isfinite().all() on big
    # batches); a non-finite sum of finite entries (overflow) falls back to the exact check
    if not bool(torch.isfinite(scores.detach().sum())) and not bool(torch.isfinite(scores).all()):
        raise ValueError("scores must be finite")
    if fused:
        return _FusedSoftmaxProperLoss.apply(scores, y, loss)
    lsm = torch.log_softmax(scores, -1)
    return loss._losses_from_log_softmax(lsm, lsm.exp()).gather(-1, y.unsqueeze(-1)).squeeze(-1)


def _per_example(loss: ProperLoss, q: Tensor, y: Tensor) -> Tensor:
    y = check_labels(y, q.shape[:-1], q.shape[-1])
    e = torch.nn.functional.one_hot(y, q.shape[-1]).bool()
    q = loss._prepare_pred(q, e if loss.infinite_at_zero else None)
    return loss._losses(q).gather(-1, y.unsqueeze(-1)).squeeze(-1)


class ProperLossModule(nn.Module):
    """A proper loss as a training criterion on scores (logits) through an inverse link.

    Args:
        loss: a :class:`ProperLoss` or a name/spec for :func:`get_loss` (``"log"``, ``"brier"``,
            ``"spherical"``, ``"tsallis-1.5"``, ...).
        link: ``"softmax"`` (default; logits ``(B, K)``), ``"sigmoid"`` (scores ``(B,)``, ``K = 2``),
            ``"identity"`` (probabilities) or a callable scores -> probabilities.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        fused: use the closed-form gradient (faster, no graph) instead of autograd.

    Paper: Bao & Takatsu, Sec. 2 (proper losses, Savage representation); the composite form follows
    Reid & Williamson (2010).

    Example:
        >>> import torch
        >>> crit = ProperLossModule("tsallis-1.5")
        >>> logits = torch.zeros(4, 3, requires_grad=True)
        >>> crit(logits, torch.tensor([0, 1, 2, 0])).backward()
    """

    def __init__(self, loss: ProperLoss | str = "log", *, link: str | Callable = "softmax",
                 reduction: str = "mean", fused: bool = True, **loss_kwargs):
        super().__init__()
        self.loss = get_loss(loss, **loss_kwargs) if isinstance(loss, str) else loss
        if not isinstance(self.loss, ProperLoss):
            raise ValueError(f"loss must be a ProperLoss or a name, got {type(loss).__name__}")
        if not self.loss.differentiable:
            raise ValueError(f"{self.loss.name} loss has zero gradient almost everywhere and cannot be "
                             "trained with gradients; use it for evaluation")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if not callable(link) and link not in _LINKS:
            raise ValueError(f"link must be one of {_LINKS} or a callable, got {link!r}")
        self.link = link
        self.reduction = reduction
        self.fused = fused

    def forward(self, scores: Tensor, target: Tensor) -> Tensor:
        if scores.ndim >= 1 and scores.shape[0] == 0 and self.reduction == "mean":
            raise ValueError(f"scores: expected a non-empty batch for reduction='mean' (the mean of no losses is "
                             f"NaN), got shape {tuple(scores.shape)}")
        if (self.fused and self.link == "softmax" and type(self.loss) is LogLoss and self.reduction != "none"
                and torch.is_floating_point(scores) and scores.ndim == 2 and scores.shape[-1] >= 2
                and isinstance(target, Tensor)):
            # log loss + softmax + mean/sum: exactly F.cross_entropy (one fused kernel pair, tested against
            # the autograd reference); the checks cost O(B), a non-finite result triggers the O(B K) one
            y = check_labels(target, scores.shape[:-1], scores.shape[-1])
            out = torch.nn.functional.cross_entropy(scores, y, reduction=self.reduction)
            if not bool(torch.isfinite(out.detach())) and not bool(torch.isfinite(scores).all()):
                raise ValueError("scores must be finite")
            return out
        vals = composite_loss(scores, target, self.loss, link=self.link, fused=self.fused)
        if self.reduction == "mean":
            return vals.mean()
        if self.reduction == "sum":
            return vals.sum()
        return vals

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, link={self.link!r}, reduction={self.reduction!r}, fused={self.fused}"
