"""A zoo of proper losses for K classes, each with loss, risk, Bayes risk, its derivatives and regret.

Every loss is defined by its (concave) Bayes risk ``H`` through the Savage representation
``ℓ(q, y) = H(q) + <∇H(q), e_y - q>`` (Sec. 2 of Bao & Takatsu; Gneiting & Raftery 2007, Thm. 2), and
its surrogate regret is the Bregman divergence of ``Φ = -H``:
``R(q; p) = L(q; p) - H(p) = D_Φ(p, q)``. The closed forms below agree with that representation
(the tests check it against a per-pair loop over labels).

All public methods take numpy arrays or torch tensors (``(..., K)`` probabilities, integer labels of
the batch shape) and return the same kind; they validate their input (simplex, labels, ``K``) and
raise ``ValueError`` saying what was expected and what was given.

Example:
    >>> import numpy as np
    >>> from proper_loss_bounds import LogLoss
    >>> p, q = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    >>> float(LogLoss().regret(q, p))  # KL(p || q)
    0.0253...
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from proper_loss_bounds.functional import check_labels, check_simplex

__all__ = [
    "ProperLoss",
    "LogLoss",
    "BrierLoss",
    "SphericalLoss",
    "PseudoSphericalLoss",
    "TsallisLoss",
    "BinaryLogisticLoss",
    "BinaryExponentialLoss",
    "ZeroOneLoss",
    "SavageLoss",
    "quartic_bayes_risk",
    "get_loss",
    "LOSSES",
]


def _to_tensor(x: Any, *, integer: bool = False) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "iu":
            return torch.from_numpy(x.astype(np.int64, copy=False))
        if x.dtype.kind == "b":
            return torch.from_numpy(x)
        if x.dtype == np.float16:
            x = x.astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x))
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        return torch.as_tensor(arr, dtype=torch.long)
    if arr.dtype.kind == "b":
        return torch.as_tensor(arr)
    if arr.dtype.kind == "f":
        return torch.as_tensor(arr, dtype=torch.float64)
    raise ValueError(f"expected a numeric array or tensor, got {type(x).__name__} of dtype {arr.dtype}")


def _array_io(fn: Callable) -> Callable:
    """Accept numpy or torch; return numpy iff any argument was numpy (or a python list/scalar)."""

    @functools.wraps(fn)
    def wrapper(self, *args):
        to_numpy = any(not isinstance(a, Tensor) for a in args)
        targs = [_to_tensor(a) for a in args]
        floats = [a for a in targs if torch.is_floating_point(a)]
        if len(floats) > 1:
            dtype = functools.reduce(torch.promote_types, [a.dtype for a in floats])
            targs = [a.to(dtype) if torch.is_floating_point(a) else a for a in targs]
        out = fn(self, *targs)
        if to_numpy:
            return out.detach().cpu().numpy()
        return out

    return wrapper


def _onehot(y: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    return torch.nn.functional.one_hot(y, k).to(dtype)


def _mul0(a: Tensor, v: Tensor) -> Tensor:
    """``a * v`` with ``inf * 0 = 0`` (Hessians that blow up on the boundary, applied to 0)."""
    return torch.where(v == 0, torch.zeros_like(a * v), a * v)


class ProperLoss:
    """Base class: a proper loss given by its Bayes risk ``H`` (concave) and ``Φ = -H``.

    Subclasses implement the torch math on validated inputs:
    ``_bayes(p)``, ``_grad_bayes(p)``, ``_hvp(q, v)`` (``∇²Φ(q) v``), ``_losses(q)`` (``ℓ(q, y)`` for every
    ``y``), and may override ``_regret`` (a numerically stable ``D_Φ(p, q)``), ``_scaled_hvp``
    (``q ⊙ ∇²Φ(q) v``, used by the fused softmax gradient) and ``_losses_from_log_softmax``.

    Args:
        clip: if given, predictions are clipped to ``[clip, 1]`` and renormalised before evaluating a loss
            that is infinite at zero probability (log, Tsallis ``α < 1``, exponential). Without it, a zero
            probability where the loss is infinite raises ``ValueError``.
        num_classes: fix ``K`` (binary losses fix ``K = 2``); ``None`` accepts any ``K >= 2``.
    """

    name: str = "proper"
    #: strictly proper by theory (``None``: unknown, e.g. a user's Bayes risk; check numerically)
    strictly_proper: bool | None = True
    #: gradients exist (a.e. non-zero); the 0-1 loss is False
    differentiable: bool = True
    #: ``ℓ(q, y) = ∞`` when ``q_y = 0``
    infinite_at_zero: bool = False

    def __init__(self, *, clip: float | None = None, num_classes: int | None = None):
        if clip is not None and not (0 < clip < 0.5):
            raise ValueError(f"clip must be in (0, 0.5) (or None for no clipping), got {clip}")
        if num_classes is not None and (int(num_classes) != num_classes or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes}")
        self.clip = clip
        self.num_classes = None if num_classes is None else int(num_classes)

    # ------------------------------------------------------------------ subclass math (torch, no checks)
    def _bayes(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def _grad_bayes(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def _hvp(self, q: Tensor, v: Tensor) -> Tensor:
        """``∇²Φ(q) v`` with ``Φ = -H`` (on the extension of ``H`` to the positive orthant)."""
        raise NotImplementedError

    def _losses(self, q: Tensor) -> Tensor:
        """``ℓ(q, y)`` for all ``y``: ``(..., K)``. Default: the Savage representation."""
        g = self._grad_bayes(q)
        return (self._bayes(q) - (g * q).sum(-1)).unsqueeze(-1) + g

    def _phi(self, p: Tensor) -> Tensor:
        return -self._bayes(p)

    def _regret(self, q: Tensor, p: Tensor) -> Tensor:
        """``D_Φ(p, q) = Φ(p) - Φ(q) - <∇Φ(q), p - q>``."""
        return self._phi(p) - self._phi(q) + (self._grad_bayes(q) * (p - q)).sum(-1)

    def _scaled_hvp(self, q: Tensor, v: Tensor) -> Tensor:
        return q * self._hvp(q, v)

    def _losses_from_log_softmax(self, lsm: Tensor, q: Tensor) -> Tensor:
        """``ℓ(softmax(z), ·)`` given ``lsm = log_softmax(z)`` and ``q = exp(lsm)`` (stable forms override)."""
        return self._losses(q)

    def _closed_form_constant(self, s: float, k: int) -> float | None:
        """The strong-properness constant in closed form, or ``None`` when there is none."""
        return None

    def params(self) -> dict[str, Any]:
        """The loss's parameters (``get_loss(name, **params)`` rebuilds it)."""
        return {}

    # ------------------------------------------------------------------ validation helpers
    def _check_q(self, q: Tensor, name: str = "q") -> Tensor:
        return check_simplex(q, name, self.num_classes)

    def _check_pair(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        q, p = self._check_q(q), self._check_q(p, "p")
        if q.shape[-1] != p.shape[-1]:
            raise ValueError(f"q and p must have the same number of classes, got K={q.shape[-1]} for q and "
                             f"K={p.shape[-1]} for p")
        try:
            np.broadcast_shapes(tuple(q.shape), tuple(p.shape))  # (torch.broadcast_shapes imports sympy)
        except ValueError:
            raise ValueError(f"q and p must have broadcastable batch shapes, got {tuple(q.shape)} and "
                             f"{tuple(p.shape)}") from None
        return q, p

    def _prepare_pred(self, q: Tensor, need: Tensor | None) -> Tensor:
        """Clip (if asked) or reject zero probabilities where this loss is infinite.

        ``need``: boolean mask ``(..., K)`` of the entries whose loss is used (``None``: all).
        """
        if not self.infinite_at_zero:
            return q
        if self.clip is not None:
            q = q.clamp_min(self.clip)
            return q / q.sum(-1, keepdim=True)
        zero = q == 0
        if need is not None:
            zero = zero & need
        if bool(zero.any()):
            raise ValueError(f"{self.name} loss is infinite at zero predicted probability, got "
                             f"{int(zero.sum())} such entries; pass clip=eps (e.g. "
                             f"{type(self).__name__}(clip=1e-12)) to clip predictions to [eps, 1]")
        return q

    # ------------------------------------------------------------------ public API
    @_array_io
    def loss(self, q, y):
        """``ℓ(q, y)``: the loss of prediction ``q`` (``(..., K)``) for labels ``y`` (``(...)``)."""
        q = self._check_q(q)
        y = check_labels(y, q.shape[:-1], q.shape[-1])
        q = self._prepare_pred(q, _onehot(y, q.shape[-1], torch.bool) if self.infinite_at_zero else None)
        return self._losses(q).gather(-1, y.unsqueeze(-1)).squeeze(-1)

    @_array_io
    def losses(self, q):
        """``ℓ(q, y)`` for every label ``y``: ``(..., K)``."""
        q = self._prepare_pred(self._check_q(q), None)
        return self._losses(q)

    @_array_io
    def risk(self, q, p):
        """Conditional risk ``L(q; p) = Σ_y p_y ℓ(q, y)`` (computed from the loss, not from ``H``)."""
        q, p = self._check_pair(q, p)
        q = self._prepare_pred(q, (p > 0).expand(np.broadcast_shapes(tuple(q.shape), tuple(p.shape))))
        return (p * torch.where(p > 0, self._losses(q), torch.zeros_like(q))).sum(-1)

    @_array_io
    def bayes_risk(self, p):
        """Bayes risk (generalised entropy) ``H(p) = min_q L(q; p) = L(p; p)``."""
        return self._bayes(self._check_q(p, "p"))

    @_array_io
    def grad_bayes_risk(self, p):
        """``∇H(p)`` (a supergradient where ``H`` is not differentiable), ``(..., K)``."""
        return self._grad_bayes(self._check_q(p, "p"))

    @_array_io
    def hessian_bayes_risk(self, p):
        """``∇²H(p)``, ``(..., K, K)`` (of ``H`` extended to the positive orthant by its formula)."""
        p = self._check_q(p, "p")
        k = p.shape[-1]
        eye = torch.eye(k, dtype=p.dtype, device=p.device)
        pe = p.unsqueeze(-2).expand(*p.shape[:-1], k, k)
        return -self._hvp(pe, eye.expand_as(pe))

    @_array_io
    def regret(self, q, p):
        """Surrogate regret ``R(q; p) = L(q; p) - H(p) = D_Φ(p, q) >= 0`` (Bregman divergence of ``-H``)."""
        q, p = self._check_pair(q, p)
        q = self._prepare_pred(q, (p > 0).expand(np.broadcast_shapes(tuple(q.shape), tuple(p.shape))))
        return self._regret(q, p)

    @_array_io
    def loss_grad(self, q, y):
        """``∂ℓ(q, y)/∂q = ∇²Φ(q)(q - e_y)`` (differentiate the Savage representation).

        Off the simplex a loss formula can be extended in many ways, so a gradient in ``q`` is unique
        only up to a multiple of the all-ones vector (the simplex normal); this is the gradient of the
        Savage extension. Its tangent part (what any link or constrained update sees) is unique.
        """
        q = self._check_q(q)
        y = check_labels(y, q.shape[:-1], q.shape[-1])
        e = _onehot(y, q.shape[-1], q.dtype)
        q = self._prepare_pred(q, e.bool() if self.infinite_at_zero else None)
        return self._hvp(q, q - e)

    def strong_properness_constant(self, s: float = 2.0, num_classes: int | None = None, **kw) -> float:
        """See :func:`proper_loss_bounds.bounds.strong_properness_constant`."""
        from proper_loss_bounds.bounds import strong_properness_constant

        return strong_properness_constant(self, s=s, num_classes=num_classes, **kw)

    def as_module(self, link: str | Callable = "softmax", reduction: str = "mean", fused: bool = True):
        """This loss as a training :class:`proper_loss_bounds.ProperLossModule` on scores through ``link``."""
        from proper_loss_bounds.modules import ProperLossModule

        return ProperLossModule(self, link=link, reduction=reduction, fused=fused)

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.params().items()]
        if self.clip is not None:
            args.append(f"clip={self.clip!r}")
        return f"{type(self).__name__}({', '.join(args)})"


