"""Scikit-learn transformers: Zipfian whitening and its baselines.

Every transformer accepts numpy arrays (validated by scikit-learn, float32 preserved) or torch tensors
(kept on their device and dtype; the statistics are computed in float64 on that device). Fitted
attributes are numpy float64 arrays, so the objects pickle and clone like any scikit-learn estimator.

=====================  ===================================================================  ==============
class                  what ``transform`` does                                              paper
=====================  ===================================================================  ==============
ZipfianWhitening       ``(x - mu_p) V_p diag(lam_p)^-1/2`` with p-weighted moments          Alg. 1
UniformWhitening       the same with uniform weights and the V-1 sample covariance          baseline
ZipfianCentering       ``x - mu_p``                                                         Table 1
UniformCentering       ``x - mu``                                                           Table 1
AllButTheTop           centre, then remove the top-D principal directions (D = 3)           Mu+ 2018
SIF                    remove the first principal direction of sentence embeddings          Arora+ 2017
USIF                   piecewise removal of the top-m directions weighted by their energy   Ethayarajh 2018
=====================  ===================================================================  ==============

SIF and uSIF also re-weight words (``a / (a + p)``, ``a / (a/2 + p)``) before averaging; that part
is :meth:`SIF.word_weights` / :meth:`USIF.word_weights`, applied by
:class:`zipf_whitening.embedding.DocumentEmbedder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from papercommon.checks import check_int, check_positive
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
)
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted, validate_data

from zipf_whitening import functional as F

__all__ = [
    "ZipfianWhitening", "UniformWhitening", "ZipfianCentering", "UniformCentering", "AllButTheTop",
    "SIF", "USIF",
]


@dataclass(frozen=True)
class _IO:
    """How to hand results back: numpy with a dtype, or torch with a dtype and device."""

    torch: bool
    dtype: Any
    device: torch.device | None = None


class _Base(TransformerMixin, BaseEstimator):
    """Input checks and numpy/torch round trips shared by every transformer here."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- input ---------------------------------------------------------------------------------------
    def _input(self, X, *, reset: bool) -> tuple[torch.Tensor, _IO]:
        name = type(self).__name__
        if isinstance(X, torch.Tensor):
            if X.ndim != 2:
                raise ValueError(f"{name}: expected a 2-D tensor (n_samples, n_features), got shape {tuple(X.shape)}")
            if not X.is_floating_point():
                X = X.to(torch.float64)
            if X.shape[0] < 1:
                raise ValueError(f"{name}: found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is required")
            if X.shape[1] < 1:  # as sklearn's check_array says it for numpy input
                raise ValueError(f"{name}: found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required")
            if not torch.isfinite(X).all():
                raise ValueError(f"{name}: input contains NaN or infinity")
            if reset:
                self.n_features_in_ = X.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting {self.n_features_in_} features as input")
            return F.check_moment_range(f"{name}: X", X), _IO(True, X.dtype, X.device)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        if not X.flags.writeable:
            X = X.copy()
        return F.check_moment_range(f"{name}: X", torch.from_numpy(X)), _IO(False, X.dtype)

    def _weights(self, sample_weight, X: torch.Tensor) -> torch.Tensor | None:
        if sample_weight is None:
            return None
        if not isinstance(sample_weight, torch.Tensor):
            sample_weight = _check_sample_weight(sample_weight, np.empty((X.shape[0], 0)), dtype=np.float64,
                                                 ensure_non_negative=True)
        return F.normalize_weights(sample_weight, X.shape[0]).to(X.device)

    @staticmethod
    def _output(Y: torch.Tensor, io: _IO):
        if io.torch:
            return Y.to(dtype=io.dtype if io.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
                        else torch.float64)
        return Y.cpu().numpy().astype(io.dtype, copy=False)

    def _param(self, name: str, device) -> torch.Tensor:
        return torch.as_tensor(getattr(self, name), dtype=torch.float64, device=device)

    def _inverse_input(self, X, n_expected: int) -> tuple[torch.Tensor, _IO]:
        check_is_fitted(self)
        name = type(self).__name__
        if isinstance(X, torch.Tensor):
            if X.ndim != 2 or X.shape[1] != n_expected:
                raise ValueError(f"{name}.inverse_transform: expected shape (n, {n_expected}), got {tuple(X.shape)}")
            if X.is_floating_point() and not torch.isfinite(X).all():
                raise ValueError(f"{name}.inverse_transform: X: expected finite values, got "
                                 f"{int((~torch.isfinite(X)).sum())} NaN or inf entries")
            return X, _IO(True, X.dtype if X.is_floating_point() else torch.float64, X.device)
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != n_expected:
            raise ValueError(f"{name}.inverse_transform: expected {n_expected} features, got {X.shape[1]}")
        if not X.flags.writeable:
            X = X.copy()
        return torch.from_numpy(X), _IO(False, X.dtype)


