import torch
from flatquant import reproduce as R


def test_reproductions_registered():
    names = [r.name for r in R.REPRODUCTIONS]
    assert names == ["smollm2-ppl", "minilm-embeddings", "ablation", "flatness", "overhead"]
    assert R.QUICK["epochs"] >= 1 and R.FULL == {"nsamples": 128, "seqlen": 2048, "epochs": 15, "eval_tokens": None,
                                                 "batch_size": 4}


def test_fwht_is_orthonormal_sylvester_hadamard():
    h = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(4):
        h = torch.kron(h, torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64))
    x = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(R.fwht(x), x @ h / 4)


def test_overhead_fields(tmp_path):
    r = R.transform_overhead(tokens=16, hidden=64, rep=1)
    assert (r["n1"], r["n2"]) == (8, 8) and r["kron_over_linear"] > 0 and "fwht_over_linear" in r