# ====================================================================== the zoo
class LogLoss(ProperLoss):
    """Log loss ``ℓ(q, y) = -log q_y``; ``H`` = Shannon entropy, regret = ``KL(p ‖ q)``.

    Strongly proper with constant ``2^{2 - 2/s}`` in the ``s``-norm (``1`` in ``ℓ₁``: Pinsker; ``2`` in
    ``ℓ₂``; ``4`` in ``ℓ_∞``): ``inf_q Σ v_i²/q_i = ‖v‖₁²`` and ``‖v‖₁ >= 2^{1-1/s} ‖v‖_s`` for ``Σ v = 0``.
    """

    name = "log"
    infinite_at_zero = True

    def _bayes(self, p):
        return -torch.special.xlogy(p, p).sum(-1)

    def _grad_bayes(self, p):
        return -torch.log(p) - 1

    def _hvp(self, q, v):
        return _mul0(1 / q, v)

    def _scaled_hvp(self, q, v):
        return v

    def _losses(self, q):
        return -torch.log(q)

    def _losses_from_log_softmax(self, lsm, q):
        return -lsm

    def _regret(self, q, p):
        return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1)

    def _closed_form_constant(self, s, k):
        return 2.0 ** (2 - 2 / s) if not math.isinf(s) else 4.0