def _check_k(name: str, k: int | None, d: int, what: str = "n_components") -> int:
    if k is None:
        return d
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"{name}: {what} must be a positive integer or None, got {k!r}")
    if k > d:
        raise ValueError(f"{name}: {what}={k} must be <= n_features = {d}")
    return int(k)


# ----------------------------------------------------------------------------------------------------
# Whitening
# ----------------------------------------------------------------------------------------------------

class _Whitening(ClassNamePrefixFeaturesOutMixin, _Base):
    _ddof = 0

    def __init__(self, n_components: int | None = None, eps: float = 1e-10):
        self.n_components = n_components
        self.eps = eps

    def _fit(self, X, sample_weight):
        Xt, _ = self._input(X, reset=True)
        n, d = Xt.shape
        k = _check_k(type(self).__name__, self.n_components, d)
        if not (isinstance(self.eps, float | int) and 0 <= self.eps < 1):
            raise ValueError(f"{type(self).__name__}: eps must be in [0, 1), got {self.eps!r}")
        if n <= self._ddof:
            raise ValueError(f"{type(self).__name__} needs at least {self._ddof + 1} samples (ddof={self._ddof}), "
                             f"got n_samples = {n}")
        p = self._weights(sample_weight, Xt)
        mu, C = F.weighted_moments(Xt, p)
        if self._ddof:
            C = C * (n / (n - self._ddof))
        comps, lam, scale = F.whitening_from_moments(C, n_components=k, eps=float(self.eps),
                                                     atol=F.null_tolerance(C, mu, n))
        self.mean_ = mu.cpu().numpy()
        self.components_ = comps.cpu().numpy()
        self.explained_variance_ = lam.cpu().numpy()
        self.scale_ = scale.cpu().numpy()
        self.n_components_ = k
        return self

    @property
    def _n_features_out(self):
        return self.n_components_

    @property
    def transformation_matrix_(self) -> np.ndarray:
        """The (d, k) matrix T of the official code: ``transform(x) = (x - mean_) @ T``."""
        check_is_fitted(self)
        return self.components_.T * self.scale_

    def transform(self, X):
        """Whiten: ``(X - mean_) @ components_.T * scale_``; (n, d) -> (n, n_components_)."""
        check_is_fitted(self)
        Xt, io = self._input(X, reset=False)
        dev = Xt.device
        Y = F.whiten(Xt, self._param("mean_", dev), self._param("components_", dev), self._param("scale_", dev))
        return self._output(Y, io)

    def inverse_transform(self, X):
        """Map whitened vectors back: ``X / scale_ @ components_ + mean_`` (exact when n_components_ = d)."""
        Xt, io = self._inverse_input(X, self.n_components_)
        dev = Xt.device
        scale = self._param("scale_", dev)
        inv = torch.where(scale > 0, 1 / scale.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(scale))
        Y = (F.as_float64(Xt, dev) * inv) @ self._param("components_", dev) + self._param("mean_", dev)
        return self._output(Y, io)


