import pytest
import torch
from fastattention.gpu_check import gpu_checks


def test_importable_and_empty_without_cuda():
    if not torch.cuda.is_available():
        assert gpu_checks(quick=True) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_kernels_match_reference():
    recs = [r for r in gpu_checks(quick=True) if "ok" in r.metrics]
    assert recs and all(r.metrics["ok"] for r in recs), [(r.name, r.metrics) for r in recs if not r.metrics["ok"]]