class BrierLoss(ProperLoss):
    """Brier (squared) loss ``ℓ(q, y) = ‖q - e_y‖₂²``; ``H(p) = 1 - ‖p‖₂²``; regret ``‖p - q‖₂²``.

    ``2``-strongly proper in ``ℓ₂``; in ``ℓ₁``: ``K / (2 m (K - m))`` with ``m = ⌊K/2⌋`` (``2/K`` for
    even ``K``); in ``ℓ_∞``: ``2K/(K-1)``; other norms numerically.
    """

    name = "brier"

    def _bayes(self, p):
        return 1 - (p * p).sum(-1)

    def _grad_bayes(self, p):
        return -2 * p

    def _hvp(self, q, v):
        return 2 * v

    def _losses(self, q):
        return (q * q).sum(-1, keepdim=True) - 2 * q + 1

    def _regret(self, q, p):
        return ((p - q) ** 2).sum(-1)

    def _closed_form_constant(self, s, k):
        if s == 2:
            return 2.0
        if s == 1:
            m = k // 2
            return k / (2 * m * (k - m))
        if math.isinf(s):
            return 2 * k / (k - 1)
        return None


class PseudoSphericalLoss(ProperLoss):
    """Pseudo-spherical loss ``ℓ(q, y) = -(q_y / ‖q‖_α)^{α-1}`` (``α > 1``); ``H(p) = -‖p‖_α``.

    Proper by Hölder's inequality; strictly proper for every ``α > 1``. ``α = 2`` is the spherical loss.
    """

    name = "pseudo-spherical"

    def __init__(self, alpha: float = 2.0, **kw):
        super().__init__(**kw)
        alpha = float(alpha)
        if not (alpha > 1) or math.isinf(alpha):
            raise ValueError(f"pseudo-spherical loss needs 1 < alpha < inf, got alpha={alpha}")
        self.alpha = alpha

    def params(self):
        return {"alpha": self.alpha}

    def _norm(self, p):
        return (p.abs() ** self.alpha).sum(-1) ** (1 / self.alpha)

    def _bayes(self, p):
        return -self._norm(p)

    def _grad_bayes(self, p):
        return -(p / self._norm(p).unsqueeze(-1)) ** (self.alpha - 1)

    def _hvp(self, q, v):
        a = self.alpha
        n = self._norm(q).unsqueeze(-1)
        w = q ** (a - 1)  # (..., K)
        return (a - 1) * (_mul0(q ** (a - 2), v) / n ** (a - 1) - w * (w * v).sum(-1, keepdim=True) / n ** (2 * a - 1))

    def _scaled_hvp(self, q, v):
        a = self.alpha
        n = self._norm(q).unsqueeze(-1)
        w = q ** (a - 1)
        return (a - 1) * (w * v / n ** (a - 1) - q * w * (w * v).sum(-1, keepdim=True) / n ** (2 * a - 1))

    def _losses(self, q):
        return -(q / self._norm(q).unsqueeze(-1)) ** (self.alpha - 1)

    def _closed_form_constant(self, s, k):
        if self.alpha == 2 and s == 2:
            # curvature (‖v‖² - <q̂, v>²)/(‖q‖ ‖v‖²) minimised over T is 1/(K ‖q‖³); worst at a vertex
            return 1.0 / k
        if self.alpha == 2 and s in (1, math.inf):
            # the curvature at a vertex in the spread direction (-1, 1/(K-1), ...); equal to the numeric
            # infimum over the simplex for K = 3..6 (tests), not proven here
            return 1.0 / (4 * (k - 1)) if s == 1 else 1.0 / (k - 1)
        return None


