"""Fit + transform speed on all 400,000 GloVe vectors, against scikit-learn's PCA(whiten=True).

Run: ``uv run python -m zipf_whitening bench`` (writes ``results/bench_fit.json``).
"""

from __future__ import annotations

import numpy as np
import torch
from paperkit.bench import Record, benchmark
from sklearn.decomposition import PCA

from zipf_whitening import functional as F
from zipf_whitening.estimators import UniformWhitening, ZipfianWhitening


def glove_400k_with_prior() -> tuple[np.ndarray, np.ndarray]:
    """All 400k GloVe vectors (float32) and a prior: wordfreq's p where known, the smallest p elsewhere."""
    from paperkit.data import glove, word_frequencies

    vectors, words = glove()
    freq = word_frequencies("en", "large")
    floor = min(freq.values())
    p = np.array([freq.get(w, floor) for w in words], dtype=np.float64)
    return vectors, p / p.sum()


def benchmark_fit(quick: bool = False, device: str = "cpu") -> Record:
    """Median seconds to fit and transform all vectors: ours (numpy and torch inputs), the official
    SVD recipe (:func:`functional.whitening_reference`) and ``PCA(whiten=True)``; plus the max
    difference between our uniform whitening and PCA's output."""
    X, p = glove_400k_with_prior()
    warmup, rep = (0, 1) if quick else (1, 3)
    Xt = torch.from_numpy(X).to(device)
    pt = torch.from_numpy(p).to(device)
    runs = {
        "zipfian_numpy": lambda: ZipfianWhitening().fit(X, sample_weight=p).transform(X),
        "zipfian_torch": lambda: ZipfianWhitening().fit(Xt, sample_weight=pt).transform(Xt),
        "uniform_numpy": lambda: UniformWhitening().fit(X).transform(X),
        "official_svd_recipe": lambda: F.whitening_reference(X, p),
        "sklearn_pca_whiten": lambda: PCA(whiten=True, svd_solver="full").fit_transform(X),
    }
    dev = device if device != "cpu" else None
    metrics = {f"{k}_s": benchmark(fn, warmup=warmup, rep=rep, device=dev).median_ms / 1e3 for k, fn in runs.items()}
    metrics["speedup_vs_pca"] = metrics["sklearn_pca_whiten_s"] / metrics["zipfian_numpy_s"]
    ours = UniformWhitening().fit(X).transform(X)
    ref = PCA(whiten=True, svd_solver="full").fit_transform(X)
    metrics["max_abs_diff_uniform_vs_pca"] = float(np.abs(np.abs(ours) - np.abs(ref)).max())
    return Record("zipf_whitening/bench-fit-400k",
                  config={"n": int(X.shape[0]), "d": int(X.shape[1]), "dtype": "float32", "device": device,
                          "warmup": warmup, "rep": rep, "threads": torch.get_num_threads()},
                  metrics=metrics)
