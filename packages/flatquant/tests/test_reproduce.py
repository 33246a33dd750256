import pytest
import torch
from flatquant import functional as FQ
from flatquant import reproduce as R


def test_reproductions_registered():
    names = [r.name for r in R.REPRODUCTIONS]
    assert names == ["official", "smollm2-ppl", "minilm-embeddings", "ablation", "flatness", "overhead"]
    assert R.OFFICIAL_SETTING == {"nsamples": 32, "seqlen": 256, "batch_size": 4, "eval_tokens": None,
                                  "windows": "random"}
    assert R.OFFICIAL_PPL[2] == 106.4 and R.OFFICIAL_PPL[5] == 78.0
    # the quick setting is a different, smaller one: it must never be the official one
    assert (R.QUICK["nsamples"], R.QUICK["seqlen"]) != (32, 256) and R.QUICK["eval_tokens"] is not None


def test_fwht_is_orthonormal_sylvester_hadamard():
    h = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(4):
        h = torch.kron(h, torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64))
    x = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(FQ.fwht(x), x @ h / 4)


def test_overhead_fields(tmp_path):
    r = R.transform_overhead(tokens=16, hidden=64, rep=1)
    assert (r["n1"], r["n2"]) == (8, 8) and r["kron_over_linear"] > 0 and "fwht_over_linear" in r


def test_gpu_check_does_not_import_reproduce():
    import ast
    import inspect

    from flatquant import gpu_check

    tree = ast.parse(inspect.getsource(gpu_check))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "flatquant.reproduce" not in mods


@pytest.mark.parametrize("argv", [["official", "--epochs", "0"], ["official", "--nsamples", "-1"],
                                  ["reproduce", "--seed", "x"]])
def test_cli_bad_values_are_usage_errors(argv):
    from flatquant.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_random_windows_follow_the_official_loader():
    """Official ``get_wikitext2``: ``random.seed(seed)``; per sample ``i = random.randint(0, len - seqlen - 1)``."""
    import random

    import torch

    class Tok:
        def __call__(self, text, return_tensors=None):
            class Out:
                input_ids = torch.arange(1000)[None]
            return Out()

    cal, _ = R.smollm2_data(Tok(), 5, 16, 64, windows="random", seed=0)
    random.seed(0)
    starts = [random.randint(0, 1000 - 16 - 1) for _ in range(5)]
    assert cal[:, 0].tolist() == starts and cal.shape == (5, 16)
    assert (cal[:, 1:] - cal[:, :-1] == 1).all()
    first, _ = R.smollm2_data(Tok(), 5, 16, 64)
    assert first[:, 0].tolist() == [0, 16, 32, 48, 64]


def test_official_record_names_the_setting_that_ran(tmp_path, monkeypatch):
    """A package-default variant (more windows) records its own nsamples and no official-code number beside it."""
    import json

    monkeypatch.setattr(R, "quantized_ppl", lambda cfg, *a, **k: {"ppl": 1.0, "nsamples": cfg.nsamples})
    m = R.run_official(5, tmp_path, 0, name="variant", nsamples=64)
    rec = json.loads((tmp_path / "variant.json").read_text())
    assert rec["config"]["setting"]["nsamples"] == 64 == rec["config"]["nsamples"] == m["nsamples"]
    assert m["official_code_ppl"] is None and m["official_setting"] is False
    m = R.run_official(5, tmp_path, 0, name="official")
    assert m["official_code_ppl"] == 78.0 and m["official_setting"] is True