class SphericalLoss(PseudoSphericalLoss):
    """Spherical loss ``ℓ(q, y) = -q_y / ‖q‖₂``; ``H(p) = -‖p‖₂``.

    ``1/K``-strongly proper in ``ℓ₂`` (closed form), ``1/(4(K-1))`` in ``ℓ₁`` and ``1/(K-1)`` in ``ℓ_∞``
    (the vertex value, matched by the numeric infimum).
    """

    name = "spherical"

    def __init__(self, **kw):
        super().__init__(alpha=2.0, **kw)

    def params(self):
        return {}


class TsallisLoss(ProperLoss):
    """Tsallis-α loss ``ℓ(q, y) = [1 + (α-1) Σ_i q_i^α - α q_y^{α-1}] / (α-1)`` (``α > 0``, ``α ≠ 1``).

    ``H(p) = (1 - Σ p_i^α)/(α-1)`` (Tsallis entropy); ``α = 2`` is the Brier loss, ``α → 1`` the log loss.
    ``∇²Φ = diag(α p^{α-2})``. For ``α < 2`` it is ``α κ(r, s, K)``-strongly proper with
    ``r = 2/(3-α)`` (``inf_q Σ q_i^{α-2} v_i² = ‖v‖_r²``); for ``α > 2`` and ``K >= 3`` it is strictly but
    not strongly proper: the curvature vanishes along ``e_j - e_k`` where ``q_j, q_k → 0``, and the best
    bound decays like ``r^{1/α}`` there.
    """

    name = "tsallis"

    def __init__(self, alpha: float = 1.5, **kw):
        super().__init__(**kw)
        alpha = float(alpha)
        if not (alpha > 0) or math.isinf(alpha) or alpha == 1:
            raise ValueError(f"Tsallis loss needs alpha > 0 and alpha != 1 (alpha -> 1 is LogLoss), got alpha={alpha}")
        self.alpha = alpha
        self.infinite_at_zero = alpha < 1

    def params(self):
        return {"alpha": self.alpha}

    def _bayes(self, p):
        return (1 - (p**self.alpha).sum(-1)) / (self.alpha - 1)

    def _grad_bayes(self, p):
        return -self.alpha * p ** (self.alpha - 1) / (self.alpha - 1)

    def _hvp(self, q, v):
        return self.alpha * _mul0(q ** (self.alpha - 2), v)

    def _scaled_hvp(self, q, v):
        return self.alpha * q ** (self.alpha - 1) * v

    def _losses(self, q):
        a = self.alpha
        return (1 + (a - 1) * (q**a).sum(-1, keepdim=True) - a * q ** (a - 1)) / (a - 1)

    def _regret(self, q, p):
        a = self.alpha
        # D_Φ(p, q) = [Σ p^α - Σ q^α - α Σ q^{α-1}(p - q)] / (α - 1) = [Σ p^α + (α-1) Σ q^α - α Σ p q^{α-1}]/(α-1)
        pq = torch.where(p > 0, p * q ** (a - 1), torch.zeros_like(p))
        return ((p**a).sum(-1) + (a - 1) * (q**a).sum(-1) - a * pq.sum(-1)) / (a - 1)

    def _closed_form_constant(self, s, k):
        a = self.alpha
        if a > 2:
            if k >= 3:
                return 0.0
            # K = 2: α min_q (q0^{α-2} + q1^{α-2}) / ‖(1, -1)‖_s²; concave (α <= 3) -> vertex, convex -> centre
            m = 1.0 if a <= 3 else 2.0 ** (3 - a)
            return a * m / (2.0 ** (2 / s) if not math.isinf(s) else 1.0)
        r = 2 / (3 - a)
        if r == s:
            return a
        if a == 2:
            return BrierLoss()._closed_form_constant(s, k)
        if k == 2:
            # only direction (1, -1): κ = ‖(1,-1)‖_r² / ‖(1,-1)‖_s²
            return a * 2.0 ** (2 / r) / (2.0 ** (2 / s) if not math.isinf(s) else 1.0)
        return None