class ZipfianWhitening(_Whitening):
    """PCA whitening under frequency-weighted (Zipfian) moments.

    ``fit(X, sample_weight=p)`` computes ``mu = sum_i p_i x_i`` and
    ``C = sum_i p_i (x_i - mu)(x_i - mu)^T`` (population normalisation, as the official code), then
    ``transform(x) = (x - mu) V diag(lam)^(-1/2)``: afterwards ``E_p[x~] = 0`` and ``E_p[x~ x~^T] = I``.
    Weights that do not sum to 1 are normalised (counts work as well as probabilities); integer
    weights are equivalent to repeating rows; zero weights to dropping them. Without
    ``sample_weight`` the weights are uniform, i.e. ordinary PCA whitening with the 1/n covariance.

    Args:
        n_components: keep the top-k principal directions (output dimension); ``None`` keeps all d.
        eps: relative rank tolerance for near-singular covariances: directions with variance
            ``<= eps * lam_1`` are treated as null and map to 0 (Moore-Penrose whitening) instead of
            amplifying numerical noise; on full-rank data nothing changes.

    Attributes:
        mean_ (d,), components_ (k, d) principal directions (descending variance, deterministic signs),
        explained_variance_ (k,), scale_ (k,), n_components_, n_features_in_; ``transformation_matrix_``
        (d, k) as in the official code.

    Paper: Yokoi, Bao, Kurita, Shimodaira, "Zipfian Whitening", NeurIPS 2024, Alg. 1.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(1000, 5)) @ np.diag([5, 4, 3, 2, 1])
        >>> p = np.random.default_rng(1).zipf(2.0, size=1000).astype(float)
        >>> Z = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
        >>> bool(np.allclose(np.cov(Z.T, aweights=p, bias=True), np.eye(5), atol=1e-8))
        True
    """

    def fit(self, X, y=None, sample_weight=None):
        """Fit the p-weighted mean and whitening matrix. ``sample_weight``: (n,) non-negative, normalised to 1."""
        return self._fit(X, sample_weight)


class UniformWhitening(_Whitening):
    """PCA whitening with the unweighted mean and the n-1 sample covariance (the paper's baseline).

    Identical to ``sklearn.decomposition.PCA(whiten=True)`` and to the official ``UniformWhitening``.
    It takes no ``sample_weight``: use :class:`ZipfianWhitening` for weighted statistics.

    Args:
        n_components: keep the top-k principal directions; ``None`` keeps all d.
        eps: relative rank tolerance, as in :class:`ZipfianWhitening`.
    """

    _ddof = 1

    def fit(self, X, y=None):
        """Fit the uniform mean and whitening matrix (n-1 normalisation)."""
        return self._fit(X, None)


# ----------------------------------------------------------------------------------------------------
# Centering and all-but-the-top
# ----------------------------------------------------------------------------------------------------

class _Centering(OneToOneFeatureMixin, _Base):
    def _fit(self, X, sample_weight):
        Xt, _ = self._input(X, reset=True)
        p = self._weights(sample_weight, Xt)
        mu, _ = F.weighted_moments(Xt, p)
        self.mean_ = mu.cpu().numpy()
        return self

    def transform(self, X):
        """Subtract ``mean_``."""
        check_is_fitted(self)
        Xt, io = self._input(X, reset=False)
        return self._output(F.as_float64(Xt) - self._param("mean_", Xt.device), io)

    def inverse_transform(self, X):
        """Add ``mean_`` back."""
        Xt, io = self._inverse_input(X, self.n_features_in_)
        return self._output(F.as_float64(Xt) + self._param("mean_", Xt.device), io)


class ZipfianCentering(_Centering):
    """Subtract the frequency-weighted mean ``sum_i p_i x_i`` (the paper's "Zipfian centering").

    Example:
        >>> import numpy as np
        >>> X, p = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([3.0, 1.0])
        >>> ZipfianCentering().fit(X, sample_weight=p).mean_
        array([0.75, 0.25])
    """

    def fit(self, X, y=None, sample_weight=None):
        """Fit the weighted mean (``sample_weight`` normalised to sum to 1; ``None`` = uniform)."""
        return self._fit(X, sample_weight)


class UniformCentering(_Centering):
    """Subtract the plain mean of the rows (the paper's "uniform centering" baseline)."""

    def fit(self, X, y=None):
        """Fit the unweighted mean."""
        return self._fit(X, None)


