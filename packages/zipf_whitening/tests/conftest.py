import numpy as np
import pytest


@pytest.fixture
def zipf_data():
    """A small anisotropic cloud with a Zipfian prior and a frequency direction (like word vectors)."""
    rng = np.random.default_rng(0)
    n, d = 600, 6
    p = 1.0 / np.arange(1, n + 1)
    p /= p.sum()
    X = rng.normal(size=(n, d)) @ np.diag([4.0, 3.0, 2.0, 1.0, 0.5, 0.25]) + 0.5
    X[:, 0] += 3.0 * np.log(p)  # a "frequency direction": frequent words sit apart
    return X, p