class BinaryLogisticLoss(LogLoss):
    """Binary logistic loss: the log loss for ``K = 2`` (class 1 = positive; ``q = (1 - η, η)``).

    ``-H'' (η) = 1/(η(1-η)) >= 4`` in ``η``: ``2^{2-2/s}``-strongly proper in the ``s``-norm on ``Δ_2``.
    With the ``"sigmoid"`` link on a score ``f`` it is ``log(1 + e^{-y f})``.
    """

    name = "binary-logistic"

    def __init__(self, **kw):
        kw.setdefault("num_classes", 2)
        if kw["num_classes"] != 2:
            raise ValueError(f"binary logistic loss is defined for K=2, got num_classes={kw['num_classes']}")
        super().__init__(**kw)


class BinaryExponentialLoss(ProperLoss):
    """Binary exponential (boosting) loss: ``ℓ(q, 1) = sqrt(q_0/q_1)``, ``ℓ(q, 0) = sqrt(q_1/q_0)``.

    ``H(η) = 2 sqrt(η(1-η))``, ``-H''(η) = 1/(2 (η(1-η))^{3/2}) >= 4``: ``2^{2-2/s}``-strongly proper on
    ``Δ_2``. With the sigmoid link on the score ``2f`` it is AdaBoost's ``exp(-y f)`` (``y ∈ {±1}``).
    """

    name = "binary-exponential"
    infinite_at_zero = True

    def __init__(self, **kw):
        kw.setdefault("num_classes", 2)
        if kw["num_classes"] != 2:
            raise ValueError(f"binary exponential loss is defined for K=2, got num_classes={kw['num_classes']}")
        super().__init__(**kw)

    def _bayes(self, p):
        return 2 * torch.sqrt(p[..., 0] * p[..., 1])

    def _grad_bayes(self, p):
        return torch.stack([torch.sqrt(p[..., 1] / p[..., 0]), torch.sqrt(p[..., 0] / p[..., 1])], -1)

    def _hvp(self, q, v):
        q0, q1 = q[..., 0], q[..., 1]
        v0, v1 = v[..., 0], v[..., 1]
        h00 = 0.5 * torch.sqrt(q1) * q0**-1.5
        h11 = 0.5 * torch.sqrt(q0) * q1**-1.5
        h01 = -0.5 / torch.sqrt(q0 * q1)
        return torch.stack([_mul0(h00, v0) + _mul0(h01, v1), _mul0(h01, v0) + _mul0(h11, v1)], -1)

    def _losses(self, q):
        return torch.stack([torch.sqrt(q[..., 1] / q[..., 0]), torch.sqrt(q[..., 0] / q[..., 1])], -1)

    def _regret(self, q, p):
        # L(q; p) - H(p) = p0 sqrt(q1/q0) + p1 sqrt(q0/q1) - 2 sqrt(p0 p1)
        a = torch.where(p[..., 0] > 0, p[..., 0] * torch.sqrt(q[..., 1] / q[..., 0]), torch.zeros_like(q[..., 0]))
        b = torch.where(p[..., 1] > 0, p[..., 1] * torch.sqrt(q[..., 0] / q[..., 1]), torch.zeros_like(q[..., 0]))
        return a + b - 2 * torch.sqrt(p[..., 0] * p[..., 1])

    def _closed_form_constant(self, s, k):
        return 2.0 ** (2 - 2 / s) if not math.isinf(s) else 4.0


