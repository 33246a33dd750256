"""Property test (issue 20): random shapes and non-finite values into the public functions give either a
``ValueError`` / ``TypeError`` with a message, or a finite result."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from zipf_whitening import (
    SIF,
    USIF,
    AllButTheTop,
    UniformWhitening,
    ZipfianCentering,
    ZipfianWhitening,
    sym1,
    sym2,
    symmetry_scores,
)
from zipf_whitening.functional import normalize_weights

floats = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0])
shapes = st.tuples(st.integers(0, 12), st.integers(0, 5))


def _finite_or_message(fn):
    try:
        out = fn()
    except (ValueError, TypeError) as e:
        assert str(e).strip(), "an error without a message"
        return
    arrs = out if isinstance(out, tuple | list) else [out]
    if isinstance(out, dict):
        arrs = list(out.values())
    for a in arrs:
        a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=float)
        assert np.isfinite(a).all(), f"non-finite result {a}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=shapes.flatmap(lambda s: arrays(np.float64, s, elements=floats)), data=st.data(),
       as_torch=st.booleans(), est=st.sampled_from([ZipfianWhitening, UniformWhitening, ZipfianCentering,
                                                      AllButTheTop, SIF, USIF]))
def test_estimators_fit_transform(X, data, as_torch, est):
    n = X.shape[0]
    w = data.draw(st.none() | arrays(np.float64, (n,), elements=floats))
    kw = {"sample_weight": w} if w is not None and est in (ZipfianWhitening, ZipfianCentering) else {}
    Xin = torch.from_numpy(X) if as_torch else X
    if kw and as_torch:
        kw["sample_weight"] = torch.from_numpy(w)

    def run():
        e = est().fit(Xin, **kw) if est not in (AllButTheTop, USIF) else est(n_components=1).fit(Xin, **kw)
        Z = e.transform(Xin)
        back = e.inverse_transform(Z) if hasattr(e, "inverse_transform") else Z
        return Z, back

    _finite_or_message(run)


@settings(max_examples=20, deadline=None)
@given(X=shapes.flatmap(lambda s: arrays(np.float64, s, elements=floats)), data=st.data())
def test_symmetry_scores(X, data):
    p = data.draw(st.none() | arrays(np.float64, (X.shape[0],), elements=floats))
    _finite_or_message(lambda: (sym1(X, p), sym2(X, p), *symmetry_scores(X, p).values()))


@settings(max_examples=20, deadline=None)
@given(w=arrays(np.float64, st.integers(0, 8), elements=floats))
def test_normalize_weights(w):
    _finite_or_message(lambda: normalize_weights(w, len(w)))
