"""Fit + transform speed on all 400,000 GloVe vectors, against scikit-learn's PCA(whiten=True).

Run: ``uv run python -m zipf_whitening bench`` (writes ``results/bench_fit.json``).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from papercommon.bench import Record
from sklearn.decomposition import PCA

from zipf_whitening import functional as F
from zipf_whitening.estimators import UniformWhitening, ZipfianWhitening


def glove_400k_with_prior() -> tuple[np.ndarray, np.ndarray]:
    """All 400k GloVe vectors (float32) and a prior: wordfreq's p where known, the smallest p elsewhere."""
    from papercommon.data import glove, word_frequencies

    vectors, words = glove()
    freq = word_frequencies("en", "large")
    floor = min(freq.values())
    p = np.array([freq.get(w, floor) for w in words], dtype=np.float64)
    return vectors, p / p.sum()


def _interleaved(runs: dict, warmup: int, rep: int, device: str) -> dict[str, dict[str, float]]:
    """Time the variants round-robin (so load changes hit all alike): wall and process-CPU seconds."""
    cuda = device != "cpu"
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rep):
        for k, fn in runs.items():
            if cuda:
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if cuda:
                torch.cuda.synchronize()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: {"wall_median_s": statistics.median(wall[k]), "wall_min_s": min(wall[k]),
                "cpu_median_s": statistics.median(cpu[k])} for k in runs}


def benchmark_fit(quick: bool = False, device: str = "cpu") -> Record:
    """Seconds to fit and transform all 400k vectors: ours (numpy and torch inputs), the official SVD
    recipe (:func:`functional.whitening_reference`, float64) and ``PCA(whiten=True)``, timed round-robin.

    Wall-clock time on a shared machine is noisy, so the process CPU time (all threads) is recorded
    too. Accuracy: max difference of our uniform whitening (float32 in) from ``PCA(whiten=True)`` on the
    same data in float64.
    """
    X, p = glove_400k_with_prior()
    warmup, rep = (0, 1) if quick else (1, 5)
    Xt = torch.from_numpy(X).to(device)
    pt = torch.from_numpy(p).to(device)
    runs = {
        "zipfian_numpy": lambda: ZipfianWhitening().fit(X, sample_weight=p).transform(X),
        "zipfian_torch": lambda: ZipfianWhitening().fit(Xt, sample_weight=pt).transform(Xt),
        "uniform_numpy": lambda: UniformWhitening().fit(X).transform(X),
        "official_svd_recipe": lambda: F.whitening_reference(X, p),
        "sklearn_pca_whiten": lambda: PCA(whiten=True, svd_solver="full").fit_transform(X),
    }
    timings = _interleaved(runs, warmup, rep, device)
    metrics: dict = {f"{k}_s": v["wall_median_s"] for k, v in timings.items()}
    metrics.update({f"{k}_min_s": v["wall_min_s"] for k, v in timings.items()})
    metrics.update({f"{k}_cpu_s": v["cpu_median_s"] for k, v in timings.items()})
    metrics["speedup_vs_pca_wall"] = metrics["sklearn_pca_whiten_s"] / metrics["zipfian_numpy_s"]
    metrics["speedup_vs_pca_cpu"] = metrics["sklearn_pca_whiten_cpu_s"] / metrics["zipfian_numpy_cpu_s"]
    ours = UniformWhitening().fit(X).transform(X)
    ref = PCA(whiten=True, svd_solver="full").fit_transform(X.astype(np.float64))
    metrics["max_abs_diff_uniform_vs_pca64"] = float(np.abs(np.abs(ours) - np.abs(ref)).max())
    zw = ZipfianWhitening().fit(X, sample_weight=p).transform(X)
    zref, _ = F.whitening_reference(X, p)
    metrics["max_abs_diff_zipfian_vs_official_recipe64"] = float(np.abs(zw - zref.numpy()).max())
    return Record("zipf_whitening/bench-fit-400k",
                  config={"n": int(X.shape[0]), "d": int(X.shape[1]), "dtype": "float32", "device": device,
                          "warmup": warmup, "rep": rep, "threads": torch.get_num_threads(),
                          "timing": "round-robin over variants; wall median/min and process CPU median"},
                  metrics=metrics)