class ZeroOneLoss(ProperLoss):
    """0-1 (misclassification) loss ``ℓ(q, y) = 1 - [y ∈ argmax q] / |argmax q|`` (ties split evenly).

    ``H(p) = 1 - max_i p_i``; regret ``max p - mean_{j ∈ argmax q} p_j``. Proper but not strictly
    proper: every ``q`` with the same argmax as ``p`` has zero regret, so no non-vacuous bound exists
    (the paper's first result, "only if" direction). Its gradient is zero almost everywhere.
    """

    name = "zero-one"
    strictly_proper = False
    differentiable = False

    @staticmethod
    def _argmax_weights(q):
        top = q == q.amax(-1, keepdim=True)
        return top.to(q.dtype) / top.sum(-1, keepdim=True).to(q.dtype)

    def _bayes(self, p):
        return 1 - p.amax(-1)

    def _grad_bayes(self, p):
        return -self._argmax_weights(p)

    def _hvp(self, q, v):
        return torch.zeros_like(v * q)

    def _losses(self, q):
        return 1 - self._argmax_weights(q)

    def _regret(self, q, p):
        return p.amax(-1) - (self._argmax_weights(q) * p).sum(-1)

    def _closed_form_constant(self, s, k):
        return 0.0


class SavageLoss(ProperLoss):
    """A proper loss from a user's concave Bayes risk ``H`` via the Savage representation.

    ``ℓ(q, y) = H(q) + <∇H(q), e_y - q>``; gradients and Hessian-vector products of ``H`` come from
    autograd unless given. Whether ``H`` is (strictly) concave is not assumed: check it with
    :func:`proper_loss_bounds.check_properness`.

    Args:
        bayes_risk: ``H``, a torch function ``(..., K) -> (...)`` applied row-wise.
        name: a display name.
        grad: optional closed form of ``∇H``.
        strictly_proper: what you know about ``H`` (``None``: unknown).

    Example:
        >>> import torch
        >>> from proper_loss_bounds import SavageLoss
        >>> gini = SavageLoss(lambda p: 1 - (p ** 2).sum(-1), name="gini")  # the Brier loss again
        >>> float(gini.loss(torch.tensor([0.7, 0.3], dtype=torch.float64), torch.tensor(0)))
        0.18...
    """

    def __init__(self, bayes_risk: Callable[[Tensor], Tensor], *, name: str = "savage",
                 grad: Callable[[Tensor], Tensor] | None = None, strictly_proper: bool | None = None,
                 infinite_at_zero: bool = False, **kw):
        super().__init__(**kw)
        if not callable(bayes_risk):
            raise ValueError(f"bayes_risk must be a callable (..., K) -> (...), got {type(bayes_risk).__name__}")
        self._h = bayes_risk
        self._g = grad
        self.name = name
        self.strictly_proper = strictly_proper
        self.infinite_at_zero = infinite_at_zero

    def params(self):
        return {"name": self.name}

    def _bayes(self, p):
        out = self._h(p)
        if out.shape != p.shape[:-1]:
            raise ValueError(f"bayes_risk must map (..., K) to (...), expected shape {tuple(p.shape[:-1])}, "
                             f"got {tuple(out.shape)}")
        if out.numel() and not bool(torch.isnan(out).logical_not().all()):
            raise ValueError(f"{self.name}: bayes_risk(p) must be a number at every p in the simplex, got "
                             f"{int(torch.isnan(out).sum())} NaN value(s)")
        return out

    def _grad_bayes(self, p):
        if self._g is not None:
            return self._g(p)
        if p.requires_grad and torch.is_grad_enabled():
            # keep the graph so that losses built from ∇H can be differentiated again
            (g,) = torch.autograd.grad(self._bayes(p).sum(), p, create_graph=True)
            return g
        with torch.enable_grad():
            x = p.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._bayes(x).sum(), x)
        return g

    def _hvp(self, q, v):
        with torch.enable_grad():
            x = q.detach().requires_grad_(True)
            g = self._grad_bayes(x) if self._g is not None else torch.autograd.grad(
                self._bayes(x).sum(), x, create_graph=True)[0]
            (h,) = torch.autograd.grad((g * v.detach()).sum(), x, allow_unused=True)
        if h is None:
            h = torch.zeros_like(q)
        return -h


