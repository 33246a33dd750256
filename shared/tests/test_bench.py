import json

import pytest
import torch
from papercommon.bench import Record, benchmark, environment, peak_memory, render_table


def test_benchmark_counts_and_median():
    calls = []
    t = benchmark(lambda: calls.append(1), warmup=2, rep=5)
    assert len(calls) == 7 and len(t.times_ms) == 5 and t.min_ms <= t.median_ms
    with pytest.raises(ValueError, match="rep"):
        benchmark(lambda: None, rep=0)


def test_peak_memory_sees_allocations():
    small = peak_memory(lambda: torch.zeros(10))
    big = peak_memory(lambda: bytearray(64 * 2**20))
    assert big >= 64 * 2**20 > small


def test_record_roundtrip_and_table(tmp_path):
    rec = Record("demo", config={"n": 3}, metrics={"ms": 1.23456, "ok": True, "nan": float("nan")})
    path = rec.save(tmp_path / "a" / "demo.json")
    d = json.loads(path.read_text())
    assert d["config"] == {"n": 3} and d["metrics"]["nan"] == "nan"
    assert set(d["git"]) == {"commit", "dirty"} and d["env"]["torch"] == torch.__version__
    assert Record.load(path).metrics["ms"] == 1.23456
    table = render_table([rec], columns=["name", "config.n", "metrics.ms"])
    assert table.splitlines()[2] == "| demo | 3 | 1.235 |"
    assert "python" in environment()


def test_poison_outputs_and_compare():
    from papercommon.testing import compare, poison_outputs

    with poison_outputs():
        a = torch.empty(3)
        b = torch.empty_like(torch.zeros(2, dtype=torch.int8))
    assert torch.isnan(a).all() and (b == 127).all()
    ref = torch.ones(4)
    assert compare(ref + 1e-6, ref)["ok"]
    assert not compare(torch.tensor([1.0, float("nan"), 1, 1]), ref)["ok"]
    assert not compare(ref + 1, ref)["ok"]