class AllButTheTop(OneToOneFeatureMixin, _Base):
    """All-but-the-top (Mu & Viswanath, ICLR 2018): centre, then remove the top-D principal directions.

    ``transform(x) = (x - mu) - sum_{i<=D} (u_i . (x - mu)) u_i``. The paper's baseline is uniform
    (``sample_weight=None``); passing word frequencies gives a frequency-weighted variant.

    Args:
        n_components: D, the number of dominating directions removed (paper default 3, official
            ``AllButTheTop(components_threshhold=3)``; Mu & Viswanath suggest d/100).
    """

    def __init__(self, n_components: int = 3):
        self.n_components = n_components

    def fit(self, X, y=None, sample_weight=None):
        """Fit the (optionally weighted) mean and the top-D directions of the centred data."""
        Xt, _ = self._input(X, reset=True)
        k = _check_k("AllButTheTop", self.n_components, Xt.shape[1])
        p = self._weights(sample_weight, Xt)
        mu, C = F.weighted_moments(Xt, p)
        comps, _, _ = F.whitening_from_moments(C, n_components=k)
        self.mean_ = mu.cpu().numpy()
        self.components_ = comps.cpu().numpy()
        return self

    def transform(self, X):
        """Centre and project out the top-D directions."""
        check_is_fitted(self)
        Xt, io = self._input(X, reset=False)
        U = self._param("components_", Xt.device)  # (D, d)
        Xc = F.as_float64(Xt) - self._param("mean_", Xt.device)
        return self._output(Xc - (Xc @ U.T) @ U, io)


# ----------------------------------------------------------------------------------------------------
# SIF / uSIF (sentence-level common-component removal + word weights)
# ----------------------------------------------------------------------------------------------------

class _ComponentRemoval(OneToOneFeatureMixin, _Base):
    def fit(self, X, y=None):
        """Fit the top principal directions of the (uncentred) sentence embeddings, as SIF's TruncatedSVD."""
        self._check_params()
        Xt, _ = self._input(X, reset=True)
        k = _check_k(type(self).__name__, self.n_components, Xt.shape[1])
        comps, energy = F.top_components(Xt, k, center=False)
        self.components_ = comps.cpu().numpy()
        top = energy[:k]
        self.component_weights_ = self._component_weights(top).cpu().numpy()
        return self

    def transform(self, X):
        """Remove the (weighted) projections on the fitted common directions."""
        check_is_fitted(self)
        Xt, io = self._input(X, reset=False)
        U = self._param("components_", Xt.device)  # (k, d)
        lam = self._param("component_weights_", Xt.device)  # (k,)
        Xd = F.as_float64(Xt)
        return self._output(Xd - ((Xd @ U.T) * lam) @ U, io)


class SIF(_ComponentRemoval):
    """Smooth inverse frequency (Arora, Liang, Ma, ICLR 2017), the common-component half.

    Sentence vectors are ``sum_w a/(a + p(w)) v_w / |s|`` (:meth:`word_weights`, applied by the
    embedder); ``fit`` finds the first singular direction ``u`` of the set of sentence vectors and
    ``transform`` returns ``v_s - (u . v_s) u`` (Alg. 1, line 5).

    Args:
        a: the smoothing constant (paper default 1e-3).
        n_components: directions removed (paper: 1).
    """

    def __init__(self, a: float = 1e-3, n_components: int = 1):
        self.a = a
        self.n_components = n_components

    def _check_params(self) -> None:
        check_positive("SIF: a", self.a)

    def _component_weights(self, energy: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(energy)

    def word_weights(self, p) -> np.ndarray:
        """``a / (a + p(w))`` for word probabilities ``p``."""
        self._check_params()
        return F.sif_weights(p, self.a).numpy()


class USIF(_ComponentRemoval):
    """Unsupervised SIF (Ethayarajh, RepL4NLP 2018): weights ``a/(a/2 + p)`` and piecewise removal.

    ``fit`` finds the top-m singular directions ``u_i`` (energies ``s_i^2``) of the sentence vectors;
    ``transform`` returns ``v - sum_i lam_i (u_i . v) u_i`` with ``lam_i = s_i^2 / sum_{j<=m} s_j^2``.
    :meth:`word_weights` derives ``a`` from the vocabulary and the expected sentence length ``n``.

    Args:
        n: expected sentence length (paper: 11 for STS).
        n_components: m, the number of common directions (paper: 5).
    """

    def __init__(self, n: int = 11, n_components: int = 5):
        self.n = n
        self.n_components = n_components

    def _check_params(self) -> None:
        check_int("USIF: n", self.n, min_value=1)

    def _component_weights(self, energy: torch.Tensor) -> torch.Tensor:
        total = energy.sum()
        return energy / total if total > 0 else torch.zeros_like(energy)

    def word_weights(self, p) -> np.ndarray:
        """``a / (a/2 + p(w))`` with ``a = (1 - alpha) / (alpha |V|/2)`` from ``p`` (Sec. 4)."""
        self._check_params()
        return F.usif_weights(p, self.n).numpy()