def quartic_bayes_risk(p: Tensor) -> Tensor:
    """``H(p) = -Σ_i (p_i - 1/K)⁴``: concave and strictly so, but flat (zero Hessian) at the centre.

    Its regret at ``p = 1/K`` is ``3 ‖q - p‖₄⁴``, so the best bound decays like ``r^{1/4}``: strictly
    proper but slower than order 1/2 (a worked example of the paper's dichotomy).
    """
    return -((p - 1.0 / p.shape[-1]) ** 4).sum(-1)


LOSSES: dict[str, type[ProperLoss]] = {
    "log": LogLoss,
    "brier": BrierLoss,
    "spherical": SphericalLoss,
    "pseudo-spherical": PseudoSphericalLoss,
    "tsallis": TsallisLoss,
    "binary-logistic": BinaryLogisticLoss,
    "binary-exponential": BinaryExponentialLoss,
    "zero-one": ZeroOneLoss,
}


def get_loss(spec: str | ProperLoss, **kwargs) -> ProperLoss:
    """Build a loss from a name (``"log"``, ``"brier"``, ``"tsallis"`` ...) or a spec like ``"tsallis-1.5"``.

    ``"quartic"`` gives the :class:`SavageLoss` of :func:`quartic_bayes_risk`.

    Example:
        >>> get_loss("tsallis-3")
        TsallisLoss(alpha=3.0)
    """
    if isinstance(spec, ProperLoss):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"loss spec must be a string or a ProperLoss, got {type(spec).__name__}")
    name = spec.strip().lower()
    if name == "quartic":
        return SavageLoss(quartic_bayes_risk, name="quartic", strictly_proper=True, **kwargs)
    m = re.fullmatch(r"(tsallis|pseudo-spherical)[-:(]?([0-9.eE+]+)\)?", name)
    if m:
        name = m.group(1)
        kwargs = {"alpha": float(m.group(2)), **kwargs}
    if name not in LOSSES:
        raise ValueError(f"unknown loss {spec!r}; expected one of {sorted(LOSSES) + ['quartic']} "
                         "(Tsallis/pseudo-spherical as e.g. 'tsallis-1.5')")
    return LOSSES[name](**kwargs)


def regret_reference(loss: ProperLoss, q, p) -> np.ndarray:
    """Per-pair loop reference of the regret by its definition ``Σ_y p_y ℓ(q, y) - Σ_y p_y ℓ(p, y)``.

    Slow (a Python loop over pairs and labels, float64); used to test the vectorised closed forms.
    """
    q = np.asarray(q, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    q2, p2 = np.broadcast_arrays(q, p)
    flat_q, flat_p = q2.reshape(-1, q2.shape[-1]), p2.reshape(-1, p2.shape[-1])
    out = np.empty(len(flat_q))
    for n in range(len(flat_q)):
        k = flat_q.shape[1]
        risk_q = risk_p = 0.0
        for y in range(k):
            if flat_p[n, y] == 0:
                continue
            lq = float(loss.loss(flat_q[n], np.int64(y)))
            lp = float(loss.loss(flat_p[n], np.int64(y)))
            risk_q += flat_p[n, y] * lq
            risk_p += flat_p[n, y] * lp
        out[n] = risk_q - risk_p
    return out.reshape(q2.shape[:-1])
